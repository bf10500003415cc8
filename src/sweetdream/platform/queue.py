"""The job queue, kept behind this one module (arq is in maintenance mode: replacing it should
touch only this file and workers/).

Jobs are enqueued with a caller-chosen id; arq refuses a second job with the same id while the
first is queued, running or its result is kept, so delivering an event twice enqueues it once.

`run_worker` runs the worker process (`sweetdream worker`) through Redis outages: arq's Worker
stops with an exception when its Redis connection drops, so each outage ends one Worker and, once
Redis answers again, a new one starts in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, replace
from typing import Any

from arq.connections import RedisSettings, create_pool
from arq.constants import default_queue_name, expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from arq.worker import Worker, create_worker
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("sweetdream.worker")

# What "Redis is unreachable" looks like from redis-py and from the socket underneath.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
# Between tries to reach a Redis that went away: 1 s, 2 s, 4 s ... at most 30 s.
RECONNECT_FIRST_DELAY = 1.0
RECONNECT_MAX_DELAY = 30.0
STEADY_AFTER = 60.0

DELIVER_EVENT = "deliver_event"
MAKE_THUMBNAIL = "make_thumbnail"
# A finished job's result is kept this long; a repeat enqueue within it is a no-op (the sweep
# relies on that while a job waits to be retried). Jobs are idempotent, so a later repeat is harmless.
KEEP_RESULT_SECONDS = 3600


def redis_settings(url: str) -> RedisSettings:
    """arq's settings for a redis:// or unix:// URL (a unix URL names its database as ?db=N)."""
    return RedisSettings.from_dsn(url)


# arq's `enqueue_job` in one round trip instead of three (WATCH, EXISTS, MULTI/EXEC), as atomic:
# a job whose id is queued, running or has its result kept is not enqueued again (returns 0).
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


def add_enqueue(pipe: Pipeline, function: str, job_id: str, *args: object) -> None:
    """Queue the enqueue of `function(*args)` as job `job_id` on `pipe` (sent with its other commands):
    the job as arq writes it (its serializer, key, expiry and queue score), due now."""
    now_ms = timestamp_ms()
    job = serialize_job(function, args, {}, None, now_ms)
    keys = (job_key_prefix + job_id, result_key_prefix + job_id, default_queue_name)
    pipe.eval(_ENQUEUE, len(keys), *keys, str(expires_extra_ms), job, str(now_ms), job_id)  # type: ignore[arg-type]


async def enqueue(redis: Redis, function: str, job_id: str, *args: object) -> bool:
    """Enqueue `function(*args)` as job `job_id` (through the caller's Redis connection pool).
    False when that job already exists."""
    async with redis.pipeline(transaction=False) as pipe:
        add_enqueue(pipe, function, job_id, *args)
        (added,) = await pipe.execute()
    return bool(added)


DUE_SLACK_MS = 1000


@dataclass(frozen=True)
class QueueStats:
    depth: int  # jobs due now: waiting, or running (arq keeps a job in its queue until it ends)
    deferred: int  # jobs waiting for a later time (a retry's backoff)
    oldest_age: float  # seconds since the oldest job due now became due; 0 with none


async def queue_stats(redis: Redis, now: float | None = None) -> QueueStats:
    """How far behind the workers are: arq's queue is a sorted set scored by when each job is due (ms)."""
    now_ms = int((time.time() if now is None else now) * 1000)
    # arq rounds its scores to the nearest ms and other tasks' clocks differ by a few: a job due
    # within DUE_SLACK_MS is due now (a retry's backoff is seconds).
    due_by = now_ms + DUE_SLACK_MS
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(default_queue_name, "-inf", due_by)
        pipe.zcount(default_queue_name, f"({due_by}", "+inf")
        pipe.zrange(default_queue_name, 0, 0, withscores=True)
        due, later, first = await pipe.execute()
    oldest_age = max(0.0, (now_ms - first[0][1]) / 1000) if due and first else 0.0
    return QueueStats(depth=int(due), deferred=int(later), oldest_age=oldest_age)


def make_worker(settings_cls: Any, **overrides: Any) -> Worker:
    """arq's Worker for `settings_cls`, with its in-progress mark set by `settings_cls.in_progress_timeout`
    when it has one. arq makes the mark the longest function timeout + 10 s, for every job: one long
    job (the nightly export) would make a killed worker's short jobs wait that long too. Long jobs
    keep their own mark alive instead (workers/jobs.py: the export's heartbeat)."""
    worker = create_worker(settings_cls, **overrides)
    mark = getattr(settings_cls, "in_progress_timeout", None)
    if mark:
        worker.in_progress_timeout_s = float(mark)
    return worker


def reconnect_delay(failures: int) -> float:
    """Seconds to wait after the `failures`-th failed try in a row to reach Redis."""
    return float(min(RECONNECT_FIRST_DELAY * 2 ** (failures - 1), RECONNECT_MAX_DELAY))


def run_worker(settings_cls: Any) -> None:
    """Run the arq worker described by `settings_cls` until SIGTERM/SIGINT.

    When Redis drops, the running Worker stops (jobs in flight finish; one that cannot record its
    end is run again when its in-progress mark expires, and every job is idempotent); one warning is
    logged, Redis is tried again with backoff (quietly), and a new Worker starts when it answers.
    Jobs lost with Redis's own data come back with the outbox sweep, which runs at each start.
    """
    asyncio.run(_run_through_outages(settings_cls))


async def _run_through_outages(settings_cls: Any) -> None:
    stop = asyncio.Event()
    settings: RedisSettings = replace(settings_cls.redis_settings, conn_retries=0)  # our retries, our log
    failures = 0  # failed tries in a row; a Worker that ran STEADY_AFTER seconds starts the count over
    down_since: float | None = None
    while not stop.is_set():
        _stop_on_signals(stop)  # until a Worker installs arq's own (graceful) handlers
        if failures:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), reconnect_delay(failures))
            if stop.is_set():
                break
        try:
            pool = await create_pool(settings)
        except REDIS_DOWN as exc:
            failures += 1
            if down_since is None:  # not connected since the start: say so, once
                down_since = time.monotonic()
                log.warning("Redis unreachable (%s); trying again with backoff", type(exc).__name__)
            log.debug("Redis still unreachable (%s)", exc)
            continue
        if down_since is not None:
            log.info("Redis is back after %.0f s; the worker carries on", time.monotonic() - down_since)
            down_since = None
        started = time.monotonic()
        worker = make_worker(settings_cls, redis_pool=pool)
        worker.on_stop = lambda _signal: stop.set()
        try:
            worker.main_task = asyncio.ensure_future(worker.main())
            await worker.main_task
        except asyncio.CancelledError:  # arq's signal handler cancels main_task: a clean stop
            if not stop.is_set():
                raise
        except REDIS_DOWN as exc:
            down_since = time.monotonic()
            failures = 1 if down_since - started >= STEADY_AFTER else failures + 1  # a flapping Redis waits longer
            log.warning("Redis connection lost (%s); reconnecting with backoff", type(exc).__name__)
        finally:
            await _close(worker)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)


async def _close(worker: Worker) -> None:
    """Worker.close, minus what cannot work while Redis is down (it would skip on_shutdown)."""
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    with contextlib.suppress(*REDIS_DOWN):
        await worker.pool.delete(worker.health_check_key)
    if worker.on_shutdown:
        await worker.on_shutdown(worker.ctx)
    with contextlib.suppress(*REDIS_DOWN):
        await worker.pool.aclose(close_connection_pool=True)
