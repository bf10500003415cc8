"""The analytics bench: the insights at 10 million events, and what recording costs the catalog.

    .venv/bin/python scripts/bench.py analytics      # BENCH_EVENTS: 10,000,000 by default

    BENCH_ANALYTICS_PARTS=recording ...        # one part only: `insights` or `recording`
    BENCH_ANALYTICS_RESEED=1 ...                # seed the events again even if kept ones fit

1. Seeds BENCH_EVENTS events in SQL over the 60 shop days up to today into a database of its own,
   `bench_analytics`, on the bench's PostgreSQL server (migrated, with the 10,000-product bench
   catalog). The database is kept: a later run that asks for the same count reuses it (and times
   the insights as of the day it was seeded). Each day is one INSERT ... SELECT generate_series
   into a plain table, in time order, its properties joined from a small table made once (not
   built row by row), with synchronous_commit off, on two connections; the table is then attached
   as the day's partition (its indexes built in one pass, its CHECK spares the validating scan).
   70 % product views (a third by signed-in shoppers), 10 % searches, 12 % cart additions, 5 %
   checkouts started, 3 % orders of one or two lines. Then the rollups of each day are built, as
   the worker keeps them (timed too).
2. Times each insight for the last 7 and the last 30 days (median and p99 of 20 runs after one to
   warm): the target is 300 ms each.
3. Recording cost: a second server like the first but with ANALYTICS_ENABLED=false; wrk loads a
   visitor's /products, a search and a product page on both, alternately. The target: with events
   on, at least 90 % of the req/s with them off. wrk sends no cookie, so every request is a new
   visitor: the worst case (a new id and a Set-Cookie each time, an event per view or search).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench import (
    BENCH_DIR,
    BENCH_PRODUCTS,
    Bench,
    Report,
    Result,
    Verdict,
    combine,
    first_product_path,
    free_port,
    run_wrk,
    seed_bench_catalog,
    start_granian,
    stop_process,
    wait_for_health,
)
from bench_admin import _plain, create_database, database_urls, migrate  # the same kept-seed database steps

EVENTS = int(os.environ.get("BENCH_EVENTS", "10000000"))
# BENCH_ANALYTICS_PARTS=insights or =recording runs one half only (both by default).
PARTS = set(os.environ.get("BENCH_ANALYTICS_PARTS", "insights,recording").replace(" ", "").split(","))
DAYS = 60
TARGET_MS = 300.0
RUNS = 20  # timed runs of each insight (after one to warm)
MAX_COST = 0.10
CONCURRENCY = 64
ZONE = "Asia/Ho_Chi_Minh"
# (event, share of the events): the first 70 of every 100 events are views, the next 10 searches...
MIX = (
    ("product_viewed", 70),
    ("product_searched", 10),
    ("cart_item_added", 12),
    ("checkout_started", 5),
    ("order_completed", 3),
)
DATABASE = "bench_analytics"  # kept on the bench's PostgreSQL server: the next run reuses its events

# Every event's properties come from a small table made once, joined by a key the row computes:
# building 10M jsonb values one by one was most of the old seed's time.
_SEED_SETUP = (
    "SET synchronous_commit = off",
    "SET jit = off",  # compiling each day's INSERT took longer than it saved
    "SET maintenance_work_mem = '256MB'",
    "SET work_mem = '64MB'",
    """
    CREATE TEMP TABLE bench_products AS
    SELECT (row_number() OVER (ORDER BY id) - 1)::int AS k, id::text AS id FROM products
    """,
    """
    CREATE TEMP TABLE bench_props AS
    SELECT 'product_viewed'::text AS name, k, jsonb_build_object('product_id', id, 'product_name', 'Bench cake',
           'price', 100000 + (k % 40) * 5000, 'category', 'Bench') AS properties
    FROM bench_products
    UNION ALL
    SELECT 'cart_item_added', k, jsonb_build_object('product_id', id, 'variant_id', id, 'product_name', 'Bench cake',
           'size', 'M', 'quantity', 1 + k % 3, 'price', 100000 + (k % 40) * 5000)
    FROM bench_products
    UNION ALL
    SELECT 'order_completed', p.k, jsonb_build_object('order_number', 'SD-B' || p.k,
           'total', 230000 + (p.k % 50) * 10000,
           'items', CASE WHEN p.k % 2 = 0
               THEN jsonb_build_array(jsonb_build_object('product_id', p.id, 'quantity', 1 + p.k % 3, 'price', 100000))
               ELSE jsonb_build_array(jsonb_build_object('product_id', p.id, 'quantity', 1, 'price', 120000),
                                      jsonb_build_object('product_id', q.id, 'quantity', 2, 'price', 80000)) END)
    FROM bench_products p
    JOIN bench_products q ON q.k = (p.k * 7 + 1) % (SELECT count(*) FROM bench_products)
    UNION ALL
    SELECT 'product_searched', k, jsonb_build_object('query', 'banh ' || k, 'result_count', k % 60)
    FROM generate_series(0, 499) AS k
    UNION ALL
    SELECT 'checkout_started', k, jsonb_build_object('cart_total', 150000 + k * 10000, 'item_count', 1 + k % 4)
    FROM generate_series(0, 49) AS k
    """,
    "ANALYZE bench_props",
)


def _kind_sql() -> str:
    """Which event row g is: its place in every 100 (MIX), as SQL."""
    cases, upto = [], 0
    for name, share in MIX:
        upto += share
        cases.append(f"WHEN g % 100 < {upto} THEN '{name}'")
    return "CASE " + " ".join(cases) + " END"


# One shop day's events, in time order, into a plain table that becomes its partition afterwards
# (ATTACH builds its indexes in one sorted pass and, with the CHECK, skips a validating scan).
# Signed in: every order and checkout, a third of the rest; 20,000 shoppers, 300,000 visitors.
_DAY_SQL = f"""
INSERT INTO {{table}} (occurred_at, id, event_id, name, user_id, visitor_id, properties)
SELECT $1::timestamptz + (g - 1) * $2::interval, $3::bigint + g, gen_random_uuid(), e.name,
       CASE WHEN e.name IN ('order_completed', 'checkout_started') OR g % 3 = 0
            THEN md5('u' || (g % 20000))::uuid END,
       md5('v' || (g % 300000)), p.properties
FROM generate_series(1, $4::int) AS g
CROSS JOIN LATERAL (SELECT {_kind_sql()} AS name) AS e
JOIN bench_props p ON p.name = e.name AND p.k = CASE e.name WHEN 'product_searched' THEN g % 500
                                                        WHEN 'checkout_started' THEN g % 50
                                                        ELSE (g * 7919) % $5::int END
"""


def day_plan(today: date) -> list[tuple[date, datetime, datetime, int]]:
    """(day, first instant, last instant + 1, events) for the DAYS shop days up to today, the
    events spread evenly in time up to now (today's partition gets its share of the day so far)."""
    from sweetdream.analytics import services as analytics

    now = datetime.now(UTC)
    days = [today - timedelta(days=DAYS - 1 - n) for n in range(DAYS)]
    windows = [(d, *analytics.day_bounds(d, ZONE)) for d in days]
    span = (now - windows[0][1]).total_seconds()
    plan, given = [], 0
    for i, (day, start, end) in enumerate(windows):
        until = min(end, now)
        count = EVENTS - given if i == len(windows) - 1 else round(EVENTS * (until - start).total_seconds() / span)
        plan.append((day, start, until, count))
        given += count
    return plan


async def _load_day(conn: Any, day: date, start: datetime, until: datetime, count: int, first_id: int, n: int) -> None:
    from sweetdream.analytics import services as analytics

    end = analytics.day_bounds(day, ZONE)[1]
    name = analytics.partition_name(day)
    await conn.execute(f"DROP TABLE IF EXISTS {name}")
    await conn.execute(
        f"CREATE TABLE {name} (LIKE analytics_events INCLUDING DEFAULTS, "
        f"CHECK (occurred_at >= '{start.isoformat()}' AND occurred_at < '{end.isoformat()}'))"
    )
    if count:
        step = timedelta(seconds=(until - start).total_seconds() / count)
        await conn.execute(_DAY_SQL.format(table=name), start, step, first_id, count, n)
    await conn.execute(
        f"ALTER TABLE analytics_events ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


async def seed_events(url: str, today: date) -> None:
    """EVENTS events over the DAYS shop days up to `today`, day by day on two connections."""
    import asyncpg

    setup = await asyncpg.connect(_plain(url), command_timeout=3600)
    try:
        partitions = await setup.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'analytics_events'::regclass AND c.relname <> 'analytics_events_default'"
        )
        for row in partitions:  # a reseed starts from nothing
            await setup.execute(f"DROP TABLE {row['relname']}")
        await setup.execute(
            "TRUNCATE analytics_events_default, analytics_daily_totals, analytics_daily_products, analytics_daily_users"
        )
    finally:
        await setup.close()
    plan = day_plan(today)
    first_ids = [sum(c for *_, c in plan[:i]) for i in range(len(plan))]
    queue = list(zip(plan, first_ids, strict=True))

    async def loader() -> None:
        conn = await asyncpg.connect(_plain(url), command_timeout=3600)
        try:
            for statement in _SEED_SETUP:
                await conn.execute(statement)
            n = int(await conn.fetchval("SELECT count(*) FROM bench_products"))
            while queue:
                (day, start, until, count), first_id = queue.pop(0)
                await _load_day(conn, day, start, until, count, first_id, n)
                print(f"  {day}: {count:,} events", flush=True)
        finally:
            await conn.close()

    await asyncio.gather(loader(), loader())
    conn = await asyncpg.connect(_plain(url), command_timeout=3600)
    try:
        await conn.execute("SELECT setval('analytics_events_id_seq', $1::bigint)", max(EVENTS, 1))
        await conn.execute("ANALYZE analytics_events")
    finally:
        await conn.close()


async def _seeded(url: str) -> tuple[int, date] | None:
    """(events, last day) of the events kept in bench_analytics, if a seed finished there."""
    import asyncpg

    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_analytics_seed (events bigint NOT NULL, last_day date NOT NULL)"
        )
        row = await conn.fetchrow("SELECT events, last_day FROM bench_analytics_seed")
        return (int(row["events"]), row["last_day"]) if row else None
    finally:
        await conn.close()


async def _mark_seeded(url: str, today: date) -> None:
    import asyncpg

    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute("DELETE FROM bench_analytics_seed")
        await conn.execute("INSERT INTO bench_analytics_seed VALUES ($1, $2)", EVENTS, today)
    finally:
        await conn.close()


async def _products(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(_plain(url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM products"))
    finally:
        await conn.close()


def prepare(env: dict[str, str]) -> tuple[str, date, dict[str, object]]:
    """bench_analytics migrated, with the bench catalog and EVENTS events (reused when it holds
    that many: BENCH_ANALYTICS_RESEED=1 seeds again). Returns its URL, the seed's last shop day
    (the insights' "today") and the phases' seconds."""

    from sweetdream.analytics import services as analytics

    admin_url, url = database_urls(env, DATABASE)
    phases: dict[str, object] = {}
    asyncio.run(create_database(admin_url, DATABASE))
    began = time.perf_counter()
    migrate(url, env)
    if asyncio.run(_products(url)) < BENCH_PRODUCTS:
        seed_bench_catalog({**env, "DATABASE_URL": url}, BENCH_PRODUCTS)
    phases["catalog_seconds"] = round(time.perf_counter() - began, 1)
    seeded = asyncio.run(_seeded(url))
    if seeded and seeded[0] == EVENTS and not os.environ.get("BENCH_ANALYTICS_RESEED"):
        print(f"  reusing {EVENTS:,} events in {DATABASE} (seeded up to {seeded[1]})", flush=True)
        phases["seed_seconds"] = "reused"
        return url, seeded[1], phases
    today = analytics.shop_day(datetime.now(UTC), ZONE)
    print(f"  seeding {EVENTS:,} events over {DAYS} shop days into {DATABASE}", flush=True)
    began = time.perf_counter()
    asyncio.run(seed_events(url, today))
    phases["seed_seconds"] = round(time.perf_counter() - began, 1)
    began = time.perf_counter()
    asyncio.run(build_rollups(url, today))
    phases["rollups_all_days_seconds"] = round(time.perf_counter() - began, 1)
    asyncio.run(_mark_seeded(url, today))
    return url, today, phases


async def build_rollups(url: str, today: date) -> None:
    """Every seeded day's rollups, as the worker builds them, two days at a time."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from sweetdream.analytics import services as analytics

    engine = create_async_engine(url)
    days = [today - timedelta(days=n) for n in range(DAYS)]

    async def builder() -> None:
        while days:
            await analytics.refresh_rollups(engine, days.pop(), ZONE)

    try:
        await asyncio.gather(builder(), builder())
    finally:
        await engine.dispose()


async def time_insights(url: str, today: date) -> tuple[float, dict[str, dict[str, dict[str, float]]]]:
    """One day's rollup refresh (what the worker does every 10 s), then each insight for the last
    7 and 30 days: the median and p99 of RUNS runs after one to warm."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from sweetdream.analytics import services as analytics

    engine = create_async_engine(url)
    began = time.perf_counter()
    await analytics.refresh_rollups(engine, today, ZONE)
    one_day = round(time.perf_counter() - began, 2)
    timings: dict[str, dict[str, dict[str, float]]] = {}
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    functions = {
        "views+viewers": analytics.product_views,
        "cart": analytics.cart_additions,
        "purchases": analytics.purchases,
        "customers": analytics.customer_frequency,
        "best-sellers": analytics.best_sellers,
        "categories": analytics.category_performance,
        "funnel": analytics.funnel,
    }
    for days in (7, 30):
        span = analytics.Span(today - timedelta(days=days - 1), today)
        timings[f"{days}d"] = {}
        for key, function in functions.items():
            runs = []
            async with sessions() as db:
                await function(db, span)  # warm
                for _ in range(RUNS):
                    began = time.perf_counter()
                    await function(db, span)
                    runs.append((time.perf_counter() - began) * 1000)
            runs.sort()
            timings[f"{days}d"][key] = {
                "median": round(statistics.median(runs), 1),
                "p99": round(runs[min(len(runs) - 1, round(0.99 * (len(runs) - 1)))], 1),
            }
    await engine.dispose()
    return one_day, timings


def empty_stream(redis_url: str) -> None:
    import redis

    from sweetdream.analytics.recording import STREAM

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(STREAM)
    finally:
        client.close()


def recording_cost(bench: Bench) -> list[Result]:
    """The same pages on the bench's server (events on) and on a second one with events off."""
    env = {**bench.env, "ANALYTICS_ENABLED": "false"}
    port = free_port()
    off_url = f"http://127.0.0.1:{port}"
    log_path = BENCH_DIR / "granian-analytics-off.log"
    server = start_granian(env, port, log_path)
    try:
        wait_for_health(off_url, server, log_path)
        paths = {"products": "/products", "search": "/products?q=banh+kem", "product": first_product_path(off_url)}
        runs: dict[tuple[str, str], list] = {}
        servers = {"on": bench.base_url, "off": off_url}
        for path in paths.values():  # warm both servers' caches and pools
            for base in servers.values():
                run_wrk(base + path, CONCURRENCY, max(1, bench.warmup_seconds))
        for order in (("off", "on"), ("on", "off")):
            for name, path in paths.items():
                for events in order:
                    empty_stream(bench.env["REDIS_URL"])  # no worker drains here: keep the buffer from filling
                    print(f"  c={CONCURRENCY} events {events:<3} {path}", flush=True)
                    runs.setdefault((name, events), []).append(
                        run_wrk(servers[events] + path, CONCURRENCY, bench.seconds)
                    )
    finally:
        stop_process(server)
    results = []
    for name, path in paths.items():
        off = combine(f"{name} (events off)", path, CONCURRENCY, runs[(name, "off")])
        on = combine(f"{name} (events on)", path, CONCURRENCY, runs[(name, "on")])
        on.ratio_to_baseline = on.requests_per_second / off.requests_per_second if off.requests_per_second else None
        off.ratio_to_baseline = 1.0
        results += [off, on]
    return results


def analytics_scenario(bench: Bench) -> Report:
    lines: list[str] = []
    verdicts: list[Verdict] = []
    results: list[Result] = []
    notes: dict[str, object] = {"events": EVENTS, "days": DAYS, "parts": sorted(PARTS)}
    if "insights" in PARTS:
        url, today, phases = prepare(bench.env)
        one_day, timings = asyncio.run(time_insights(url, today))
        phases["rollup_one_day_seconds"] = one_day
        lines.append(f"{'insight':<16} {'7 days median / p99 ms':>24} {'30 days median / p99 ms':>25}")
        for key in timings["7d"]:
            week, month = timings["7d"][key], timings["30d"][key]
            lines.append(
                f"{key:<16} {week['median']:>15.1f} / {week['p99']:>6.1f}"
                f" {month['median']:>16.1f} / {month['p99']:>6.1f}"
            )
        slowest = max(t["median"] for per_span in timings.values() for t in per_span.values())
        verdicts.append(
            Verdict(
                target=f"each insight <= {TARGET_MS:.0f} ms at {EVENTS:,} events (7 and 30 days, median)",
                passed=slowest <= TARGET_MS,
                detail=f"slowest {slowest:.1f} ms",
            )
        )
        seeded = phases["seed_seconds"]
        rollups = phases.get("rollups_all_days_seconds", "reused")
        lines.append(
            f"seed {seeded}{' s' if seeded != 'reused' else ''}; rollups of {DAYS} days "
            f"{rollups}{' s' if rollups != 'reused' else ''}; catalog/migrations {phases['catalog_seconds']} s"
        )
        lines.append(f"one day's rollup refresh (what the worker does every 10 s) {one_day} s")
        notes.update({"insight_ms": timings, **phases})
    if "recording" in PARTS:
        results = recording_cost(bench)
        lines.append("")
        lines.append(f"{'page (c=64)':<28} {'req/s':>8} {'p99 ms':>8} {'on/off':>7}")
        for r in results:
            ratio = f"{r.ratio_to_baseline:.2f}" if r.ratio_to_baseline is not None else "-"
            lines.append(f"{r.name:<28} {r.requests_per_second:>8.0f} {r.p99_ms:>8.1f} {ratio:>7}")
        products_on = next(r for r in results if r.name == "products (events on)")
        worst = min(r.ratio_to_baseline or 0.0 for r in results if "events on" in r.name)
        verdicts.append(
            Verdict(
                target=f"recording costs the visitor /products <= {MAX_COST:.0%} of its req/s",
                passed=(products_on.ratio_to_baseline or 0.0) >= 1 - MAX_COST,
                detail=f"/products on/off {products_on.ratio_to_baseline:.2f}; worst page on/off {worst:.2f}",
            )
        )
    return Report("analytics", results, verdicts, notes=notes, table="\n".join(lines))
