"""Job entry points: thin wrappers that call domain services. Each is safe to run twice."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from arq import Retry
from arq.constants import in_progress_key_prefix
from arq.worker import Function, func
from sqlalchemy.ext.asyncio import AsyncEngine

from sweetdream.analytics import services as analytics
from sweetdream.analytics.export import shop_today
from sweetdream.analytics.export_models import SUCCEEDED
from sweetdream.analytics.export_runs import ExportBusy, exporter_for
from sweetdream.cart.services import purge_stale_carts
from sweetdream.catalog.images import ImageStorage, product_of
from sweetdream.catalog.services import record_thumbnail
from sweetdream.db import engine_outside_request, sessions_for
from sweetdream.fulfillment.notifications import Notifier
from sweetdream.fulfillment.services import Fulfillment
from sweetdream.payments import gateway_for
from sweetdream.platform.heap import freeze_startup_objects
from sweetdream.platform.logs import configure_logging
from sweetdream.platform.queue import MAKE_THUMBNAIL
from sweetdream.settings import Settings
from workers import metrics
from workers.metrics import observed

log = logging.getLogger("sweetdream.worker")

# Tries per event before its outbox row is marked failed (`sweetdream outbox` lists and retries those).
MAX_TRIES = 6
MAX_BACKOFF_SECONDS = 300.0


@dataclass
class WorkerState:
    """The typed view of arq's untyped ctx dict: everything a job needs, made once at startup."""

    settings: Settings
    engine: AsyncEngine
    fulfillment: Fulfillment


def state(ctx: dict[str, Any]) -> WorkerState:
    worker_state: WorkerState = ctx["sweetdream"]
    return worker_state


def arq_timeout(settings: Settings) -> float:
    """arq's hard limit for a job: our own deadline (settings.job_timeout, which records the failure
    and retries) plus a second to do that. arq keeps a running job's in-progress mark for this + 10 s:
    a job whose worker was killed is picked up again only then (71 s with the default 60 s)."""
    return settings.job_timeout + 1


def deliver_event_function(settings: Settings) -> Function:
    """deliver_event as the worker registers it. Its time limit (JOB_TIMEOUT_SECONDS, 60 s) fits
    what a delivery does: one payment-gateway call (a gateway client gives up within ~20 s) and
    one email (SMTP gives up after 30 s)."""
    return func(deliver_event, timeout=arq_timeout(settings))


def in_progress_mark(settings: Settings) -> float:
    """How long arq marks a running job in progress (WorkerSettings.in_progress_timeout): the short
    jobs' limit + 10 s. A killed worker's jobs go to another worker when it expires."""
    return arq_timeout(settings) + 10


async def _keep_in_progress(ctx: dict[str, Any], mark_seconds: float) -> None:
    """While a long job (the export) runs, renew its in-progress mark, so no other worker starts it
    again meanwhile; if this worker is killed, the mark lapses as any other job's would."""
    key = in_progress_key_prefix + str(ctx.get("job_id", ""))
    while True:
        await asyncio.sleep(mark_seconds / 3)
        try:
            await ctx["redis"].pexpire(key, int(mark_seconds * 1000))
        except Exception as exc:  # Redis away: the worker says so elsewhere; the export goes on
            log.debug("could not renew the in-progress mark of %s: %s", key, type(exc).__name__)


def export_timeout(settings: Settings) -> float:
    """The export's own limit (EXPORT_TIMEOUT_SECONDS, 300 s: a million events take well under a
    minute). arq keeps every running job's in-progress mark for the longest function timeout + 10 s,
    so this also sets how long a killed worker's jobs wait before another worker takes them."""
    return settings.export_timeout + 1


def export_day_function(settings: Settings) -> Function:
    """export_day (the admin's "Export this day") with the export's longer time limit."""
    return func(export_day, timeout=export_timeout(settings))


def backoff(attempt: int, base: float) -> float:
    """Seconds before try `attempt + 1`: base, 2×base, 4×base ... capped."""
    return float(min(base * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))


async def startup(ctx: dict[str, Any]) -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    # One connection per running job at most (WorkerSettings.max_jobs = 20: the pool's default size), plus
    # the metrics refresh now and then. WORKER_DB_POOL_SIZE sizes it (deploy/README.md: the budget).
    engine = engine_outside_request(settings.database_url, pool_size=settings.worker_db_pool_size)
    notifier = Notifier.from_settings(settings)
    if not settings.is_dev:
        freeze_startup_objects()
    fulfillment = Fulfillment(
        session=sessions_for(engine, ctx["redis"]),
        redis=ctx["redis"],
        notifier=notifier,
        gateway=gateway_for(settings.payment_gateway),
    )
    ctx["sweetdream"] = WorkerState(settings, engine, fulfillment)
    if settings.worker_metrics_port:
        metrics.start(ctx, settings.worker_metrics_port, fulfillment.session)


async def shutdown(ctx: dict[str, Any]) -> None:
    await metrics.stop(ctx)
    if "sweetdream" in ctx:
        await state(ctx).engine.dispose()


@observed
async def deliver_event(ctx: dict[str, Any], event_id: str) -> str:
    """Handle one outbox row. A failure is recorded on the row and retried with backoff; after
    MAX_TRIES the row is marked failed. Running past JOB_TIMEOUT_SECONDS is such a failure (arq's
    own timeout would end the job as failed with no retry, and keep that result for an hour)."""
    worker = state(ctx)
    attempt = int(ctx.get("job_try", 1))
    try:
        async with asyncio.timeout(worker.settings.job_timeout):
            return await worker.fulfillment.deliver(UUID(event_id), attempt)
    except Exception as exc:
        final = attempt >= MAX_TRIES
        try:
            await worker.fulfillment.record_failure(UUID(event_id), f"{type(exc).__name__}: {exc}", final)
        except Exception:  # the database is down too: the sweep redelivers once the result expires
            log.exception("could not record the failure of event %s", event_id)
        if final:
            log.error("event %s failed after %d tries: %s", event_id, attempt, exc)
            raise
        delay = backoff(attempt, worker.settings.job_retry_delay)
        log.warning("event %s: try %d failed (%s); retrying in %.1f s", event_id, attempt, exc, delay)
        raise Retry(defer=delay) from exc


@observed
async def sweep_outbox(ctx: dict[str, Any]) -> int:
    """Every minute: enqueue outbox rows that were committed but never reached the queue."""
    offered = await state(ctx).fulfillment.sweep()
    if offered:
        log.info("outbox sweep enqueued %d undelivered event(s)", offered)
    return offered


@observed
async def cancel_unpaid_orders(ctx: dict[str, Any]) -> int:
    """Every minute: cancel orders left unpaid 30 minutes after their card was declined (their
    stock returns and the shopper is emailed). Safe to run twice, or on two workers at once."""
    cancelled = await state(ctx).fulfillment.cancel_unpaid()
    if cancelled:
        log.info("cancelled %d order(s) left unpaid after a declined card", cancelled)
    return cancelled


@observed
async def purge_carts(ctx: dict[str, Any]) -> int:
    """Daily: drop cart lines untouched for 30 days."""
    async with state(ctx).fulfillment.session() as db:
        removed = await purge_stale_carts(db)
        await db.commit()
    return removed


def thumbnail_function(settings: Settings) -> Function:
    """make_thumbnail as the worker registers it (one download, one resize, one upload)."""
    return func(make_thumbnail, name=MAKE_THUMBNAIL, timeout=arq_timeout(settings), max_tries=3)


@observed
async def make_thumbnail(ctx: dict[str, Any], key: str) -> str:
    """A product image's 400 px WebP next to the original (catalog/images.py), then recorded on the
    product so the grid's cards use it (their cached pages go stale at the commit); safe to run twice."""
    worker = state(ctx)
    storage = ImageStorage(worker.settings)
    target = await storage.write_thumbnail(key)
    product_id = product_of(key)
    if product_id is not None:
        async with worker.fulfillment.session() as db:
            await record_thumbnail(db, ctx["redis"], product_id, storage.url_for(key), storage.url_for(target))
            await db.commit()
    return target


@observed
async def drain_analytics(ctx: dict[str, Any]) -> int:
    """Every 10 seconds: move buffered shopper events into PostgreSQL (COPY, in batches) and refresh
    the rollups of today and of the days drained. Safe to run twice: a repeated batch adds nothing."""
    worker = state(ctx)
    zone = worker.settings.shop_timezone
    moved, days = await analytics.drain_events(worker.engine, ctx["redis"], zone)
    for day in sorted(analytics.days_to_refresh(datetime.now(UTC), zone, days)):
        await analytics.refresh_rollups(worker.engine, day, zone)
    return moved


@observed
async def analytics_partitions(ctx: dict[str, Any]) -> int:
    """Hourly and at start: partitions for today and the next days (moving any rows that waited in
    DEFAULT), and the retention: partitions older than ANALYTICS_RETENTION_DAYS dropped whole."""
    worker = state(ctx)
    zone = worker.settings.shop_timezone
    today = analytics.shop_day(datetime.now(UTC), zone)
    made = await analytics.ensure_partitions(worker.engine, today, zone)
    dropped = await analytics.drop_old_partitions(worker.engine, today, worker.settings.analytics_retention_days)
    return len(made) + len(dropped)


# How long a job waits for another run of the same day (the cron's and an admin's at once) to finish.
EXPORT_LOCK_WAIT_SECONDS = 120.0


async def _export(ctx: dict[str, Any], day: date, trigger: str, run_id: int | None = None) -> str:
    """Export one shop day and count the outcome. Tries and backoff happen inside the run; a run that
    finally fails is recorded, logged (`export failed`, the alarm's log line) and emailed, not raised:
    arq retrying it would only repeat the same tries."""
    worker = state(ctx)
    exporter = exporter_for(
        worker.settings, worker.engine, worker.fulfillment.notifier, lock_wait=EXPORT_LOCK_WAIT_SECONDS
    )
    heartbeat = asyncio.create_task(_keep_in_progress(ctx, in_progress_mark(worker.settings)))
    try:
        run = await exporter.run(day, trigger, run_id)
    except ExportBusy as exc:
        log.warning("export of %s not started: %s", day, exc)
        return f"{day}: busy"
    finally:
        heartbeat.cancel()
    metrics.EXPORT_RUNS.labels(run.outcome).inc()
    if run.outcome != SUCCEEDED:
        return f"{day}: failed after {run.attempts} tries"
    return f"{day}: {run.count} events in {run.parts} part(s)"


@observed
async def export_day(ctx: dict[str, Any], day: str, run_id: int | None = None) -> str:
    """By hand (the admin's button): export the shop day `day` (YYYY-MM-DD)."""
    return await _export(ctx, date.fromisoformat(day), "admin", run_id)


@observed
async def nightly_export(ctx: dict[str, Any]) -> str:
    """17:00 UTC, midnight in the shop: export the shop day that just ended."""
    return await _export(ctx, shop_today() - timedelta(days=1), "cron")
