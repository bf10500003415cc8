"""What keeps the catalog fast at a million products (the `scale` bench measures the speed): each
product's from-price and in-stock time are kept on its row by the database, whichever statement
changes its sizes, and a search ranks a capped set of matches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import delete, insert, select, text, update

from sweetdream.catalog import services
from sweetdream.catalog.cache import invalidate_catalog
from sweetdream.catalog.models import Product, Variant
from tests.integration.factories import make_product
from tests.integration.test_catalog import names

FOREVER = datetime.max.replace(tzinfo=UTC)  # how asyncpg reads PostgreSQL's 'infinity'


async def summary(db, product: Product) -> tuple[int | None, datetime | None]:
    row = (await db.execute(select(Product.from_price, Product.in_stock_until).where(Product.id == product.id))).one()
    return row.from_price, row.in_stock_until


async def test_the_from_price_and_in_stock_time_follow_every_change_of_a_size(db):
    product, (small, medium) = await make_product(db, stock=[5, 0], price=100_000)
    assert await summary(db, product) == (100_000, FOREVER)

    async def change(statement) -> tuple[int | None, datetime | None]:
        await db.execute(statement)
        await db.commit()
        return await summary(db, product)

    assert await change(update(Variant).where(Variant.id == medium.id).values(price_override=80_000)) == (
        80_000,
        FOREVER,
    )
    # The product's own price is the price of every size without an override.
    assert await change(update(Product).where(Product.id == product.id).values(price=70_000)) == (70_000, FOREVER)
    assert await change(update(Product).where(Product.id == product.id).values(price=90_000)) == (80_000, FOREVER)
    # Sold out, then a delivery: only the crossing of zero changes the row.
    assert await change(update(Variant).where(Variant.id == small.id).values(stock=0)) == (80_000, None)
    assert await change(update(Variant).where(Variant.id == medium.id).values(stock=2)) == (80_000, FOREVER)
    # A seat in a class session: in stock until the session starts.
    starts = datetime(2099, 3, 6, 2, 0, tzinfo=UTC)
    assert await change(update(Variant).where(Variant.id == medium.id).values(starts_at=starts)) == (80_000, starts)
    # A size added (a bulk INSERT is refreshed once per statement) or removed.
    added = insert(Variant).values(
        product_id=product.id, label="XL", sku=f"{small.sku}-XL", stock=1, price_override=60_000, position=3
    )
    assert await change(added) == (60_000, FOREVER)
    assert await change(delete(Variant).where(Variant.sku == f"{small.sku}-XL")) == (80_000, starts)
    assert await change(delete(Variant).where(Variant.product_id == product.id)) == (None, None)


async def test_a_class_whose_session_has_started_leaves_the_in_stock_filter_by_the_clock(client, db, settings):
    """Nothing in the database changes when a session starts: "in stock" compares the kept time with now()."""
    product, (seat,) = await make_product(db, stock=3)
    await db.execute(
        update(Variant).where(Variant.id == seat.id).values(starts_at=datetime.now(UTC) + timedelta(days=1))
    )
    await db.commit()
    redis = Redis.from_url(settings.redis_url)
    await invalidate_catalog(redis)
    in_stock = {"q": product.name, "in_stock": "1"}
    assert names((await client.get("/products", params=in_stock)).text) == [product.name]

    # The session began a minute ago: moved in SQL without touching the trigger's columns' meaning.
    await db.execute(
        text("UPDATE variants SET starts_at = now() - interval '1 minute' WHERE id = :id"), {"id": seat.id}
    )
    await db.commit()
    await invalidate_catalog(redis)
    await redis.aclose()
    assert names((await client.get("/products", params=in_stock)).text) == []
    assert names((await client.get("/products", params={"q": product.name})).text) == [product.name]


async def test_price_order_reads_the_kept_from_price(client, db, settings):
    cheap, _ = await make_product(db, price=10_000)
    dear, (dear_size,) = await make_product(db, price=20_000)
    query = {"q": "test cake", "sort": "price_asc"}
    order = [n for n in names((await client.get("/products", params=query)).text) if n in (cheap.name, dear.name)]
    assert order == [cheap.name, dear.name]

    await db.execute(update(Variant).where(Variant.id == dear_size.id).values(price_override=5_000))
    await db.commit()
    redis = Redis.from_url(settings.redis_url)
    await invalidate_catalog(redis)
    await redis.aclose()
    order = [n for n in names((await client.get("/products", params=query)).text) if n in (cheap.name, dear.name)]
    assert order == [dear.name, cheap.name]


async def test_a_search_with_more_matches_than_it_ranks_says_so(client, monkeypatch):
    monkeypatch.setattr(services, "BEST_MATCH_CAP", 2)
    page = (await client.get("/products", params={"q": "bánh"})).text
    assert "More than 2 results for “bánh”" in page


async def test_the_words_before_the_last_match_whole_words_and_the_last_one_a_prefix(client):
    assert "Bánh kem dâu tây" in names((await client.get("/products", params={"q": "bánh kem dâ"})).text)
    assert names((await client.get("/products", params={"q": "bán kem dâu"})).text) == []
