"""The analytics bench: the insights at 10 million events, and what recording costs the catalog.

    .venv/bin/python scripts/bench.py analytics      # BENCH_EVENTS: 10,000,000 by default

1. Seeds BENCH_EVENTS events in SQL (generate_series) over the 60 shop days up to today, in their
   daily partitions: 70 % product views (a third by signed-in shoppers), 10 % searches, 12 % cart
   additions, 5 % checkouts started, 3 % orders of one or two lines. Then the rollups of each day
   are built, as the worker keeps them (timed too).
2. Times each insight for the last 7 and the last 30 days (the median of 5 runs after one to warm):
   the target is 300 ms each.
3. Recording cost: a second server like the first but with ANALYTICS_ENABLED=false; wrk loads a
   visitor's /products, a search and a product page on both, alternately. The target: with events
   on, at least 90 % of the req/s with them off. wrk sends no cookie, so every request is a new
   visitor: the worst case (a new id and a Set-Cookie each time, one XADD per view or search).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench import (
    BENCH_DIR,
    Bench,
    Report,
    Result,
    Verdict,
    combine,
    first_product_path,
    free_port,
    run_wrk,
    start_granian,
    stop_process,
    wait_for_health,
)

EVENTS = int(os.environ.get("BENCH_EVENTS", "10000000"))
# BENCH_ANALYTICS_PARTS=insights or =recording runs one half only (both by default).
PARTS = set(os.environ.get("BENCH_ANALYTICS_PARTS", "insights,recording").replace(" ", "").split(","))
DAYS = 60
TARGET_MS = 300.0
MAX_COST = 0.10
CONCURRENCY = 64
ZONE = "Asia/Ho_Chi_Minh"
# (event, share of the events)
MIX = (
    ("product_viewed", 0.70),
    ("product_searched", 0.10),
    ("cart_item_added", 0.12),
    ("checkout_started", 0.05),
    ("order_completed", 0.03),
)
_PROPERTIES = {
    "product_viewed": "jsonb_build_object('product_id', ids[1 + (g::bigint * 7919) % n], 'product_name', 'Bench cake', "
    "'price', 100000 + (g % 40) * 5000, 'category', 'Bench')",
    "product_searched": "jsonb_build_object('query', 'banh ' || (g % 500), 'result_count', g % 60)",
    "cart_item_added": "jsonb_build_object('product_id', ids[1 + (g::bigint * 7919) % n], "
    "'variant_id', ids[1 + g % n], 'product_name', 'Bench cake', 'size', 'M', "
    "'quantity', 1 + g % 3, 'price', 100000 + (g % 40) * 5000)",
    "checkout_started": "jsonb_build_object('cart_total', 150000 + (g % 50) * 10000, 'item_count', 1 + g % 4)",
    "order_completed": "jsonb_build_object('order_number', 'SD-B' || g, 'total', 230000 + (g % 50) * 10000, "
    "'items', CASE WHEN g % 2 = 0 THEN jsonb_build_array("
    "jsonb_build_object('product_id', ids[1 + (g::bigint * 7919) % n], 'quantity', 1 + g % 3, 'price', 100000)) "
    "ELSE jsonb_build_array("
    "jsonb_build_object('product_id', ids[1 + (g::bigint * 7919) % n], 'quantity', 1, 'price', 120000), "
    "jsonb_build_object('product_id', ids[1 + (g::bigint * 104729) % n], 'quantity', 2, 'price', 80000)) END)",
}
# Signed in: every order and checkout, a third of the rest; 20,000 shoppers, 300,000 visitors.
_USER = {
    "order_completed": "md5('u' || (g % 20000))::uuid",
    "checkout_started": "md5('u' || (g % 20000))::uuid",
}
_ANY_USER = "CASE WHEN g % 3 = 0 THEN md5('u' || (g % 20000))::uuid END"


def _seed_sql(name: str, count: int) -> str:
    return f"""
    WITH p AS (SELECT array_agg(id::text ORDER BY id) AS ids, count(*)::int AS n FROM products)
    INSERT INTO analytics_events (occurred_at, event_id, name, user_id, visitor_id, properties)
    SELECT $1::timestamptz + (random() * $2::float8) * interval '1 second', gen_random_uuid(), '{name}',
           {_USER.get(name, _ANY_USER)}, md5('v' || (g % 300000)), {_PROPERTIES[name]}
    FROM generate_series(1, {count}) AS g, p
    """


async def seed_and_time(database_url: str) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    import asyncpg
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from sweetdream.analytics import services as analytics

    engine = create_async_engine(database_url)
    now = datetime.now(UTC)
    today = analytics.shop_day(now, ZONE)
    first_day = today - timedelta(days=DAYS - 1)
    start = analytics.day_bounds(first_day, ZONE)[0]
    span_seconds = (now - start).total_seconds()
    phases: dict[str, float] = {}
    began = time.perf_counter()
    for n in range(DAYS + 1):
        await analytics.ensure_partition(engine, first_day + timedelta(days=n), ZONE)
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for name, share in MIX:
            count = int(EVENTS * share)
            print(f"  seeding {count:,} {name}", flush=True)
            await conn.execute(_seed_sql(name, count), start, span_seconds)
        await conn.execute("ANALYZE analytics_events")
    finally:
        await conn.close()
    phases["seed_seconds"] = round(time.perf_counter() - began, 1)
    began = time.perf_counter()
    for n in range(DAYS):
        await analytics.refresh_rollups(engine, first_day + timedelta(days=n), ZONE)
    phases["rollups_all_days_seconds"] = round(time.perf_counter() - began, 1)
    began = time.perf_counter()
    await analytics.refresh_rollups(engine, today, ZONE)
    phases["rollup_one_day_seconds"] = round(time.perf_counter() - began, 2)

    timings: dict[str, dict[str, float]] = {}
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
                for _ in range(5):
                    began = time.perf_counter()
                    await function(db, span)
                    runs.append((time.perf_counter() - began) * 1000)
            timings[f"{days}d"][key] = round(statistics.median(runs), 1)
    await engine.dispose()
    return phases, timings


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
        print(f"  seeding {EVENTS:,} events over {DAYS} shop days, then the rollups", flush=True)
        phases, timings = asyncio.run(seed_and_time(bench.env["DATABASE_URL"]))
        lines.append(f"{'insight':<16} {'7 days ms':>10} {'30 days ms':>11}")
        for key in timings["7d"]:
            lines.append(f"{key:<16} {timings['7d'][key]:>10.1f} {timings['30d'][key]:>11.1f}")
        slowest = max(max(t.values()) for t in timings.values())
        verdicts.append(
            Verdict(
                target=f"each insight <= {TARGET_MS:.0f} ms at {EVENTS:,} events (7 and 30 days)",
                passed=slowest <= TARGET_MS,
                detail=f"slowest {slowest:.1f} ms",
            )
        )
        lines.append(f"seed {phases['seed_seconds']} s; rollups of {DAYS} days {phases['rollups_all_days_seconds']} s;")
        lines.append(f"one day's rollup refresh (what the worker does every 10 s) {phases['rollup_one_day_seconds']} s")
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
