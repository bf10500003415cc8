"""Which browsers are signed in to an account: an index in Redis beside the sessions themselves.

Sessions live in Redis under their (secret) ids; nothing there says whose they are. At sign-in the
new session's id is added to the user's index with when it signed in and a short description of
the browser, so staff can see a customer's sessions and deactivation can end every one of them at
once. The ids are never shown: a session id is as good as the password.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID

from litestar.stores.base import Store
from redis.asyncio import Redis

# A little longer than a session's own 30 days: the index outlives no session it names by much.
INDEX_SECONDS = 31 * 24 * 3600
MAX_REMEMBERED = 50  # a browser that signs in over and over cannot grow the index without end


T = TypeVar("T")


async def _awaited(value: Awaitable[T] | T) -> T:
    """redis-py types its commands as "awaitable or not" (one class for both clients); ours await."""
    return await value if inspect.isawaitable(value) else value


def _key(user_id: UUID) -> str:
    return f"user-sessions:{user_id}"


@dataclass(frozen=True)
class SignedInSession:
    signed_in_at: datetime
    device: str


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def describe_browser(user_agent: str) -> str:
    """ "Chrome on Android": enough for a person to recognise their browser, nothing that identifies it."""
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), "")
    system = next((name for marker, name in _SYSTEMS if re.search(re.escape(marker), user_agent)), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown browser"


async def remember(redis: Redis, user_id: UUID, session_id: str, user_agent: str, epoch: int) -> None:
    entry = {"at": datetime.now(UTC).isoformat(), "device": describe_browser(user_agent), "epoch": epoch}
    key = _key(user_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, session_id, json.dumps(entry))
        pipe.expire(key, INDEX_SECONDS)
        await pipe.execute()
    if await _awaited(redis.hlen(key)) > MAX_REMEMBERED:
        await _keep_newest(redis, key)


async def _keep_newest(redis: Redis, key: str) -> None:
    entries = await _awaited(redis.hgetall(key))
    oldest_first = sorted(entries, key=lambda field: json.loads(entries[field])["at"])
    await _awaited(redis.hdel(key, *oldest_first[: len(oldest_first) - MAX_REMEMBERED]))


async def forget(redis: Redis, user_id: UUID, session_id: str) -> None:
    await _awaited(redis.hdel(_key(user_id), session_id))


async def signed_in(redis: Redis, store: Store, user_id: UUID, epoch: int) -> list[SignedInSession]:
    """The user's live sessions, newest first. Entries whose session has expired or ended (signed out,
    or from before a password change or a deactivation) are dropped from the index as they are found."""
    key = _key(user_id)
    entries = await _awaited(redis.hgetall(key))
    live: list[SignedInSession] = []
    gone: list[str] = []
    for field, raw in entries.items():
        entry = json.loads(raw)
        if entry.get("epoch") != epoch or not await store.exists(field.decode()):
            gone.append(field.decode())
            continue
        live.append(SignedInSession(datetime.fromisoformat(entry["at"]), str(entry["device"])))
    if gone:
        await _awaited(redis.hdel(key, *gone))
    return sorted(live, key=lambda s: s.signed_in_at, reverse=True)


async def end_all(redis: Redis, store: Store, user_id: UUID) -> int:
    """End every indexed session of the user now (the sessions are deleted from the store). Sessions
    the index never saw end anyway on their next request: deactivation also raises the user's epoch."""
    key = _key(user_id)
    fields = await _awaited(redis.hkeys(key))
    for field in fields:
        await store.delete(field.decode())
    await redis.delete(key)
    return len(fields)
