"""Each insight's SQL on a small known set of events (three shop days in 2030), with exact answers.

The events are written as the recorder and the order would write them; the rollups are refreshed
as the worker does; the insights read the rollups."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sweetdream.accounts.models import User
from sweetdream.analytics import services as analytics
from sweetdream.analytics.services import Span
from tests.integration.factories import make_product, make_user

ZONE = "Asia/Ho_Chi_Minh"
DAY1, DAY2, DAY3 = date(2030, 5, 1), date(2030, 5, 2), date(2030, 5, 3)


def at(day: date, hour: int) -> datetime:
    """`hour` o'clock shop time on `day` (UTC 7 hours earlier)."""
    return analytics.day_bounds(day, ZONE)[0].replace(tzinfo=UTC) + (datetime(2000, 1, 1, hour) - datetime(2000, 1, 1))


@pytest.fixture
async def engine(settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.database_url)
    yield engine
    start, end = analytics.day_bounds(DAY1, ZONE)[0], analytics.day_bounds(DAY3, ZONE)[1]
    async with engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM analytics_events WHERE occurred_at >= :s AND occurred_at < :e"), {"s": start, "e": end}
        )
        for table in ("analytics_daily_totals", "analytics_daily_products", "analytics_daily_users"):
            await conn.execute(text(f"DELETE FROM {table} WHERE day BETWEEN :a AND :b"), {"a": DAY1, "b": DAY3})
    await engine.dispose()


async def write(
    engine: AsyncEngine, moment: datetime, name: str, user: User | None, visitor: str, **properties: Any
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO analytics_events (occurred_at, event_id, name, user_id, visitor_id, properties) "
                "VALUES (:at, :id, :name, :user, :visitor, CAST(:props AS jsonb))"
            ),
            {
                "at": moment,
                "id": uuid.uuid4(),
                "name": name,
                "user": user.id if user else None,
                "visitor": visitor,
                "props": json.dumps(properties),
            },
        )


def item(product, quantity: int, price: int) -> dict[str, Any]:
    return {
        "product_id": str(product.id),
        "product_name": product.name,
        "size": "S",
        "quantity": quantity,
        "price": price,
    }


@pytest.fixture
async def known(db, engine):
    """Two products (cake A 100,000; cake B 50,000, same category), two customers, one anonymous visitor.

    Day 1: Ann views A twice, B once; the visitor views A once; Ann adds 2 A; starts checkout; orders 2 A.
    Day 2: Bob views B; adds 3 B; starts checkout; orders 3 B and 1 A (250,000); Ann orders 1 B.
    Day 3: nothing. A view at 23:59 shop time on day 3 is day 3's; one at 00:00 on day 4 is not in the span.
    """
    a, _ = await make_product(db, price=100_000)
    b, _ = await make_product(db, price=50_000)
    ann, bob = await make_user(db), await make_user(db)
    viewed = {"price": 0, "category": "x"}
    for product, user, visitor in ((a, ann, "v-ann"), (a, ann, "v-ann"), (b, ann, "v-ann"), (a, None, "v-anon")):
        await write(engine, at(DAY1, 9), "product_viewed", user, visitor, product_id=str(product.id), **viewed)
    await write(engine, at(DAY1, 10), "cart_item_added", ann, "v-ann", product_id=str(a.id), quantity=2, price=100_000)
    await write(engine, at(DAY1, 10), "checkout_started", ann, "v-ann", cart_total=230_000, item_count=2)
    await write(engine, at(DAY1, 11), "order_completed", ann, "v-ann", total=200_000, items=[item(a, 2, 100_000)])
    await write(engine, at(DAY2, 0), "product_viewed", bob, "v-bob", product_id=str(b.id), **viewed)
    await write(engine, at(DAY2, 1), "cart_item_added", bob, "v-bob", product_id=str(b.id), quantity=3, price=50_000)
    await write(engine, at(DAY2, 1), "checkout_started", bob, "v-bob", cart_total=250_000, item_count=4)
    await write(
        engine,
        at(DAY2, 2),
        "order_completed",
        bob,
        "v-bob",
        total=250_000,
        items=[item(b, 3, 50_000), item(a, 1, 100_000)],
    )
    await write(engine, at(DAY2, 20), "order_completed", ann, "v-ann", total=50_000, items=[item(b, 1, 50_000)])
    last_minute = analytics.day_bounds(DAY3, ZONE)[1].replace(tzinfo=UTC).timestamp() - 1
    await write(
        engine,
        datetime.fromtimestamp(last_minute, UTC),
        "product_viewed",
        None,
        "v-late",
        product_id=str(b.id),
        **viewed,
    )
    await write(
        engine, analytics.day_bounds(DAY3, ZONE)[1], "product_viewed", None, "v-next", product_id=str(b.id), **viewed
    )
    for day in (DAY1, DAY2, DAY3):
        await analytics.refresh_rollups(engine, day, ZONE)
    await analytics.refresh_rollups(engine, DAY2, ZONE)  # twice: the same rows
    category = await db.scalar(text("SELECT name FROM categories WHERE id = :id"), {"id": a.category_id})
    return {"a": a.name, "b": b.name, "ann": ann.email, "bob": bob.email, "category": category}


SPAN = Span(DAY1, DAY3)


def table(insight) -> list[tuple[Any, ...]]:
    return [(row.label, *row.values) for row in insight.rows]


async def test_product_views_and_top_viewers(db, known):
    views, viewers = await analytics.product_views(db, SPAN)
    # Both viewed 3 times (B's third view is at 23:59:59 on day 3; the one at 00:00 of day 4 is out):
    # equal views go by name, and the names are random.
    assert sorted(table(views)) == sorted([(known["a"], 3), (known["b"], 3)])
    assert views.summary == {"views": 6}
    assert table(viewers) == [(known["ann"], 3), (known["bob"], 1)]
    assert viewers.summary == {"signed_in": 4, "anonymous": 2}
    one_day, _ = await analytics.product_views(db, Span(DAY1, DAY1))
    assert table(one_day) == [(known["a"], 3), (known["b"], 1)]


async def test_cart_additions(db, known):
    cart = await analytics.cart_additions(db, SPAN)
    # One addition each: more units first.
    assert table(cart) == [(known["b"], 1, 3, 150_000), (known["a"], 1, 2, 200_000)]
    assert cart.summary == {"additions": 2}


async def test_purchases_and_revenue_per_day(db, known):
    bought = await analytics.purchases(db, SPAN)
    assert table(bought) == [("2030-05-01", 1, 200_000), ("2030-05-02", 2, 300_000), ("2030-05-03", 0, 0)]
    assert bought.summary == {"orders": 3, "revenue": 500_000}


async def test_customer_frequency(db, known):
    frequency = await analytics.customer_frequency(db, SPAN)
    assert table(frequency) == [("1 order", 1), ("2 orders", 1), ("3 orders", 0), ("4 or more orders", 0)]
    assert frequency.summary == {
        "customers": 2,
        "orders": 3,
        "repeat_customers": 1,
        "repeat_rate": 50.0,
        "orders_per_customer": 1.5,
    }
    first_day = await analytics.customer_frequency(db, Span(DAY1, DAY1))
    assert first_day.summary["repeat_rate"] == 0.0 and first_day.summary["customers"] == 1


async def test_best_sellers(db, known):
    best = await analytics.best_sellers(db, SPAN)
    assert table(best) == [(known["b"], 4, 200_000), (known["a"], 3, 300_000)]


async def test_category_performance(db, known):
    categories = await analytics.category_performance(db, SPAN)
    assert table(categories) == [(known["category"], 7, 500_000)]


async def test_funnel(db, known):
    steps = await analytics.funnel(db, SPAN)
    assert table(steps) == [
        ("Viewed a product", 6, 100.0),
        ("Added to cart", 2, 33.3),
        ("Started checkout", 2, 100.0),
        ("Placed an order", 3, 150.0),
    ]


async def test_an_empty_span_answers_zeros(db, known):
    empty = Span(date(2030, 6, 1), date(2030, 6, 2))
    assert table(await analytics.funnel(db, empty)) == [
        ("Viewed a product", 0, 100.0),
        ("Added to cart", 0, 0.0),
        ("Started checkout", 0, 0.0),
        ("Placed an order", 0, 0.0),
    ]
    assert (await analytics.customer_frequency(db, empty)).summary["repeat_rate"] == 0.0
    assert table(await analytics.best_sellers(db, empty)) == []
