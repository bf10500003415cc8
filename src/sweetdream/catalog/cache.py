"""Rendered catalog fragments, cached per process and invalidated by a catalog version in Redis.

Any write that changes what a shopper sees in the catalog (product, price, stock) bumps
`catalog:version` after its transaction commits; every cached fragment carries the version it was
rendered at, so one Redis GET per request tells whether a fragment may be reused. Several web
processes share the version, so none of them serves a stale price or stock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis

VERSION_KEY = "catalog:version"
T = TypeVar("T")


class CatalogCache:
    def __init__(self, redis: Redis, max_entries: int = 1024) -> None:
        self.redis = redis
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[bytes, Any]] = OrderedDict()

    async def version(self) -> bytes:
        return await self.redis.get(VERSION_KEY) or b"0"

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[T]], version: bytes | None = None) -> T:
        """The cached value for key if rendered at the current catalog version, else compute it.

        The version is read *before* computing, so a write that lands meanwhile leaves the entry
        tagged with the old version and the next request recomputes it.
        """
        if version is None:  # a page with several cached parts reads the version once and passes it
            version = await self.version()
        hit = self.peek(key, version)
        if hit is not None:
            return hit  # type: ignore[no-any-return,unused-ignore]
        value = await compute()
        self._entries[key] = (version, value)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def peek(self, key: str, version: bytes) -> Any:
        """The value cached for key at this catalog version, or None."""
        hit = self._entries.get(key)
        if hit is None or hit[0] != version:
            return None
        self._entries.move_to_end(key)
        return hit[1]


async def invalidate_catalog(redis: Redis) -> None:
    """Call after committing any change to products, prices or stock."""
    await redis.incr(VERSION_KEY)
