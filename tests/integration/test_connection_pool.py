"""The pools keep their connections: a burst of work beyond a pool waits for a pooled connection
instead of opening (and closing) PostgreSQL backends of its own (issue #13: at 64 concurrent
requests an overflow pool opened ~100 backends a second and halved the cart page's throughput).
And the web's Redis pool hands out its connections without a queue (platform/redis_pool.py: with
redis-py's own pool a Redis round trip took 65 ms at 64 concurrent shoppers). And the web's database
pool hands its connections out first come, first served (platform/db_pool.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from sqlalchemy import exc, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from sweetdream.db import DirectRead, engine_outside_request, make_sqlalchemy_config
from sweetdream.platform.redis_pool import connect_redis
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


async def test_redis_commands_do_not_wait_for_each_others_connection_checks(settings: Settings) -> None:
    """Before a command is sent its connection is checked (hiredis reads the socket, waiting a turn of
    the event loop). redis-py's pool ran those checks one at a time under one lock, so under load each
    command queued behind every other; here they overlap."""
    redis = connect_redis(settings.redis_url)
    pool = redis.connection_pool
    check = pool.ensure_connection
    checking = most_at_once = 0

    async def counted(connection: Any) -> None:
        nonlocal checking, most_at_once
        checking += 1
        most_at_once = max(most_at_once, checking)
        try:
            await check(connection)
        finally:
            checking -= 1

    pool.ensure_connection = counted  # type: ignore[method-assign]  # counts; the check itself runs
    try:
        await asyncio.gather(*(redis.ping() for _ in range(BURST)))  # the connections exist now
        most_at_once = 0
        assert all(await asyncio.gather(*(redis.ping() for _ in range(BURST))))
    finally:
        await redis.aclose()
    assert most_at_once > 1


@asynccontextmanager
async def one_connection_taken(
    settings: Settings, pool_timeout: int = 30
) -> AsyncIterator[tuple[AsyncEngine, AsyncConnection]]:
    """The web's pool with one connection, and that connection taken (the holder gives it back)."""
    config = make_sqlalchemy_config(replace(settings, db_pool_size=1))
    config.engine_config.pool_timeout = pool_timeout
    engine = config.get_engine()
    try:
        yield engine, await engine.connect()
    finally:
        await engine.dispose()


async def use_a_connection(engine: AsyncEngine, name: str, served: list[str]) -> None:
    """Ask for a connection, note when it is given, and use it."""
    async with engine.connect() as conn:
        served.append(name)
        assert await conn.scalar(text("SELECT 1")) == 1


async def waiting_for_a_connection(engine: AsyncEngine, name: str, served: list[str]) -> asyncio.Task[None]:
    """A task that asks for a connection (`use_a_connection`); returns once it is waiting."""
    task = asyncio.create_task(use_a_connection(engine, name, served))
    await asyncio.sleep(0.05)  # it asks at once: the pool's one connection is taken, so it waits
    assert not task.done() and name not in served
    return task


async def take_right_after_giving_back(engine: AsyncEngine, holder: AsyncConnection, served: list[str]) -> None:
    """Give the connection back and ask for one at once, before the waiter has run: a request that
    arrives as another ends. SQLAlchemy's asyncio pool gave it to this newcomer."""
    await holder.close()
    await use_a_connection(engine, "newcomer", served)


async def test_the_web_pool_serves_a_waiting_request_before_one_that_arrives_later(settings: Settings) -> None:
    served: list[str] = []
    async with one_connection_taken(settings) as (engine, holder):
        waiter = await waiting_for_a_connection(engine, "waiter", served)
        await take_right_after_giving_back(engine, holder, served)
        await waiter
    assert served == ["waiter", "newcomer"]


async def test_a_request_cancelled_while_waiting_leaves_the_connection_to_the_next(settings: Settings) -> None:
    served: list[str] = []
    async with one_connection_taken(settings) as (engine, holder):
        gone = await waiting_for_a_connection(engine, "gone", served)
        waiter = await waiting_for_a_connection(engine, "waiter", served)
        await holder.close()  # handed to "gone", which is cancelled before it runs
        gone.cancel()
        await asyncio.wait_for(waiter, 5)
        with pytest.raises(asyncio.CancelledError):
            await gone
        await use_a_connection(engine, "after", served)  # the one connection is back in the pool
    assert served == ["waiter", "after"]


async def test_a_request_that_waits_past_the_pool_timeout_gets_the_pools_error(settings: Settings) -> None:
    served: list[str] = []
    async with one_connection_taken(settings, pool_timeout=1) as (engine, holder):
        with pytest.raises(exc.TimeoutError, match="QueuePool limit"):
            await engine.connect()
        await holder.close()
        await use_a_connection(engine, "after", served)  # the timed-out wait took nothing with it
    assert served == ["after"]


# --- the pages answered before Litestar read through asyncpg on a pooled connection (db.DirectRead)


async def backend_of_a_direct_read(engine: AsyncEngine) -> int:
    """The PostgreSQL backend (its process id) a `DirectRead` ran on."""
    row = await DirectRead.of(select(func.pg_backend_pid())).fetchrow(engine)
    return int(row[0])


async def test_a_direct_read_gives_its_connection_back_to_the_pool(settings: Settings) -> None:
    engine = make_sqlalchemy_config(replace(settings, db_pool_size=1)).get_engine()
    try:
        backends = [await backend_of_a_direct_read(engine) for _ in range(3)]
        assert len(set(backends)) == 1  # the one pooled connection, each time
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_a_direct_read_on_a_broken_connection_fails_once_and_the_next_gets_a_new_one(
    settings: Settings, db: AsyncSession
) -> None:
    """After a database restart (here: its backend ended), a pooled connection is dead: the read
    that finds it fails, and it is not handed to the next request."""
    engine = make_sqlalchemy_config(replace(settings, db_pool_size=1)).get_engine()
    try:
        backend = await backend_of_a_direct_read(engine)
        await db.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        await db.commit()
        # asyncpg says so in one of several ways, depending on when it hears the server hang up
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)):
            await backend_of_a_direct_read(engine)
        assert await backend_of_a_direct_read(engine) != backend
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
