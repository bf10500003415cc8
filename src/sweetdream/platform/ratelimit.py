"""Fixed-window rate limits in Redis, so they hold across several web processes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from litestar.exceptions import HTTPException
from redis.asyncio import Redis


@dataclass(frozen=True)
class Limit:
    name: str
    attempts: int
    window_seconds: int


class TooManyRequests(HTTPException):
    status_code = 429


async def hit(redis: Redis, limit: Limit, key: str) -> None:
    """Count one attempt for `key`; raise 429 with Retry-After once the window's limit is passed."""
    # Keys are hashed so emails and addresses never sit in Redis in clear text.
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    redis_key = f"rl:{limit.name}:{digest}"
    async with redis.pipeline(transaction=True) as pipe:
        # SET NX starts the window with its expiry (EXPIRE NX needs Redis 7; the embedded one is 6.2).
        pipe.set(redis_key, 0, ex=limit.window_seconds, nx=True)
        pipe.incr(redis_key)
        pipe.ttl(redis_key)
        _, count, ttl = await pipe.execute()
    if count > limit.attempts:
        retry_after = max(int(ttl), 1)
        minutes = -(-retry_after // 60)
        raise TooManyRequests(
            detail=f"Too many attempts. Please wait {minutes} minute{'s' if minutes != 1 else ''} and try again.",
            headers={"Retry-After": str(retry_after)},
        )
