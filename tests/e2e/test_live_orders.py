"""Live order status (issue #5): an open order page follows the order without a reload.

The shopper works in the browser; the order moves the way the shop moves it: through
OrderService on a real session against the test database and the real Redis (whose pub/sub
note the page's Server-Sent Events stream hears), or by a real ARQ worker run in burst mode.

The async side runs on a thread of its own: the sync Playwright API keeps an event loop running
on the test's thread, where asyncio.run() refuses to start.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import pytest
import redis
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from sweetdream.accounts.services import UserService
from sweetdream.catalog.demo import PRODUCTS, DemoProduct, DemoVariant
from sweetdream.catalog.money import format_vnd
from sweetdream.orders import live
from sweetdream.orders.models import Order, OrderStatus
from sweetdream.orders.services import OrderService
from sweetdream.payments import APPROVE_CARD, DECLINE_CARD
from tests.e2e.browser import BrowserProblems
from tests.support import drain_queue

T = TypeVar("T")
NewContext = Callable[..., BrowserContext]

PASSWORD = "correct horse battery"
ADMIN = "admin@sweetdream.test"
PHONE = {"width": 375, "height": 740}
WAIT_SECONDS = 10.0  # as long as an expect() waits (conftest)
EXPIRY = f"12/{(datetime.now(UTC).year + 3) % 100:02d}"
ORDER_URL = re.compile(r"/orders/(SD-\d{6})$")


def roomy_variant() -> tuple[DemoProduct, DemoVariant]:
    """The size with the most stock above its low-stock threshold: a few orders of one never
    change what the catalogue journeys see."""
    return max(
        ((p, v) for p in PRODUCTS if not p.max_per_customer for v in p.variants),
        key=lambda pv: pv[1].stock - pv[1].low_stock_threshold,
    )


PRODUCT, VARIANT = roomy_variant()


def spaced(card: str) -> str:
    return " ".join(card[i : i + 4] for i in range(0, len(card), 4))


# --- the shop's side, from the test ------------------------------------------------------------


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


@asynccontextmanager
async def shop_services() -> AsyncIterator[tuple[AsyncSession, Redis]]:
    engine = create_async_engine(os.environ["DATABASE_URL"], poolclass=NullPool)
    client = Redis.from_url(os.environ["REDIS_URL"])
    try:
        async with AsyncSession(engine, expire_on_commit=False) as db:
            yield db, client
    finally:
        await client.aclose()
        await engine.dispose()


def order_id(number: str) -> UUID:
    async def find() -> UUID:
        async with shop_services() as (db, _):
            found = await db.scalar(select(Order.id).where(Order.number == number))
            assert found is not None, number
            return found

    return run_async(find())


def move(order: UUID, to: OrderStatus, note: str) -> None:
    """An admin moves the order through the one function that owns transitions."""

    async def go() -> None:
        async with shop_services() as (db, client):
            await OrderService(db, client).transition(order, to, ADMIN, note)

    run_async(go())


def sign_in_as_admin(page: Page) -> None:
    """A staff member with the ADMIN role (made as `sweetdream create-admin` makes one) signs in."""
    email = f"staff-{uuid.uuid4().hex[:8]}@sweetdream.test"

    async def create() -> None:
        async with shop_services() as (db, _):
            await UserService(session=db).create_admin(email, PASSWORD)
            await db.commit()

    run_async(create())
    page.goto("/account/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/account/login"))


def run_worker() -> None:
    """A real ARQ worker until the queue is empty (every test's queued events included: each
    job is idempotent and acts only on orders still waiting for it)."""
    run_async(drain_queue(os.environ["REDIS_URL"]))


def resend_live_state(order: UUID) -> None:
    """Make every open page of this order be sent its state again (as after any move)."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        client.publish(live.channel(order), b"changed")
    finally:
        client.close()


def drop_live_streams() -> None:
    """Cut every open order page's live stream on the server side, as a network blip would."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        assert client.client_kill_filter(_type="pubsub") >= 1
    finally:
        client.close()


def wait_for_watchers(order: UUID, watchers: int) -> None:
    """Until `watchers` open pages listen for this order's moves (their SSE streams have
    subscribed). A move made before a page listens reaches it only on its next connect."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            ((_, count),) = client.pubsub_numsub(live.channel(order))
            if count == watchers:
                return
            assert time.monotonic() < deadline, f"{count} page(s) listening for {order}, expected {watchers}"
            time.sleep(0.05)
    finally:
        client.close()


# --- the shopper's side ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shopper(browser: Browser, base_url: str) -> Any:
    """One registered shopper for the module (registering is rate-limited per address): the
    signed-in browser state each test starts from."""
    problems = BrowserProblems()
    context = problems.watch_context(browser.new_context(base_url=base_url, locale="en-US"))
    try:
        page = context.new_page()
        page.goto("/account/register")
        page.get_by_label("Email").fill(f"live-{uuid.uuid4().hex[:12]}@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Full name").fill("Trần Văn Bình")
        page.get_by_label("Phone").fill("0912345678")
        page.get_by_label("Delivery address").fill("34 Hai Bà Trưng, Quận 1")
        page.get_by_role("button", name="Create account").click()
        expect(page).not_to_have_url(re.compile(r"/account/register"))
        assert not problems.problems, problems.problems
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture
def signed_in(new_context: NewContext, console_errors: BrowserProblems, shopper: Any) -> BrowserContext:
    return console_errors.watch_context(new_context(storage_state=shopper))


def add_to_cart(page: Page) -> None:
    page.goto(f"/products/{PRODUCT.slug}")
    price = VARIANT.price_override if VARIANT.price_override is not None else PRODUCT.price
    page.locator("#variant_id").select_option(label=f"{VARIANT.label} — {format_vnd(price)}")
    page.locator("#quantity").fill("1")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#add-result")).to_contain_text("Added")


def place_order(page: Page, card: str | None = None) -> str:
    """Checks out whatever is in the cart plus one item; returns the order number, its page open."""
    add_to_cart(page)
    page.goto("/checkout")
    if card is not None:
        page.get_by_label("Card", exact=True).check()
        page.get_by_label("Card number").fill(spaced(card))
        page.get_by_label("Expiry (MM/YY)").fill(EXPIRY)
        page.get_by_label("CVC").fill("123")
    page.locator("#place-order").click()
    expect(page).to_have_url(ORDER_URL)
    match = ORDER_URL.search(page.url)
    assert match is not None
    return match.group(1)


def mark_page(page: Page) -> None:
    """A marker that a reload (or any new document) would drop."""
    page.evaluate("window.__noReload = 1")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__noReload") == 1, "the page was reloaded"


def timeline(page: Page) -> Locator:
    return page.locator("#timeline li")


# --- journeys ----------------------------------------------------------------------------------


def test_open_order_page_follows_the_order_to_shipped_without_a_reload(signed_in: BrowserContext) -> None:
    page = signed_in.new_page()
    number = place_order(page)
    expect(page.locator("#order-status")).to_have_text("Pending")
    expect(timeline(page)).to_have_count(1)
    expect(page.locator("#cancel-order")).to_be_visible()
    order = order_id(number)
    wait_for_watchers(order, 1)
    mark_page(page)

    move(order, OrderStatus.PROCESSING, "Cash on delivery: payment due on delivery")
    expect(page.locator("#order-status")).to_have_text("Confirmed")
    expect(timeline(page)).to_have_count(2)
    expect(timeline(page).nth(1)).to_contain_text("Confirmed")
    expect(page.locator("#order-headline")).to_contain_text("You can cancel this order until we start preparing it.")
    expect(page.locator("#cancel-order")).to_be_visible()  # the shopper may cancel until preparing starts

    move(order, OrderStatus.PREPARING, "Baking your order")
    expect(page.locator("#order-status")).to_have_text("Being prepared")
    expect(timeline(page).nth(2)).to_contain_text("Baking your order")
    expect(page.locator("#cancel-order")).to_have_count(0)
    expect(page.locator("#order-headline")).to_contain_text("can no longer be cancelled online")

    move(order, OrderStatus.SHIPPED, "Handed to the courier")
    expect(page.locator("#order-status")).to_have_text("Shipped")
    expect(page.locator("#order-status")).to_have_class(re.compile(r"\bstatus-shipped\b"))
    expect(timeline(page)).to_have_count(4)
    expect(timeline(page).nth(3)).to_contain_text("Handed to the courier")
    expect(page.locator("#order-payment")).to_contain_text("Cash on delivery")
    assert_not_reloaded(page)
    expect(page.get_by_role("region", name="Status")).to_contain_text("Shipped")  # still named after swaps
    expect(page.locator("h1")).to_have_text(f"Order {number}")  # the rest of the page is untouched
    expect(page.locator("#order-total")).to_be_visible()


# A stream cut mid-way: the browser logs it (htmx's sseError, the unfinished response) and reconnects.
@pytest.mark.allow_console_errors(r"console error: \[object Event\]", r"ERR_INCOMPLETE_CHUNKED_ENCODING")
def test_a_dropped_stream_resumes_and_a_page_opened_later_shows_the_current_state(
    signed_in: BrowserContext,
) -> None:
    page = signed_in.new_page()
    number = place_order(page)
    order = order_id(number)
    wait_for_watchers(order, 1)
    mark_page(page)

    # The live connection drops (here: Redis drops the web process's subscription, which ends the
    # stream); the order moves while nobody listens. The page reconnects and is sent the state.
    drop_live_streams()
    wait_for_watchers(order, 0)
    move(order, OrderStatus.PROCESSING, "Cash on delivery: payment due on delivery")
    expect(page.locator("#order-status")).to_have_text("Confirmed")
    expect(timeline(page)).to_have_count(2)
    assert_not_reloaded(page)
    wait_for_watchers(order, 1)  # and it keeps following
    move(order, OrderStatus.PREPARING, "Baking your order")
    expect(page.locator("#order-status")).to_have_text("Being prepared")
    assert_not_reloaded(page)

    # A second page opened after the moves is served the current state in its own HTML.
    later = signed_in.new_page()
    response = later.goto(f"/orders/{number}")
    assert response is not None and response.ok
    assert re.search(r'id="order-status">Being prepared<', response.text()), "the page's HTML shows an old state"
    expect(timeline(later)).to_have_count(3)
    wait_for_watchers(order, 2)
    mark_page(later)
    move(order, OrderStatus.SHIPPED, "Handed to the courier")
    for each in (page, later):  # one move reaches every open page
        expect(each.locator("#order-status")).to_have_text("Shipped")
        expect(timeline(each)).to_have_count(4)
        assert_not_reloaded(each)


def test_leaving_the_order_page_and_coming_back_shows_what_happened_meanwhile(signed_in: BrowserContext) -> None:
    page = signed_in.new_page()
    number = place_order(page)
    order = order_id(number)
    wait_for_watchers(order, 1)

    page.get_by_role("link", name="All your orders").click()
    expect(page).to_have_url(re.compile(r"/account/orders$"))
    wait_for_watchers(order, 0)  # leaving closed the stream
    move(order, OrderStatus.CANCELLED, "Out of strawberries, sorry")

    page.go_back()  # from the back/forward cache or not, the page must not show the old state
    expect(page).to_have_url(re.compile(rf"/orders/{number}$"))
    expect(page.locator("#order-status")).to_have_text("Cancelled")
    expect(timeline(page).nth(1)).to_contain_text("Out of strawberries, sorry")
    expect(page.locator("#cancel-order")).to_have_count(0)


def test_card_payments_settle_live_a_declined_card_is_paid_again_on_the_page(
    signed_in: BrowserContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_RETRY_DELAY_SECONDS", "0.05")
    declined = signed_in.new_page()
    declined_number = place_order(declined, card=DECLINE_CARD)
    approved = signed_in.new_page()
    approved_number = place_order(approved, card=APPROVE_CARD)
    for page, card in ((declined, DECLINE_CARD), (approved, APPROVE_CARD)):
        expect(page.locator("#order-status")).to_have_text("Pending")
        expect(page.locator("#order-payment")).to_contain_text(f"Card ending {card[-4:]}")
        expect(page.locator("#order-payment")).to_contain_text("being authorised")
        expect(page.locator("main")).not_to_contain_text("Thank you")  # the payment is not known yet
        mark_page(page)
    wait_for_watchers(order_id(declined_number), 1)
    wait_for_watchers(order_id(approved_number), 1)

    run_worker()

    # Declined: no thank-you; the order is held, and the page offers another card or cash.
    expect(declined.locator("#order-status")).to_have_text("Pending")
    expect(declined.locator("#order-payment")).to_contain_text("declined: Your card was declined by the bank.")
    expect(timeline(declined)).to_have_count(2)
    expect(timeline(declined).nth(1)).to_contain_text("Payment declined")
    expect(timeline(declined).nth(1)).to_contain_text("Card ending 0002: Your card was declined by the bank.")
    expect(declined.locator("#order-headline")).to_contain_text("pay with another card or switch to cash on delivery")
    expect(declined.get_by_role("button", name="Switch to cash on delivery")).to_be_visible()
    expect(declined.locator("main")).not_to_contain_text("Thank you")

    expect(approved.locator("#order-status")).to_have_text("Confirmed")
    expect(approved.locator("#order-payment")).to_have_text(re.compile(r"Card ending 4242 · paid\s*$"))
    expect(timeline(approved).nth(1)).to_contain_text("Card ending 4242 charged")
    expect(approved.locator("#order-headline")).to_contain_text("Thank you! Your order is confirmed.")

    for page, card in ((declined, DECLINE_CARD), (approved, APPROVE_CARD)):
        assert_not_reloaded(page)
        html = page.content()
        assert card not in html and spaced(card) not in html, "the card number reached the page"

    # What the shopper types survives the live region being re-sent (hx-preserve).
    declined.get_by_label("Card number").fill(spaced(APPROVE_CARD))
    declined.evaluate("document.getElementById('order-headline').dataset.before = '1'")
    resend_live_state(order_id(declined_number))
    expect(declined.locator("#order-headline[data-before]")).to_have_count(0)  # the region was re-sent
    expect(declined.get_by_label("Card number")).to_have_value(spaced(APPROVE_CARD))

    declined.get_by_label("Expiry (MM/YY)").fill(EXPIRY)
    declined.get_by_label("CVC").fill("123")
    declined.get_by_role("button", name=re.compile(r"^Pay with this card")).click()
    expect(declined).to_have_url(re.compile(rf"/orders/{declined_number}$"))
    expect(declined.locator("#order-payment")).to_contain_text("Card ending 4242 · being authorised")
    wait_for_watchers(order_id(declined_number), 1)
    mark_page(declined)
    run_worker()
    expect(declined.locator("#order-status")).to_have_text("Confirmed")
    expect(declined.locator("#order-headline")).to_contain_text("Thank you! Your order is confirmed.")
    expect(timeline(declined).last).to_contain_text("Card ending 4242 charged")
    assert_not_reloaded(declined)


def test_a_paid_order_cancelled_by_the_shopper_shows_its_refund_live(
    signed_in: BrowserContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_RETRY_DELAY_SECONDS", "0.05")
    page = signed_in.new_page()
    number = place_order(page, card=APPROVE_CARD)
    run_worker()
    expect(page.locator("#order-status")).to_have_text("Confirmed")
    expect(page.locator("#cancel-order")).to_be_visible()
    expect(page.locator("#order-live")).to_contain_text("Your payment will be refunded to your card ending 4242.")

    page.locator("#cancel-order").click()
    expect(page.locator("#order-status")).to_have_text("Cancelled")
    expect(page.locator(".flash")).to_contain_text("Your payment is being refunded.")
    expect(page.locator("#order-payment")).to_contain_text("paid, being refunded")
    wait_for_watchers(order_id(number), 1)
    mark_page(page)
    run_worker()
    expect(page.locator("#order-payment")).to_contain_text(re.compile(r"Card ending 4242 · refunded ₫[\d,]+"))
    expect(timeline(page).last).to_contain_text("Refunded")
    expect(timeline(page).last).to_contain_text("refunded to the card ending 4242")
    assert_not_reloaded(page)


def test_admin_moves_are_verbs_and_a_cancel_asks_why_the_shopper_sees_it_live(
    signed_in: BrowserContext, new_context: NewContext, console_errors: BrowserProblems
) -> None:
    shopper_page = signed_in.new_page()
    number = place_order(shopper_page)
    run_worker()
    expect(shopper_page.locator("#order-status")).to_have_text("Confirmed")
    wait_for_watchers(order_id(number), 1)

    admin = console_errors.watch_context(new_context()).new_page()
    sign_in_as_admin(admin)
    admin.goto("/admin/orders")
    row = admin.locator("tr", has_text=number)
    expect(row.get_by_role("button")).to_have_text(["Start preparing"])  # the cancel waits behind "Cancel order…"
    expect(row.get_by_text("Cancel order…")).to_be_visible()
    expect(row.locator("button", has_text="Cancel order")).to_be_hidden()
    row.get_by_role("button", name="Start preparing").click()
    expect(admin.locator(".flash")).to_contain_text(f"Order {number} is now being prepared.")
    expect(shopper_page.locator("#order-status")).to_have_text("Being prepared")
    expect(shopper_page.locator("#cancel-order")).to_have_count(0)

    row = admin.locator("tr", has_text=number)
    row.get_by_text("Cancel order…").click()  # opens the confirmation
    confirm = row.get_by_role("button", name="Cancel order", exact=True)
    expect(confirm).to_be_visible()
    confirm.click()  # no reason given: the browser asks for one, nothing is sent
    assert row.locator("textarea").evaluate("note => note.validity.valueMissing")
    expect(shopper_page.locator("#order-status")).to_have_text("Being prepared")
    row.get_by_label(re.compile(r"^Why\?")).fill("Out of strawberries, sorry")
    confirm.click()
    expect(admin.locator(".flash")).to_contain_text(f"Order {number} is now cancelled.")
    expect(shopper_page.locator("#order-status")).to_have_text("Cancelled")
    expect(timeline(shopper_page).last).to_contain_text("Out of strawberries, sorry")


@pytest.mark.allow_console_errors(r"status of 400 .*\(at .*/checkout/?\)")
def test_phone_checkout_shows_card_fields_only_for_card_and_never_echoes_the_number(
    new_context: NewContext, console_errors: BrowserProblems, shopper: Any
) -> None:
    context = console_errors.watch_context(
        new_context(storage_state=shopper, viewport=PHONE, has_touch=True, is_mobile=True)
    )
    page = context.new_page()
    add_to_cart(page)
    page.goto("/checkout")
    card_fields = page.locator(".card-fields")
    expect(page.get_by_label("Cash on delivery")).to_be_checked()
    expect(card_fields).to_be_hidden()

    page.get_by_label("Card", exact=True).tap()
    expect(card_fields).to_be_visible()
    for label in ("Card number", "Expiry (MM/YY)", "CVC"):
        field = page.get_by_label(label)
        expect(field).to_be_visible()
        box = field.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (label, box)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= PHONE["width"] + 1, scroll_width

    page.get_by_label("Cash on delivery").tap()
    expect(card_fields).to_be_hidden()

    # A card number that fails its check digit: the form comes back with the error beside the
    # field, Card still chosen, and the number not echoed.
    page.get_by_label("Card", exact=True).tap()
    wrong = "4242 4242 4242 4241"
    page.get_by_label("Card number").fill(wrong)
    page.get_by_label("Expiry (MM/YY)").fill(EXPIRY)
    page.get_by_label("CVC").fill("123")
    page.locator("#place-order").tap()
    expect(page.get_by_text("Enter the 16-digit number on the front of your card.")).to_be_visible()
    expect(page.get_by_label("Card", exact=True)).to_be_checked()
    expect(card_fields).to_be_visible()
    expect(page.get_by_label("Card number")).to_have_value("")
    assert wrong.replace(" ", "") not in page.content() and wrong not in page.content()
