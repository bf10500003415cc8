"""The order's life after checkout, and the money in it (issue #9): who may cancel until when,
what a cancelled paid order gets back, what a declined card leaves the shopper to do.

Real parts only: checkout, cancel and payment through HTTP; the real ARQ worker in burst mode
charging through the built-in test gateway (which records its charges and refunds, as a real
gateway's dashboard would); PostgreSQL and Redis as they run in production.
"""

import asyncio
import os
import random
import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import func, select, update

from sweetdream.accounts.models import Role
from sweetdream.app import create_app
from sweetdream.orders.models import Order, OrderEvent, OrderStatus
from sweetdream.payments import APPROVE_CARD, DECLINE_CARD, GatewayUnavailable, TestGateway
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in, stock_of
from tests.integration.helpers import post_form, reviewed
from tests.integration.test_checkout import NUMBER, checkout_form
from tests.integration.test_workers import body, fresh, mails_to, place_by_http
from tests.support import drain_queue
from workers import jobs


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setenv("JOB_RETRY_DELAY_SECONDS", "0.05")


def card(number: str) -> dict[str, str]:
    return {"payment_method": "CARD", "card_number": number, "card_expiry": "12/39", "card_cvc": "123"}


async def burst_worker(settings, gateway: TestGateway | None = None) -> None:
    """A real ARQ worker in burst mode; `gateway` stands in for the card network when given."""

    async def startup(ctx):
        await jobs.startup(ctx)
        if gateway is not None:
            jobs.state(ctx).fulfillment.gateway = gateway

    await drain_queue(settings.redis_url, on_startup=startup)


async def worker_in_thread(settings, gateway: TestGateway | None = None) -> None:
    """A burst worker on a thread and event loop of its own, as a separate worker process: the
    test client answers each request on its own thread while blocking the test's loop, so a worker
    on the test's loop could not run while a request waits for it."""
    await asyncio.to_thread(asyncio.run, burst_worker(settings, gateway))


def gateway_charges(order: Order) -> list[str]:
    """References of the approved charges the gateway holds for this order."""
    return [ref for key, ref in TestGateway.charged.items() if key.startswith(f"{order.number}-")]


def gateway_refunds(charge_reference: str) -> list:
    return [r for r in TestGateway.refunded.values() if r.charge_reference == charge_reference]


async def order_page(client, number: str) -> str:
    page = await client.get(f"/orders/{number}")
    assert page.status_code == 200, page.text
    return unescape(page.text)


async def as_admin(settings, db) -> AsyncTestClient:
    """An admin in a browser of their own: an app of its own too (each test client runs its app on
    a thread and event loop of its own, and an app's pools belong to one loop)."""
    admin = AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1")
    await admin.__aenter__()
    admin.follow_redirects = False
    await signed_in(admin, settings, await make_user(db, Role.ADMIN))
    return admin


# --- a charge and a cancel never both win silently --------------------------------------------


class NetworkGateway(TestGateway):
    """The test gateway at the end of a network: each charge takes a few milliseconds."""

    async def charge(self, *args, **kwargs):
        await asyncio.sleep(random.uniform(0.002, 0.02))
        return await super().charge(*args, **kwargs)


async def test_a_shoppers_cancel_racing_the_charge_never_leaves_a_charge_unrefunded(client, settings, db):
    rounds = int(os.environ.get("RACE_ROUNDS", "30"))
    seen: Counter[str] = Counter()
    orders, answers = [], []
    for _ in range(rounds):
        _, _, order = await place_by_http(client, settings, db, **card(APPROVE_CARD))

        async def cancel(number=order.number):
            await asyncio.sleep(random.uniform(0, 0.05))
            return await post_form(client, f"/orders/{number}/cancel", {})

        answer, _ = await asyncio.gather(cancel(), worker_in_thread(settings, NetworkGateway()))
        await burst_worker(settings)  # what the cancel queued (a refund, the emails)
        orders.append(await fresh(db, order.id))
        answers.append(answer.status_code)

    # The money first: no cancelled order keeps a charge, in our records or at the gateway.
    kept = [o.number for o in orders if o.status == OrderStatus.CANCELLED and o.payment_status == "paid"]
    assert kept == [], f"cancelled but charged and not refunded: {kept}"
    for order in orders:
        charges = gateway_charges(order)
        if order.status == OrderStatus.CANCELLED and charges:
            (charge,) = charges
            (refund,) = gateway_refunds(charge)  # exactly one refund, of the whole charge
            assert refund.amount == order.total
            assert order.payment_status == "refunded" and order.refund_reference == refund.reference
            mid_charge = await db.scalar(
                select(func.count()).where(OrderEvent.order_id == order.id, OrderEvent.title == "Charged")
            )
            seen["cancelled mid-charge, refunded" if mid_charge else "cancelled once confirmed, refunded"] += 1
        elif order.status == OrderStatus.CANCELLED:
            assert order.payment_status != "refunded" and order.refund_reference is None
            seen["cancelled before any charge"] += 1
        else:
            seen[f"{order.status.value} {order.payment_status}"] += 1
    # The shopper may cancel until the bakery starts preparing: every cancel here was in time.
    assert answers == [303] * rounds, seen
    assert all(o.status == OrderStatus.CANCELLED for o in orders), seen
    print(dict(seen))


class HeldGateway(TestGateway):
    """The card network holding the charge until the test lets it answer."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    async def charge(self, *args, **kwargs):
        self.started.set()
        await asyncio.to_thread(self.release.wait, 30)
        return await super().charge(*args, **kwargs)


async def test_a_cancel_while_the_card_is_being_charged_is_refunded_when_the_charge_lands(client, settings, db):
    user, variant, order = await place_by_http(client, settings, db, stock=5, **card(APPROVE_CARD))
    gateway = HeldGateway()
    worker = asyncio.create_task(worker_in_thread(settings, gateway))
    assert await asyncio.to_thread(gateway.started.wait, 10)
    assert "being authorised" in await order_page(client, order.number)
    r = await post_form(client, f"/orders/{order.number}/cancel", {})
    assert r.status_code == 303
    assert (await fresh(db, order.id)).status == OrderStatus.CANCELLED
    assert await stock_of(db, variant) == 5
    gateway.release.set()  # the charge went through after all
    await worker
    await burst_worker(settings)
    order = await fresh(db, order.id)
    (charge,) = gateway_charges(order)
    (refund,) = gateway_refunds(charge)
    assert order.status == OrderStatus.CANCELLED and order.payment_status == "refunded"
    assert order.payment_reference == charge and order.refund_reference == refund.reference
    (mail,) = mails_to(settings, user.email)  # no confirmation: only the cancellation, once refunded
    assert mail["Subject"] == f"Your order {order.number} was cancelled"
    assert "refunded" in body(mail) and "card ending 4242" in body(mail)


# --- a paid order cancelled is refunded, and everyone is told ---------------------------------


async def test_cancelling_a_paid_order_refunds_it_on_the_page_the_admin_list_and_the_email(client, settings, db):
    user, variant, order = await place_by_http(client, settings, db, stock=5, quantity=2, **card(APPROVE_CARD))
    await burst_worker(settings)
    order = await fresh(db, order.id)
    assert order.status == OrderStatus.PROCESSING and order.payment_status == "paid"
    assert order.payment_reference == f"ch_test_{order.number}-1"

    r = await post_form(client, f"/orders/{order.number}/cancel", {})
    assert r.status_code == 303 and await stock_of(db, variant) == 5
    assert "being refunded" in await order_page(client, order.number)
    await burst_worker(settings)

    order = await fresh(db, order.id)
    assert order.status == OrderStatus.CANCELLED and order.payment_status == "refunded"
    (refund,) = gateway_refunds(order.payment_reference)
    assert refund.amount == order.total == 230_000 and order.refund_reference == refund.reference
    page = await order_page(client, order.number)
    assert "Card ending 4242 · refunded ₫230,000" in page
    assert re.search(r"<strong>Refunded</strong>[^<]*· ₫230,000 refunded to the card ending 4242", page)
    cancelled = [m for m in mails_to(settings, user.email) if "cancelled" in m["Subject"]]
    assert len(cancelled) == 1 and "Nothing will be charged" not in body(cancelled[0])
    assert "We have refunded ₫230,000 to your card ending 4242" in body(cancelled[0])
    admin = await as_admin(settings, db)
    try:
        listing = unescape((await admin.get("/admin/orders?status=CANCELLED")).text)
    finally:
        await admin.__aexit__(None, None, None)
    row = next(tr for tr in listing.split("<tr>")[1:] if order.number in tr)
    assert "Refunded" in row


async def test_an_admin_cancelling_a_paid_order_while_it_is_prepared_refunds_it(client, settings, db):
    user, _, order = await place_by_http(client, settings, db, **card(APPROVE_CARD))
    await burst_worker(settings)
    admin = await as_admin(settings, db)
    try:
        moved = await post_form(admin, f"/admin/orders/{order.number}/status", {"status": "PREPARING"})
        assert moved.status_code == 303
        r = await post_form(
            admin, f"/admin/orders/{order.number}/status", {"status": "CANCELLED", "note": "The oven broke down"}
        )
        assert r.status_code == 303
    finally:
        await admin.__aexit__(None, None, None)
    await burst_worker(settings)
    order = await fresh(db, order.id)
    assert order.status == OrderStatus.CANCELLED and order.payment_status == "refunded"
    assert len(gateway_refunds(order.payment_reference)) == 1
    (mail,) = [m for m in mails_to(settings, user.email) if "cancelled" in m["Subject"]]
    assert "The oven broke down" in body(mail) and "refunded" in body(mail)


class FlakyRefunds(TestGateway):
    """The gateway answers the first refund call with a processing error, as networks do."""

    calls = 0

    async def refund(self, *args, **kwargs):
        FlakyRefunds.calls += 1
        if FlakyRefunds.calls == 1:
            raise GatewayUnavailable("processing_error: try again")
        return await super().refund(*args, **kwargs)


async def test_a_refund_that_fails_for_a_moment_is_retried_and_made_once(client, settings, db):
    _, _, order = await place_by_http(client, settings, db, **card(APPROVE_CARD))
    await burst_worker(settings)
    assert (await post_form(client, f"/orders/{order.number}/cancel", {})).status_code == 303
    FlakyRefunds.calls = 0
    await burst_worker(settings, FlakyRefunds())
    order = await fresh(db, order.id)
    assert FlakyRefunds.calls == 2
    assert order.payment_status == "refunded" and len(gateway_refunds(order.payment_reference)) == 1


# --- the shopper's cancel window: until the bakery starts preparing ---------------------------


async def test_a_confirmed_order_can_be_cancelled_by_the_shopper_until_the_bakery_starts_preparing(
    client, settings, db
):
    user, variant, first = await place_by_http(client, settings, db, stock=5)
    await burst_worker(settings)
    assert (await fresh(db, first.id)).status == OrderStatus.PROCESSING
    page = await order_page(client, first.number)
    assert 'id="order-status">Confirmed<' in page and 'id="cancel-order"' in page
    assert "You can cancel this order until we start preparing it." in page
    (confirmation,) = mails_to(settings, user.email)
    assert "You can cancel it on your order page until we start preparing it" in body(confirmation)
    r = await post_form(client, f"/orders/{first.number}/cancel", {})
    assert r.status_code == 303 and (await fresh(db, first.id)).status == OrderStatus.CANCELLED
    assert await stock_of(db, variant) == 5

    await put_in_cart(db, user, variant, 1)
    r = await post_form(client, "/checkout/", {**checkout_form(), **await reviewed(client)})
    second = await db.scalar(select(Order).where(Order.number == NUMBER.search(r.headers["location"]).group(1)))
    await burst_worker(settings)
    admin = await as_admin(settings, db)
    try:
        r = await post_form(admin, f"/admin/orders/{second.number}/status", {"status": "PREPARING"})
        assert r.status_code == 303
    finally:
        await admin.__aexit__(None, None, None)
    page = await order_page(client, second.number)
    assert 'id="order-status">Being prepared<' in page and 'id="cancel-order"' not in page
    assert "can no longer be cancelled online" in page
    r = await post_form(client, f"/orders/{second.number}/cancel", {})
    assert r.status_code == 409
    assert f"Order {second.number} is being prepared, so it can no longer be cancelled online" in unescape(r.text)
    assert (await fresh(db, second.id)).status == OrderStatus.PREPARING and await stock_of(db, variant) == 4
    await burst_worker(settings)
    subjects = [m["Subject"] for m in mails_to(settings, user.email)]
    assert f"We are preparing your order {second.number}" in subjects


async def test_admin_moves_are_verbs_cancel_comes_last_and_needs_a_reason(client, settings, db):
    _, _, order = await place_by_http(client, settings, db, stock=5)
    await burst_worker(settings)
    admin = await as_admin(settings, db)
    try:

        async def row_controls() -> tuple[list[str], str]:
            listing = unescape((await admin.get(f"/admin/orders?q={order.number}")).text)
            row = next(tr for tr in listing.split("<tr>")[1:] if order.number in tr)
            labels = re.findall(r"<(?:button|summary)\b[^>]*>\s*([^<]*?)\s*</(?:button|summary)>", row)
            return labels, row

        labels, row = await row_controls()
        assert labels == ["Start preparing", "Cancel order…", "Cancel order"]
        assert re.search(r'<textarea\b(?=[^>]*\bname="note")(?=[^>]*\brequired\b)[^>]*>', row)
        assert "Confirmed" in row
        # The cancel needs a reason; without one nothing changes.
        r = await post_form(admin, f"/admin/orders/{order.number}/status", {"status": "CANCELLED", "note": "  "})
        assert r.status_code == 400 and "Say why" in unescape(r.text)
        assert (await fresh(db, order.id)).status == OrderStatus.PROCESSING
        # Confirming is the payment step's, not a button's.
        r = await post_form(admin, f"/admin/orders/{order.number}/status", {"status": "PROCESSING"})
        assert r.status_code == 409

        await post_form(admin, f"/admin/orders/{order.number}/status", {"status": "PREPARING"})
        assert (await row_controls())[0] == ["Mark shipped", "Cancel order…", "Cancel order"]
        await post_form(admin, f"/admin/orders/{order.number}/status", {"status": "SHIPPED"})
        assert (await row_controls())[0] == ["Mark delivered"]
        r = await post_form(admin, f"/admin/orders/{order.number}/status", {"status": "CANCELLED", "note": "late"})
        assert r.status_code == 409
        await post_form(admin, f"/admin/orders/{order.number}/status", {"status": "DELIVERED"})
        assert (await row_controls())[0] == []
    finally:
        await admin.__aexit__(None, None, None)

    _, _, other = await place_by_http(client, settings, db, stock=5)
    await burst_worker(settings)
    admin = await as_admin(settings, db)
    try:
        reason = {"status": "CANCELLED", "note": "Customer phoned: wrong date"}
        r = await post_form(admin, f"/admin/orders/{other.number}/status", reason)
        assert r.status_code == 303
    finally:
        await admin.__aexit__(None, None, None)
    notes = list(await db.scalars(select(OrderEvent.note).where(OrderEvent.order_id == other.id)))
    assert "Customer phoned: wrong date" in notes
    assert "Customer phoned: wrong date" in await order_page(client, other.number)


# --- a declined card: no thank-you, pay again in one step -------------------------------------


async def test_a_declined_card_can_be_paid_again_with_another_card_without_touching_the_cart(client, settings, db):
    user, variant, order = await place_by_http(client, settings, db, stock=5, quantity=2, **card(DECLINE_CARD))
    assert "Thank you" not in await order_page(client, order.number)
    await burst_worker(settings)
    order = await fresh(db, order.id)
    assert order.status == OrderStatus.PENDING and order.payment_status == "declined"
    assert await stock_of(db, variant) == 3  # held for the shopper while they pay again
    page = await order_page(client, order.number)
    assert "Thank you" not in page and "has been placed" not in page
    assert "Your card was declined by the bank." in page
    assert 'action="/orders/' + order.number + '/payment"' in page
    assert "Pay with this card" in page and "Switch to cash on delivery" in page
    (declined,) = mails_to(settings, user.email)
    assert declined["Subject"] == f"Payment declined for order {order.number}"
    assert f"/orders/{order.number}" in body(declined) and "cash on delivery" in body(declined)

    _, (other,) = await make_product(db, stock=5)
    await put_in_cart(db, user, other, 1)  # the shopper went on shopping meanwhile
    cart_before = (await client.get("/cart")).text.count("cart-line")

    bad = await post_form(
        client, f"/orders/{order.number}/payment", {**card("4242 4242 4242 4241"), "card_expiry": "1/2"}
    )
    assert bad.status_code == 400 and "16-digit number" in bad.text and "4242 4242 4242 4241" not in bad.text
    assert (await fresh(db, order.id)).payment_status == "declined"

    r = await post_form(client, f"/orders/{order.number}/payment", card("4242 4242 4242 4242"))
    assert r.status_code == 303 and r.headers["location"] == f"/orders/{order.number}"
    assert "being authorised" in await order_page(client, order.number)
    await burst_worker(settings)
    order = await fresh(db, order.id)
    assert order.status == OrderStatus.PROCESSING and order.payment_status == "paid" and order.card_last4 == "4242"
    assert order.payment_reference == f"ch_test_{order.number}-2"
    assert await stock_of(db, variant) == 3
    page = await order_page(client, order.number)
    assert "Thank you! Your order is confirmed." in page and "Card ending 4242 · paid" in page
    assert (await client.get("/cart")).text.count("cart-line") == cart_before == 1
    subjects = [m["Subject"] for m in mails_to(settings, user.email)]
    assert subjects.count(f"Your order {order.number} is confirmed") == 1
    again = await post_form(client, f"/orders/{order.number}/payment", card("4242 4242 4242 4242"))
    assert again.status_code == 409 and "no longer waiting for payment" in unescape(again.text)


async def test_a_declined_card_can_be_switched_to_cash_on_delivery_in_one_step(client, settings, db):
    _, variant, order = await place_by_http(client, settings, db, stock=5, **card(DECLINE_CARD))
    await burst_worker(settings)
    r = await post_form(client, f"/orders/{order.number}/payment", {"payment_method": "COD"})
    assert r.status_code == 303
    await burst_worker(settings)
    order = await fresh(db, order.id)
    assert order.status == OrderStatus.PROCESSING and order.payment_status == "due on delivery"
    assert await stock_of(db, variant) == 4
    page = await order_page(client, order.number)
    assert "Cash on delivery" in page and "Thank you! Your order is confirmed." in page
    bad = await post_form(client, f"/orders/{order.number}/payment", {"payment_method": "BITCOIN"})
    assert bad.status_code in (400, 409)


async def test_an_order_left_unpaid_after_a_decline_is_cancelled_and_its_stock_returns(client, settings, db):
    user, variant, stale = await place_by_http(client, settings, db, stock=5, quantity=2, **card(DECLINE_CARD))
    _, young_variant, young = await place_by_http(client, settings, db, stock=5, **card(DECLINE_CARD))
    await burst_worker(settings)
    assert await stock_of(db, variant) == 3
    await db.execute(
        update(Order).where(Order.id == stale.id).values(declined_at=datetime.now(UTC) - timedelta(minutes=31))
    )
    await db.commit()
    ctx = {"redis": Redis.from_url(settings.redis_url)}
    await jobs.startup(ctx)
    try:
        assert await jobs.cancel_unpaid_orders(ctx) == 1
        assert await jobs.cancel_unpaid_orders(ctx) == 0  # running twice changes nothing more
    finally:
        await jobs.shutdown(ctx)
        await ctx["redis"].aclose()
    await burst_worker(settings)
    stale = await fresh(db, stale.id)
    assert stale.status == OrderStatus.CANCELLED and await stock_of(db, variant) == 5
    assert (await fresh(db, young.id)).status == OrderStatus.PENDING and await stock_of(db, young_variant) == 4
    (mail,) = [m for m in mails_to(settings, user.email) if "cancelled" in m["Subject"]]
    assert "Not paid within 30 minutes" in body(mail) and "Nothing was charged" in body(mail)
