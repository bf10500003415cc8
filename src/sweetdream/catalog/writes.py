"""After a catalog write commits, cached catalog pages must go: the one place that arranges it.

Every function that writes products, variants, prices or stock (catalog/services.py, catalog/stock.py)
calls `catalog_changed(db, redis)` in the open transaction. It registers a hook on the session that
bumps the catalog version (catalog/cache.py) right after the COMMIT succeeds, inside the caller's
`await db.commit()`: when that returns, the next request of any process sees the change. Callers
(orders, the admin editors, the CLI) therefore cannot forget the invalidation. A transaction that
rolls back keeps the mark for the session's next commit: one needless bump costs a cache miss,
while a missed one would show a stale price.

A checkout's stock change names its products: only their pages go stale, and the listings only when
a size sold out (what a card shows); every other write makes the whole catalog stale.

A writer with a round trip of its own to make after the commit (a checkout relays its outbox rows)
may carry the invalidation in it: it commits `with invalidation_held(db)`, then adds
`add_held_invalidation` to its pipeline. At 64 concurrent shoppers a Redis round trip cost a checkout ~30 ms.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from sweetdream.catalog.cache import add_catalog_invalidation, add_products_invalidation

log = logging.getLogger("sweetdream.catalog")

_PENDING = "catalog_changed"  # session.info key: what to tell after the next commit
_HOOKED = "catalog_hook"
_HELD = "catalog_held"  # session.info key: the next commit leaves the invalidation to its caller


@dataclass
class _Pending:
    redis: Redis
    everything: bool = False
    products: set[str] = field(default_factory=set)
    listings: bool = False


def catalog_changed(
    db: AsyncSession, redis: Redis | None, products: Collection[str] | None = None, listings: bool = True
) -> None:
    """The open transaction changes what shoppers see: bump the catalog version after it commits.
    `products` (slugs) narrows it to those products' pages, plus the listings if `listings`.
    With no Redis (a script with no cache to tell) there is nothing to invalidate."""
    if redis is None:
        return
    sync = db.sync_session
    pending: _Pending = sync.info.setdefault(_PENDING, _Pending(redis))
    if products is None:
        pending.everything = True
    else:
        pending.products.update(products)
        pending.listings = pending.listings or listings
    if not sync.info.get(_HOOKED):
        event.listen(sync, "after_commit", _invalidate_after_commit)
        sync.info[_HOOKED] = True


def _add_invalidation(pending: _Pending, pipe: Pipeline) -> None:
    if pending.everything:
        add_catalog_invalidation(pipe)
    else:
        add_products_invalidation(pipe, pending.products, listings_changed=pending.listings)


async def _invalidate(pending: _Pending) -> None:
    async with pending.redis.pipeline(transaction=False) as pipe:
        _add_invalidation(pending, pipe)
        await pipe.execute()


@contextmanager
def invalidation_held(db: AsyncSession) -> Iterator[None]:
    """A commit in this block leaves its invalidation to the caller, who adds it to a pipeline of
    their own right after (`add_held_invalidation`), so that the two take one round trip to Redis.
    A commit that fails keeps the mark for the session's next commit, as a rollback does."""
    info = db.sync_session.info
    info[_HELD] = True
    try:
        yield
    finally:
        info.pop(_HELD, None)


def add_held_invalidation(db: AsyncSession, pipe: Pipeline) -> None:
    """After a commit in `invalidation_held`: add its invalidation to `pipe`, which the caller
    executes before anyone is answered. Nothing is added if that commit changed no catalog."""
    pending: _Pending | None = db.sync_session.info.pop(_PENDING, None)
    if pending is not None:
        _add_invalidation(pending, pipe)


def _invalidate_after_commit(session: Session) -> None:
    if session.info.get(_HELD):
        return  # the caller sends it with their own round trip (add_held_invalidation)
    pending: Any = session.info.pop(_PENDING, None)
    if pending is None:
        return
    try:
        # after_commit runs inside AsyncSession.commit's greenlet: await the bump there, so the
        # caller's commit returns only once the version has moved.
        await_only(_invalidate(pending))
    except Exception:  # the change is committed; a 500 now would only hide that from the person
        log.error("could not invalidate the catalog cache after a catalog change", exc_info=True)
