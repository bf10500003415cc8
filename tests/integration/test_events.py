"""Shopper events: recorded once each with the right facts, over real HTTP, Redis and PostgreSQL;
never for a browser that asks not to be tracked; partitions by shop day; the analytics page's guard."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, date, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from sweetdream.analytics import services as analytics
from sweetdream.analytics.recording import STREAM, EventRecorder, stream_entry
from sweetdream.app import create_app
from sweetdream.catalog.models import Category
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in
from tests.integration.helpers import post_form
from tests.integration.test_checkout import NUMBER, at_once, checkout, review

ZONE = "Asia/Ho_Chi_Minh"


async def flush_events(client) -> int:
    """Send the app's batch of events to the stream now, on the loop that serves it (the test
    client runs the app in a thread of its own), as its background task does every 0.1 s."""
    recorder = client.app.state.event_recorder
    return await asyncio.to_thread(client.blocking_portal.call, recorder.flush)


async def drain(settings, client) -> int:
    """The app's batch flushed, then what the worker's drain job does: the stream into PostgreSQL,
    then the rollups."""
    await flush_events(client)
    engine = create_async_engine(settings.database_url)
    redis = Redis.from_url(settings.redis_url)
    try:
        moved, days = await analytics.drain_events(engine, redis, ZONE)
        for day in days | {analytics.shop_day(datetime.now(UTC), ZONE)}:
            await analytics.refresh_rollups(engine, day, ZONE)
    finally:
        await redis.aclose()
        await engine.dispose()
    return moved


async def events_of(db, *, visitor: str | None = None, user=None, name: str | None = None):
    clauses, params = ["true"], {}
    if visitor is not None:
        clauses.append("visitor_id = :visitor")
        params["visitor"] = visitor
    if user is not None:
        clauses.append("user_id = :user")
        params["user"] = user.id
    if name is not None:
        clauses.append("name = :name")
        params["name"] = name
    rows = await db.execute(
        text(
            "SELECT name, user_id, visitor_id, properties, event_id FROM analytics_events "
            f"WHERE {' AND '.join(clauses)} ORDER BY occurred_at, id"
        ),
        params,
    )
    return rows.all()


@pytest.fixture(autouse=True)
async def _empty_stream(settings):
    redis = Redis.from_url(settings.redis_url)
    await redis.delete(STREAM)
    await redis.aclose()


async def test_a_product_view_is_recorded_for_rendered_and_cached_pages_alike(client, settings, db):
    product, _ = await make_product(db, price=123_000)
    first = await client.get(f"/products/{product.slug}")  # rendered, and cached for the next visitor
    visitor = first.cookies.get("sd_vid")
    assert first.status_code == 200 and visitor and len(visitor) == 32
    second = await client.get(f"/products/{product.slug}")  # served from the page cache, before Litestar
    assert second.status_code == 200 and "sd_vid" not in second.headers.get("set-cookie", "")
    client.cookies.clear()
    client.cookies.set("sd_vid", "0" * 32, domain="127.0.0.1")  # another browser, known from before
    other = await client.get(f"/products/{product.slug}")
    assert other.status_code == 200
    assert await drain(settings, client) == 3
    rows = await events_of(db, visitor=visitor)
    category = await db.scalar(
        text("SELECT c.name FROM categories c JOIN products p ON p.category_id = c.id WHERE p.id = :id"),
        {"id": product.id},
    )
    assert [r.name for r in rows] == ["product_viewed", "product_viewed"]
    assert rows[0].properties == {
        "product_id": str(product.id),
        "product_name": product.name,
        "price": 123_000,
        "category": category,
    }
    assert rows[1].properties == rows[0].properties and rows[0].user_id is None
    assert len({r.event_id for r in rows}) == 2
    assert len(await events_of(db, visitor="0" * 32)) == 1


async def test_a_search_is_recorded_with_its_query_and_result_count(client, settings, db):
    product, _ = await make_product(db)
    tag = product.name.split()[-1]
    r = await client.get("/products", params={"q": tag})
    assert r.status_code == 200
    await client.get("/products", params={"q": "no-such-cake-anywhere"})
    await client.get("/products")  # browsing without a query is no search
    await drain(settings, client)
    rows = await events_of(db, visitor=r.cookies["sd_vid"])
    assert [(row.name, row.properties) for row in rows] == [
        ("product_searched", {"query": tag, "result_count": 1}),
        ("product_searched", {"query": "no-such-cake-anywhere", "result_count": 0}),
    ]


async def test_cart_checkout_and_order_are_recorded_once_with_their_facts(client, settings, db):
    product, (small, large) = await make_product(db, stock=[10, 10], price=150_000)
    user = await make_user(db)
    await signed_in(client, settings, user)
    r = await post_form(client, "/cart/items", {"variant_id": str(small.id), "quantity": "2"})
    assert r.status_code == 303
    await post_form(client, "/cart/items", {"variant_id": str(large.id), "quantity": "1"})
    placed = await checkout(client)
    assert placed.status_code == 303
    number = NUMBER.search(placed.headers["location"]).group(1)
    await drain(settings, client)
    rows = await events_of(db, user=user)
    assert [r.name for r in rows] == ["cart_item_added", "cart_item_added", "checkout_started", "order_completed"]
    assert rows[0].properties == {
        "product_id": str(product.id),
        "variant_id": str(small.id),
        "product_name": product.name,
        "size": "S",
        "quantity": 2,
        "price": 150_000,
    }
    # 3 × 150,000 = 450,000, under the free-delivery threshold: + 30,000 delivery.
    assert rows[2].properties == {"cart_total": 480_000, "item_count": 3}
    order = rows[3].properties
    assert order["order_number"] == number and order["total"] == 480_000 and order["user_id"] == str(user.id)
    assert sorted((i["product_id"], i["size"], i["quantity"], i["price"]) for i in order["items"]) == [
        (str(product.id), "M", 1, 150_000),
        (str(product.id), "S", 2, 150_000),
    ]
    category = await db.scalar(select(Category.name).where(Category.id == product.category_id))
    assert category and [i["category"] for i in order["items"]] == [category, category]
    assert len({r.visitor_id for r in rows}) == 1 and rows[0].visitor_id


async def test_an_order_submitted_five_times_at_once_records_one_order_completed(client, settings, db):
    _, (variant,) = await make_product(db, stock=10)
    user = await make_user(db)
    await put_in_cart(db, user, variant, 1)
    await signed_in(client, settings, user)
    seen = await review(client)
    key = secrets.token_urlsafe(24)
    responses = await at_once([checkout(client, seen, key=key) for _ in range(5)])
    assert [r.status_code for r in responses] == [303] * 5
    again = await checkout(client, seen, key=key)  # and once more, later: the same order
    assert again.status_code == 303
    await drain(settings, client)
    assert len(await events_of(db, user=user, name="order_completed")) == 1


@pytest.mark.parametrize("header", [{"DNT": "1"}, {"Sec-GPC": "1"}])
async def test_a_browser_that_asks_not_to_be_tracked_leaves_no_event_and_no_cookie(client, settings, db, header):
    product, (variant,) = await make_product(db, stock=10)
    client.headers.update(header)
    for _ in range(2):  # rendered, then from the page cache
        r = await client.get(f"/products/{product.slug}")
        assert r.status_code == 200 and "sd_vid" not in r.headers.get("set-cookie", "")
    await client.get("/products", params={"q": "cake"})
    user = await make_user(db)
    await signed_in(client, settings, user)
    await post_form(client, "/cart/items", {"variant_id": str(variant.id), "quantity": "1"})
    assert (await checkout(client)).status_code == 303
    assert "sd_vid" not in client.cookies
    await drain(settings, client)
    assert await events_of(db, user=user) == []
    assert await events_of(db, name="product_viewed") == [] or all(
        r.properties["product_id"] != str(product.id) for r in await events_of(db, name="product_viewed")
    )


async def test_analytics_off_records_nothing(settings, db):
    from dataclasses import replace

    from litestar.testing import AsyncTestClient

    product, _ = await make_product(db)
    app = create_app(replace(settings, analytics_enabled=False))
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        r = await client.get(f"/products/{product.slug}")
    assert r.status_code == 200 and "sd_vid" not in r.headers.get("set-cookie", "")
    redis = Redis.from_url(settings.redis_url)
    assert await redis.xlen(STREAM) == 0
    await redis.aclose()


async def test_a_full_buffer_drops_events_and_counts_them_in_metrics(settings, db):
    from dataclasses import replace

    from litestar.testing import AsyncTestClient

    product, _ = await make_product(db)
    app = create_app(replace(settings, analytics_buffer_max=1))
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        before = _dropped((await client.get("/metrics")).text)
        for _ in range(3):
            assert (await client.get(f"/products/{product.slug}")).status_code == 200
        await flush_events(client)
        after = _dropped((await client.get("/metrics")).text)
    redis = Redis.from_url(settings.redis_url)
    assert await redis.xlen(STREAM) == 1
    await redis.aclose()
    assert after - before == 2


def _dropped_here(reason: str) -> float:
    """This process's count of events dropped for `reason` (the app under the test client runs here)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("sweetdream_analytics_events_dropped_total", {"reason": reason}) or 0.0


async def _stream_length(settings) -> int:
    redis = Redis.from_url(settings.redis_url)
    try:
        return int(await redis.xlen(STREAM))
    finally:
        await redis.aclose()


def _unhurried_app(settings):
    """The app, its background flush set far off: only a flush the test asks for (or the app's
    shutdown) sends the batch."""
    app = create_app(settings)
    app.state.event_recorder.flush_seconds = 3600
    return app


async def test_events_wait_in_the_process_and_one_flush_sends_them_all(settings, db):
    from litestar.testing import AsyncTestClient

    product, _ = await make_product(db)
    app = _unhurried_app(settings)
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        viewed = await client.get(f"/products/{product.slug}")
        assert (await client.get("/products", params={"q": "cake"})).status_code == 200
        assert viewed.status_code == 200 and "sd_vid" in viewed.cookies  # the cookie goes out at once
        assert await _stream_length(settings) == 0  # nothing sent on the request's path
        assert app.state.event_recorder.waiting == 2
        assert await flush_events(client) == 2
        assert await _stream_length(settings) == 2
        assert await drain(settings, client) == 2
    rows = await events_of(db, visitor=viewed.cookies["sd_vid"])
    assert [r.name for r in rows] == ["product_viewed", "product_searched"]
    assert rows[0].properties["product_id"] == str(product.id)


async def test_stopping_the_app_sends_the_events_it_holds(settings, db):
    from litestar.testing import AsyncTestClient

    product, _ = await make_product(db)
    app = _unhurried_app(settings)
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        for _ in range(2):
            assert (await client.get(f"/products/{product.slug}")).status_code == 200
        assert await _stream_length(settings) == 0
    assert await _stream_length(settings) == 2  # the shutdown (a deploy) lost nothing


async def test_a_full_process_batch_drops_and_counts_what_does_not_fit_and_the_rest_goes_in_order(settings):
    redis = Redis.from_url(settings.redis_url)
    recorder = EventRecorder(redis, max_len=100, process_max=3, batch_max=2)  # two round trips: 2 + 1
    before = _dropped_here("process_full")
    try:
        recorder.note([stream_entry("product_viewed", {"n": 1}, None, "a" * 32)])
        recorder.note([stream_entry("product_viewed", {"n": n}, None, "b" * 32) for n in (2, 3, 4)])
        recorder.note([stream_entry("product_viewed", {"n": 5}, None, "c" * 32)])
        assert recorder.waiting == 3
        assert _dropped_here("process_full") - before == 2
        assert await recorder.flush() == 3
        assert recorder.waiting == 0
        sent = [json.loads(fields[b"e"])["properties"]["n"] for _, fields in await redis.xrange(STREAM)]
        assert sent == [1, 2, 3]
    finally:
        await redis.aclose()


async def test_a_batch_redis_does_not_take_is_dropped_and_counted(settings, tmp_path):
    redis = Redis.from_url(f"unix://{tmp_path}/no-redis.sock", socket_connect_timeout=1)
    recorder = EventRecorder(redis, max_len=100)
    before = _dropped_here("unavailable")
    try:
        recorder.note([stream_entry("product_viewed", {}, None, "a" * 32) for _ in range(2)])
        assert await recorder.flush() == 0
        assert recorder.waiting == 0
        assert _dropped_here("unavailable") - before == 2
    finally:
        await redis.aclose()


def _dropped(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith('sweetdream_analytics_events_dropped_total{reason="full"}'):
            return float(line.split()[-1])
    return 0.0


async def test_the_worker_jobs_drain_the_buffer_and_keep_the_partitions(client, settings, db):
    """The cron jobs as the worker runs them (its own engine and arq's Redis from startup)."""
    from workers import jobs
    from workers.settings import WorkerSettings

    product, _ = await make_product(db)
    r = await client.get(f"/products/{product.slug}")
    await flush_events(client)
    ctx = {"redis": Redis.from_url(settings.redis_url), "job_try": 1}
    await jobs.startup(ctx)
    try:
        assert await jobs.analytics_partitions(ctx) >= 0  # at start: today's and the next days' partitions
        today = analytics.shop_day(datetime.now(UTC), ZONE)
        assert await db.scalar(text("SELECT to_regclass(:name)::text"), {"name": analytics.partition_name(today)})
        assert await jobs.drain_analytics(ctx) == 1
        assert await jobs.drain_analytics(ctx) == 0
    finally:
        await jobs.shutdown(ctx)
        await ctx["redis"].aclose()
    assert [e.name for e in await events_of(db, visitor=r.cookies["sd_vid"])] == ["product_viewed"]
    views = await db.scalar(
        text(
            "SELECT events FROM analytics_daily_products "
            "WHERE day = :day AND product_id = :id AND name = 'product_viewed'"
        ),
        {"day": today, "id": product.id},
    )
    assert views == 1
    crons = {c.name for c in WorkerSettings.cron_jobs}
    assert {"cron:drain_analytics", "cron:analytics_partitions"} <= crons


# --- partitions ---------------------------------------------------------------------------------


async def _partition_of(db, moment: datetime) -> str:
    await db.execute(
        text(
            "INSERT INTO analytics_events (occurred_at, event_id, name, properties) "
            "VALUES (:at, gen_random_uuid(), 'product_viewed', '{}')"
        ),
        {"at": moment},
    )
    await db.commit()
    return await _where(db, moment)


async def _where(db, moment: datetime) -> str:
    """The partition holding the event at `moment` (the read ends its transaction: partition DDL waits for none)."""
    found = await db.scalar(
        text("SELECT tableoid::regclass::text FROM analytics_events WHERE occurred_at = :at"), {"at": moment}
    )
    await db.commit()
    return str(found)


async def test_a_shop_day_runs_from_17_00_utc_to_17_00_utc(settings, db):
    assert analytics.day_bounds(date(2031, 3, 10), ZONE) == (
        datetime(2031, 3, 9, 17, tzinfo=UTC),
        datetime(2031, 3, 10, 17, tzinfo=UTC),
    )
    engine = create_async_engine(settings.database_url)
    try:
        # An event before its day's partition exists waits in DEFAULT, and is moved when it is made.
        early = datetime(2031, 3, 9, 17, 0, 0, tzinfo=UTC)
        assert await _partition_of(db, early) == "analytics_events_default"
        assert await analytics.ensure_partition(engine, date(2031, 3, 10), ZONE) is True
        assert await analytics.ensure_partition(engine, date(2031, 3, 10), ZONE) is False
        assert await _where(db, early) == "analytics_events_20310310"
        assert (
            await _partition_of(db, datetime(2031, 3, 10, 16, 59, 59, 999999, tzinfo=UTC))
            == "analytics_events_20310310"
        )
        assert await _partition_of(db, datetime(2031, 3, 10, 17, 0, 0, tzinfo=UTC)) == "analytics_events_default"
        assert await _partition_of(db, datetime(2031, 3, 9, 16, 59, 59, tzinfo=UTC)) == "analytics_events_default"
        # Made ahead: today and the next 7 days, and the days of rows waiting in DEFAULT.
        made = await analytics.ensure_partitions(engine, date(2031, 3, 10), ZONE)
        # (other tests' events of today wait in DEFAULT too: their day gets its partition as well)
        assert [name for name in made if name.startswith("analytics_events_2031")] == [
            "analytics_events_20310309",
            "analytics_events_20310311",
            "analytics_events_20310312",
            "analytics_events_20310313",
            "analytics_events_20310314",
            "analytics_events_20310315",
            "analytics_events_20310316",
            "analytics_events_20310317",
        ]
        assert (
            await db.scalar(text("SELECT count(*) FROM analytics_events_default WHERE occurred_at >= '2031-03-09'"))
            == 0
        )
        await db.commit()
        # Retention of 3 days on 2031-03-13 keeps the 11th, 12th and 13th: the 9th and 10th go, whole.
        dropped = await analytics.drop_old_partitions(engine, date(2031, 3, 13), keep_days=3)
        assert [name for name in dropped if name.startswith("analytics_events_2031")] == [
            "analytics_events_20310309",
            "analytics_events_20310310",
        ]
        assert await db.scalar(text("SELECT to_regclass('analytics_events_20310310')")) is None
        assert await db.scalar(text("SELECT to_regclass('analytics_events_20310311')")) is not None
    finally:
        async with engine.begin() as conn:  # the test's far-future partitions leave with it
            for day in range(9, 18):
                await conn.execute(text(f"DROP TABLE IF EXISTS analytics_events_203103{day:02d}"))
            await conn.execute(text("DELETE FROM analytics_events_default WHERE occurred_at >= '2031-01-01'"))
        await engine.dispose()


# --- the analytics page -------------------------------------------------------------------------


async def test_the_analytics_page_is_for_admins_only(client, settings, db):
    r = await client.get("/admin/analytics")
    assert r.status_code in (302, 303) and r.headers["location"].startswith("/account/login")
    for url in ("/admin/analytics/funnel.csv", "/admin/analytics/chart/funnel.svg"):
        assert (await client.get(url)).status_code in (302, 303)
    await signed_in(client, settings, await make_user(db))
    for url in ("/admin/analytics", "/admin/analytics/funnel.csv", "/admin/analytics/chart/funnel.svg"):
        assert (await client.get(url)).status_code == 403


@pytest.mark.parametrize(
    "query",
    [
        "range=week",
        "range=custom&from=2026-13-01&to=2026-12-01",
        "range=custom&from=2026-11-20",
        "range=custom&from=2026-11-20&to=2026-11-10",
        "range=custom&from=2020-01-01&to=2026-01-01",
    ],
)
async def test_a_bad_range_is_a_400(client, settings, db, query):
    from sweetdream.accounts.models import Role

    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    assert (await client.get(f"/admin/analytics?{query}")).status_code == 400
    assert (await client.get(f"/admin/analytics/funnel.csv?{query}")).status_code == 400


async def test_the_admin_sees_a_purchase_in_the_page_the_chart_and_the_csv(client, settings, db):
    from sweetdream.accounts.models import Role

    product, (variant,) = await make_product(db, stock=10, price=200_000)
    user = await make_user(db)
    await put_in_cart(db, user, variant, 3)
    await signed_in(client, settings, user)
    assert (await checkout(client)).status_code == 303
    await drain(settings, client)
    client.cookies.clear()
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    page = await client.get("/admin/analytics?range=today")
    assert page.status_code == 200
    assert product.name in page.text and 'id="export"' in page.text
    assert '<img class="chart" src="/admin/analytics/chart/funnel.svg?range=today"' in page.text
    chart = await client.get("/admin/analytics/chart/best-sellers.svg?range=today")
    assert chart.status_code == 200 and chart.headers["content-type"].startswith("image/svg+xml")
    assert chart.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert b"<script" not in chart.content and product.name.encode() in chart.content
    sheet = await client.get("/admin/analytics/best-sellers.csv?range=today")
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/csv")
    assert f"{product.name},3,600000" in sheet.text.splitlines()
    assert (await client.get("/admin/analytics/nothing.csv")).status_code == 404
    assert "content-security-policy" in page.headers and "unsafe-inline" not in page.headers["content-security-policy"]
