"""The pools keep their connections: a burst of work beyond a pool waits for a pooled connection
instead of opening (and closing) PostgreSQL backends of its own (issue #13: at 64 concurrent
requests an overflow pool opened ~100 backends a second and halved the cart page's throughput)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from sweetdream.db import engine_outside_request, make_sqlalchemy_config
from sweetdream.settings import Settings

POOL = 2
BURST = 10  # five times the pool, at once
ROUNDS = 3


async def sessions_opened(db: AsyncSession) -> int:
    """Backends PostgreSQL has started for this database so far."""
    count = await db.scalar(text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"))
    await db.rollback()  # each look is its own snapshot of the statistics
    return int(count or 0)


async def burst(engine: AsyncEngine) -> list[int]:
    async def one(n: int) -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(text("SELECT CAST(:n AS integer) FROM pg_sleep(0.02)"), {"n": n}) or 0)

    return list(await asyncio.gather(*(one(n) for n in range(BURST))))


async def opened_by_bursts(engine: AsyncEngine, db: AsyncSession) -> int:
    await sessions_opened(db)  # the checking session's own backend exists before counting
    before = await sessions_opened(db)
    try:
        for _ in range(ROUNDS):
            assert await burst(engine) == list(range(BURST))  # every piece of work ran, none refused
    finally:
        await engine.dispose()
    return await sessions_opened(db) - before


async def test_the_web_pool_opens_its_connections_once_however_many_requests_wait(
    settings: Settings, db: AsyncSession
) -> None:
    engine = make_sqlalchemy_config(replace(settings, db_pool_size=POOL)).get_engine()
    assert await opened_by_bursts(engine, db) == POOL


async def test_the_worker_pool_opens_its_connections_once_however_many_jobs_wait(
    settings: Settings, db: AsyncSession
) -> None:
    engine = engine_outside_request(settings.database_url, pool_size=POOL)
    assert await opened_by_bursts(engine, db) == POOL
