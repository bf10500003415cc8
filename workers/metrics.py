"""The worker's Prometheus metrics, served on 127.0.0.1:WORKER_METRICS_PORT for the task's agent.

Per job function: how many runs succeeded, failed or were retried (`observed` wraps each job).
Every METRICS_REFRESH_SECONDS the worker reads how far behind the shop is: jobs due in the queue
and the age of the oldest (what worker autoscaling tracks), deferred retries, the age of the
oldest undelivered outbox row (outbox lag) and how many rows gave up (failed events).

Every worker task publishes the same queue and outbox figures (they are the shop's, not the
task's): CloudWatch alarms and scaling read their Maximum, counters their Sum.

The nightly export does not exist yet (DESIGN.md: planned). `sweetdream_export_runs_total` is
declared with both outcomes at 0 so the alarm on failed exports has its metric from day one; the
export job will count its runs with `EXPORT_RUNS.labels(outcome).inc()`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, ParamSpec, TypeVar
from wsgiref.simple_server import WSGIServer

from arq import Retry
from prometheus_client import Counter, Gauge, start_http_server
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.orders.outbox import lag
from sweetdream.platform.queue import queue_stats

log = logging.getLogger("sweetdream.worker")

METRICS_REFRESH_SECONDS = 15.0
METRICS_ADDRESS = "127.0.0.1"  # the agent sidecar shares the task's network namespace

JOBS = Counter(
    "sweetdream_jobs", "Job runs by function and outcome (succeeded, failed, retried).", ["function", "outcome"]
)
QUEUE_DEPTH = Gauge("sweetdream_queue_depth", "Jobs due now (waiting or running).", multiprocess_mode="max")
QUEUE_DEFERRED = Gauge("sweetdream_queue_deferred", "Jobs waiting for their retry time.", multiprocess_mode="max")
QUEUE_OLDEST_AGE = Gauge(
    "sweetdream_queue_oldest_job_age_seconds",
    "Seconds since the oldest job due now became due.",
    multiprocess_mode="max",
)
OUTBOX_LAG = Gauge(
    "sweetdream_outbox_lag_seconds", "Age of the oldest undelivered outbox event.", multiprocess_mode="max"
)
OUTBOX_FAILED = Gauge(
    "sweetdream_outbox_failed_events", "Outbox events that gave up after every try.", multiprocess_mode="max"
)
REFRESHED = Gauge(
    "sweetdream_worker_metrics_refreshed_timestamp_seconds",
    "When the queue and outbox figures were last read (Unix time).",
    multiprocess_mode="max",
)
EXPORT_RUNS = Counter("sweetdream_export_runs", "Nightly export runs by outcome (succeeded, failed).", ["outcome"])
for _outcome in ("succeeded", "failed"):
    EXPORT_RUNS.labels(_outcome)

SessionFactory = Callable[[], AbstractAsyncContextManager[AsyncSession]]
P = ParamSpec("P")
R = TypeVar("R")


def observed(job: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`job`, counting each run's outcome under the job's name (the name arq registers it by)."""
    name = job.__name__

    @functools.wraps(job)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = await job(*args, **kwargs)
        except Retry:
            JOBS.labels(name, "retried").inc()
            raise
        except Exception:
            JOBS.labels(name, "failed").inc()
            raise
        JOBS.labels(name, "succeeded").inc()
        return result

    return run


async def refresh(session: SessionFactory, redis: Redis) -> None:
    """Read the queue and the outbox once and set the gauges."""
    queue = await queue_stats(redis)
    async with session() as db:
        outbox = await lag(db)
    QUEUE_DEPTH.set(queue.depth)
    QUEUE_DEFERRED.set(queue.deferred)
    QUEUE_OLDEST_AGE.set(queue.oldest_age)
    OUTBOX_LAG.set(outbox.oldest_undelivered_age)
    OUTBOX_FAILED.set(outbox.failed)
    REFRESHED.set(time.time())


async def refresh_forever(session: SessionFactory, redis: Redis) -> None:
    """`refresh` every METRICS_REFRESH_SECONDS until cancelled. A failed read keeps the last
    figures (the refreshed timestamp says how old they are) and is tried again next time."""
    while True:
        try:
            await refresh(session, redis)
        except Exception as exc:  # Redis or the database is down: the worker says so elsewhere
            log.debug("worker metrics not refreshed: %s", type(exc).__name__)
        await asyncio.sleep(METRICS_REFRESH_SECONDS)


_server: WSGIServer | None = None


def serve(port: int) -> int:
    """Serve /metrics on 127.0.0.1:port, once per process (startup runs again after a Redis
    outage). Returns the port it listens on (port 0 picks a free one)."""
    global _server
    if _server is None:
        _server, _thread = start_http_server(port, addr=METRICS_ADDRESS)
    return int(_server.server_port)


def stop_serving() -> None:
    global _server
    if _server is not None:
        _server.shutdown()
        _server.server_close()
        _server = None


def start(ctx: dict[str, Any], port: int, session: SessionFactory) -> None:
    serve(port)
    ctx["metrics_refresh"] = asyncio.create_task(refresh_forever(session, ctx["redis"]))


async def stop(ctx: dict[str, Any]) -> None:
    task: asyncio.Task[None] | None = ctx.pop("metrics_refresh", None)
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
