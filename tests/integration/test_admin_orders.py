"""The admin's orders (issue #10): list with filters and search, keyset pages, capped totals, the
staff order page and its moves, bulk moves, the CSV export; ADMIN only, CSRF, audited.

Each test arranges its orders in a year of its own in the 1980s (shop time, UTC+7 since 1975), so the date
filter isolates them from every other test's orders in the shared database.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from sqlalchemy import event, select

from sweetdream.accounts.models import Role, User
from sweetdream.audit.models import AuditEntry
from sweetdream.catalog.models import Product
from sweetdream.orders.models import Order, OrderEvent, OrderLine, OrderStatus, PaymentMethod
from tests.integration.factories import make_product, make_user, signed_in
from tests.integration.helpers import post_form

SHOP_OFFSET = timedelta(hours=7)  # Asia/Ho_Chi_Minh, no daylight saving
ROW = re.compile(r'<td><a href="/admin/orders/(SD-\d+)">')


def shop(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A moment given on the shop's clock, as the UTC instant stored."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - SHOP_OFFSET


async def add_order(
    db,
    user: User,
    number: str,
    placed: datetime,
    *,
    status: OrderStatus = OrderStatus.PROCESSING,
    name: str = "Trần Thị Bích",
    phone: str = "0912345678",
    total: int = 100_000,
    method: PaymentMethod = PaymentMethod.COD,
    payment_status: str = "due on delivery",
    variant=None,
) -> Order:
    order = Order(
        number=number,
        user_id=user.id,
        idempotency_key=secrets.token_hex(16),
        status=status,
        payment_method=method,
        payment_status=payment_status,
        shipping_name=name,
        shipping_phone=phone,
        shipping_address="5 Hai Bà Trưng, Quận 1",
        subtotal=total,
        shipping_fee=0,
        total=total,
        created_at=placed,
    )
    db.add(order)
    await db.flush()
    if variant is not None:
        db.add(
            OrderLine(
                order_id=order.id,
                product_id=variant.product_id,
                variant_id=variant.id,
                position=0,
                product_name="Bánh bông lan",
                product_slug="banh-bong-lan",
                size_label="M",
                sku=variant.sku,
                unit_price=total,
                quantity=1,
            )
        )
    db.add(
        OrderEvent(
            order_id=order.id, from_status=None, to_status=OrderStatus.PENDING, actor=user.email, note="Order placed"
        )
    )
    await db.commit()
    return order


def tag_number(prefix: int) -> str:
    """An order number of seven digits no checkout reaches in a test run (SD-%06d from 1)."""
    return f"SD-{prefix}{secrets.randbelow(100_000):05d}"


def listed(html: str) -> list[str]:
    return ROW.findall(html)


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)"', html)
    return unescape(found.group(1)) if found else None


@pytest.fixture
async def admin(client, settings, db):
    user = await make_user(db, Role.ADMIN)
    await signed_in(client, settings, user)
    return user


async def audit_rows(db, action: str, actor: User) -> list[AuditEntry]:
    return list(
        await db.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == action, AuditEntry.actor_id == actor.id)
            .order_by(AuditEntry.id)
        )
    )


# --- who may ----------------------------------------------------------------------------------

GETS = [
    "/admin/orders",
    "/admin/orders?status=PENDING",
    "/admin/orders.csv",
    "/admin/orders/live",
    "/admin/orders/live/today",
    "/admin/orders/SD-000001",
    "/admin/orders/SD-000001/slip",
]
POSTS = [
    ("/admin/orders/bulk", {"status": "PREPARING", "number": "SD-000001"}),
    ("/admin/orders/SD-000001/status", {"status": "PREPARING"}),
]


async def test_a_visitor_is_sent_to_sign_in_and_a_customer_is_refused_everywhere(client, settings, db):
    for url in GETS:
        r = await client.get(url)
        assert r.status_code in (302, 303) and "/account/login" in r.headers["location"], url
    await signed_in(client, settings, await make_user(db))
    for url in GETS:
        assert (await client.get(url)).status_code == 403, url
    for url, data in POSTS:
        assert (await post_form(client, url, data)).status_code == 403, url


async def test_posts_without_the_csrf_token_are_refused_and_move_nothing(client, db, admin):
    user = await make_user(db)
    order = await add_order(db, user, tag_number(71), shop(1981, 5, 1))
    for url, data in [
        ("/admin/orders/bulk", {"status": "PREPARING", "number": order.number}),
        (f"/admin/orders/{order.number}/status", {"status": "PREPARING"}),
    ]:
        assert (await client.post(url, data=data)).status_code == 403, url
    assert await db.scalar(select(Order.status).where(Order.id == order.id)) == OrderStatus.PROCESSING


# --- filters, search, totals ------------------------------------------------------------------


async def test_filters_and_search_find_the_expected_orders(client, db, admin):
    shopper = await make_user(db)
    other = await make_user(db)
    a = await add_order(db, shopper, "SD-7200001", shop(1982, 3, 1, 23, 30), name="Nguyễn Văn An", phone="0987000111")
    b = await add_order(
        db,
        other,
        "SD-7200002",
        shop(1982, 3, 2, 0, 15),
        status=OrderStatus.CANCELLED,
        name="Lê Thị Hoa",
        method=PaymentMethod.CARD,
        payment_status="refunded",
        total=250_000,
    )
    c = await add_order(
        db, other, "SD-7200003", shop(1982, 3, 5), status=OrderStatus.SHIPPED, name="Nguyễn Thị Lan", total=40_000
    )
    year = "from=1982-01-01&to=1982-12-31"

    async def numbers(query: str) -> list[str]:
        r = await client.get(f"/admin/orders?{query}")
        assert r.status_code == 200, (query, r.text[:300])
        return listed(r.text)

    assert await numbers(year) == ["SD-7200003", "SD-7200002", "SD-7200001"]
    assert await numbers(f"{year}&status=CANCELLED") == ["SD-7200002"]
    assert await numbers(f"{year}&payment=CARD") == ["SD-7200002"]
    assert await numbers(f"{year}&payment_status=refunded") == ["SD-7200002"]
    # Shop days: 23:30 on 1 March is that day; 00:15 on 2 March (17:15 UTC on the 1st) is the next.
    assert await numbers("from=1982-03-01&to=1982-03-01") == ["SD-7200001"]
    assert await numbers("from=1982-03-02&to=1982-03-04") == ["SD-7200002"]
    assert await numbers("q=SD-7200002") == ["SD-7200002"]
    assert await numbers("q=sd7200003") == ["SD-7200003"]
    assert await numbers("q=7200001") == ["SD-7200001"]
    assert await numbers(f"q={shopper.email.upper()}") == ["SD-7200001"]
    assert await numbers(f"q={other.email}&{year}") == ["SD-7200003", "SD-7200002"]
    assert await numbers(f"q=0987000111&{year}") == ["SD-7200001"]
    assert await numbers(f"q=nguy%E1%BB%85n&{year}") == ["SD-7200003", "SD-7200001"]  # "nguyễn", any case
    assert await numbers(f"q=L%C3%AA%20Th%E1%BB%8B&{year}") == ["SD-7200002"]  # "Lê Thị"
    assert await numbers(f"q=nobody-like-this&{year}") == []
    assert (a.number, b.number, c.number) == ("SD-7200001", "SD-7200002", "SD-7200003")

    page = (await client.get(f"/admin/orders?{year}")).text
    # Revenue leaves the cancelled order out: 100.000 + 40.000.
    assert "3 orders · revenue ₫140,000 (cancelled orders left out)" in page
    empty = (await client.get("/admin/orders?from=1982-06-01&to=1982-06-30")).text
    assert "0 orders" in empty and "No orders match these filters." in empty


async def test_bad_filters_are_a_400_with_a_clear_message(client, admin):
    cases = {
        "status=LOST": "There is no status &#39;LOST&#39;.",
        "payment=BITCOIN": "There is no payment method &#39;BITCOIN&#39;.",
        "payment_status=stolen": "There is no payment status &#39;stolen&#39;.",
        "from=2026-13-01": "Write the from date as YYYY-MM-DD.",
        "to=yesterday": "Write the to date as YYYY-MM-DD.",
        "from=2026-05-02&to=2026-05-01": "The start date is after the end date.",
        "after=not-a-cursor": "That page link is damaged",
        "q=" + "x" * 101: "Search for at most 100 characters.",
    }
    for query, message in cases.items():
        export = [] if query.startswith("after=") else [f"/admin/orders.csv?{query}"]  # the export has no pages
        for url in [f"/admin/orders?{query}", *export]:
            r = await client.get(url)
            assert r.status_code == 400, url
            if url.startswith("/admin/orders?"):
                assert message in r.text, (url, r.text[:500])
    cursor = "MjAyNi0wMS0wMVQwMDowMDowMCswMDowMH4wMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA"
    r = await client.get(f"/admin/orders?after={cursor}&before={cursor}")
    assert r.status_code == 400 and "not both" in r.text
    assert (await client.get("/admin/orders/SD-999999999")).status_code == 404


async def test_keyset_pages_walk_every_order_once_while_new_orders_arrive(client, db, admin):
    user = await make_user(db)
    start = shop(1983, 1, 1)
    # 60 orders, one a minute, two of them in the same instant (the id breaks the tie).
    made = [await add_order(db, user, f"SD-73{i:05d}", start + timedelta(minutes=i)) for i in range(59)]
    made.append(await add_order(db, user, "SD-7300059", start + timedelta(minutes=30)))
    url = "/admin/orders?from=1983-01-01&to=1983-12-31"
    seen: list[str] = []
    pages = 0
    while url:
        r = await client.get(url)
        assert r.status_code == 200
        seen += listed(r.text)
        pages += 1
        # A new order arrives between pages (newer than all): it goes on top, never shifts a page.
        await add_order(db, user, f"SD-739{pages:04d}", start + timedelta(days=200, minutes=pages))
        url = link(r.text, "next")
    assert pages == 3
    assert len(seen) == 60 and len(set(seen)) == 60
    assert set(seen) == {o.number for o in made}
    assert seen[0] == "SD-7300058" and seen[-1] == "SD-7300000"
    # Back from the last page: the newer page is the second again, exactly.
    last = (await client.get(link(r.text, "prev") or "")).text
    assert listed(last) == seen[25:50]


async def test_over_ten_thousand_the_count_says_so_instead_of_scanning(client, db, admin, monkeypatch):
    from sweetdream.orders import staff

    monkeypatch.setattr(staff, "COUNT_CAP", 2)
    user = await make_user(db)
    for i in range(3):
        await add_order(db, user, f"SD-74{i:05d}", shop(1984, 2, 1) + timedelta(minutes=i))
    page = unescape((await client.get("/admin/orders?from=1984-01-01&to=1984-12-31")).text)
    assert "More than 2 orders match: narrow the dates to see the exact count and revenue." in page
    page = unescape((await client.get("/admin/orders?from=1984-01-01&to=1984-12-31&status=CANCELLED")).text)
    assert "0 orders" in page


# --- one order, moves, audit --------------------------------------------------------------------


async def test_the_staff_order_page_shows_the_order_and_a_move_is_recorded_and_audited(client, db, admin):
    shopper = await make_user(db)
    product, (variant,) = await make_product(db, stock=5)
    order = await add_order(db, shopper, tag_number(75), shop(1985, 4, 1), total=180_000, variant=variant)
    page = (await client.get(f"/admin/orders/{order.number}")).text
    assert f'<a href="/admin/customers/{shopper.id}">Minh Anh</a>' in page
    assert shopper.email in page and "0912345678" in page and "5 Hai Bà Trưng, Quận 1" in page
    assert "Bánh bông lan (M)" in page and "₫180,000" in page
    assert "Cash on delivery" in page and "Order placed" in page
    moves = page.split('id="moves-heading"')[1].split("</section>")[0]
    assert re.findall(r'<button type="submit"[^>]*>([^<]+)</button>', moves) == ["Start preparing", "Cancel order"]

    r = await post_form(
        client,
        f"/admin/orders/{order.number}/status",
        {"status": "PREPARING", "note": "Oven 2", "back": f"/admin/orders/{order.number}"},
    )
    assert r.status_code == 303 and r.headers["location"] == f"/admin/orders/{order.number}"
    page = (await client.get(f"/admin/orders/{order.number}")).text
    assert "Being prepared" in page and "Oven 2" in page
    (entry,) = await audit_rows(db, "order.move", admin)
    assert (entry.target_type, entry.target_id, entry.target_label) == ("order", str(order.id), order.number)
    assert (entry.before, entry.after, entry.note) == ({"status": "PROCESSING"}, {"status": "PREPARING"}, "Oven 2")

    refused = await post_form(client, f"/admin/orders/{order.number}/status", {"status": "DELIVERED"})
    assert refused.status_code == 409
    assert len(await audit_rows(db, "order.move", admin)) == 1  # a refused move records nothing

    slip = await client.get(f"/admin/orders/{order.number}/slip")
    assert slip.status_code == 200
    assert f"SweetDream · Order {order.number}" in slip.text and "Collect on delivery: ₫180,000" in slip.text
    await db.execute(Product.__table__.update().where(Product.id == product.id).values(is_active=False))
    await db.commit()


async def test_bulk_moves_each_order_through_the_rules_and_says_which_were_refused(client, db, admin):
    user = await make_user(db)
    ready = await add_order(db, user, "SD-7600001", shop(1986, 1, 1))
    also_ready = await add_order(db, user, "SD-7600002", shop(1986, 1, 2))
    unpaid = await add_order(db, user, "SD-7600003", shop(1986, 1, 3), status=OrderStatus.PENDING)
    done = await add_order(db, user, "SD-7600004", shop(1986, 1, 4), status=OrderStatus.DELIVERED)
    token = str(client.cookies["sd_csrf"])
    form = [("_csrf_token", token), ("status", "PREPARING"), ("note", "Morning batch")]
    form += [("number", n) for n in ["SD-7600001", "SD-7600002", "SD-7600003", "SD-7600004", "SD-0000000"]]
    r = await client.post(
        "/admin/orders/bulk",
        content="&".join(f"{k}={v}" for k, v in form).replace(" ", "+"),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    page = unescape(r.text)
    assert "2 orders moved, 3 refused." in page
    rows = dict(
        re.findall(r'<tr class="(moved|refused)"><td><a href="/admin/orders/(SD-\d+)">', page)[i][::-1]
        for i in range(5)
    )
    assert rows == {
        "SD-7600001": "moved",
        "SD-7600002": "moved",
        "SD-7600003": "refused",
        "SD-7600004": "refused",
        "SD-0000000": "refused",
    }
    assert "Order SD-7600003 is pending and can't become being prepared." in page
    assert "Order SD-7600004 is delivered and can't become being prepared." in page
    assert "No such order." in page
    statuses = dict(
        (
            await db.execute(
                select(Order.number, Order.status).where(Order.id.in_([ready.id, also_ready.id, unpaid.id, done.id]))
            )
        ).all()
    )
    assert statuses == {
        "SD-7600001": OrderStatus.PREPARING,
        "SD-7600002": OrderStatus.PREPARING,
        "SD-7600003": OrderStatus.PENDING,
        "SD-7600004": OrderStatus.DELIVERED,
    }
    moves = await audit_rows(db, "order.move", admin)
    assert [(m.target_label, m.after, m.note) for m in moves] == [
        ("SD-7600001", {"status": "PREPARING"}, "Morning batch"),
        ("SD-7600002", {"status": "PREPARING"}, "Morning batch"),
    ]
    bad = await post_form(client, "/admin/orders/bulk", {"status": "DELIVERED", "number": "SD-7600001"})
    assert bad.status_code == 400
    none = await post_form(client, "/admin/orders/bulk", {"status": "SHIPPED"})
    assert none.status_code == 400 and "Select at least one order." in unescape(none.text)


# --- export ---------------------------------------------------------------------------------------


async def test_the_csv_export_streams_the_filtered_orders_safely_and_is_audited(client, db, admin):
    user = await make_user(db)
    await add_order(db, user, "SD-7700001", shop(1987, 6, 1, 9, 5), name='=HYPERLINK("http://x")', phone="+84912345678")
    await add_order(
        db, user, "SD-7700002", shop(1987, 6, 2, 18, 30), name="Phạm Minh", total=65_000, status=OrderStatus.CANCELLED
    )
    r = await client.get("/admin/orders.csv?from=1987-01-01&to=1987-12-31")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="orders-')
    assert "content-length" not in r.headers  # streamed
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == [
        "number",
        "placed_at",
        "status",
        "payment_method",
        "payment_status",
        "customer_email",
        "recipient",
        "phone",
        "address",
        "subtotal",
        "shipping_fee",
        "total",
        "currency",
    ]
    assert rows[1] == [
        "SD-7700002",
        "1987-06-02 18:30",
        "CANCELLED",
        "COD",
        "due on delivery",
        user.email,
        "Phạm Minh",
        "0912345678",
        "5 Hai Bà Trưng, Quận 1",
        "65000",
        "0",
        "65000",
        "VND",
    ]
    assert rows[2][:8] == [
        "SD-7700001",
        "1987-06-01 09:05",
        "PROCESSING",
        "COD",
        "due on delivery",
        user.email,
        '\'=HYPERLINK("http://x")',
        "'+84912345678",
    ]
    assert len(rows) == 3
    (entry,) = await audit_rows(db, "orders.export", admin)
    assert entry.after == {"from": "1987-01-01", "to": "1987-12-31"}


# --- the dashboard ----------------------------------------------------------------------------------


async def test_the_dashboard_shows_todays_orders_and_revenue(client, db, admin):
    page = (await client.get("/admin")).text
    assert 'sse-connect="/admin/orders/live/today"' in page
    assert re.search(r'<dd id="today-orders">\d+</dd>', page)


# --- live ---------------------------------------------------------------------------------------


async def place_for(db, redis, user: User, variant) -> Order:
    """An order placed through the checkout service (which tells the admin pages after commit)."""
    from sweetdream.cart.services import CartService, DbCartStore
    from sweetdream.orders.services import OrderService, Shipping
    from tests.integration.factories import put_in_cart

    await put_in_cart(db, user, variant, 1)
    order, _ = await OrderService(db, redis).place(
        user,
        CartService(db, DbCartStore(db, user.id)),
        Shipping("Đỗ Live", "0911222333", "1 Lý Tự Trọng", "", PaymentMethod.COD),
        secrets.token_urlsafe(24),
        30_000,
        500_000,
    )
    return order


async def test_the_live_list_sends_new_matching_orders_and_moves(client, settings, db, admin, monkeypatch):
    import asyncio

    from redis.asyncio import Redis

    from sweetdream.admin import orders as admin_orders
    from sweetdream.orders import live
    from sweetdream.orders.services import OrderService
    from tests.integration.test_live_access import follow

    monkeypatch.setattr(admin_orders, "LIVE_STREAM_SECONDS", 3)
    watched, other = await make_user(db), await make_user(db)
    product, (variant,) = await make_product(db, stock=5)
    stream = follow(client, f"/admin/orders/live?q={watched.email}")
    redis = Redis.from_url(settings.redis_url)
    try:
        for _ in range(200):
            ((_, listening),) = await redis.pubsub_numsub(live.ADMIN_CHANNEL)
            if listening:
                break
            await asyncio.sleep(0.02)
        mine = await place_for(db, redis, watched, variant)
        await place_for(db, redis, other, variant)  # not this list's: not sent
        await OrderService(db, redis).transition(mine.id, OrderStatus.PROCESSING, "system:test")
    finally:
        await redis.aclose()
    response = await stream
    response.read()
    body = response.text
    events = re.findall(r"event: ([\w-]+)", body)
    assert events == ["new-order", f"order-{mine.id}"]
    assert f'<a href="/admin/orders/{mine.number}">{mine.number}</a>' in body
    assert 'class="order-row is-new"' in body and "Confirmed" in body
    await db.execute(Product.__table__.update().where(Product.id == product.id).values(is_active=False))
    await db.commit()


async def test_a_demoted_admin_loses_the_live_list(app, client, settings, db, admin, monkeypatch):
    import time

    from sweetdream.admin import orders as admin_orders
    from tests.integration.helpers import cli
    from tests.integration.test_live_access import follow

    monkeypatch.setattr(admin_orders, "ACCESS_CHECK_SECONDS", 0.3)
    monkeypatch.setattr(admin_orders, "LIVE_STREAM_SECONDS", 8)
    stream = follow(client, "/admin/orders/live")
    await asyncio_sleep(0.5)
    result = await cli(app, "set-role", admin.email, "CUSTOMER")
    assert result.exit_code == 0, result.output
    demoted_at = time.monotonic()
    await stream
    assert time.monotonic() - demoted_at < 3


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_the_order_list_runs_the_same_queries_for_two_orders_or_a_full_page(client, db, admin):
    """Bounded query counts: no statement per order shown (the list, the customer, the lines)."""
    user = await make_user(db)
    start = shop(1979, 3, 1)
    url = "/admin/orders?from=1979-03-01&to=1979-03-31&status=PROCESSING"
    engine = client.app.state.sqlalchemy_config.get_engine().sync_engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    async def statements_for_the_page(orders: int) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            page = await client.get(url)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert page.status_code == 200 and len(listed(page.text)) == orders
        return len(statements)

    for i in range(2):
        await add_order(db, user, f"SD-79{i:05d}", start + timedelta(minutes=i))
    await db.commit()
    with_two = await statements_for_the_page(2)
    for i in range(2, 40):
        await add_order(db, user, f"SD-79{i:05d}", start + timedelta(minutes=i))
    await db.commit()
    assert await statements_for_the_page(25) == with_two  # a full page (25 of the 40)
    assert with_two == 3  # the signed-in admin, the page of orders, their count and revenue
