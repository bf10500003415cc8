"""Job entry points: thin wrappers that call domain services. Each is safe to run twice."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from arq import Retry
from arq.worker import Function, func
from sqlalchemy.ext.asyncio import AsyncEngine

from sweetdream.analytics import services as analytics
from sweetdream.cart.services import purge_stale_carts
from sweetdream.catalog.images import ImageStorage
from sweetdream.db import engine_outside_request, sessions_for
from sweetdream.fulfillment.notifications import Notifier
from sweetdream.fulfillment.services import Fulfillment
from sweetdream.payments import gateway_for
from sweetdream.platform.logs import configure_logging
from sweetdream.platform.mail import mailer_for
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


def backoff(attempt: int, base: float) -> float:
    """Seconds before try `attempt + 1`: base, 2×base, 4×base ... capped."""
    return float(min(base * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))


async def startup(ctx: dict[str, Any]) -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    # One connection per running job at most (WorkerSettings.max_jobs = 20: pool + overflow), plus
    # the metrics refresh now and then. WORKER_DB_POOL_SIZE sizes it (deploy/README.md: the budget).
    engine = engine_outside_request(settings.database_url, pool_size=settings.worker_db_pool_size)
    notifier = Notifier(
        mailer_for(
            settings.mail_backend,
            settings.var_dir,
            smtp_url=settings.smtp_url,
            region=settings.aws_region,
            endpoint_url=settings.ses_endpoint_url,
        ),
        settings.mail_from,
        settings.templates_dir,
        settings.site_name,
        settings.public_url,
    )
    fulfillment = Fulfillment(
        session=sessions_for(engine),
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
    """A product image's 400 px WebP next to the original (catalog/images.py); safe to run twice."""
    return await ImageStorage(state(ctx).settings).write_thumbnail(key)


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
