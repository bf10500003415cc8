"""Rendered catalog pages and fragments, cached per process and invalidated by versions in Redis.

Three kinds of version, each a random token set anew after the commit of a change:
- `catalog:version`: everything (a product edited, a category, synonyms, the seed). Every cached
  entry depends on it, so `invalidate_catalog` stays the one safe call for any catalog change.
- `catalog:listing`: what listing pages show (the grid, search results, featured cards): a checkout
  changes it only when it sells a size out (a card's "Sold out", the in-stock filter); a price or
  name change comes through `invalidate_catalog`.
- `catalog:product:<slug>`: that product's page (its sizes' stock: "Only 2 left"). A checkout
  bumps the products it took stock from, so the cached pages of every other product stay warm.
A cached entry carries the version it was rendered at (`<run id>:<catalog token>:<scope token>`);
one Redis call per request tells whether it may be reused, so no process serves a stale price or
stock.

A version must never come back. A counter did: Redis restarted from its last save (or a replica
promoted after a failover) went back from 709 to 706, and a page cached at 706 was served again
with the old stock. A random token alone would not help, since the snapshot holds an old token
that processes may still have pages for. So the version a process compares includes the run id
of the Redis server that answered it: a restarted or failed-over Redis has a new run id, so every
page cached before is stale at once. A key that disappears (FLUSHDB, eviction, a product key's
expiry) is replaced by a fresh token, never read as "0". One script does both, atomically, in one
round trip.

Versions say when a write changed a page; time can change one too: a class session that starts
makes its seats unbuyable with no write at all. Code that renders such a fact calls
`fresh_until(moment)` while an entry is computed; the entry (and every entry built from it: a
cached grid inside a cached page) is then reused only until that moment.

A rebuild is single-flight: when an entry is missing or stale, the first request renders it and
the requests that arrive meanwhile (in this process) wait for that render instead of repeating it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

VERSION_KEY = "catalog:version"
LISTING_KEY = "catalog:listing"
PRODUCT_KEY_PREFIX = "catalog:product:"
# A product's key lives a day after its last read or bump: a million products leave no million keys.
PRODUCT_KEY_SECONDS = 24 * 3600
T = TypeVar("T")

# KEYS[1]: the catalog version key, KEYS[2]: the scope's key (listing or one product);
# ARGV[1], ARGV[2]: fresh tokens, used when a key is missing; ARGV[3]: the scope key's lifetime in
# seconds (0: none). Returns "<run id>:<catalog token>:<scope token>". The writes come before INFO
# (a "random" command), as scripts require on Redis before 5 unless effects replication is on.
READ_VERSION_SCRIPT = """
local token = redis.call('GET', KEYS[1])
if not token then
  token = ARGV[1]
  redis.call('SET', KEYS[1], token)
end
local scoped = redis.call('GET', KEYS[2])
if not scoped then
  scoped = ARGV[2]
  redis.call('SET', KEYS[2], scoped)
end
if tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
return run_id .. ':' .. token .. ':' .. scoped
"""


# The same, and also KEYS[3]'s value (a session), its lifetime renewed to ARGV[4] seconds if it has
# one (the session store's own get-and-renew); then, if that value is JSON with a "user_id", the
# value at each of ARGV[5...] followed by that id (what a page keeps of its shopper: see
# accounts/shopper_cache.py). A signed-in shopper's page needs all of it in one round trip.
# Those keys are not in KEYS: fine on one Redis server, not on a cluster. Returns
# {version, value, found...} (a missing value is false).
_VERSION_WRITES = READ_VERSION_SCRIPT.split("local run_id")[0]
READ_VERSION_AND_VALUE_SCRIPT = (
    _VERSION_WRITES
    + """local value = redis.call('GET', KEYS[3])
if value and redis.call('TTL', KEYS[3]) > 0 then
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local answer = {run_id .. ':' .. token .. ':' .. scoped, value}
local user_id = false
if value and #ARGV > 4 then
  local ok, decoded = pcall(cjson.decode, value)
  if ok and type(decoded) == 'table' and type(decoded['user_id']) == 'string' then
    user_id = decoded['user_id']
  end
end
for i = 5, #ARGV do
  answer[#answer + 1] = user_id and redis.call('GET', ARGV[i] .. user_id)
end
return answer
"""
)


def site_version(version: bytes) -> bytes:
    """The part of a page's version that is the same for every page: the Redis run and the catalog
    token (`catalog_changed` with no products moves it). What is kept beside the pages (a
    shopper's header, accounts/shopper_cache.py) and depends on either carries it."""
    return version.rsplit(b":", 1)[0]


# While an entry is computed: the moments (epoch seconds) from which what it shows is out of date.
_LIMITS: ContextVar[list[float] | None] = ContextVar("catalog_fresh_until", default=None)


def fresh_until(moment: datetime | None) -> None:
    """What is being rendered for the cache changes by itself at `moment` (a class session starts):
    the entry computed now is reused only until then. Outside a computation it does nothing."""
    if moment is not None:
        _limit(moment.timestamp())


def _limit(until: float | None) -> None:
    limits = _LIMITS.get()
    if limits is not None and until is not None:
        limits.append(until)


def new_token() -> str:
    return uuid.uuid4().hex


def version_keys(product_slug: str | None = None) -> tuple[list[str], list[str]]:
    """The script's keys and arguments for a listing page (no slug) or one product's page."""
    if product_slug is None:
        return [VERSION_KEY, LISTING_KEY], [new_token(), new_token(), "0"]
    return [VERSION_KEY, PRODUCT_KEY_PREFIX + product_slug], [new_token(), new_token(), str(PRODUCT_KEY_SECONDS)]


class CatalogCache:
    def __init__(self, redis: Redis, max_entries: int = 1024) -> None:
        self.redis = redis
        self.max_entries = max_entries
        # key -> (version, value, reused until: epoch seconds or None for "until the version moves")
        self._entries: OrderedDict[str, tuple[bytes, Any, float | None]] = OrderedDict()
        self._in_flight: dict[tuple[str, bytes], asyncio.Future[Any]] = {}
        self._read_version = redis.register_script(READ_VERSION_SCRIPT)
        self._read_version_and_value = redis.register_script(READ_VERSION_AND_VALUE_SCRIPT)
        # How many entries this process computed (a miss) and reused (a hit): what tests and the
        # X-Cache header read; a request that waited for another's render counts as a hit.
        self.computed = 0
        self.reused = 0

    async def version(self, product_slug: str | None = None) -> bytes:
        """The version of a listing page, or of one product's page (see the module docstring)."""
        keys, args = version_keys(product_slug)
        version: bytes = await self._read_version(keys=keys, args=args)
        return version

    async def version_and_value(
        self, product_slug: str | None, key: str, renew_seconds: int, per_user: Sequence[str] = ()
    ) -> tuple[bytes, bytes | None, list[bytes | None]]:
        """`version(product_slug)` and the value at `key` (its expiry renewed), in one round trip;
        and, when that value is a session with a "user_id", the value at each of `per_user`'s
        prefixes followed by that id (None where missing, or with no user)."""
        keys, args = version_keys(product_slug)
        answer = await self._read_version_and_value(keys=[*keys, key], args=[*args, str(renew_seconds), *per_user])
        found = [value or None for value in answer[2:]]
        return answer[0], answer[1], found + [None] * (len(per_user) - len(found))

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[T]], version: bytes | None = None) -> T:
        """The cached value for key if rendered at this version, else compute it (once: requests
        that ask meanwhile wait for the same computation).

        The version is read *before* computing, so a write that lands meanwhile leaves the entry
        tagged with the old version and the next request recomputes it.
        """
        if version is None:  # a page with several cached parts reads the version once and passes it
            version = await self.version()
        hit = self.peek(key, version)
        if hit is not None:
            self.reused += 1
            _limit(self._entries[key][2])  # an entry built from this one is fresh no longer than it
            return hit  # type: ignore[no-any-return,unused-ignore]
        pending = self._in_flight.get((key, version))
        if pending is not None:
            try:
                value: T = await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled, not the render
                return await self.get_or_compute(key, compute, version)  # the render's request went away
            self.reused += 1
            entry = self._entries.get(key)
            _limit(entry[2] if entry is not None and entry[0] == version else None)
            return value
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._in_flight[(key, version)] = future
        limits: list[float] = []
        outer = _LIMITS.set(limits)
        try:
            value = await compute()
        except asyncio.CancelledError:
            future.cancel()  # those waiting render it themselves
            raise
        except Exception as exc:
            # Those waiting get the same error (a 404 for a missing product, say); none is left hanging.
            future.set_exception(exc)
            future.exception()  # marked as retrieved: no "never retrieved" warning when no one waited
            raise
        finally:
            _LIMITS.reset(outer)
            del self._in_flight[(key, version)]
        until = min(limits, default=None)
        _limit(until)
        self.computed += 1
        future.set_result(value)
        self._entries[key] = (version, value, until)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def peek(self, key: str, version: bytes) -> Any:
        """The value cached for key at this version (and not past its time), or None."""
        hit = self._entries.get(key)
        if hit is None or hit[0] != version or (hit[2] is not None and time.time() >= hit[2]):
            return None
        self._entries.move_to_end(key)
        return hit[1]


async def invalidate_catalog(redis: Redis) -> None:
    """Call after committing any change to products, prices, categories or search: every cached
    catalog entry is stale (a token never used before)."""
    await redis.set(VERSION_KEY, new_token())


def add_catalog_invalidation(pipe: Pipeline) -> None:
    """`invalidate_catalog`, as a command of a pipeline the caller executes."""
    pipe.set(VERSION_KEY, new_token())


def add_products_invalidation(pipe: Pipeline, slugs: Iterable[str], listings_changed: bool) -> None:
    """After committing a stock change of these products (a checkout), as commands of a pipeline the
    caller executes: their pages are stale, and the listing pages too if what a card shows changed
    (a size sold out)."""
    for slug in sorted(set(slugs)):
        pipe.set(PRODUCT_KEY_PREFIX + slug, new_token(), ex=PRODUCT_KEY_SECONDS)
    if listings_changed:
        pipe.set(LISTING_KEY, new_token())
