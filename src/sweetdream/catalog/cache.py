"""Rendered catalog fragments, cached per process and invalidated by a catalog version in Redis.

Any write that changes what a shopper sees in the catalog (product, price, stock) sets
`catalog:version` to a new random token after its transaction commits; every cached fragment
carries the version it was rendered at, so one Redis call per request tells whether a fragment may
be reused. Several web processes share the version, so none of them serves a stale price or stock.

A version must never come back. A counter did: Redis restarted from its last save (or a replica
promoted after a failover) went back from 709 to 706, and a page cached at 706 was served again
with the old stock. A random token alone would not help, since the snapshot holds an old token
that processes may still have pages for. So the version a process compares is the token AND the
run id of the Redis server that answered it: a restarted or failed-over Redis has a new run id, so
every page cached before is stale at once. A key that disappears (FLUSHDB, eviction) is replaced by
a fresh token, never read as "0". One script does both, atomically, in one round trip.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis

VERSION_KEY = "catalog:version"
T = TypeVar("T")

# KEYS[1]: the version key; ARGV[1]: a fresh token, used when the key is missing.
# Returns "<run id>:<token>". The write comes before INFO (a "random" command), as scripts require
# on Redis before 5 unless effects replication is on.
_READ_VERSION = """
local token = redis.call('GET', KEYS[1])
if not token then
  token = ARGV[1]
  redis.call('SET', KEYS[1], token)
end
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
return run_id .. ':' .. token
"""


def new_token() -> str:
    return uuid.uuid4().hex


class CatalogCache:
    def __init__(self, redis: Redis, max_entries: int = 1024) -> None:
        self.redis = redis
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[bytes, Any]] = OrderedDict()
        self._read_version = redis.register_script(_READ_VERSION)

    async def version(self) -> bytes:
        """The catalog version as this Redis server knows it: `<run id>:<token>` (see above)."""
        version: bytes = await self._read_version(keys=[VERSION_KEY], args=[new_token()])
        return version

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
    """Call after committing any change to products, prices or stock: a token never used before."""
    await redis.set(VERSION_KEY, new_token())
