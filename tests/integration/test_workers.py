"""Fulfilment by a real ARQ worker (burst mode) on the real Redis, against the real database:
payments, emails, low-stock alerts, the outbox relay and sweep, retries and failures."""

import asyncio
import contextlib
import email
import json
import logging
import signal
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from uuid import uuid4

import pytest
from arq.worker import Worker
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from sweetdream.accounts.models import Role
from sweetdream.cart.services import CartService, DbCartStore
from sweetdream.fulfillment.models import SentMessage
from sweetdream.orders import outbox
from sweetdream.orders.models import Order, OrderEvent, OrderStatus, OutboxEvent, PaymentMethod
from sweetdream.orders.services import OrderService, Shipping
from sweetdream.payments import APPROVE_CARD, DECLINE_CARD, TRANSIENT_CARD, TestGateway
from sweetdream.platform.queue import make_worker, redis_settings
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in, stock_of
from tests.integration.helpers import cli
from tests.integration.test_checkout import NUMBER, checkout
from tests.support import drain_queue
from workers import jobs


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Retries back off 0.05 s, 0.1 s, ... instead of seconds, so a burst run finishes quickly."""
    monkeypatch.setenv("JOB_RETRY_DELAY_SECONDS", "0.05")


async def run_worker(settings) -> None:
    await drain_queue(settings.redis_url)


def mails_to(settings, address: str) -> list[EmailMessage]:
    found = []
    for path in sorted((settings.var_dir / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        if message["To"] == address:
            found.append(message)
    return found


def body(message: EmailMessage) -> str:
    text = message.get_body(preferencelist=("plain",))
    return text.get_content() if text else ""


async def fresh(db, order_id) -> Order:
    return await db.get(Order, order_id, populate_existing=True)


async def place_by_http(client, settings, db, stock=5, quantity=1, **form):
    """A signed-in shopper checks out through the real form; returns (user, variant, order)."""
    _, (variant,) = await make_product(db, stock=stock)
    user = await make_user(db)
    await put_in_cart(db, user, variant, quantity)
    await signed_in(client, settings, user)
    r = await checkout(client, **form)
    assert r.status_code == 303, r.text
    number = NUMBER.search(r.headers["location"]).group(1)
    order = await db.scalar(select(Order).where(Order.number == number))
    return user, variant, order


async def test_cash_on_delivery_order_is_processed_and_confirmed_by_email(client, settings, db):
    user, _, order = await place_by_http(client, settings, db)
    assert order.status == OrderStatus.PENDING
    await run_worker(settings)
    order = await fresh(db, order.id)
    assert order.status == OrderStatus.PROCESSING and order.payment_status == "due on delivery"
    (mail,) = mails_to(settings, user.email)
    assert mail["Subject"] == f"Your order {order.number} is confirmed"
    assert order.number in body(mail) and "cash on delivery" in body(mail)
    assert order.number in mail.get_body(preferencelist=("html",)).get_content()
    placed = await db.scalar(
        select(OutboxEvent).where(OutboxEvent.payload["order_id"].astext == str(order.id)).limit(1)
    )
    rows = (
        await db.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.payload["order_id"].astext == str(order.id))
            .execution_options(populate_existing=True)
        )
    ).all()
    assert placed is not None and all(r.delivered_at is not None and r.attempts == 1 for r in rows)
    assert {r.topic for r in rows} == {"order.placed", "order.status_changed"}


async def test_approved_card_is_charged_and_the_card_number_is_never_stored_or_logged(client, settings, db, caplog):
    caplog.set_level(logging.DEBUG)
    card = {"payment_method": "CARD", "card_number": "4242 4242 4242 4242", "card_expiry": "12/39", "card_cvc": "123"}
    user, _, order = await place_by_http(client, settings, db, **card)
    assert order.payment_method == PaymentMethod.CARD and order.card_last4 == "4242"
    assert order.payment_token.startswith("tok_test_") and APPROVE_CARD not in order.payment_token
    await run_worker(settings)
    order = await fresh(db, order.id)
    assert order.status == OrderStatus.PROCESSING and order.payment_status == "paid"
    assert order.payment_reference == f"ch_test_{order.number}-1"  # the first set of payment details
    (mail,) = mails_to(settings, user.email)
    assert "card ending 4242" in body(mail)
    payloads = json.dumps(list(await db.scalars(select(OutboxEvent.payload))))
    assert APPROVE_CARD not in payloads and APPROVE_CARD not in caplog.text


async def test_declined_card_holds_the_order_and_its_stock_and_emails_the_reason(client, settings, db):
    card = {"payment_method": "CARD", "card_number": DECLINE_CARD, "card_expiry": "12/39", "card_cvc": "123"}
    user, variant, order = await place_by_http(client, settings, db, stock=5, quantity=2, **card)
    assert await stock_of(db, variant) == 3
    await run_worker(settings)
    order = await fresh(db, order.id)
    # Held for 30 minutes, for the shopper to pay again (test_order_lifecycle covers what follows).
    assert order.status == OrderStatus.PENDING and order.payment_status == "declined"
    assert order.declined_at is not None and await stock_of(db, variant) == 3
    (mail,) = mails_to(settings, user.email)  # the decline, and no confirmation
    assert mail["Subject"] == f"Payment declined for order {order.number}"
    assert "declined by the bank" in body(mail) and "holding your order for 30 minutes" in body(mail)
    page = await client.get(f"/orders/{order.number}")
    assert "declined: Your card was declined by the bank." in page.text


async def test_a_transient_gateway_failure_is_retried_then_succeeds(client, settings, db):
    card = {"payment_method": "CARD", "card_number": TRANSIENT_CARD, "card_expiry": "12/39", "card_cvc": "123"}
    user, _, order = await place_by_http(client, settings, db, **card)
    await run_worker(settings)
    order = await fresh(db, order.id)
    assert order.status == OrderStatus.PROCESSING and order.payment_status == "paid"
    placed = await db.scalar(
        select(OutboxEvent)
        .where(OutboxEvent.topic == "order.placed", OutboxEvent.payload["order_id"].astext == str(order.id))
        .execution_options(populate_existing=True)
    )
    assert placed.attempts == 2 and "processing_error" in placed.last_error and placed.delivered_at is not None
    assert len(mails_to(settings, user.email)) == 1


async def test_the_same_event_handled_twice_moves_the_order_once_and_sends_one_email(client, settings, db):
    user, _, order = await place_by_http(client, settings, db)
    placed = await db.scalar(
        select(OutboxEvent).where(
            OutboxEvent.topic == "order.placed", OutboxEvent.payload["order_id"].astext == str(order.id)
        )
    )
    ctx = {"redis": Redis.from_url(settings.redis_url), "job_try": 1}
    await jobs.startup(ctx)
    try:
        # Two runs at once (a redelivery racing the first), then a third after a "crash" that lost
        # the delivered mark: the order moves once and the customer gets one email.
        await asyncio.gather(jobs.deliver_event(ctx, str(placed.id)), jobs.deliver_event(ctx, str(placed.id)))
        await db.execute(update(OutboxEvent).where(OutboxEvent.id == placed.id).values(delivered_at=None))
        await db.commit()
        await jobs.deliver_event(ctx, str(placed.id))
    finally:
        await jobs.shutdown(ctx)
        await ctx["redis"].aclose()
    moves = await db.scalar(
        select(func.count()).where(OrderEvent.order_id == order.id, OrderEvent.to_status == "PROCESSING")
    )
    assert moves == 1
    assert len(mails_to(settings, user.email)) == 1
    assert await db.scalar(select(func.count()).where(SentMessage.key == f"order:{order.id}:confirmation")) == 1
    row = await db.get(OutboxEvent, placed.id, populate_existing=True)
    assert row.delivered_at is not None and row.last_error is None  # the second run was not an error


async def test_an_order_committed_while_redis_is_down_is_delivered_by_the_sweep(settings, db):
    _, (variant,) = await make_product(db, stock=5)
    user = await make_user(db)
    await put_in_cart(db, user, variant, 1)
    unreachable = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    service = OrderService(db, unreachable)
    order, _ = await service.place(
        user,
        CartService(db, DbCartStore(db, user.id)),
        Shipping("Lan", "0901234567", "1 Lê Lợi, Quận 1", "", PaymentMethod.COD),
        uuid4().hex,
        30_000,
        500_000,
    )  # committed; the relay failed quietly
    await unreachable.aclose()
    await run_worker(settings)
    assert (await fresh(db, order.id)).status == OrderStatus.PENDING  # nothing reached the queue
    redis = Redis.from_url(settings.redis_url)
    try:
        assert await outbox.sweep(db, redis, grace=timedelta(0)) >= 1
    finally:
        await redis.aclose()
    await run_worker(settings)
    assert (await fresh(db, order.id)).status == OrderStatus.PROCESSING
    assert len(mails_to(settings, user.email)) == 1


async def test_the_worker_cron_sweep_leaves_young_rows_to_the_relay(settings, db):
    """The sweep skips rows younger than its grace period (the writer's own relay is on them)."""
    db.add(OutboxEvent(topic="order.placed", payload={"order_id": str(uuid4()), "number": "SD-YOUNG"}))
    await db.commit()
    redis = Redis.from_url(settings.redis_url)
    try:
        assert await outbox.sweep(db, redis) == 0
    finally:
        await redis.aclose()


async def test_low_stock_alert_is_sent_once_per_crossing(settings, db):
    admin = await make_user(db, Role.ADMIN)
    _, (variant,) = await make_product(db, stock=5)  # threshold 2
    user = await make_user(db)
    service = OrderService(db, Redis.from_url(settings.redis_url))

    async def buy(quantity):
        await put_in_cart(db, user, variant, quantity)
        cart = CartService(db, DbCartStore(db, user.id))
        shipping = Shipping("Lan", "0901234567", "1 Lê Lợi, Quận 1", "", PaymentMethod.COD)
        order, _ = await service.place(user, cart, shipping, uuid4().hex, 30_000, 500_000)
        return order

    first = await buy(2)  # 5 -> 3: above the threshold
    second = await buy(1)  # 3 -> 2: crosses it
    await buy(1)  # 2 -> 1: already below, no new alert
    await run_worker(settings)
    # The admin never chose a language: the alert is in the shop's, Vietnamese (issue #14).
    alerts = [m for m in mails_to(settings, admin.email) if m["Subject"].startswith("Sắp hết hàng")]
    assert len(alerts) == 1 and "chỉ còn 2" in alerts[0]["Subject"]
    await service.transition(first.id, OrderStatus.CANCELLED, "test")  # 1 -> 3: back above
    await service.transition(second.id, OrderStatus.CANCELLED, "test")  # 3 -> 4
    await buy(2)  # 4 -> 2: a new crossing
    await run_worker(settings)
    alerts = [m for m in mails_to(settings, admin.email) if m["Subject"].startswith("Sắp hết hàng")]
    assert len(alerts) == 2
    await service.redis.aclose()


async def test_preparing_shipped_and_delivered_emails_go_through_the_outbox(app, client, settings, db):
    user, _, order = await place_by_http(client, settings, db)
    await run_worker(settings)
    service = OrderService(db, Redis.from_url(settings.redis_url))
    await service.transition(order.id, OrderStatus.PREPARING, "admin@example.com")
    await service.transition(order.id, OrderStatus.SHIPPED, "admin@example.com")
    await service.transition(order.id, OrderStatus.DELIVERED, "admin@example.com")
    await service.redis.aclose()
    await run_worker(settings)
    subjects = sorted(m["Subject"] for m in mails_to(settings, user.email))  # the jobs may run at once
    assert subjects == [
        f"We are preparing your order {order.number}",
        f"Your order {order.number} has been delivered",
        f"Your order {order.number} is confirmed",
        f"Your order {order.number} is on its way",
    ]


async def test_a_failing_event_is_marked_failed_listed_and_retried_from_the_cli(app, settings, db):
    ghost = OutboxEvent(topic="order.placed", payload={"order_id": str(uuid4()), "number": "SD-GHOST"})
    db.add(ghost)
    await db.commit()
    redis = Redis.from_url(settings.redis_url)
    try:
        await outbox.relay(redis, [ghost.id])
    finally:
        await redis.aclose()
    await run_worker(settings)
    row = await db.get(OutboxEvent, ghost.id, populate_existing=True)
    assert row.failed_at is not None and row.delivered_at is None
    assert row.attempts == jobs.MAX_TRIES and "LookupError" in row.last_error
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as admin:
        await signed_in(admin, settings, await make_user(db, Role.ADMIN))
        dashboard = (await admin.get("/admin")).text
        assert "Failed events" in dashboard and "SD-GHOST" in dashboard and "LookupError" in dashboard
    listed = await cli(app, "outbox")
    assert listed.exit_code == 0 and str(ghost.id) in listed.output and "SD-GHOST" in listed.output
    assert (await cli(app, "outbox", "retry")).exit_code != 0  # nothing named: a usage error
    retried = await cli(app, "outbox", "retry", str(ghost.id))
    assert retried.exit_code == 0 and "Queued 1" in retried.output
    row = await db.get(OutboxEvent, ghost.id, populate_existing=True)
    assert row.failed_at is None
    await run_worker(settings)  # still failing: failed again, with its tries counted on
    row = await db.get(OutboxEvent, ghost.id, populate_existing=True)
    assert row.failed_at is not None and row.attempts == 2 * jobs.MAX_TRIES


async def test_card_fields_are_checked_and_never_echoed(client, settings, db):
    _, (variant,) = await make_product(db, stock=3)
    user = await make_user(db)
    await put_in_cart(db, user, variant, 1)
    await signed_in(client, settings, user)
    bad = {"payment_method": "CARD", "card_number": "4242 4242 4242 4241", "card_expiry": "13/20", "card_cvc": "1"}
    r = await checkout(client, **bad)
    assert r.status_code == 400
    assert "16-digit number" in r.text and "MM/YY" in r.text and "3 digits" in r.text
    assert "4242 4242 4242 4241" not in r.text
    expired = {"payment_method": "CARD", "card_number": APPROVE_CARD, "card_expiry": "01/20", "card_cvc": "123"}
    r = await checkout(client, **expired)
    assert r.status_code == 400 and "expired" in r.text and APPROVE_CARD not in r.text
    assert await db.scalar(select(func.count()).where(Order.user_id == user.id)) == 0
    assert await stock_of(db, variant) == 3


async def test_only_the_owner_or_an_admin_can_follow_an_order_live(app, client, settings, db):
    _, _, order = await place_by_http(client, settings, db)
    await signed_in(client, settings, await make_user(db))  # now someone else
    r = await client.get(f"/orders/{order.number}/events")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    assert order.number not in r.text


class SlowGateway(TestGateway):
    """The card network taking its time: the charge waits until the test lets it go."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def charge(self, *args, **kwargs):
        self.started.set()
        await self.release.wait()
        return await super().charge(*args, **kwargs)


def worker_with(settings, gateway, completion_wait: float) -> Worker:
    async def startup(ctx):
        await jobs.startup(ctx)
        jobs.state(ctx).fulfillment.gateway = gateway

    return Worker(
        functions=[jobs.deliver_event],
        on_startup=startup,
        on_shutdown=jobs.shutdown,
        redis_settings=redis_settings(settings.redis_url),
        poll_delay=0.05,
        handle_signals=False,
        job_completion_wait=completion_wait,
        max_tries=jobs.MAX_TRIES,
    )


async def sigterm(worker: Worker, running: asyncio.Task) -> None:
    """What arq does on SIGTERM when job_completion_wait is set (WorkerSettings sets it)."""
    worker.handle_sig_wait_for_completion(signal.SIGTERM)
    with contextlib.suppress(asyncio.CancelledError):
        await running
    await worker.close()


CARD = {"payment_method": "CARD", "card_number": APPROVE_CARD, "card_expiry": "12/39", "card_cvc": "123"}


async def test_sigterm_lets_the_running_job_finish_and_takes_no_new_one(client, settings, db):
    user, _, order = await place_by_http(client, settings, db, **CARD)
    gateway = SlowGateway()
    worker = worker_with(settings, gateway, completion_wait=10)
    running = asyncio.create_task(worker.async_run())
    await asyncio.wait_for(gateway.started.wait(), 10)
    worker.handle_sig_wait_for_completion(signal.SIGTERM)
    _, _, later = await place_by_http(client, settings, db)  # arrives while the worker drains
    gateway.release.set()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    await worker.close()
    assert (await fresh(db, order.id)).status == OrderStatus.PROCESSING
    assert len(mails_to(settings, user.email)) == 1
    assert (await fresh(db, later.id)).status == OrderStatus.PENDING  # left for the next worker
    await run_worker(settings)
    assert (await fresh(db, later.id)).status == OrderStatus.PROCESSING


async def test_a_job_abandoned_at_shutdown_runs_again_with_the_same_result(client, settings, db):
    user, variant, order = await place_by_http(client, settings, db, **CARD)
    gateway = SlowGateway()  # never released: the job outlives the shutdown grace
    worker = worker_with(settings, gateway, completion_wait=0.2)
    running = asyncio.create_task(worker.async_run())
    await asyncio.wait_for(gateway.started.wait(), 10)
    await sigterm(worker, running)
    assert (await fresh(db, order.id)).status == OrderStatus.PENDING
    assert mails_to(settings, user.email) == []
    await run_worker(settings)  # a new worker picks the abandoned job up again
    order = await fresh(db, order.id)
    assert order.status == OrderStatus.PROCESSING and order.payment_status == "paid"
    assert len(mails_to(settings, user.email)) == 1
    assert await stock_of(db, variant) == 4


async def test_every_email_carries_a_message_id_named_after_what_it_announces(client, settings, db):
    """A stable Message-ID per (order, kind): the mail log can be searched for it, and a client
    that ever got a copy drops it."""
    user, _, order = await place_by_http(client, settings, db)
    await run_worker(settings)
    service = OrderService(db, Redis.from_url(settings.redis_url))
    await service.transition(order.id, OrderStatus.PREPARING, "admin@example.com")
    await service.transition(order.id, OrderStatus.SHIPPED, "admin@example.com")
    await service.redis.aclose()
    await run_worker(settings)
    ids = sorted(m["Message-ID"].strip() for m in mails_to(settings, user.email))  # folded onto its own line
    assert ids == [
        f"<order-{order.id}-confirmation@sweetdream.example>",
        f"<order-{order.id}-preparing@sweetdream.example>",
        f"<order-{order.id}-shipped@sweetdream.example>",
    ]
    rows = (await db.scalars(select(SentMessage).where(SentMessage.key.like(f"order:{order.id}:%")))).all()
    assert sorted((r.key, r.status) for r in rows) == [
        (f"order:{order.id}:confirmation", "sent"),
        (f"order:{order.id}:preparing", "sent"),
        (f"order:{order.id}:shipped", "sent"),
    ]


class FailingOnceMailer:
    """An SMTP server that refuses the first message (down for a moment), then takes them."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.refused = 0

    async def send(self, message) -> None:
        if not self.refused:
            self.refused += 1
            raise ConnectionRefusedError("the SMTP server is down")
        await self.inner.send(message)


async def test_a_send_that_fails_is_released_so_the_retry_sends_it_once(client, settings, db):
    user, _, order = await place_by_http(client, settings, db)
    mailers = []

    async def startup(ctx):
        await jobs.startup(ctx)
        notifier = jobs.state(ctx).fulfillment.notifier
        notifier.mailer = FailingOnceMailer(notifier.mailer)
        mailers.append(notifier.mailer)

    await drain_queue(settings.redis_url, on_startup=startup)
    assert mailers[0].refused == 1
    (mail,) = mails_to(settings, user.email)
    assert mail["Message-ID"].strip() == f"<order-{order.id}-confirmation@sweetdream.example>"
    placed = await db.scalar(
        select(OutboxEvent)
        .where(OutboxEvent.topic == "order.placed", OutboxEvent.payload["order_id"].astext == str(order.id))
        .execution_options(populate_existing=True)
    )
    assert placed.attempts == 2 and "ConnectionRefusedError" in placed.last_error and placed.delivered_at


def production_settings():
    """workers.settings as a worker process with the default environment reads it at start."""
    import importlib

    import workers.settings

    return importlib.reload(workers.settings).WorkerSettings


def production_worker(settings, gateway) -> Worker:
    """The worker `sweetdream worker` runs (WorkerSettings: functions and timeouts), with a gateway
    of the test's, without the cron jobs (their sweep would pick up other tests' rows)."""
    worker_settings = production_settings()

    async def startup(ctx):
        await jobs.startup(ctx)
        jobs.state(ctx).fulfillment.gateway = gateway

    return make_worker(
        worker_settings,
        cron_jobs=[],
        on_startup=startup,
        redis_settings=redis_settings(settings.redis_url),
        handle_signals=False,
    )


async def test_a_job_abandoned_by_a_killed_worker_is_picked_up_again_after_about_a_minute(
    client, settings, db, monkeypatch
):
    """arq marks a running job in progress for its timeout + 10 s; a worker that is killed leaves
    the mark, and no other worker takes the job before it expires (it was 300 s + 10 s)."""
    monkeypatch.delenv("JOB_TIMEOUT_SECONDS", raising=False)
    _, _, order = await place_by_http(client, settings, db, **CARD)
    gateway = SlowGateway()
    worker = production_worker(settings, gateway)
    running = asyncio.create_task(worker.async_run())
    redis = Redis.from_url(settings.redis_url)
    try:
        await asyncio.wait_for(gateway.started.wait(), 10)
        event_id = await db.scalar(
            select(OutboxEvent.id).where(
                OutboxEvent.topic == "order.placed", OutboxEvent.payload["order_id"].astext == str(order.id)
            )
        )
        remaining_ms = await redis.pttl(f"arq:in-progress:{event_id}")
        assert 60_000 < remaining_ms <= 71_000
    finally:
        gateway.release.set()
        await redis.aclose()
        await sigterm(worker, running)
    # Every job shares the mark's length (the short jobs' timeout + 10 s); the nightly export, with
    # its longer time limit, keeps its own mark alive while it runs instead of lengthening everyone's.
    assert make_worker(production_settings(), handle_signals=False).in_progress_timeout_s == 71


async def test_a_delivery_that_outlives_its_time_limit_is_recorded_and_retried(client, settings, db, monkeypatch):
    # The hung try ends at 3 s; a normal one ends far sooner, even on a busy machine.
    monkeypatch.setenv("JOB_TIMEOUT_SECONDS", "3")
    _, _, order = await place_by_http(client, settings, db, **CARD)

    class HangsOnce(TestGateway):
        """The card network never answers the first charge; the retry's goes through."""

        calls = 0

        async def charge(self, *args, **kwargs):
            type(self).calls += 1
            if self.calls == 1:
                await asyncio.Event().wait()
            return await super().charge(*args, **kwargs)

    async def startup(ctx):
        await jobs.startup(ctx)
        jobs.state(ctx).fulfillment.gateway = HangsOnce()

    await drain_queue(settings.redis_url, on_startup=startup)
    order = await fresh(db, order.id)
    assert order.status == OrderStatus.PROCESSING and order.payment_status == "paid"
    placed = await db.scalar(
        select(OutboxEvent)
        .where(OutboxEvent.topic == "order.placed", OutboxEvent.payload["order_id"].astext == str(order.id))
        .execution_options(populate_existing=True)
    )
    assert placed.attempts == 2 and "TimeoutError" in placed.last_error and placed.delivered_at is not None


class SlowlyRefusingOnce:
    """The first message takes a while and is then refused; later ones go through."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = 0

    async def send(self, message) -> None:
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(0.5)
            raise ConnectionRefusedError("the SMTP server hung up")
        await self.inner.send(message)


async def test_two_runs_at_once_send_one_email_even_when_the_first_send_fails(client, settings, db):
    """The second run waits for the first one's send (the claim's row lock) instead of taking the
    claim for a sent message: the first send fails, so the second run sends it."""
    user, _, order = await place_by_http(client, settings, db)
    placed = await db.scalar(
        select(OutboxEvent.id).where(
            OutboxEvent.topic == "order.placed", OutboxEvent.payload["order_id"].astext == str(order.id)
        )
    )
    ctx = {"redis": Redis.from_url(settings.redis_url), "job_try": 1}
    await jobs.startup(ctx)
    notifier = jobs.state(ctx).fulfillment.notifier
    notifier.mailer = SlowlyRefusingOnce(notifier.mailer)
    try:
        results = await asyncio.gather(
            jobs.deliver_event(ctx, str(placed)), jobs.deliver_event(ctx, str(placed)), return_exceptions=True
        )
    finally:
        await jobs.shutdown(ctx)
        await ctx["redis"].aclose()
    assert notifier.mailer.calls == 2
    assert sorted(type(r).__name__ for r in results) == ["Retry", "str"]  # the failed one asks for a retry
    (mail,) = mails_to(settings, user.email)
    assert mail["Message-ID"].strip() == f"<order-{order.id}-confirmation@sweetdream.example>"
    sent = await db.scalar(select(SentMessage).where(SentMessage.key == f"order:{order.id}:confirmation"))
    assert sent.status == "sent"


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message) -> None:
        self.sent.append(message["Message-ID"])


async def test_a_claim_its_sender_has_not_locked_yet_is_waited_for_not_taken_for_a_dead_one(settings, db):
    """A sender commits its claim, then locks it: a second run that looks in between must wait for
    the outcome (here the send failed and the claim was released, so the second run sends it)
    rather than take the fresh, unlocked claim for a dead worker's and send nothing."""
    from sweetdream.fulfillment.notifications import Email, Notifier

    key = f"test:gap:{uuid4()}"
    db.add(SentMessage(key=key, kind="confirmation", recipient="lan@example.com", subject="Hi", status="sending"))
    await db.commit()
    mailer = RecordingMailer()
    notifier = Notifier(mailer, "SweetDream <shop@sweetdream.example>", settings.templates_dir, "SweetDream", "")
    message = Email("confirmation", "lan@example.com", "Hi", "Hello", "<p>Hello</p>")
    engine = create_async_engine(settings.database_url)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as other:
            second_run = asyncio.create_task(notifier.send_once(other, key, message))
            await asyncio.sleep(0.3)  # the first sender's send fails meanwhile: it releases its claim
            await db.execute(delete(SentMessage).where(SentMessage.key == key))
            await db.commit()
            assert await asyncio.wait_for(second_run, 5) is True
    finally:
        await engine.dispose()
    assert len(mailer.sent) == 1
