"""Shopper events after they are recorded: the drain into PostgreSQL, the daily partitions and their
retention, the daily rollups, and the seven insights the analytics page reads.

Shop days: a day is 00:00-24:00 in the shop's time zone (Asia/Ho_Chi_Minh, 17:00-17:00 UTC), one
partition each (`analytics_events_YYYYMMDD`), made ahead by the worker. An event whose day has no
partition yet lands in the DEFAULT partition; making that day's partition moves such rows first.

Rollups: the insights read `analytics_daily_*` (per day × event name, × product, × user), never the
raw events, so a month of 5 million events answers in milliseconds. The worker refreshes today's
rows (and those of any day it just drained events for) every few seconds, each day recomputed whole
from its partition, so a refresh can run twice and land the same rows.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from sweetdream.analytics.recording import STREAM
from sweetdream.platform.i18n import gettext_noop as N_

log = logging.getLogger("sweetdream.analytics")

DEFAULT_PARTITION = "analytics_events_default"
_PARTITION = re.compile(r"analytics_events_(\d{8})")
# pg_advisory_xact_lock keys: partition DDL, and each day's rollup, one at a time across workers.
_PARTITION_LOCK = 0x5E1EC7ED
PARTITIONS_AHEAD = 7
DRAIN_BATCH = 5000
DRAIN_MAX_BATCHES = 40


# --- shop days ----------------------------------------------------------------------------------


def shop_day(moment: datetime, zone: str) -> date:
    return moment.astimezone(ZoneInfo(zone)).date()


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """The UTC instants a shop day starts and ends (17:00 UTC the evening before, for Vietnam)."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def partition_name(day: date) -> str:
    return f"analytics_events_{day:%Y%m%d}"


# --- partitions ---------------------------------------------------------------------------------


async def ensure_partition(engine: AsyncEngine, day: date, zone: str) -> bool:
    """Make the day's partition if it is missing (True if made), moving any of its rows out of the
    DEFAULT partition first: PostgreSQL refuses a partition whose rows sit in DEFAULT."""
    name = partition_name(day)
    start, end = day_bounds(day, zone)
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PARTITION_LOCK})
        # The DDL below locks the table; give up (the next run tries again) rather than queue the shop's writes.
        await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
        if await conn.scalar(text("SELECT to_regclass(:name)"), {"name": name}) is not None:
            return False
        window = {"start": start, "end": end}
        await conn.execute(text("CREATE TEMP TABLE analytics_moving (LIKE analytics_events) ON COMMIT DROP"))
        await conn.execute(
            text(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608 (our own constant)
                "WHERE occurred_at >= :start AND occurred_at < :end RETURNING *) "
                "INSERT INTO analytics_moving SELECT * FROM moved"
            ),
            window,
        )
        # DDL takes no bound parameters: the bounds are ISO instants we made from a date.
        await conn.execute(
            text(
                f"CREATE TABLE {name} PARTITION OF analytics_events "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        )
        await conn.execute(text("INSERT INTO analytics_events SELECT * FROM analytics_moving"))
    log.info("analytics: partition %s made", name)
    return True


async def ensure_partitions(engine: AsyncEngine, today: date, zone: str, ahead: int = PARTITIONS_AHEAD) -> list[str]:
    """Today's partition and the next `ahead` days', plus one for every day whose events wait in
    DEFAULT (a worker that was down): returns the partitions made."""
    async with engine.connect() as conn:
        stranded = await conn.execute(
            text(
                f"SELECT DISTINCT (occurred_at AT TIME ZONE :zone)::date FROM {DEFAULT_PARTITION}"  # noqa: S608
            ),
            {"zone": zone},
        )
        days = {row[0] for row in stranded} | {today + timedelta(days=n) for n in range(ahead + 1)}
    made = []
    for day in sorted(days):
        if await ensure_partition(engine, day, zone):
            made.append(partition_name(day))
    return made


async def daily_partitions(conn: AsyncConnection) -> dict[date, str]:
    rows = await conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'analytics_events'::regclass"
        )
    )
    found = {}
    for (name,) in rows:
        match = _PARTITION.fullmatch(name)
        if match:
            found[datetime.strptime(match.group(1), "%Y%m%d").date()] = name
    return found


async def drop_old_partitions(engine: AsyncEngine, today: date, keep_days: int) -> list[str]:
    """Retention: drop whole partitions of days before the last `keep_days` (today included)
    (DETACH then DROP: no row deletes), and the rollups of those days."""
    first_kept = today - timedelta(days=keep_days - 1)
    async with engine.connect() as conn:
        old = sorted((day, name) for day, name in (await daily_partitions(conn)).items() if day < first_kept)
    for _, name in old:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PARTITION_LOCK})
            await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            await conn.execute(text(f"ALTER TABLE analytics_events DETACH PARTITION {name}"))
            await conn.execute(text(f"DROP TABLE {name}"))
        log.info("analytics: partition %s dropped (retention %d days)", name, keep_days)
    async with engine.begin() as conn:
        for table in ("analytics_daily_totals", "analytics_daily_products", "analytics_daily_users"):
            await conn.execute(text(f"DELETE FROM {table} WHERE day < :day"), {"day": first_kept})  # noqa: S608
    return [name for _, name in old]


# --- drain --------------------------------------------------------------------------------------

_COLUMNS = ["occurred_at", "event_id", "name", "user_id", "visitor_id", "properties"]
_INCOMING = """
CREATE TEMP TABLE IF NOT EXISTS analytics_incoming (
    occurred_at timestamptz, event_id uuid, name varchar(32), user_id uuid, visitor_id varchar(64), properties jsonb
) ON COMMIT DELETE ROWS
"""
# A cart line knows its size (variant), not its product: the product is found here, once per batch.
_CART_PRODUCTS = """
UPDATE analytics_incoming i
SET properties = jsonb_set(i.properties, '{product_id}', to_jsonb(v.product_id::text))
FROM variants v
WHERE i.name = 'cart_item_added' AND i.properties->>'product_id' IS NULL
  AND v.id = (i.properties->>'variant_id')::uuid
"""
# A batch drained twice (the worker stopped between the insert and the XDEL) adds nothing twice.
_INSERT = """
INSERT INTO analytics_events (occurred_at, event_id, name, user_id, visitor_id, properties)
SELECT occurred_at, event_id, name, user_id, visitor_id, properties FROM analytics_incoming ORDER BY occurred_at
ON CONFLICT (occurred_at, event_id) DO NOTHING
"""


def _record(raw: bytes) -> tuple[Any, ...] | None:
    try:
        event = json.loads(raw)
        return (
            datetime.fromisoformat(event["occurred_at"]),
            UUID(event["event_id"]),
            str(event["name"])[:32],
            UUID(event["user_id"]) if event.get("user_id") else None,
            (event.get("visitor_id") or None),
            json.dumps(event.get("properties") or {}, ensure_ascii=False),
        )
    except (ValueError, KeyError, TypeError):
        return None


async def _insert_batch(engine: AsyncEngine, records: list[tuple[Any, ...]]) -> None:
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        async with raw.transaction():
            await raw.execute(_INCOMING)
            await raw.copy_records_to_table("analytics_incoming", records=records, columns=_COLUMNS)
            await raw.execute(_CART_PRODUCTS)
            await raw.execute(_INSERT)


async def drain_events(
    engine: AsyncEngine, redis: Redis, zone: str, batch: int = DRAIN_BATCH, max_batches: int = DRAIN_MAX_BATCHES
) -> tuple[int, set[date]]:
    """Move buffered events from the Redis stream into PostgreSQL in batches (COPY), oldest first.
    Returns how many were moved and the shop days they belong to (their rollups need a refresh)."""
    moved, days = 0, set()
    for _ in range(max_batches):
        entries = await redis.xrange(STREAM, count=batch)
        if not entries:
            break
        records = [r for r in (_record(fields.get(b"e", b"")) for _, fields in entries) if r is not None]
        if len(records) < len(entries):
            log.warning("analytics: %d unreadable buffered event(s) skipped", len(entries) - len(records))
        if records:
            await _insert_batch(engine, records)
        await redis.xdel(STREAM, *[entry_id for entry_id, _ in entries])
        moved += len(records)
        days |= {shop_day(r[0], zone) for r in records}
        if len(entries) < batch:
            break
    return moved, days


# --- rollups ------------------------------------------------------------------------------------

_ROLLUP = (
    "DELETE FROM analytics_daily_totals WHERE day = :day",
    """
    INSERT INTO analytics_daily_totals (day, name, events, amount)
    SELECT :day, name, count(*),
           COALESCE(sum((properties->>'total')::bigint) FILTER (WHERE name = 'order_completed'), 0)
    FROM analytics_events WHERE occurred_at >= :start AND occurred_at < :end
    GROUP BY name
    """,
    "DELETE FROM analytics_daily_products "
    "WHERE name IN ('product_viewed', 'cart_item_added', 'order_completed') AND day = :day",
    """
    INSERT INTO analytics_daily_products (day, name, product_id, events, units, amount)
    SELECT :day, name, product_id, count(*), sum(units), sum(amount) FROM (
        SELECT name, (properties->>'product_id')::uuid AS product_id, 0::bigint AS units, 0::bigint AS amount
        FROM analytics_events
        WHERE occurred_at >= :start AND occurred_at < :end AND name = 'product_viewed'
        UNION ALL
        SELECT name, (properties->>'product_id')::uuid, (properties->>'quantity')::bigint,
               (properties->>'quantity')::bigint * (properties->>'price')::bigint
        FROM analytics_events
        WHERE occurred_at >= :start AND occurred_at < :end AND name = 'cart_item_added'
        UNION ALL
        SELECT e.name, (item->>'product_id')::uuid, (item->>'quantity')::bigint,
               (item->>'quantity')::bigint * (item->>'price')::bigint
        FROM analytics_events e, jsonb_array_elements(e.properties->'items') AS item
        WHERE e.occurred_at >= :start AND e.occurred_at < :end AND e.name = 'order_completed'
    ) AS lines
    WHERE product_id IS NOT NULL
    GROUP BY name, product_id
    """,
    "DELETE FROM analytics_daily_users WHERE name IN ('product_viewed', 'order_completed') AND day = :day",
    """
    INSERT INTO analytics_daily_users (day, name, user_id, events, amount)
    SELECT :day, name, user_id, count(*),
           COALESCE(sum((properties->>'total')::bigint) FILTER (WHERE name = 'order_completed'), 0)
    FROM analytics_events
    WHERE occurred_at >= :start AND occurred_at < :end AND user_id IS NOT NULL
      AND name IN ('product_viewed', 'order_completed')
    GROUP BY name, user_id
    """,
)


async def refresh_rollups(engine: AsyncEngine, day: date, zone: str) -> None:
    """Recompute one shop day's rollups from its events (whole, so running it twice is harmless)."""
    start, end = day_bounds(day, zone)
    params = {"day": day, "start": start, "end": end}
    async with engine.begin() as conn:
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('analytics_rollup'), :n)"), {"n": day.toordinal()}
        )
        for statement in _ROLLUP:
            await conn.execute(text(statement), params)


def days_to_refresh(now: datetime, zone: str, drained: set[date]) -> set[date]:
    """Today, the days just drained, and yesterday in the first minutes of a day (its last orders)."""
    today = shop_day(now, zone)
    days = {today} | drained
    if now - day_bounds(today, zone)[0] < timedelta(minutes=10):
        days.add(today - timedelta(days=1))
    return days


# --- insights -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A range of shop days, both ends included."""

    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def params(self) -> dict[str, Any]:
        return {"first": self.first, "last": self.last}


@dataclass(frozen=True)
class Row:
    label: str
    values: tuple[int | float, ...]


@dataclass(frozen=True)
class Insight:
    """One insight's answer: column headings and rows (the table, the chart and the CSV)."""

    key: str
    columns: tuple[str, ...]
    rows: list[Row]
    summary: dict[str, int | float]


TOP = 10


async def _rows(db: AsyncSession, sql: str, params: dict[str, Any]) -> list[Any]:
    return list((await db.execute(text(sql), params)).all())


async def product_views(db: AsyncSession, span: Span) -> tuple[Insight, Insight]:
    """Most viewed products, and the signed-in shoppers who viewed most (anonymous views summed)."""
    params = {**span.params(), "top": TOP}
    products = await _rows(
        db,
        """
        SELECT COALESCE(p.name, t.product_id::text) AS label, t.views
        FROM (
            SELECT product_id, sum(events) AS views FROM analytics_daily_products
            WHERE name = 'product_viewed' AND day BETWEEN :first AND :last
            GROUP BY product_id ORDER BY views DESC, product_id LIMIT :top
        ) AS t LEFT JOIN products p ON p.id = t.product_id
        ORDER BY t.views DESC, label
        """,
        params,
    )
    # The top viewers and all signed-in views in one pass over the users' rollup (its biggest
    # read: every signed-in viewer of every day in the range); the window sums every group, before the LIMIT.
    viewers = await _rows(
        db,
        """
        SELECT COALESCE(u.email, t.user_id::text) AS label, t.views, t.signed_in
        FROM (
            SELECT user_id, sum(events) AS views, sum(sum(events)) OVER () AS signed_in
            FROM analytics_daily_users
            WHERE name = 'product_viewed' AND day BETWEEN :first AND :last
            GROUP BY user_id ORDER BY views DESC, user_id LIMIT :top
        ) AS t LEFT JOIN users u ON u.id = t.user_id
        ORDER BY t.views DESC, label
        """,
        params,
    )
    total = await db.scalar(
        text(
            "SELECT COALESCE(sum(events), 0) FROM analytics_daily_totals "
            "WHERE day BETWEEN :first AND :last AND name = 'product_viewed'"
        ),
        params,
    )
    signed_in = viewers[0].signed_in if viewers else 0
    return (
        Insight(
            "views",
            (N_("Product"), N_("Views")),
            [Row(r.label, (int(r.views),)) for r in products],
            {"views": int(total or 0)},
        ),
        Insight(
            "viewers",
            (N_("Shopper"), N_("Views")),
            [Row(r.label, (int(r.views),)) for r in viewers],
            {"signed_in": int(signed_in or 0), "anonymous": int(total or 0) - int(signed_in or 0)},
        ),
    )


async def cart_additions(db: AsyncSession, span: Span) -> Insight:
    rows = await _rows(
        db,
        """
        SELECT COALESCE(p.name, t.product_id::text) AS label, t.additions, t.units, t.value
        FROM (
            SELECT product_id, sum(events) AS additions, sum(units) AS units, sum(amount) AS value
            FROM analytics_daily_products
            WHERE name = 'cart_item_added' AND day BETWEEN :first AND :last
            GROUP BY product_id ORDER BY additions DESC, units DESC, product_id LIMIT :top
        ) AS t LEFT JOIN products p ON p.id = t.product_id
        ORDER BY t.additions DESC, t.units DESC, label
        """,
        {**span.params(), "top": TOP},
    )
    total = await db.scalar(
        text(
            "SELECT COALESCE(sum(events), 0) FROM analytics_daily_totals "
            "WHERE day BETWEEN :first AND :last AND name = 'cart_item_added'"
        ),
        span.params(),
    )
    return Insight(
        "cart",
        (N_("Product"), N_("Additions"), N_("Units"), N_("Value (VND)")),
        [Row(r.label, (int(r.additions), int(r.units), int(r.value))) for r in rows],
        {"additions": int(total or 0)},
    )


async def purchases(db: AsyncSession, span: Span) -> Insight:
    """Orders and revenue for every day of the span (days without orders included, as zero)."""
    found = {
        r.day: (int(r.events), int(r.amount))
        for r in await _rows(
            db,
            "SELECT day, events, amount FROM analytics_daily_totals "
            "WHERE day BETWEEN :first AND :last AND name = 'order_completed'",
            span.params(),
        )
    }
    rows = [Row(day.isoformat(), found.get(day, (0, 0))) for day in span.days]
    orders = sum(int(r.values[0]) for r in rows)
    revenue = sum(int(r.values[1]) for r in rows)
    return Insight(
        "purchases", (N_("Day"), N_("Orders"), N_("Revenue (VND)")), rows, {"orders": orders, "revenue": revenue}
    )


async def customer_frequency(db: AsyncSession, span: Span) -> Insight:
    """How many customers placed 1, 2, 3, or 4+ orders in the span; the repeat rate (2+ orders)."""
    rows = await _rows(
        db,
        """
        SELECT LEAST(orders, 4) AS bucket, count(*) AS customers, sum(orders) AS orders
        FROM (
            SELECT user_id, sum(events) AS orders FROM analytics_daily_users
            WHERE name = 'order_completed' AND day BETWEEN :first AND :last
            GROUP BY user_id
        ) AS per_customer
        GROUP BY bucket ORDER BY bucket
        """,
        span.params(),
    )
    by_bucket = {int(r.bucket): (int(r.customers), int(r.orders)) for r in rows}
    labels = {1: N_("1 order"), 2: N_("2 orders"), 3: N_("3 orders"), 4: N_("4 or more orders")}
    customers = sum(c for c, _ in by_bucket.values())
    orders = sum(o for _, o in by_bucket.values())
    repeat = customers - by_bucket.get(1, (0, 0))[0]
    return Insight(
        "customers",
        (N_("Orders per customer"), N_("Customers")),
        [Row(labels[b], (by_bucket.get(b, (0, 0))[0],)) for b in labels],
        {
            "customers": customers,
            "orders": orders,
            "repeat_customers": repeat,
            "repeat_rate": round(100 * repeat / customers, 1) if customers else 0.0,
            "orders_per_customer": round(orders / customers, 2) if customers else 0.0,
        },
    )


async def best_sellers(db: AsyncSession, span: Span) -> Insight:
    rows = await _rows(
        db,
        """
        SELECT COALESCE(p.name, t.product_id::text) AS label, t.units, t.revenue
        FROM (
            SELECT product_id, sum(units) AS units, sum(amount) AS revenue FROM analytics_daily_products
            WHERE name = 'order_completed' AND day BETWEEN :first AND :last
            GROUP BY product_id ORDER BY units DESC, revenue DESC, product_id LIMIT :top
        ) AS t LEFT JOIN products p ON p.id = t.product_id
        ORDER BY t.units DESC, t.revenue DESC, label
        """,
        {**span.params(), "top": TOP},
    )
    return Insight(
        "best-sellers",
        (N_("Product"), N_("Units sold"), N_("Revenue (VND)")),
        [Row(r.label, (int(r.units), int(r.revenue))) for r in rows],
        {},
    )


async def category_performance(db: AsyncSession, span: Span) -> Insight:
    rows = await _rows(
        db,
        """
        SELECT COALESCE(c.name, '?') AS label, sum(t.units) AS units, sum(t.revenue) AS revenue
        FROM (
            SELECT product_id, sum(units) AS units, sum(amount) AS revenue FROM analytics_daily_products
            WHERE name = 'order_completed' AND day BETWEEN :first AND :last
            GROUP BY product_id
        ) AS t
        LEFT JOIN products p ON p.id = t.product_id LEFT JOIN categories c ON c.id = p.category_id
        GROUP BY label ORDER BY revenue DESC, label
        """,
        span.params(),
    )
    return Insight(
        "categories",
        (N_("Category"), N_("Units sold"), N_("Revenue (VND)")),
        [Row(r.label, (int(r.units), int(r.revenue))) for r in rows],
        {},
    )


FUNNEL_STEPS = (
    ("product_viewed", N_("Viewed a product")),
    ("cart_item_added", N_("Added to cart")),
    ("checkout_started", N_("Started checkout")),
    ("order_completed", N_("Placed an order")),
)


async def funnel(db: AsyncSession, span: Span) -> Insight:
    """Events at each step, and each step as a share of the one before (counts of actions, not people)."""
    counts = {
        r.name: int(r.events)
        for r in await _rows(
            db,
            "SELECT name, sum(events) AS events FROM analytics_daily_totals "
            "WHERE day BETWEEN :first AND :last GROUP BY name",
            span.params(),
        )
    }
    rows, before = [], None
    for name, label in FUNNEL_STEPS:
        count = counts.get(name, 0)
        rate = 100.0 if before is None else (round(100 * count / before, 1) if before else 0.0)
        rows.append(Row(label, (count, rate)))
        before = count
    return Insight("funnel", (N_("Step"), N_("Events"), N_("Conversion from the step before")), rows, {})


INSIGHTS = ("views", "viewers", "cart", "purchases", "customers", "best-sellers", "categories", "funnel")


async def insight(db: AsyncSession, key: str, span: Span) -> Insight:
    if key in ("views", "viewers"):
        views, viewers = await product_views(db, span)
        return views if key == "views" else viewers
    answer: Insight = await {
        "cart": cart_additions,
        "purchases": purchases,
        "customers": customer_frequency,
        "best-sellers": best_sellers,
        "categories": category_performance,
        "funnel": funnel,
    }[key](db, span)
    return answer


async def all_insights(db: AsyncSession, span: Span) -> dict[str, Insight]:
    views, viewers = await product_views(db, span)
    found = {"views": views, "viewers": viewers}
    for key in INSIGHTS[2:]:
        found[key] = await insight(db, key, span)
    return found
