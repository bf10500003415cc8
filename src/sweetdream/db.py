"""Database configuration: the async engine, session config and the declarative bases.

One transaction policy: services flush; whoever owns the unit of work commits. In a request that is
the request (advanced-alchemy's "autocommit" handler commits a 2xx/3xx answer and rolls back any
other; a handler commits itself only before a side effect outside the database, such as Redis); in
the worker, the job; on the command line, the command. Outside a request there is one way to get a
session: `engine_outside_request` + `sessions_for` for a long-lived process (the worker), or
`unit_of_work` for one piece of work (a CLI command, a script).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from advanced_alchemy.base import UUIDAuditBase, UUIDBase, orm_registry
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import Engine, Select
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import greenlet_spawn

from sweetdream.platform.db_pool import FairQueuePool
from sweetdream.settings import PROJECT_ROOT, Settings

__all__ = [
    "DirectRead",
    "UUIDAuditBase",
    "UUIDBase",
    "engine_outside_request",
    "make_sqlalchemy_config",
    "metadata",
    "sessions_for",
    "unit_of_work",
    "violated_constraint",
]

metadata = orm_registry.metadata


# Where a session finds the Redis to tell after it commits (accounts/shopper_cache.py): the app, the
# worker and the CLI make every session with it, so the many writers of a user or a cart line need
# not pass it along (and cannot forget it).
REDIS_INFO = "redis"


def session_info(redis: Any) -> dict[str, Any]:
    """A session's `info` for sessions made with `redis` (None: a script with nothing to tell)."""
    return {} if redis is None else {REDIS_INFO: redis}


def make_sqlalchemy_config(settings: Settings, redis: Any = None) -> SQLAlchemyAsyncConfig:
    return SQLAlchemyAsyncConfig(
        connection_string=settings.database_url,
        engine_config=EngineConfig(
            pool_size=settings.db_pool_size,
            # No overflow: under steady load an overflow connection is opened for one request and
            # closed when it is returned to a full pool, so each request past the pool paid for a new
            # PostgreSQL backend (and its cold caches). Waiting for a pooled connection is cheaper
            # (issue #13: 487 new sessions in 5 s at c=64; with none, the cart page 870 -> 1,400 req/s).
            max_overflow=0,
            pool_pre_ping=False,
            poolclass=FairQueuePool,  # connections handed out first come, first served (platform/db_pool.py)
            hide_parameters=True,  # a database error never logs the values (emails, addresses, tokens)
        ),
        session_config=AsyncSessionConfig(expire_on_commit=False, info=session_info(redis)),
        before_send_handler="autocommit",
        create_all=False,
        alembic_config=AlembicAsyncConfig(
            script_location=str(PROJECT_ROOT / "migrations"),
            script_config=str(PROJECT_ROOT / "alembic.ini"),
        ),
    )


def violated_constraint(exc: IntegrityError) -> str:
    """The name of the constraint PostgreSQL refused the statement for ("" if it did not say)."""
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        name = getattr(error, "constraint_name", None)
        if name:
            return str(name)
    return ""


# A route handler's `opt` key: its request's session commits each statement as it ends, from the
# first (`commit_each_statement`), so the handler's service need not end a read transaction first.
EACH_STATEMENT_COMMITTED = "each_statement_committed"


async def commit_each_statement(session: AsyncSession) -> None:
    """From here to the session's commit, each of its statements commits as it ends: no BEGIN or
    COMMIT is sent. For a unit of work whose one write is a single statement that checks, under its
    own locks, everything read before it (orders/services.py's checkout): it holds those locks only
    while it runs. Whatever the session did before is committed first (nothing is sent if it already
    runs so: its route asked for it, `EACH_STATEMENT_COMMITTED`)."""
    if session.in_transaction():
        connection = (await session.connection()).sync_connection
        if connection is not None and connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        await session.commit()
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def engine_outside_request(database_url: str, pool_size: int = 1) -> AsyncEngine:
    """An engine for a process or piece of work that serves no request (the worker, the CLI). Its own
    engine, not the app's: the app's may belong to another event loop (a running server, a test)."""
    # hide_parameters: a database error never logs the values (emails, addresses, tokens).
    # No overflow, as the app's pool (make_sqlalchemy_config): connections are kept, never churned.
    return create_async_engine(database_url, pool_size=pool_size, max_overflow=0, hide_parameters=True)


def sessions_for(engine: AsyncEngine, redis: Any = None) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, info=session_info(redis))


@asynccontextmanager
async def unit_of_work(database_url: str, redis: Any = None) -> AsyncIterator[AsyncSession]:
    """One session in one transaction, committed when the block ends (rolled back if it raises)."""
    engine = engine_outside_request(database_url)
    try:
        async with sessions_for(engine, redis)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class DirectRead:
    """A Core SELECT compiled once for asyncpg and run in one round trip, without the ORM: for the
    pages answered before Litestar (platform/pages.py), where a session's BEGIN ... ROLLBACK and its
    row objects cost more than the query. asyncpg prepares the statement once per connection."""

    sql: str
    order: tuple[str, ...]  # the parameters' names in their positional order
    fixed: dict[str, Any]  # the statement's own constants (its literals are bound too)

    @classmethod
    def of(cls, statement: Select[Any]) -> DirectRead:
        compiled = statement.compile(dialect=asyncpg.dialect())
        named = {name: None for name, bind in compiled.binds.items() if bind.required}
        return cls(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.construct_params(named)))

    async def fetchrow(self, engine: AsyncEngine, **values: Any) -> Any:
        """The first row (an asyncpg Record) or None, on a connection of the engine's pool."""
        given = {**self.fixed, **values}
        return await greenlet_spawn(_fetchrow_pooled, engine.sync_engine, self.sql, [given[n] for n in self.order])


def _fetchrow_pooled(engine: Engine, sql: str, args: list[Any]) -> Any:
    """`DirectRead.fetchrow` on an asyncpg connection taken from the engine's pool itself, in one
    greenlet. `engine.connect()` wraps it in a Connection and switches greenlets for each step: 43 µs
    of CPU a read; taking and giving back the connection in a greenlet each, 43 µs with the query;
    all in one, 32 (issue #13). A connection whose read failed goes out of the pool (it may be broken:
    a restarted server, a cancelled query) and the pool opens a fresh one, as SQLAlchemy does when
    its own statement finds a disconnect."""
    pooled = engine.raw_connection()
    driver: Any = pooled.driver_connection
    try:
        return await_only(driver.fetchrow(sql, *args))
    except BaseException:
        pooled.invalidate()
        raise
    finally:
        pooled.close()  # back to the pool (or closed, which awaits: this runs in the greenlet)
