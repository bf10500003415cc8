"""Redis commands a transaction owes once it has committed: the one place that sends them.

A write that makes something kept in Redis stale (a cached catalog page: catalog/writes.py; what
the pages keep of a shopper: accounts/shopper_cache.py) calls `owed(db, redis, kind, Owed)` in the
open transaction and adds what it changed to the object it gets back. Right after the COMMIT,
inside the caller's `await db.commit()` and once the session has given its database connection
back (no request waits for a connection that only waits for Redis), every kind's commands go to
Redis in one pipeline: when the commit returns, the next request of any process sees the change.
A transaction that rolls back keeps what it owes for the session's next commit: one needless
command costs a cache miss, a missed one would show stale data.

A writer with a round trip of its own to make after the commit (a checkout relays its outbox rows)
may carry them in it: it commits `with held(db)`, then calls `add_held(db, pipe)` on its pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util import await_only

log = logging.getLogger("sweetdream.after_commit")

_OWED = "redis_owed"  # session.info key: {kind: (redis, what is owed)} for the open transaction
_COMMITTED = "redis_committed"  # the same, once its COMMIT went through
_HELD = "redis_held"  # the next commit leaves its commands to the caller (`add_held`)
_HOOKED = "redis_owed_hook"


class Owed(Protocol):
    """What one kind of write owes Redis: its commands, added to a pipeline."""

    def add_to(self, pipe: Pipeline) -> None: ...


DebtT = TypeVar("DebtT", bound=Owed)


def owed(db: AsyncSession, redis: Redis, kind: str, new: Callable[[], DebtT]) -> DebtT:
    """This transaction's debt of `kind` (made with `new` the first time): add to it what the
    transaction changes; its commands are sent after the commit."""
    sync = db.sync_session
    debts: dict[str, tuple[Redis, Any]] = sync.info.setdefault(_OWED, {})
    if kind not in debts:
        debts[kind] = (redis, new())
    if not sync.info.get(_HOOKED):
        event.listen(sync, "after_commit", _committed)
        event.listen(sync, "after_transaction_end", _send_after_commit)
        sync.info[_HOOKED] = True
    debt: DebtT = debts[kind][1]
    return debt


@contextmanager
def held(db: AsyncSession) -> Iterator[None]:
    """A commit in this block leaves its commands to the caller, who adds them to a pipeline of
    their own right after (`add_held`), so that they take one round trip to Redis. A commit that
    fails keeps them for the session's next commit, as a rollback does."""
    info = db.sync_session.info
    info[_HELD] = True
    try:
        yield
    finally:
        info.pop(_HELD, None)


def add_held(db: AsyncSession, pipe: Pipeline) -> None:
    """After a commit in `held`: add what it owed to `pipe`, which the caller executes before
    anyone is answered. Nothing is added if that commit owed nothing."""
    for _redis, debt in db.sync_session.info.pop(_OWED, {}).values():
        debt.add_to(pipe)


def _committed(session: Session) -> None:
    """The COMMIT went through. The session still holds its connection here: the commands wait for
    `after_transaction_end`, which comes once it is back in the pool."""
    if session.info.get(_HELD):
        return  # the caller sends them with their own round trip (`add_held`)
    debts = session.info.pop(_OWED, None)
    if debts:
        session.info[_COMMITTED] = debts


def _send_after_commit(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return  # a savepoint: what it owes goes when the whole transaction has committed
    debts: dict[str, tuple[Redis, Any]] | None = session.info.pop(_COMMITTED, None)
    if not debts:
        return  # nothing owed, or it rolled back (the debt stays for the next commit)
    try:
        # This runs inside AsyncSession.commit's greenlet: await the commands there, so the
        # caller's commit returns only once Redis has them.
        await_only(_send(debts))
    except Exception:  # the change is committed; a 500 now would only hide that from the person
        log.error("could not tell Redis after a commit (%s)", ", ".join(debts), exc_info=True)


async def _send(debts: dict[str, tuple[Redis, Any]]) -> None:
    by_client: dict[int, tuple[Redis, list[Any]]] = {}
    for redis, debt in debts.values():
        by_client.setdefault(id(redis), (redis, []))[1].append(debt)
    for redis, client_debts in by_client.values():  # one client in the app: one round trip
        async with redis.pipeline(transaction=False) as pipe:
            for debt in client_debts:
                debt.add_to(pipe)
            await pipe.execute()
