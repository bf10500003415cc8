"""The outbox relay: rows written with an order's change are handed to the job queue.

Right after a commit the writer enqueues its own rows (`relay`); a sweep every minute enqueues
any row still undelivered (Redis was down, the process died between commit and enqueue). The
row id is the job id, so a row enqueued by both paths runs once. A row is marked delivered by
its job, only after the work is done; each attempt and the last error are kept on the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.orders.models import OutboxEvent
from sweetdream.platform.queue import DELIVER_EVENT, add_enqueue, enqueue

log = logging.getLogger("sweetdream.outbox")

# The sweep leaves young rows to the writer's own relay, so the two rarely race (harmless if they do).
SWEEP_GRACE = timedelta(seconds=30)
SWEEP_BATCH = 500


async def _offer(
    redis: Redis,
    event_ids: Sequence[UUID],
    notes: Sequence[tuple[str, bytes]] = (),
    also: Callable[[Pipeline], None] | None = None,
) -> None:
    """Enqueue each row's job, and publish `notes` (pub/sub channel, message), in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        if also is not None:
            also(pipe)
        for channel, message in notes:
            pipe.publish(channel, message)
        for event_id in event_ids:
            add_enqueue(pipe, DELIVER_EVENT, str(event_id), str(event_id))
        await pipe.execute()


async def relay(
    redis: Redis | None,
    event_ids: Sequence[UUID],
    notes: Sequence[tuple[str, bytes]] = (),
    also: Callable[[Pipeline], None] | None = None,
) -> int:
    """Enqueue these committed rows now (Redis only: no database work on the checkout's path), with
    the live pages' `notes` (orders/live.py) and the commands `also` adds (the catalog's invalidation)
    in the same round trip. Never raises: a failure here is the sweep's to repair (and a lost note only
    delays a live page until its next load)."""
    if redis is None or not (event_ids or notes or also):
        return 0
    try:
        await _offer(redis, event_ids, notes, also)
    except Exception:  # Redis is unreachable: the order stands, the sweep delivers later
        log.warning(
            "outbox relay failed for %d event(s); the sweep will retry (what was sent with them is lost)",
            len(event_ids),
            exc_info=True,
        )
        return 0
    return len(event_ids)


async def sweep(db: AsyncSession, redis: Redis, grace: timedelta = SWEEP_GRACE) -> int:
    """Enqueue undelivered, not-failed rows older than `grace`. Returns how many were offered."""
    cutoff = datetime.now(UTC) - grace
    ids = list(
        await db.scalars(
            select(OutboxEvent.id)
            .where(OutboxEvent.delivered_at.is_(None), OutboxEvent.failed_at.is_(None))
            .where(OutboxEvent.created_at <= cutoff)
            .order_by(OutboxEvent.created_at)
            .limit(SWEEP_BATCH)
        )
    )
    await _offer(redis, ids)
    if ids:
        await db.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(enqueued_at=func.now()))
    await db.commit()
    return len(ids)


async def pending(db: AsyncSession, event_id: UUID) -> OutboxEvent | None:
    """The row to work on; None when it is already delivered or does not exist."""
    event = await db.scalar(select(OutboxEvent).where(OutboxEvent.id == event_id))
    if event is None or event.delivered_at is not None:
        return None
    return event


async def mark_delivered(db: AsyncSession, event_id: UUID) -> None:
    """Count the attempt and mark the row delivered (in the caller's last transaction). A second
    run that finishes later finds it delivered and changes nothing."""
    await db.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id == event_id, OutboxEvent.delivered_at.is_(None))
        .values(attempts=OutboxEvent.attempts + 1, delivered_at=func.now(), failed_at=None)
    )


async def record_failure(db: AsyncSession, event_id: UUID, error: str, final: bool) -> None:
    """Count a failed attempt (in its own transaction: the job's work was rolled back)."""
    values: dict[str, object] = {"attempts": OutboxEvent.attempts + 1, "last_error": error[:2000]}
    if final:
        values["failed_at"] = func.now()
    await db.execute(update(OutboxEvent).where(OutboxEvent.id == event_id).values(**values))
    await db.commit()


@dataclass(frozen=True)
class FailedEvent:
    id: UUID
    topic: str
    payload: dict[str, object]
    attempts: int
    last_error: str
    failed_at: datetime


async def failed(db: AsyncSession, limit: int = 100) -> list[FailedEvent]:
    rows = await db.scalars(
        select(OutboxEvent).where(OutboxEvent.failed_at.is_not(None)).order_by(OutboxEvent.failed_at).limit(limit)
    )
    return [
        FailedEvent(r.id, r.topic, r.payload, r.attempts, r.last_error or "", r.failed_at)  # type: ignore[arg-type]
        for r in rows
    ]


async def undelivered_count(db: AsyncSession) -> int:
    stmt = select(func.count()).where(OutboxEvent.delivered_at.is_(None), OutboxEvent.failed_at.is_(None))
    return int(await db.scalar(stmt) or 0)


async def retry_failed(db: AsyncSession, redis: Redis, event_ids: Sequence[UUID] | None = None) -> int:
    """Give failed rows another go: clear the failure and enqueue them under a fresh job id
    (the old job id is still remembered by the queue as finished)."""
    stmt = select(OutboxEvent).where(OutboxEvent.failed_at.is_not(None))
    if event_ids is not None:
        stmt = stmt.where(OutboxEvent.id.in_(event_ids))
    rows = list(await db.scalars(stmt.with_for_update()))
    for row in rows:
        row.failed_at = None
        row.last_error = None
        row.enqueued_at = datetime.now(UTC)
    await db.commit()
    for row in rows:
        await enqueue(redis, DELIVER_EVENT, f"{row.id}:retry:{row.attempts}", str(row.id))
    return len(rows)


@dataclass(frozen=True)
class OutboxLag:
    oldest_undelivered_age: float  # seconds since the oldest row still waiting was written; 0 with none
    failed: int  # rows that gave up after MAX_TRIES (`sweetdream outbox` lists them)


async def lag(db: AsyncSession) -> OutboxLag:
    """How far event delivery is behind, for the worker's metrics: one read-only query of two
    subqueries, each answered from its partial index (ix_outbox_undelivered, ix_outbox_failed)."""
    oldest = (
        select(func.min(OutboxEvent.created_at))
        .where(OutboxEvent.delivered_at.is_(None), OutboxEvent.failed_at.is_(None))
        .scalar_subquery()
    )
    failed = select(func.count()).where(OutboxEvent.failed_at.is_not(None)).scalar_subquery()
    age, failed_count = (await db.execute(select(func.extract("epoch", func.now() - oldest), failed))).one()
    return OutboxLag(oldest_undelivered_age=max(0.0, float(age or 0)), failed=int(failed_count))
