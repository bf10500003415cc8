"""The page cache (issue #13): one cached body for visitors and shoppers with their own parts filled
in, invalidation by product, single-flight rebuilds, and sessions written only when they change.

Whether a page came from the cache is read from its `X-Cache` header; how often a page was
rendered, from the cache's own render count. Never from timings.
"""

import asyncio
import re

import httpx
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import event, update

from sweetdream.accounts.models import Role
from sweetdream.accounts.passwords import hash_password
from sweetdream.accounts.services import UserService
from sweetdream.app import create_app
from sweetdream.catalog.cache import CatalogCache, invalidate_catalog
from sweetdream.catalog.models import Variant
from tests.integration.factories import make_product, make_user, signed_in, stock_of
from tests.integration.helpers import post_form, register
from tests.integration.test_checkout import checkout


async def add_to_cart(client, variant, quantity: int = 1) -> None:
    response = await post_form(client, "/cart/items", {"variant_id": str(variant.id), "quantity": str(quantity)})
    assert response.status_code in (200, 303), response.status_code


def size_line(page: str, label: str) -> str:
    """The product page's line for one size: label, price and stock."""
    match = re.search(rf'<li class="size[^"]*" data-size="{label}">.*?</li>', page, re.S)
    assert match, page
    return " ".join(match.group(0).split())


async def test_a_checkout_of_one_product_leaves_the_other_products_pages_cached(client, settings, db):
    bought, (bought_size,) = await make_product(db, stock=10)
    other, _ = await make_product(db, stock=10)
    user = await make_user(db)
    await signed_in(client, settings, user)
    for product in (bought, other):  # both pages cached
        await client.get(f"/products/{product.slug}")
        assert (await client.get(f"/products/{product.slug}")).headers["x-cache"] == "hit"
    assert (await client.get("/products")).status_code == 200

    await add_to_cart(client, bought_size, 8)
    placed = await checkout(client)
    assert placed.status_code == 303, placed.text

    other_page = await client.get(f"/products/{other.slug}")
    assert other_page.headers["x-cache"] == "hit"
    bought_page = await client.get(f"/products/{bought.slug}")
    assert bought_page.headers["x-cache"] == "miss"  # its stock changed: rendered again
    assert "Only 2 left" in size_line(bought_page.text, "S")
    # No size sold out, so the listings (cards, the in-stock filter) are as they were.
    assert (await client.get("/products")).headers["x-cache"] == "hit"


async def test_a_checkout_that_sells_a_size_out_refreshes_the_listings(client, settings, db):
    product, (size,) = await make_product(db, stock=1)
    user = await make_user(db)
    await signed_in(client, settings, user)
    listing = f"/products?q={product.name.replace(' ', '+')}"
    assert "Sold out" not in (await client.get(listing)).text
    assert (await client.get(listing)).headers["x-cache"] == "hit"

    await add_to_cart(client, size, 1)
    assert (await checkout(client)).status_code == 303

    page = await client.get(listing)
    assert page.headers["x-cache"] == "miss" and "Sold out" in page.text
    assert "Sold out" in size_line((await client.get(f"/products/{product.slug}")).text, "S")


@pytest.mark.parametrize("visitor", ["plain visitor", "signed-in shopper"])
async def test_a_product_page_never_shows_the_stock_before_a_checkout(client, settings, db, visitor):
    """The per-product path: another shopper's checkout, in another web process, changes this
    product's page at once."""
    product, (size,) = await make_product(db, stock=6)
    if visitor == "signed-in shopper":
        await signed_in(client, settings, await make_user(db))
    assert "In stock" in size_line((await client.get(f"/products/{product.slug}")).text, "S")
    assert (await client.get(f"/products/{product.slug}")).headers["x-cache"] == "hit"

    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as buyer:
        buyer.follow_redirects = False
        await signed_in(buyer, settings, await make_user(db))
        await add_to_cart(buyer, size, 5)
        assert (await checkout(buyer)).status_code == 303

    assert await stock_of(db, size) == 1
    assert "Only 1 left" in size_line((await client.get(f"/products/{product.slug}")).text, "S")


async def test_concurrent_requests_after_a_change_render_the_page_once(app, settings, db):
    product, (size,) = await make_product(db, stock=5)
    url = f"/products/{product.slug}"
    cache: CatalogCache = app.state.catalog_cache
    transport = httpx.ASGITransport(app=app)  # in this event loop: the requests really overlap
    async with (
        app.lifespan(),
        httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers={"accept-language": "en"}
        ) as browser,
    ):
        assert (await browser.get(url)).status_code == 200
        await db.execute(update(Variant).where(Variant.id == size.id).values(stock=1))
        await db.commit()
        redis = Redis.from_url(settings.redis_url)
        await invalidate_catalog(redis)
        await redis.aclose()

        rendered_before = cache.computed
        pages = await asyncio.gather(*(browser.get(url) for _ in range(20)))

    assert cache.computed - rendered_before == 1
    assert {page.status_code for page in pages} == {200}
    assert all("Only 1 left" in size_line(page.text, "S") for page in pages)


async def test_single_flight_callers_share_one_computation_and_its_error(settings):
    redis = Redis.from_url(settings.redis_url)
    cache = CatalogCache(redis)
    calls = 0

    async def slow_render() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "page"

    version = await cache.version()
    assert await asyncio.gather(*(cache.get_or_compute("k", slow_render, version) for _ in range(10))) == ["page"] * 10
    assert calls == 1

    async def failing_render() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise LookupError("no such product")

    results = await asyncio.gather(
        *(cache.get_or_compute("missing", failing_render, version) for _ in range(5)), return_exceptions=True
    )
    assert calls == 2 and all(isinstance(r, LookupError) for r in results)
    await redis.aclose()


async def test_a_signed_in_shoppers_cached_page_shows_their_name_and_cart(client, settings, db):
    _product, (size,) = await make_product(db, stock=5)
    assert (await register(client, name="Mai Tran")).status_code == 303
    await client.get("/products")  # the welcome message is shown (and rendered) here
    await add_to_cart(client, size, 3)
    page = await client.get("/products")
    assert page.headers["x-cache"] == "hit"
    assert "Mai Tran" in page.text and "Sign in" not in page.text
    assert '<span class="count">3</span>' in page.text
    token = client.cookies["sd_csrf"]
    assert f'"x-csrftoken": "{token}"' in page.text  # their own CSRF token, and their sign-out form's
    assert f'name="_csrf_token" value="{token}"' in page.text
    assert "sd_session=" in page.headers["set-cookie"]  # the session cookie renewed, as on any page


async def test_a_signed_in_shoppers_cached_page_is_answered_before_litestar(client, db):
    """The signed-in fast path (#13): the page and the shopper's header come from the cache and one
    asyncpg read, so the ORM runs no statement. A failure in that path falls back to Litestar
    quietly, which is still a correct page, so only this test notices it."""
    _product, (size,) = await make_product(db, stock=5)
    assert (await register(client, name="Mai Tran")).status_code == 303
    await client.get("/products")  # the welcome message is shown (and rendered) here
    await add_to_cart(client, size, 2)
    await client.get("/products")
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = client.app.state.sqlalchemy_config.get_engine().sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        page = await client.get("/products")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert page.headers["x-cache"] == "hit" and "Mai Tran" in page.text
    assert '<span class="count">2</span>' in page.text
    assert statements == []


async def test_a_flash_message_on_a_cached_page_is_shown_once(client):
    assert (await register(client, name="Mai Tran")).status_code == 303
    first = (await client.get("/products")).text
    assert "Welcome to SweetDream, Mai Tran!" in first
    second = await client.get("/products")
    assert "Welcome to SweetDream" not in second.text and "Mai Tran" in second.text


async def test_a_role_change_shows_on_the_next_cached_page(client, settings, db):
    await make_user(db, role=Role.ADMIN)  # not the last admin when demoted
    user = await make_user(db)
    await signed_in(client, settings, user)
    assert 'href="/admin"' not in (await client.get("/products")).text  # and what the header needs is kept
    await UserService(session=db).set_role(user.email, "ADMIN", "promoted in a test")
    await db.commit()
    page = await client.get("/products")
    assert page.headers["x-cache"] == "hit" and 'href="/admin"' in page.text
    await UserService(session=db).set_role(user.email, "CUSTOMER", "demoted in a test")
    await db.commit()
    page = await client.get("/products")
    assert page.headers["x-cache"] == "hit" and 'href="/admin"' not in page.text


async def test_a_password_change_elsewhere_ends_the_session_on_a_cached_page(client, settings, db):
    user = await make_user(db)
    user.password_hash = await hash_password("the old password 1")
    await db.commit()
    await signed_in(client, settings, user)
    assert "Sign out" in (await client.get("/products")).text
    await UserService(session=db).change_password(user.id, "the old password 1", "a brand new password 2")
    await db.commit()
    page = (await client.get("/products")).text
    assert "Sign in" in page and "Your password was changed, so you were signed out here." in page


async def session_writes(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_set", {}).get("calls", 0))


async def test_a_session_is_written_only_when_the_request_changed_it(client, settings, db):
    product, (size,) = await make_product(db, stock=5)
    user = await make_user(db)
    await signed_in(client, settings, user)
    redis = Redis.from_url(settings.redis_url)
    try:
        for url in ("/account", "/cart", "/account/orders", f"/products/{product.slug}", "/products"):
            await client.get(url)  # first visits: caches fill (the shopper's header too), the version keys exist
        before = await session_writes(redis)
        for url in ("/account", "/cart", "/account/orders", f"/products/{product.slug}?x=1"):
            response = await client.get(url)
            assert response.status_code == 200, url
            assert "sd_session=" in response.headers["set-cookie"]  # the cookie is still renewed
        assert await session_writes(redis) == before

        await add_to_cart(client, size, 1)  # "Added to your cart" waits in the session: a change
        assert await session_writes(redis) == before + 1
    finally:
        await redis.aclose()


async def test_a_listing_with_more_matches_than_the_cap_says_so(client, monkeypatch):
    """A million products are not counted on every page: up to the cap, then "N+"."""
    from sweetdream.catalog import services

    monkeypatch.setattr(services, "COUNT_CAP", 5)
    page = (await client.get("/products")).text
    assert "More than 5 products" in page and "Page 1 of 1" not in page
    heading = re.search(r'<h2 class="result-count"[^>]*>(.*?)</h2>', page, re.S)
    assert heading and " ".join(heading.group(1).split()) == "More than 5 products"
