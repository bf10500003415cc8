"""What a cached page's header needs of a signed-in shopper, kept in Redis beside their session.

A catalog page served before Litestar (platform/pages.py) shows a signed-in shopper's name, an
"Admin" link for staff and their cart badge, and must know the session is still theirs (the
account active, no password change since: its session epoch). Reading that from PostgreSQL cost
the page a third of its time (issue #13), so the page's one Redis call also reads this record
(`shopper:<user id>`), written from the database on a miss and dropped after every change:

- Whatever changes what the record holds (the user's name, role, epoch, active flag or language,
  or their cart's lines) calls `shopper_changed` in the open transaction; right after the COMMIT,
  inside the caller's `await db.commit()` (platform/after_commit.py), the record is deleted and the
  user's generation (`shopper-gen:<user id>`) moves on. A checkout, which empties the cart in its
  one statement, sends that with the rest of what it tells Redis after its commit.
- A record is written only if the generation is still the one read before the database was: a
  change that commits while the row is read is never hidden by the old row written after it.
- A record carries the site version it was read at (catalog/cache.py's `site_version`: the Redis
  run and the catalog token). A Redis restarted from a snapshot has a new run, so records it
  brought back are not trusted; a catalog edit that deletes a size (and so cart lines with it, by
  cascade) moves the catalog token.
- It lives at most `RECORD_SECONDS`, and no longer than the oldest cart line it counts is counted
  (the badge drops a line `CART_DAYS` after its last change, with no write). The lifetime also
  bounds what a change made without Redis (an outage at the commit) can leave stale: the header's
  name or badge, never an answer to anything the shopper does, which Litestar checks in the
  database on every request (`accounts.web.load_current_user`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.db import REDIS_INFO
from sweetdream.platform import after_commit

RECORD_PREFIX = "shopper:"
GENERATION_PREFIX = "shopper-gen:"
PER_USER_KEYS = (RECORD_PREFIX, GENERATION_PREFIX)  # what a page reads beside the session, in this order
# Ten minutes: a browsing shopper costs one database read per ten minutes, not one per page.
RECORD_SECONDS = 600
# A generation outlives any read in flight by far; a missing one reads as "0", as it began.
GENERATION_SECONDS = 2 * 24 * 3600
# The row's columns (accounts.services.shopper_columns) that the record keeps.
KEPT = ("name", "role", "session_epoch", "is_active", "language", "cart_count")

# KEYS[1]: the record, KEYS[2]: the generation; ARGV[1]: the generation read before the database,
# ARGV[2]: the record, ARGV[3]: its lifetime in seconds. Written only if no change came in between.
_REMEMBER_SCRIPT = """
if (redis.call('GET', KEYS[2]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


def record_from(found: bytes | None, site: bytes) -> dict[str, Any] | None:
    """The row kept in a record read at `site` (catalog.cache.site_version), or None when there is
    none to trust (missing, from another Redis run or catalog version, malformed)."""
    if found is None:
        return None
    try:
        record = msgspec.json.decode(found)
    except msgspec.DecodeError:
        return None
    if not isinstance(record, dict) or record.get("site") != site.decode() or not set(KEPT) <= record.keys():
        return None
    return record


async def remember(
    redis: Redis, user_id: UUID, generation: bytes | None, row: Any, site: bytes, counted_until: datetime | None
) -> bool:
    """Keep `row` (with `KEPT`), read after `generation` was, for the next pages; until the oldest
    cart line counted stops counting (`counted_until`), at the latest. False if a change came in
    between, or the line stops counting now."""
    seconds = RECORD_SECONDS
    if counted_until is not None:
        seconds = min(seconds, int((counted_until - datetime.now(UTC)).total_seconds()))
    if seconds <= 0:
        return False
    record = {name: row[name] for name in KEPT} | {"site": site.decode()}
    keys = [RECORD_PREFIX + str(user_id), GENERATION_PREFIX + str(user_id)]
    args: list[bytes | int] = [generation or b"0", msgspec.json.encode(record), seconds]
    written = await redis.register_script(_REMEMBER_SCRIPT)(keys=keys, args=args)
    return bool(written)


@dataclass
class _Dropped:
    """The users whose records a transaction drops after its commit (platform/after_commit.py)."""

    user_ids: set[UUID] = field(default_factory=set)

    def add_to(self, pipe: Pipeline) -> None:
        """Their records go, and a record read from the database before the commit is not written
        (the generation moved)."""
        for user_id in self.user_ids:
            generation = GENERATION_PREFIX + str(user_id)
            pipe.incr(generation)
            pipe.expire(generation, GENERATION_SECONDS)
            pipe.delete(RECORD_PREFIX + str(user_id))


def shopper_changed(db: AsyncSession, user_id: UUID) -> None:
    """The open transaction changes what a page's header shows of this user (their account or
    their cart): drop their record right after it commits, through the Redis the session was made
    with (sweetdream.db.session_info). A session made with none (a test's, a script's) has no
    pages to tell."""
    redis: Redis | None = db.sync_session.info.get(REDIS_INFO)
    if redis is not None:
        after_commit.owed(db, redis, "shoppers", _Dropped).user_ids.add(user_id)
