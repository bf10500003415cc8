"""The job queue, kept behind this one module (arq is in maintenance mode: replacing it should
touch only this file and workers/).

Jobs are enqueued with a caller-chosen id; arq refuses a second job with the same id while the
first is queued, running or its result is kept, so delivering an event twice enqueues it once.
"""

from __future__ import annotations

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import Redis

DELIVER_EVENT = "deliver_event"
# A finished job's result is kept this long; a repeat enqueue within it is a no-op (the sweep
# relies on that while a job waits to be retried). Jobs are idempotent, so a later repeat is harmless.
KEEP_RESULT_SECONDS = 3600


def redis_settings(url: str) -> RedisSettings:
    """arq's settings for a redis:// or unix:// URL (a unix URL names its database as ?db=N)."""
    return RedisSettings.from_dsn(url)


async def enqueue(redis: Redis, function: str, job_id: str, *args: object) -> bool:
    """Enqueue `function(*args)` as job `job_id` (through the caller's Redis connection pool).
    False when that job already exists."""
    job = await ArqRedis(connection_pool=redis.connection_pool).enqueue_job(function, *args, _job_id=job_id)
    return job is not None
