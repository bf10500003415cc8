"""Fixed-window rate limits in Redis, so they hold across several web processes.

`hit` counts every attempt (registration, checkout). Sign-in counts failures only: `take` counts an
attempt before the password is checked, so concurrent guesses can never pass the limit between a
check and a count, and `give_back` returns it when the attempt succeeded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from litestar.exceptions import HTTPException
from redis.asyncio import Redis

from sweetdream.platform.i18n import ngettext


@dataclass(frozen=True)
class Limit:
    name: str
    attempts: int
    window_seconds: int


class TooManyRequests(HTTPException):
    status_code = 429


# Count one in the window (which starts, with its expiry, at the first); refused ones are not counted.
# One script, so no other request runs between the count and the check. Returns {allowed, ttl}.
_TAKE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if count > tonumber(ARGV[2]) then
  redis.call('DECR', KEYS[1])
  return {0, ttl}
end
return {1, ttl}
"""
# Only while the window lasts: a DECR after it expired would leave a negative count for ever.
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 and tonumber(redis.call('GET', KEYS[1])) > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""


def _redis_key(limit: Limit, key: str) -> str:
    # Keys are hashed so emails and addresses never sit in Redis in clear text.
    return f"rl:{limit.name}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def _refuse(retry_after: int) -> TooManyRequests:
    retry_after = max(retry_after, 1)
    minutes = -(-retry_after // 60)
    return TooManyRequests(
        detail=ngettext(
            "Too many attempts. Please wait %(num)d minute and try again.",
            "Too many attempts. Please wait %(num)d minutes and try again.",
            minutes,
        )
        % {"num": minutes},
        headers={"Retry-After": str(retry_after)},
    )


async def hit(redis: Redis, limit: Limit, key: str) -> None:
    """Count one attempt for `key`; raise 429 with Retry-After once the window's limit is passed."""
    redis_key = _redis_key(limit, key)
    async with redis.pipeline(transaction=True) as pipe:
        # SET NX starts the window with its expiry (EXPIRE NX needs Redis 7; the embedded one is 6.2).
        pipe.set(redis_key, 0, ex=limit.window_seconds, nx=True)
        pipe.incr(redis_key)
        pipe.ttl(redis_key)
        _, count, ttl = await pipe.execute()
    if count > limit.attempts:
        raise _refuse(int(ttl))


async def take(redis: Redis, limit: Limit, key: str) -> None:
    """Count one attempt for `key`, or raise 429 (counting nothing) when the window is full."""
    window, attempts = str(limit.window_seconds), str(limit.attempts)
    allowed, ttl = await redis.eval(_TAKE, 1, _redis_key(limit, key), window, attempts)  # type: ignore[misc]
    if not allowed:
        raise _refuse(int(ttl))


async def give_back(redis: Redis, limit: Limit, key: str) -> None:
    """Undo one `take`: that attempt is not held against `key` (it succeeded)."""
    await redis.eval(_GIVE_BACK, 1, _redis_key(limit, key))  # type: ignore[misc]


async def clear(redis: Redis, limit: Limit, key: str) -> None:
    """Forget `key`'s count in this window."""
    await redis.delete(_redis_key(limit, key))
