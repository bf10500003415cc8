"""What a checkout costs the database, and what its one order statement writes (issue #13).

A checkout was a dozen ORM statements and a savepoint, and adding to the cart six statements; the
cost was Python's, per statement. These tests fail if the counts grow back, and check that the one
statement (orders/placing.py) still writes every row the rules ask for, or none."""

import secrets
import uuid

import pytest
from sqlalchemy import func, select

from sweetdream.analytics.models import AnalyticsEvent
from sweetdream.analytics.recording import Tracker
from sweetdream.cart.models import CartItem
from sweetdream.cart.services import CartService, DbCartStore
from sweetdream.catalog.models import StockMovement
from sweetdream.orders import placing
from sweetdream.orders.models import Order, OrderEvent, OrderLine, OrderStatus, OutboxEvent, PaymentMethod
from sweetdream.orders.services import OrderService, Shipping
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in, stock_of
from tests.integration.helpers import post_form
from tests.integration.test_catalog import count_queries
from tests.integration.test_checkout import NUMBER, checkout_form, review


async def add_to_cart(client, variant, quantity: int = 1):
    token = client.cookies["sd_csrf"]
    headers = {"hx-request": "true", "x-csrftoken": token}
    return await client.post(
        "/cart/items", data={"variant_id": str(variant.id), "quantity": str(quantity)}, headers=headers
    )


def cod_order_values(key: str, subtotal: int) -> dict:
    """An order paid on delivery to Lan, with the shop's 30,000 đ shipping (the statement's input)."""
    return placing.order_values(
        idempotency_key=key,
        payment_method=PaymentMethod.COD,
        payment_status="due on delivery",
        payment_token=None,
        card_last4=None,
        shipping_name="Lan",
        shipping_phone="0901234567",
        shipping_address="1 Lê Lợi, Quận 1",
        note="",
        subtotal=subtotal,
        shipping_fee=30_000,
        total=subtotal + 30_000,
        language="en",
    )


async def test_adding_to_the_cart_runs_three_statements_and_placing_an_order_four(app, client, settings, db):
    _, (small, large) = await make_product(db, stock=[10, 10], price=120_000)
    user = await make_user(db)
    await signed_in(client, settings, user)
    with count_queries(app) as added:
        response = await add_to_cart(client, small, 2)
    assert response.status_code == 200 and "Added" in response.text
    # The shopper with their badge; the size with what the cart holds of it; the upsert with the new count.
    assert len(added) == 3, added
    assert response.headers["hx-trigger"] == '{"cart-changed":{"count":2}}'  # the badge's new count
    with count_queries(app) as added_again:
        response = await add_to_cart(client, large, 1)
    assert len(added_again) == 3
    assert response.headers["hx-trigger"] == '{"cart-changed":{"count":3}}'

    seen = await review(client)
    with count_queries(app) as placed:
        response = await post_form(client, "/checkout/", checkout_form(**seen))
    assert response.status_code == 303
    # The shopper; their row's lock with the form key's look-up; the cart; the one order statement.
    assert len(placed) == 4, placed
    number = NUMBER.search(response.headers["location"]).group(1)

    # Everything the rules ask for was written by that one statement.
    order = await db.scalar(select(Order).where(Order.number == number))
    assert (order.user_id, order.status, order.subtotal, order.shipping_fee, order.total) == (
        user.id,
        OrderStatus.PENDING,
        360_000,
        30_000,
        390_000,
    )
    assert (order.payment_method, order.payment_status, order.payment_attempt) == (
        PaymentMethod.COD,
        "due on delivery",
        1,
    )
    lines = list(await db.scalars(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.position)))
    assert [(line.size_label, line.quantity, line.unit_price) for line in lines] == [
        ("M", 1, 120_000),
        ("S", 2, 120_000),
    ]
    assert (await stock_of(db, small), await stock_of(db, large)) == (8, 9)
    ledger = list(
        await db.execute(
            select(StockMovement.variant_id, StockMovement.delta, StockMovement.level, StockMovement.reason)
            .where(StockMovement.order_number == number)
            .order_by(StockMovement.variant_id)
        )
    )
    assert sorted((row.delta, row.level, row.reason, row.variant_id) for row in ledger) == sorted(
        [(-2, 8, "order", small.id), (-1, 9, "order", large.id)]
    )
    events = list(await db.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id)))
    assert [(e.from_status, e.to_status, e.actor, e.note) for e in events] == [
        (None, "PENDING", user.email, "Order placed")
    ]
    outbox = await db.scalar(select(OutboxEvent).where(OutboxEvent.payload["order_id"].astext == str(order.id)))
    assert outbox.topic == "order.placed"
    assert outbox.payload == {"order_id": str(order.id), "number": number, "user_id": str(user.id)}
    completed = await db.scalar(
        select(AnalyticsEvent).where(AnalyticsEvent.user_id == user.id, AnalyticsEvent.name == "order_completed")
    )
    assert completed.properties["order_number"] == number and completed.properties["total"] == 390_000
    assert await db.scalar(select(func.count()).select_from(CartItem).where(CartItem.user_id == user.id)) == 0


async def test_a_class_checkout_adds_only_the_seats_held_statement(app, client, settings, db):
    _, (seat,) = await make_product(db, stock=10, max_per_customer=2)
    user = await make_user(db)
    await put_in_cart(db, user, seat, 1)
    await signed_in(client, settings, user)
    seen = await review(client)
    with count_queries(app) as placed:
        response = await post_form(client, "/checkout/", checkout_form(**seen))
    assert response.status_code == 303
    assert len(placed) == 5, placed  # the four above, and the seats this shopper already holds


async def test_a_size_that_ran_out_is_refused_before_anything_is_written(app, client, settings, db):
    _, (variant,) = await make_product(db, stock=3)
    user = await make_user(db)
    await put_in_cart(db, user, variant, 2)
    await signed_in(client, settings, user)
    seen = await review(client)
    await db.execute(variant.__table__.update().where(variant.__table__.c.id == variant.id).values(stock=1))
    await db.commit()
    with count_queries(app) as refused:
        response = await post_form(client, "/checkout/", checkout_form(**seen))
    assert response.status_code == 409 and "(S): only 1 left." in response.text
    writes = [s for s in refused if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "WITH"))]
    assert writes == [] and len(refused) <= 5, refused  # the page that answers reads the cart again
    assert await stock_of(db, variant) == 1


async def test_a_size_that_ran_out_is_named_in_the_shoppers_language(client, settings, db):
    """The refusal is written for the shopper, in Vietnamese too (it was English-only)."""
    _, (variant,) = await make_product(db, stock=3)
    user = await make_user(db)
    await put_in_cart(db, user, variant, 2)
    await signed_in(client, settings, user)
    client.headers["Accept-Language"] = "vi"
    seen = await review(client)
    await db.execute(variant.__table__.update().where(variant.__table__.c.id == variant.id).values(stock=0))
    await db.commit()
    response = await post_form(client, "/checkout/", checkout_form(**seen))
    assert response.status_code == 409
    assert "(S): đã bán hết trong lúc bạn thanh toán." in response.text


async def test_a_submit_whose_key_a_twin_took_writes_nothing_at_all(settings, db):
    """The statement's own guard: the user row's lock normally makes the second submit find the
    first order, but a lock that waited reads the key too early; `ON CONFLICT` on the key is what
    then keeps it from taking stock, writing a ledger row or emptying the cart."""
    _, (variant,) = await make_product(db, stock=10)
    user = await make_user(db)
    key = secrets.token_urlsafe(24)
    shipping = Shipping("Lan", "0901234567", "1 Lê Lợi, Quận 1", "", PaymentMethod.COD)
    await put_in_cart(db, user, variant, 2)
    first, created = await OrderService(db).place(
        user, CartService(db, DbCartStore(db, user.id)), shipping, key, 30_000, 500_000
    )
    assert created and await stock_of(db, variant) == 8
    await put_in_cart(db, user, variant, 3)  # the twin's cart, as it read it
    view = await CartService(db, DbCartStore(db, user.id)).lines_to_order()
    values = cod_order_values(key, 300_000)
    twin = placing.NewOrder(uuid.uuid4(), user.id, user.email, values)
    tracker = Tracker("v" * 32, False)
    statement = placing.statement(tracked=True, clear_cart=True)
    placement = await placing.place(db, statement, placing.parameters(twin, view.lines, uuid.uuid4(), tracker))
    await db.commit()
    assert placement.order_id is None and placement.taken == 0
    assert placement.short_line(view.lines) is None  # there was stock: only the key stopped it
    assert await stock_of(db, variant) == 8
    assert await db.scalar(select(func.count()).select_from(Order).where(Order.user_id == user.id)) == 1
    movements = select(func.count()).select_from(StockMovement).where(StockMovement.variant_id == variant.id)
    assert await db.scalar(movements) == 1  # the first order's take only (a factory size has no opening row)
    assert await db.scalar(select(CartItem.quantity).where(CartItem.user_id == user.id)) == 3  # not emptied
    outbox = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.id == twin.id)
    assert await db.scalar(outbox) == 0
    tracked = select(func.count()).select_from(AnalyticsEvent).where(AnalyticsEvent.user_id == user.id)
    assert await db.scalar(tracked) == 0  # the first was placed untracked, and the twin wrote none
    # Through the service the same submit answers with the first order.
    again, created = await OrderService(db).place(
        user, CartService(db, DbCartStore(db, user.id)), shipping, key, 30_000, 500_000
    )
    assert (again.id, created) == (first.id, False)


async def test_the_relay_enqueues_a_job_once_as_arq_writes_it_and_sends_the_notes_in_the_same_trip(settings):
    """The outbox relay is one round trip: arq's enqueue as one Lua script, with the live pages' notes."""
    from arq.connections import ArqRedis
    from arq.jobs import Job, JobStatus
    from redis.asyncio import Redis

    from sweetdream.orders import live, outbox
    from sweetdream.platform.queue import DELIVER_EVENT, enqueue

    redis = Redis.from_url(settings.redis_url)
    try:
        order_id, event_id = uuid.uuid4(), uuid.uuid4()
        async with live.admin_subscription(redis) as pubsub:
            await pubsub.get_message(timeout=1)  # the subscription is in place
            assert await outbox.relay(redis, [event_id], [live.admin_note("placed", order_id)]) == 1
            note = await pubsub.get_message(timeout=5)
        assert note is not None and live.read_admin_note(note["data"]) == ("placed", order_id)
        job = Job(str(event_id), ArqRedis(connection_pool=redis.connection_pool))
        assert await job.status() == JobStatus.queued
        info = await job.info()
        assert info is not None and (info.function, info.args) == (DELIVER_EVENT, (str(event_id),))
        # A second enqueue of the same job id while it waits is refused, as arq's own enqueue_job would.
        assert await enqueue(redis, DELIVER_EVENT, str(event_id), str(event_id)) is False
        fresh = f"t-{uuid.uuid4()}"
        assert await enqueue(redis, DELIVER_EVENT, fresh, fresh) is True
    finally:
        await redis.aclose()


async def test_without_its_guards_the_statement_is_refused_by_the_check_constraint_and_writes_nothing(
    settings, db, monkeypatch
):
    """The last line of defence: with the `stock >= n` guards gone, `stock >= 0` refuses the statement."""
    from sqlalchemy import true
    from sqlalchemy.exc import IntegrityError

    from sweetdream.catalog import stock
    from sweetdream.db import violated_constraint

    monkeypatch.setattr(stock, "has_enough", lambda level, quantity: true())
    monkeypatch.setattr(placing, "_STATEMENTS", {})  # built again, without the guards
    _, (variant,) = await make_product(db, stock=3)
    user = await make_user(db)
    await put_in_cart(db, user, variant, 2)
    variants, variant_id, user_id = variant.__table__, variant.id, user.id
    view = await CartService(db, DbCartStore(db, user_id)).lines_to_order()
    await db.execute(variants.update().where(variants.c.id == variant_id).values(stock=1))
    await db.commit()
    values = cod_order_values(secrets.token_urlsafe(24), 200_000)
    order = placing.NewOrder(uuid.uuid4(), user_id, "lan@example.com", values)
    statement = placing.statement(tracked=False, clear_cart=True)
    with pytest.raises(IntegrityError) as refused:
        await placing.place(db, statement, placing.parameters(order, view.lines, uuid.uuid4(), None))
    assert violated_constraint(refused.value) == stock.STOCK_CONSTRAINT
    await db.rollback()
    assert await db.scalar(select(variants.c.stock).where(variants.c.id == variant_id)) == 1
    assert await db.scalar(select(func.count()).select_from(Order).where(Order.user_id == user_id)) == 0
    assert await db.scalar(select(CartItem.quantity).where(CartItem.user_id == user_id)) == 2


async def test_placing_an_order_relays_its_job_its_notes_and_the_stale_product_page_in_one_round_trip(
    client, settings, db, monkeypatch
):
    """After the commit a checkout tells Redis three things: the order's job, the live pages, and that
    the bought product's cached page is stale. One round trip carries them (catalog/writes.py's held
    invalidation): each round trip cost a checkout ~30 ms at 64 concurrent shoppers."""
    from redis.asyncio.connection import AbstractConnection

    from sweetdream.catalog.cache import PRODUCT_KEY_PREFIX

    product, (size,) = await make_product(db, stock=10)
    user = await make_user(db)
    await signed_in(client, settings, user)
    await put_in_cart(db, user, size, 1)
    seen = await review(client)
    sent: list[bytes] = []
    send = AbstractConnection.send_packed_command

    async def recorded(self, command, *args, **kwargs):
        chunks = command if isinstance(command, list | tuple) else [command]
        sent.append(b"".join(bytes(chunk) for chunk in chunks))
        await send(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", recorded)
    response = await post_form(client, "/checkout/", checkout_form(**seen))
    monkeypatch.undo()
    assert response.status_code == 303, response.text

    stale_page = (PRODUCT_KEY_PREFIX + product.slug).encode()
    job, note = b"$4\r\nEVAL\r\n", b"$7\r\nPUBLISH\r\n"  # arq's enqueue script; a live page's note
    told = [trip for trip in sent if stale_page in trip or job in trip or note in trip]
    assert len(told) == 1, [trip[:300] for trip in told]
    assert stale_page in told[0] and job in told[0] and note in told[0]


async def a_change_after_the_carts_read(settings, monkeypatch, change: str, values: dict) -> None:
    """Another connection commits `change` just after the checkout has read the cart."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    read = CartService.lines_to_order

    async def read_then_change(self):
        view = await read(self)
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.begin() as other:
                await other.execute(text(change), values)
        finally:
            await engine.dispose()
        return view

    monkeypatch.setattr(CartService, "lines_to_order", read_then_change)


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE products SET price = 180000 WHERE id = :product",  # an admin reprices it
        "UPDATE cart_items SET quantity = 3 WHERE user_id = :user",  # the shopper, in another tab
    ],
)
async def test_a_change_after_the_carts_read_places_nothing_and_asks_for_a_new_review(
    settings, db, monkeypatch, change
):
    """The cart is read without locking anything (a checkout holds a contested size only while the
    order's statement runs): the statement checks, under its locks, that each size still costs what
    the read said and that the cart still holds each line at its quantity. Else it places nothing,
    and the shopper reviews the order again."""
    from sweetdream.orders.services import ReviewChanged

    product, (variant,) = await make_product(db, stock=5, price=150_000)
    user = await make_user(db)
    await put_in_cart(db, user, variant, 2)
    await a_change_after_the_carts_read(settings, monkeypatch, change, {"product": product.id, "user": user.id})
    shipping = Shipping("Lan", "0901234567", "1 Lê Lợi, Quận 1", "", PaymentMethod.COD)
    with pytest.raises(ReviewChanged):
        await OrderService(db).place(
            user, CartService(db, DbCartStore(db, user.id)), shipping, secrets.token_urlsafe(24), 30_000, 500_000
        )
    assert await stock_of(db, variant) == 5
    assert await db.scalar(select(func.count()).select_from(Order).where(Order.user_id == user.id)) == 0
    assert await db.scalar(select(CartItem.quantity).where(CartItem.user_id == user.id)) in (2, 3)  # not emptied


async def test_the_order_statement_commits_as_it_ends_and_holds_no_size_after_it(settings, db, monkeypatch):
    """A contested size's checkouts queue behind the one whose statement holds it, so a checkout lets
    go of its sizes as its statement ends, not a COMMIT's round trip later: the order is committed,
    and no size's queue held, by the time the service reads the statement's answer."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from sweetdream.catalog.stock import TAKE_QUEUE_CLASS

    _, (variant,) = await make_product(db, stock=5)
    user = await make_user(db)
    await put_in_cart(db, user, variant, 1)
    seen: dict[str, int | None] = {}
    run = placing.place

    async def place_then_look_from_elsewhere(session, query, values):
        placement = await run(session, query, values)
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as other:
                committed = select(func.count()).select_from(Order).where(Order.id == placement.order_id)
                seen["orders"] = await other.scalar(committed)
                queues = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :queue"
                seen["queues held"] = await other.scalar(text(queues), {"queue": TAKE_QUEUE_CLASS})
        finally:
            await engine.dispose()
        return placement

    monkeypatch.setattr(placing, "place", place_then_look_from_elsewhere)
    shipping = Shipping("Lan", "0901234567", "1 Lê Lợi, Quận 1", "", PaymentMethod.COD)
    _, created = await OrderService(db).place(
        user, CartService(db, DbCartStore(db, user.id)), shipping, secrets.token_urlsafe(24), 30_000, 500_000
    )
    assert created and seen == {"orders": 1, "queues held": 0}
    assert await stock_of(db, variant) == 4


async def test_placing_an_order_takes_one_database_connection_once(client, app, settings, db):
    """The place-order route's statements commit as they end from the user's read on
    (`db.EACH_STATEMENT_COMMITTED`): the request never gives its connection back to end a read
    transaction and then waits behind every request queued at the pool for another."""
    from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
    from sqlalchemy import event

    _, (size,) = await make_product(db, stock=10)
    user = await make_user(db)
    await signed_in(client, settings, user)
    await put_in_cart(db, user, size, 1)
    seen = await review(client)
    engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine().sync_engine
    checkouts: list[object] = []

    def checked_out(dbapi_connection, record, proxy) -> None:
        checkouts.append(dbapi_connection)

    event.listen(engine, "checkout", checked_out)
    try:
        response = await post_form(client, "/checkout/", checkout_form(**seen))
    finally:
        event.remove(engine, "checkout", checked_out)
    assert response.status_code == 303 and NUMBER.search(response.headers["location"])
    assert len(checkouts) == 1
    assert await stock_of(db, size) == 9


async def test_a_size_restocked_while_the_statement_waited_for_it_is_taken_from_its_new_level(
    settings, db, monkeypatch
):
    """The order's statement takes its snapshot before it waits at a size's row, and PostgreSQL tests
    an UPDATE's conditions on the row as that snapshot had it. Here the snapshot says 1 left and the
    restock holding the size commits 10. With a stock condition on the UPDATE the row was passed by
    and the order written with nothing taken (the statement commits as it ends: nothing rolls that
    back); without it, the new stock was computed from the snapshot's 1 (the CHECK refused it; from a
    higher level the restock would have been lost). The order takes its 3 from the 10."""
    import asyncio
    import contextlib

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from sweetdream.orders.services import CheckoutError

    _, (variant,) = await make_product(db, stock=5)
    user = await make_user(db)
    await put_in_cart(db, user, variant, 3)
    user_id, variant_id = user.id, variant.id
    engine = create_async_engine(settings.database_url)
    restock = await engine.connect()
    size = {"id": variant_id}
    read = CartService.lines_to_order

    async def read_then_the_stock_runs_low_and_a_restock_holds_the_size(self):
        view = await read(self)  # 5 left: nothing to refuse yet
        async with engine.begin() as sale:
            await sale.execute(text("UPDATE variants SET stock = 1 WHERE id = :id"), size)
        await restock.execute(text("SELECT 1 FROM variants WHERE id = :id FOR UPDATE"), size)
        return view

    async def restock_once_the_checkout_waits() -> None:
        async with engine.connect() as watcher:
            for _ in range(600):
                if await watcher.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the checkout never waited for the size")
        await restock.execute(text("UPDATE variants SET stock = 10 WHERE id = :id"), size)
        await restock.commit()

    monkeypatch.setattr(CartService, "lines_to_order", read_then_the_stock_runs_low_and_a_restock_holds_the_size)
    shipping = Shipping("Lan", "0901234567", "1 Lê Lợi, Quận 1", "", PaymentMethod.COD)
    try:
        restocking = asyncio.ensure_future(restock_once_the_checkout_waits())
        with contextlib.suppress(CheckoutError):  # refused whole: checked below
            await OrderService(db).place(
                user, CartService(db, DbCartStore(db, user_id)), shipping, secrets.token_urlsafe(24), 30_000, 500_000
            )
        await restocking
    finally:
        await restock.close()
        await engine.dispose()
    orders = await db.scalar(select(func.count()).select_from(Order).where(Order.user_id == user_id))
    stock = await db.scalar(text("SELECT stock FROM variants WHERE id = :id"), size)
    assert (orders, stock) == (1, 7)
