"""The catalog through real HTTP against the real seeded database."""

import re
from contextlib import contextmanager

import pytest
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import event, select, update

from sweetdream.catalog import demo
from sweetdream.catalog.cache import invalidate_catalog
from sweetdream.catalog.models import Product, Variant
from tests.integration.helpers import post_form, register
from tests.unit.test_vietnamese_text import DEMO_NAMES_IN_ORDER

CARD_NAME = re.compile(r'<span class="card-name">([^<]+)</span>')
CARD_PRICE = re.compile(r'<span class="card-price">(?:from )?₫([\d,]+)</span>')  # English: ₫150,000
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
    prices = [int(p.replace(",", "")) for p in CARD_PRICE.findall(r.text)]
    assert prices, "expected products in range"
    assert prices == sorted(prices)
    assert all(100000 <= p <= 300000 for p in prices)
    r = await client.get("/products", params={"sort": "price_desc"})
    prices = [int(p.replace(",", "")) for p in CARD_PRICE.findall(r.text)]
    assert prices == sorted(prices, reverse=True)


async def test_name_sort_follows_vietnamese_order(client):
    """Every page of "Name A-Z", read in turn, lists the demo names in the order written by hand
    (case-insensitive, tones after letters, đ after d: byte order would put "Bánh Tiramisu" first)."""
    listed: list[str] = []
    for page in ("1", "2", "3"):
        listed += names((await client.get("/products", params={"sort": "name", "page": page})).text)
    assert len(listed) == len(demo.PRODUCTS)
    assert [name for name in listed if name in DEMO_NAMES_IN_ORDER] == DEMO_NAMES_IN_ORDER


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


# A NUL in a path is a 400 before routing reaches the handler: tests/integration/test_inputs.py.
@pytest.mark.parametrize("slug", ["does-not-exist", "a" * 500, "..%2F..%2Fetc"])
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


@pytest.mark.parametrize("htmx", [False, True])
async def test_what_a_shopper_types_is_shown_as_text_never_run_as_a_template(client, htmx):
    """The grid is cached as rendered HTML; it must be sent as it is, not rendered again."""
    headers = {"HX-Request": "true", "HX-Target": "results"} if htmx else {}
    typed = '{{ "SSTI" ~ "-RAN" }} {{ request.app.state.settings.secret_key }}'
    r = await client.get("/products", params={"q": typed}, headers=headers)
    assert r.status_code == 200
    assert "SSTI-RAN" not in r.text and "{{ request.app.state.settings.secret_key }}" in r.text


@pytest.mark.parametrize(
    "url", ["/products", "/products?q=banh&size=M&sort=price_asc", "/", "/products/" + demo.PRODUCTS[0].slug]
)
async def test_page_query_count_is_bounded(client, app, url):
    with count_queries(app) as statements:
        assert (await client.get(url)).status_code == 200
    assert len(statements) <= 3, statements


@pytest.mark.parametrize("url", ["/products", "/", "/products/" + demo.PRODUCTS[0].slug])
async def test_a_signed_in_shoppers_page_adds_only_their_own_queries(client, app, url):
    """Their user and cart badge (two queries) around the cached catalog parts; a product page in one."""
    assert (await register(client)).status_code == 303
    assert (await client.get(url)).status_code == 200  # the catalog parts are cached now
    with count_queries(app) as statements:
        page = await client.get(url)
    assert page.status_code == 200 and "Sign out" in page.text
    assert len(statements) <= 3, statements


def on_first_page_by_name(product: demo.DemoProduct) -> bool:
    same_category = sorted(p.name for p in demo.PRODUCTS if p.category_slug == product.category_slug)
    return same_category.index(product.name) < 24


# Every way a catalog view is served from the cache: the whole page for a plain visitor, the page
# around the cached grid for a signed-in shopper, the HTMX grid fragment, the product page.
STALE_VIEWS = {
    "grid page": lambda p: f"/products?category={p.category_slug}&sort=name&page=1",
    "grid fragment": lambda p: f"/products?category={p.category_slug}&sort=name",
    "product page": lambda p: f"/products/{p.slug}",
}


@pytest.mark.parametrize("visitor", ["plain visitor", "signed-in shopper"])
@pytest.mark.parametrize("view", list(STALE_VIEWS))
async def test_cached_pages_never_show_a_stale_price_or_stock(client, db, settings, view, visitor):
    product = next(p for p in demo.PRODUCTS if on_first_page_by_name(p) and len(p.variants) == 1)
    assert product.variants[0].price_override is None and product.variants[0].stock > 0
    url = STALE_VIEWS[view](product)
    headers = {"HX-Request": "true", "HX-Target": "results"} if view == "grid fragment" else {}
    if visitor == "signed-in shopper":
        assert (await register(client)).status_code == 303
        assert "Sign out" in (await client.get("/products")).text

    async def get() -> str:
        """The part of the page that shows this product: its card in a grid, or its product page."""
        r = await client.get(url, headers=headers)
        assert r.status_code == 200
        if view == "product page":
            return r.text
        card = re.search(rf'<li class="card">(?:(?!</li>).)*>{re.escape(product.name)}<.*?</li>', r.text, re.S)
        assert card, r.text
        return card.group(0)

    assert "₫123,456" not in await get() and "Sold out" not in await get()  # warms the cache

    async def change(**values: int) -> None:
        if "price" in values:
            await db.execute(update(Product).where(Product.slug == product.slug).values(price=values["price"]))
        if "stock" in values:
            await db.execute(
                update(Variant)
                .where(Variant.product_id == select(Product.id).where(Product.slug == product.slug).scalar_subquery())
                .values(stock=values["stock"])
            )
        await db.commit()
        redis = Redis.from_url(settings.redis_url)
        await invalidate_catalog(redis)  # what every catalog write does after its commit
        await redis.aclose()

    await change(price=123456)
    try:
        assert "₫123,456" in await get()
        await change(stock=0)
        assert "Sold out" in await get()
    finally:
        await change(price=product.price, stock=product.variants[0].stock)
    page = await get()
    assert "₫123,456" not in page and "Sold out" not in page


async def test_a_cached_page_carries_each_visitors_own_csrf_token(app):
    """The whole page is shared by plain visitors; the CSRF token in it must be each one's own."""
    pages: list[tuple[str, str]] = []
    set_cookie: list[str] = []
    for _ in range(2):  # the first visitor's pages are rendered, the second's come from the cache
        async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as visitor:
            for url in ["/products", "/products/" + demo.PRODUCTS[0].slug]:
                response = await visitor.get(url)
                page = response.text
                if url == "/products":  # a new visitor: the token's cookie comes with the page
                    set_cookie.append(re.sub(r"sd_csrf=\w+", "sd_csrf=…", response.headers["set-cookie"]))
                token = visitor.cookies["sd_csrf"]
                assert f'"x-csrftoken": "{token}"' in page, url  # HTMX's header
                if url != "/products":
                    assert f'name="_csrf_token" value="{token}"' in page  # the add-to-cart form
                pages.append((token, page))
            # the token is a real one: a form posted with it passes the CSRF check
            signing_in = await post_form(visitor, "/account/login", {"email": "nobody@example.com", "password": "x"})
            assert signing_in.status_code != 403
    (first, first_page), (second, second_page) = pages[0], pages[-1]
    assert first != second and first not in second_page and second not in first_page
    assert set_cookie[0] == set_cookie[1]  # the same cookie attributes either way


async def test_a_signed_in_shopper_never_gets_the_plain_visitors_page(client):
    assert "Sign in" in (await client.get("/products")).text  # the plain visitors' page is now cached
    assert (await register(client, name="Mai Tran")).status_code == 303
    page = (await client.get("/products")).text
    assert "Mai Tran" in page and "Sign in" not in page


async def test_pages_vary_on_htmx_headers(client):
    """A browser keeps one cached answer per URL: the fragment must not be replayed as the page."""
    full = await client.get("/products?category=banh-kem")
    fragment = await client.get("/products?category=banh-kem", headers={"HX-Request": "true", "HX-Target": "results"})
    assert "<html" in full.text and "<html" not in fragment.text
    for r in (full, fragment):
        assert "hx-request" in r.headers["vary"].lower()
    # htmx restoring history after a cache miss asks for the page, not a fragment
    restore = await client.get(
        "/products?category=banh-kem", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in restore.text


async def test_a_bad_price_while_filtering_with_htmx_answers_the_message_beside_the_field(client):
    r = await client.get(
        "/products", params={"min_price": "abc"}, headers={"HX-Request": "true", "HX-Target": "results"}
    )
    assert r.status_code == 400
    assert r.headers["hx-retarget"] == "#price-errors" and r.headers["hx-reswap"] == "innerHTML"
    assert r.headers["hx-push-url"] == "false"  # the address bar keeps the last good view
    assert "hx-request" in r.headers["vary"].lower()
    assert 'id="min_price-error"' in r.text and "whole number" in r.text
    # never the inputs: the shopper may be typing in one (what they typed stays where it is)
    assert "<input" not in r.text and "<form" not in r.text and 'class="grid"' not in r.text
    # the next good answer empties the messages out of band, and again leaves the inputs alone
    htmx = {"HX-Request": "true", "HX-Target": "results"}
    ok = await client.get("/products", params={"min_price": "1"}, headers=htmx)
    assert ok.status_code == 200 and "min_price-error" not in ok.text
    assert '<div id="price-errors" hx-swap-oob="innerHTML"></div>' in ok.text
    assert "<input" not in ok.text


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
