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
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from sweetdream.catalog.cache import invalidate_catalog, invalidate_products

log = logging.getLogger("sweetdream.catalog")

_PENDING = "catalog_changed"  # session.info key: what to tell after the next commit
_HOOKED = "catalog_hook"


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


async def _invalidate(pending: _Pending) -> None:
    if pending.everything:
        await invalidate_catalog(pending.redis)
    else:
        await invalidate_products(pending.redis, pending.products, listings_changed=pending.listings)


def _invalidate_after_commit(session: Session) -> None:
    pending: Any = session.info.pop(_PENDING, None)
    if pending is None:
        return
    try:
        # after_commit runs inside AsyncSession.commit's greenlet: await the bump there, so the
        # caller's commit returns only once the version has moved.
        await_only(_invalidate(pending))
    except Exception:  # the change is committed; a 500 now would only hide that from the person
        log.error("could not invalidate the catalog cache after a catalog change", exc_info=True)
