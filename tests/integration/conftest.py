from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from sweetdream.app import create_app
from sweetdream.db import session_info
from sweetdream.platform.i18n import use_language
from sweetdream.settings import Settings
from tests.support import TestStack, flush_redis_except_sessions, start_test_stack

# The shop speaks Vietnamese by default (platform/i18n.py); the suite asserts the English source
# strings, so every test client asks for English unless a test says otherwise (the language tests
# set or remove the header themselves).
_new_client = AsyncTestClient.__init__


def _english_by_default(self: AsyncTestClient[Litestar], *args: object, **kwargs: object) -> None:
    _new_client(self, *args, **kwargs)  # type: ignore[arg-type]
    self.headers.setdefault("accept-language", "en")


AsyncTestClient.__init__ = _english_by_default  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _english_in_the_test_process() -> Iterator[None]:
    """Services called directly (no request) speak English too, unless a test asks otherwise."""
    with use_language("en"):
        yield


@pytest.fixture(scope="session")
def stack() -> Iterator[TestStack]:
    test_stack = start_test_stack()
    yield test_stack
    test_stack.close()


@pytest.fixture
def settings(stack: TestStack) -> Settings:
    flush_redis_except_sessions(stack.settings)
    return stack.settings


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as test_client:
        test_client.follow_redirects = False  # tests look at each redirect, as a form post would get it
        yield test_client


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A session for arranging and checking data directly (committed writes). Made as the app makes
    its sessions, with Redis: a change through the shop's services drops what pages keep of a
    shopper (accounts/shopper_cache.py), as in the app."""
    engine = create_async_engine(settings.database_url)
    redis = Redis.from_url(settings.redis_url)
    async with async_sessionmaker(engine, expire_on_commit=False, info=session_info(redis))() as session:
        yield session
    await engine.dispose()
    await redis.aclose()


@pytest.fixture(autouse=True)
async def _made_products_leave_the_shop(settings: Settings) -> AsyncIterator[None]:
    """Products a test makes (tests.integration.factories) are withdrawn after it, so every test
    sees the catalog as seeded whatever ran before it (the catalog tests count the demo products)."""
    yield
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE products SET is_active = false WHERE slug LIKE 'test-cake-%' AND is_active")
            )
    finally:
        await engine.dispose()
