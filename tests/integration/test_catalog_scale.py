"""What keeps the catalog fast at a million products (the `scale` bench measures the speed): each
product's from-price and in-stock time are kept on its row by the database, whichever statement
changes its sizes, and a search ranks a capped set of matches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from sweetdream.catalog import services
from sweetdream.catalog.cache import invalidate_catalog
from sweetdream.catalog.models import Product, Variant
from tests.integration.factories import make_product
from tests.integration.test_catalog import names

FOREVER = datetime.max.replace(tzinfo=UTC)  # how asyncpg reads PostgreSQL's 'infinity'


async def summary(db, product: Product) -> tuple[int | None, datetime | None, list[str]] | tuple[Any, ...]:
    """(from price, in stock until, goods sizes in stock), and "seats" last when it has seats in stock."""
    columns = [Product.from_price, Product.in_stock_until, Product.sizes_in_stock, Product.seats_in_stock]
    *kept, seats = (await db.execute(select(*columns).where(Product.id == product.id))).one()
    return (*kept, "seats") if seats else tuple(kept)


async def test_the_from_price_and_stock_columns_follow_every_change_of_a_size(db):
    product, (small, medium) = await make_product(db, stock=[5, 0], price=100_000)
    assert await summary(db, product) == (100_000, FOREVER, ["S"])

    async def change(statement) -> tuple[int | None, datetime | None, list[str]]:
        await db.execute(statement)
        await db.commit()
        return await summary(db, product)

    override = update(Variant).where(Variant.id == medium.id).values(price_override=80_000)
    assert await change(override) == (80_000, FOREVER, ["S"])
    # The product's own price is the price of every size without an override.
    assert await change(update(Product).where(Product.id == product.id).values(price=70_000)) == (
        70_000,
        FOREVER,
        ["S"],
    )
    assert await change(update(Product).where(Product.id == product.id).values(price=90_000)) == (
        80_000,
        FOREVER,
        ["S"],
    )
    # Sold out, then a delivery: only the crossing of zero changes the row.
    assert await change(update(Variant).where(Variant.id == small.id).values(stock=0)) == (80_000, None, [])
    assert await change(update(Variant).where(Variant.id == medium.id).values(stock=2)) == (80_000, FOREVER, ["M"])
    assert await change(update(Variant).where(Variant.id == medium.id).values(stock=1)) == (80_000, FOREVER, ["M"])
    assert await change(update(Variant).where(Variant.id == medium.id).values(label="L")) == (80_000, FOREVER, ["L"])
    # A seat in a class session: in stock until the session starts.
    starts = datetime(2099, 3, 6, 2, 0, tzinfo=UTC)
    seat = update(Variant).where(Variant.id == medium.id).values(starts_at=starts)
    assert await change(seat) == (80_000, starts, [], "seats")
    # A size added (a bulk INSERT is refreshed once per statement) or removed.
    added = insert(Variant).values(
        product_id=product.id, label="XL", sku=f"{small.sku}-XL", stock=1, price_override=60_000, position=3
    )
    assert await change(added) == (60_000, FOREVER, ["XL"], "seats")
    assert await change(delete(Variant).where(Variant.sku == f"{small.sku}-XL")) == (80_000, starts, [], "seats")
    assert await change(delete(Variant).where(Variant.product_id == product.id)) == (None, None, [])


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
    size_in_stock = {**in_stock, "size": "S"}
    assert names((await client.get("/products", params=in_stock)).text) == [product.name]
    assert names((await client.get("/products", params=size_in_stock)).text) == [product.name]

    # The session began a minute ago: moved in SQL without touching the trigger's columns' meaning.
    await db.execute(
        text("UPDATE variants SET starts_at = now() - interval '1 minute' WHERE id = :id"), {"id": seat.id}
    )
    await db.commit()
    await invalidate_catalog(redis)
    await redis.aclose()
    assert names((await client.get("/products", params=in_stock)).text) == []
    assert names((await client.get("/products", params=size_in_stock)).text) == []
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


async def catalog_changed(settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    await invalidate_catalog(redis)
    await redis.aclose()


async def test_a_search_ranks_the_whole_word_matches_when_they_are_enough(client, db, settings, monkeypatch):
    """The last word is a prefix ('zorb' finds 'Zorbette'), unless more products than a search ranks
    have it whole: those are ranked, without gathering every word that starts so (issue #13)."""
    whole = ["Zorb cake one", "Zorb cake three", "Zorb cake two"]
    for name in ["Zorbette cake", *whole]:  # the prefix-only match first: the first the index finds
        product, _ = await make_product(db)
        product.name, product.search_text = name, services.search_text_for(name, "", "")
    await db.commit()

    async def found(cap: int) -> str:
        monkeypatch.setattr(services, "BEST_MATCH_CAP", cap)
        await catalog_changed(settings)  # the page is rendered again, not served from the cache
        return (await client.get("/products", params={"q": "zorb"})).text

    assert sorted(names(await found(3))) == [*whole, "Zorbette cake"]  # three whole: too few, so the prefix
    page = await found(2)
    assert "More than 2 results for “zorb”" in page
    assert sorted(names(page)) == whole  # the whole-word matches ranked; the prefix-only one not gathered


async def test_two_checkouts_selling_out_two_sizes_of_one_product_leave_it_out_of_stock(db, settings):
    """Real concurrent transactions: the second to commit waits for the product's row and then reads
    the sizes afresh, so it can't write back the first one's size as still in stock."""
    product, (small, medium) = await make_product(db, stock=[1, 1])
    engine = create_async_engine(settings.database_url)
    first, second = async_sessionmaker(engine)(), async_sessionmaker(engine)()
    try:
        await first.execute(update(Variant).where(Variant.id == small.id).values(stock=0))
        # The first checkout holds the product's row (as its own refresh would) until it commits.
        await first.execute(update(Product).where(Product.id == product.id).values(name=Product.name))
        await second.execute(update(Variant).where(Variant.id == medium.id).values(stock=0))
        second_commit = asyncio.create_task(second.commit())  # its refresh waits for the row
        await asyncio.sleep(0.3)
        assert not second_commit.done()
        await first.commit()  # its refresh still sees the medium size in stock (not committed yet)
        await asyncio.wait_for(second_commit, 10)
    finally:
        await first.close()
        await second.close()
        await engine.dispose()
    assert await summary(db, product) == (100_000, None, [])
