"""After a catalog write commits, cached catalog pages must go: the one place that arranges it.

Every function that writes products, variants, prices or stock (catalog/services.py, catalog/stock.py)
calls `catalog_changed(db, redis)` in the open transaction. The catalog version (catalog/cache.py)
is bumped right after the COMMIT succeeds, inside the caller's `await db.commit()`
(platform/after_commit.py): when that returns, the next request of any process sees the change. Callers
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

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.catalog.cache import add_catalog_invalidation, add_products_invalidation
from sweetdream.platform import after_commit


@dataclass
class _Pending:
    everything: bool = False
    products: set[str] = field(default_factory=set)
    listings: bool = False

    def add_to(self, pipe: Pipeline) -> None:
        if self.everything:
            add_catalog_invalidation(pipe)
        else:
            add_products_invalidation(pipe, self.products, listings_changed=self.listings)


def catalog_changed(
    db: AsyncSession, redis: Redis | None, products: Collection[str] | None = None, listings: bool = True
) -> None:
    """The open transaction changes what shoppers see: bump the catalog version after it commits.
    `products` (slugs) narrows it to those products' pages, plus the listings if `listings`.
    With no Redis (a script with no cache to tell) there is nothing to invalidate."""
    if redis is None:
        return
    pending = after_commit.owed(db, redis, "catalog", _Pending)
    if products is None:
        pending.everything = True
    else:
        pending.products.update(products)
        pending.listings = pending.listings or listings


@contextmanager
def invalidation_held(db: AsyncSession) -> Iterator[None]:
    """A commit in this block leaves its invalidation (and whatever else it owes Redis) to the
    caller, who adds it to a pipeline of their own right after (`add_held_invalidation`)."""
    with after_commit.held(db):
        yield


def add_held_invalidation(db: AsyncSession, pipe: Pipeline) -> None:
    """After a commit in `invalidation_held`: add what it owes Redis to `pipe` (the catalog's
    invalidation, and the shopper records it drops), which the caller executes before anyone is
    answered."""
    after_commit.add_held(db, pipe)
