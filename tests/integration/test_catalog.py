"""The catalog through real HTTP against the real seeded database."""

import re
from contextlib import contextmanager

import pytest
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from redis.asyncio import Redis
from sqlalchemy import event, update

from sweetdream.catalog import demo
from sweetdream.catalog.cache import invalidate_catalog
from sweetdream.catalog.models import Product

CARD_NAME = re.compile(r'<span class="card-name">([^<]+)</span>')
CARD_PRICE = re.compile(r'<span class="card-price">(?:from )?([\d.]+) đ</span>')
TOTAL = re.compile(r"(\d+) (?:product|result)s?")


def names(html: str) -> list[str]:
    return CARD_NAME.findall(html)


def total(html: str) -> int:
    match = TOTAL.search(html)
    assert match, html[:2000]
    return int(match.group(1))


@contextmanager
def count_queries(app):
    engine = app.plugins.get(SQLAlchemyPlugin).config[0].get_engine().sync_engine
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_products_page_lists_active_products_with_total(client):
    r = await client.get("/products")
    assert r.status_code == 200
    assert total(r.text) == len(demo.PRODUCTS)
    assert len(names(r.text)) == 24


async def test_category_filter(client):
    r = await client.get("/products", params={"category": "banh-kem"})
    expected = [p.name for p in demo.PRODUCTS if p.category_slug == "banh-kem"]
    assert total(r.text) == len(expected)
    assert set(names(r.text)) <= set(expected)


async def test_size_and_in_stock_filters(client):
    size = next(v.label for p in demo.PRODUCTS for v in p.variants if v.stock == 0)
    with_m = {p.name for p in demo.PRODUCTS if any(v.label == size for v in p.variants)}
    with_m_in_stock = {p.name for p in demo.PRODUCTS if any(v.label == size and v.stock > 0 for v in p.variants)}
    r = await client.get("/products", params={"size": size})
    assert total(r.text) == len(with_m)
    r = await client.get("/products", params={"size": size, "in_stock": "1"})
    assert total(r.text) == len(with_m_in_stock) < len(with_m)


async def test_price_range_and_price_sort(client):
    r = await client.get("/products", params={"min_price": "100000", "max_price": "300000", "sort": "price_asc"})
    prices = [int(p.replace(".", "")) for p in CARD_PRICE.findall(r.text)]
    assert prices, "expected products in range"
    assert prices == sorted(prices)
    assert all(100000 <= p <= 300000 for p in prices)
    r = await client.get("/products", params={"sort": "price_desc"})
    prices = [int(p.replace(".", "")) for p in CARD_PRICE.findall(r.text)]
    assert prices == sorted(prices, reverse=True)


async def test_name_sort(client):
    r = await client.get("/products", params={"sort": "name"})
    assert names(r.text) == sorted(names(r.text))


async def test_pagination_pages_do_not_overlap_and_past_the_end_says_so(client):
    first = names((await client.get("/products")).text)
    second_page = await client.get("/products", params={"page": "2"})
    second = names(second_page.text)
    assert second and not set(first) & set(second)
    assert 'rel="prev"' in second_page.text
    beyond = await client.get("/products", params={"page": "99"})
    assert beyond.status_code == 200
    assert "There is no page 99" in beyond.text


@pytest.mark.parametrize("query", ["banh kem", "bánh kem", "BÁNH KEM", "banh ke"])
async def test_search_finds_vietnamese_with_or_without_diacritics_and_by_prefix(client, query):
    expected = {p.name for p in demo.PRODUCTS if "bánh kem" in p.name.lower()}
    r = await client.get("/products", params={"q": query})
    found = set(names(r.text))
    assert expected <= found | set(), (query, expected - found)
    assert total(r.text) >= len(expected)


async def test_search_ranks_name_matches_first(client):
    r = await client.get("/products", params={"q": "trung thu"})
    first = names(r.text)[0]
    assert "trung thu" in first.lower()


async def test_search_with_no_match_shows_an_empty_state(client):
    r = await client.get("/products", params={"q": "pizza hải sản"})
    assert r.status_code == 200
    assert "Nothing matches" in r.text
    assert names(r.text) == []


async def test_empty_category_has_an_empty_state(client):
    r = await client.get("/products", params={"category": "banh-theo-mua"})
    assert r.status_code == 200
    assert "has no products yet" in r.text


@pytest.mark.parametrize(
    "params",
    [
        {"page": "-1"},
        {"page": "abc"},
        {"sort": "anything"},
        {"category": "nope"},
        {"size": "\x00"},
        {"q": "x" * 10_000},
    ],
)
async def test_bad_query_values_give_a_normalised_view_not_an_error(client, params):
    r = await client.get("/products", params=params)
    assert r.status_code == 200


async def test_a_price_that_is_not_a_number_is_a_400_with_the_message_beside_the_field(client):
    r = await client.get("/products", params={"min_price": "x"})
    assert r.status_code == 400
    assert 'id="min_price-error"' in r.text
    assert "whole number" in r.text


async def test_product_page_shows_sizes_with_stock(client):
    product = next(p for p in demo.PRODUCTS if any(v.stock == 0 for v in p.variants))
    r = await client.get(f"/products/{product.slug}")
    assert r.status_code == 200
    assert f"<h1>{product.name}</h1>" in r.text
    assert "Sold out" in r.text
    low = next(p for p in demo.PRODUCTS if any(0 < v.stock <= v.low_stock_threshold for v in p.variants))
    stock = next(v.stock for v in low.variants if 0 < v.stock <= v.low_stock_threshold)
    assert f"Only {stock} left" in (await client.get(f"/products/{low.slug}")).text


@pytest.mark.parametrize("slug", ["does-not-exist", "%00", "a" * 500, "..%2F..%2Fetc"])
async def test_unknown_product_is_a_404_page_in_the_layout(client, slug):
    r = await client.get(f"/products/{slug}")
    assert r.status_code == 404
    assert 'class="brand"' in r.text and "Page not found" in r.text


async def test_inactive_product_is_a_404(client, db, app):
    slug = demo.PRODUCTS[-1].slug
    await db.execute(update(Product).where(Product.slug == slug).values(is_active=False))
    await db.commit()
    try:
        assert (await client.get(f"/products/{slug}")).status_code == 404
    finally:
        await db.execute(update(Product).where(Product.slug == slug).values(is_active=True))
        await db.commit()


async def test_htmx_request_for_the_grid_gets_only_the_results_fragment(client):
    r = await client.get(
        "/products", params={"category": "banh-kem"}, headers={"HX-Request": "true", "HX-Target": "results"}
    )
    assert r.status_code == 200
    assert "<html" not in r.text and 'class="grid"' in r.text


@pytest.mark.parametrize(
    "url", ["/products", "/products?q=banh&size=M&sort=price_asc", "/", "/products/" + demo.PRODUCTS[0].slug]
)
async def test_page_query_count_is_bounded(client, app, url):
    with count_queries(app) as statements:
        assert (await client.get(url)).status_code == 200
    assert len(statements) <= 3, statements


async def test_cached_grid_never_shows_a_stale_price_or_stock(client, db, settings):
    product = next(p for p in demo.PRODUCTS if all(v.price_override is None for v in p.variants))
    url = f"/products?category={product.category_slug}&sort=name&page=1"
    assert "123.456 đ" not in (await client.get(url)).text  # warms the cache

    async def set_price(price: int) -> None:
        await db.execute(update(Product).where(Product.slug == product.slug).values(price=price))
        await db.commit()
        redis = Redis.from_url(settings.redis_url)
        await invalidate_catalog(redis)  # what every catalog write does after its commit
        await redis.aclose()

    await set_price(123456)
    try:
        page = (await client.get(url)).text
        assert "123.456 đ" in page
    finally:
        await set_price(product.price)
    assert "123.456 đ" not in (await client.get(url)).text


async def test_responses_carry_security_headers_and_a_request_id(client):
    for url in ["/products", "/nope"]:
        r = await client.get(url)
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"]
        assert len(r.headers["x-request-id"]) >= 8


async def test_a_safe_incoming_request_id_is_kept_and_an_unsafe_one_replaced(client):
    assert (await client.get("/health", headers={"x-request-id": "abc-12345678"})).headers[
        "x-request-id"
    ] == "abc-12345678"
    assert (await client.get("/health", headers={"x-request-id": "bad\tid"})).headers["x-request-id"] != "bad\tid"
