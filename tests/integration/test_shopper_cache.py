"""What cached pages keep of a signed-in shopper in Redis (accounts/shopper_cache.py, issue #13):
read from the database once, dropped by every change the shop makes, not trusted after a Redis
restart or a catalog change, never written over a change that committed while it was read, and
kept no longer than the cart lines it counts are counted."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from sweetdream.accounts import shopper_cache, staff
from sweetdream.accounts.models import User
from sweetdream.accounts.services import CLI, shopper_row
from sweetdream.cart.models import CartItem
from sweetdream.cart.services import CART_DAYS, DbCartStore, cart_cutoff
from sweetdream.catalog.cache import CatalogCache, invalidate_catalog, site_version
from sweetdream.db import session_info
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in
from tests.integration.helpers import post_form, register
from tests.integration.test_checkout import checkout
from tests.integration.test_page_cache import add_to_cart

COUNT = re.compile(r'<span class="count">(\d+)</span>')


async def kept(settings, user_id) -> tuple[dict | None, int]:
    """The record kept for this user, and its seconds to live."""
    redis = Redis.from_url(settings.redis_url)
    try:
        raw = await redis.get(shopper_cache.RECORD_PREFIX + str(user_id))
        return (json.loads(raw) if raw else None), await redis.ttl(shopper_cache.RECORD_PREFIX + str(user_id))
    finally:
        await redis.aclose()


async def header(client) -> tuple[str, int]:
    """A cached catalog page as this shopper gets it, answered before Litestar: its text and the
    cart badge's count. (A message left by their last action is shown by Litestar first.)"""
    await client.get("/products")
    page = await client.get("/products")
    assert page.status_code == 200 and page.headers["x-cache"] == "hit"
    found = COUNT.search(page.text)
    return page.text, int(found.group(1)) if found else 0


async def test_the_header_is_read_from_the_database_once_then_from_what_redis_keeps(client, settings, db):
    user = await make_user(db)
    await signed_in(client, settings, user)
    assert await kept(settings, user.id) == (None, -2)  # nothing kept while Litestar answers
    await header(client)  # the first cached page reads the database and keeps the row
    record, ttl = await kept(settings, user.id)
    assert record is not None and record["name"] == "Minh Anh" and record["cart_count"] == 0
    assert 0 < ttl <= shopper_cache.RECORD_SECONDS
    # The page reads what is kept, not the database: a name changed in Redis alone shows.
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.set(shopper_cache.RECORD_PREFIX + str(user.id), json.dumps({**record, "name": "Kept In Redis"}))
    finally:
        await redis.aclose()
    text, _ = await header(client)
    assert "Kept In Redis" in text and "Minh Anh" not in text


async def test_a_record_from_another_redis_run_or_catalog_version_is_read_again(client, settings, db):
    user = await make_user(db)
    await signed_in(client, settings, user)
    await header(client)
    record, _ = await kept(settings, user.id)
    assert record is not None
    redis = Redis.from_url(settings.redis_url)
    try:
        key = shopper_cache.RECORD_PREFIX + str(user.id)
        # A record a restarted Redis brought back from its snapshot: another run id.
        other_run = ("1" if record["site"].startswith("0") else "0") + record["site"][1:]
        await redis.set(key, json.dumps({**record, "name": "Old Snapshot", "site": other_run}))
        text, _ = await header(client)
        assert "Minh Anh" in text and "Old Snapshot" not in text
        # A catalog edit (it may have deleted a size, and cart lines with it) moves the catalog token.
        record, _ = await kept(settings, user.id)
        assert record is not None
        await redis.set(key, json.dumps({**record, "name": "Before The Edit"}))
        await invalidate_catalog(redis)
        await client.get("/products")  # Litestar renders the page anew (and keeps nothing of the shopper)
        text, _ = await header(client)
        assert "Minh Anh" in text and "Before The Edit" not in text
        version = await CatalogCache(redis).version()
        assert (await kept(settings, user.id))[0]["site"] == site_version(version).decode()
    finally:
        await redis.aclose()


async def test_each_change_a_shopper_makes_shows_on_their_next_cached_page(client, settings, db):
    _product, (size,) = await make_product(db, stock=10)
    name = f"Mai Tran {uuid.uuid4().hex[:6]}"
    assert (await register(client, name=name)).status_code == 303
    user_id = await db.scalar(select(User.id).where(User.name == name))

    async def badge() -> int:
        """The count on the next cached page, which what Redis keeps agrees with."""
        _, count = await header(client)
        record, _ = await kept(settings, user_id)
        assert record is not None and record["cart_count"] == count
        return count

    assert await badge() == 0
    await add_to_cart(client, size, 2)
    assert await badge() == 2
    await post_form(client, f"/cart/items/{size.id}", {"quantity": "5"})
    assert await badge() == 5
    await post_form(client, f"/cart/items/{size.id}", {"action": "remove"})
    assert await badge() == 0
    await add_to_cart(client, size, 1)
    assert await badge() == 1
    placed = await checkout(client)
    assert placed.status_code == 303
    assert await badge() == 0
    saved = await post_form(client, "/account/", {"name": "Mai Nguyen", "phone": "0901234567", "address": "1 Lê Lợi"})
    assert saved.status_code == 303
    text, _ = await header(client)
    assert "Mai Nguyen" in text and name not in text


async def test_staff_deactivating_an_account_ends_its_session_on_a_cached_page(client, settings, db):
    user = await make_user(db)
    await signed_in(client, settings, user)
    assert "Sign out" in (await header(client))[0]
    await staff.set_active(db, CLI, user.id, False, "deactivated in a test")
    await db.commit()
    page = await client.get("/products")
    assert "Sign out" not in page.text and "This account has been deactivated" in page.text


async def test_a_cart_line_arranged_after_the_first_page_shows_on_the_next(client, settings, db):
    _product, (size,) = await make_product(db, stock=5)
    user = await make_user(db)
    await signed_in(client, settings, user)
    await put_in_cart(db, user, size, 3)
    assert (await header(client))[1] == 3


async def test_a_row_read_before_a_change_committed_is_not_kept(settings, db):
    """The race a plain cache has: a page reads the row, a change commits and drops the record,
    then the page writes the old row back. The generation read first tells it not to."""
    _product, (size,) = await make_product(db, stock=5)
    user = await make_user(db)
    redis = Redis.from_url(settings.redis_url)
    try:
        engine_row = await shopper_row(db.bind, user.id, cart_cutoff())
        generation = await redis.get(shopper_cache.GENERATION_PREFIX + str(user.id))  # as the page read it
        site = site_version(await CatalogCache(redis).version())
        await put_in_cart(db, user, size, 1)  # commits, and drops the record
        assert not await shopper_cache.remember(redis, user.id, generation, engine_row, site, None)
        assert (await kept(settings, user.id))[0] is None
        fresh = await redis.get(shopper_cache.GENERATION_PREFIX + str(user.id))
        row = await shopper_row(db.bind, user.id, cart_cutoff())
        assert await shopper_cache.remember(redis, user.id, fresh, row, site, None)
        assert (await kept(settings, user.id))[0]["cart_count"] == 1
    finally:
        await redis.aclose()


async def test_a_record_lives_no_longer_than_its_oldest_cart_line_is_counted(client, settings, db):
    _product, (size,) = await make_product(db, stock=5)
    user = await make_user(db)
    await put_in_cart(db, user, size, 2)
    almost_dropped = datetime.now(UTC) - timedelta(days=CART_DAYS) + timedelta(seconds=90)
    await db.execute(update(CartItem).where(CartItem.user_id == user.id).values(updated_at=almost_dropped))
    await db.commit()
    await signed_in(client, settings, user)
    assert (await header(client))[1] == 2
    record, ttl = await kept(settings, user.id)
    assert record is not None and record["cart_count"] == 2
    assert 0 < ttl <= 90  # then the badge is read again, and no longer counts the line


class _Observed(Redis):
    """A real Redis client that notes how many database connections were out when it was used."""

    engine = None
    connections_out: list[int]

    def pipeline(self, *args, **kwargs):
        self.connections_out.append(self.engine.sync_engine.pool.checkedout())
        return super().pipeline(*args, **kwargs)


async def test_a_record_is_dropped_after_the_commit_gave_its_connection_back(settings, db):
    """The round trip to Redis after a commit does not hold a database connection meanwhile."""
    _product, (size,) = await make_product(db, stock=5)
    user = await make_user(db)
    engine = create_async_engine(settings.database_url, pool_size=1, max_overflow=0)
    redis = _Observed.from_url(settings.redis_url)
    redis.engine, redis.connections_out = engine, []
    try:
        async with async_sessionmaker(engine, info=session_info(redis))() as session:
            await DbCartStore(session, user.id).put(size.id, 2, 100_000)
            await session.commit()
        assert redis.connections_out == [0]
        assert await redis.get(shopper_cache.GENERATION_PREFIX + str(user.id)) == b"1"
    finally:
        await redis.aclose()
        await engine.dispose()
