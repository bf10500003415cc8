"""Running the export: one run at a time per day, tries with backoff, the `export_runs` record, the
email to the admins when a day finally fails. `sweetdream export`, the worker's jobs and the admin's
button all come through `Exporter.run`.

One run per day at a time: a PostgreSQL advisory lock on (EXPORT_LOCK_CLASS, the day), held on a
connection of its own for the whole run. A second run for the same day either refuses (`ExportBusy`:
the CLI) or waits for the first to finish and then exports again (the jobs: same bytes, no harm).
A process that dies drops its connection and the lock with it; the next run for that day marks
the dead run's row failed ("interrupted").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from sweetdream.analytics.export import ObjectStore, count_events, day_prefix, write_day
from sweetdream.analytics.export_models import FAILED, QUEUED, RUNNING, SUCCEEDED, ExportRun
from sweetdream.audit.services import Actor, record
from sweetdream.platform.i18n import gettext as _

log = logging.getLogger("sweetdream.export")

EXPORT_LOCK_CLASS = 0x5D0E  # advisory lock namespace of the export: (class, day ordinal)
EXPORT_TRIES = 3  # tries of a run before the day counts as failed
MAX_ERROR_LENGTH = 2000
PROGRESS_EVERY_SECONDS = 0.5  # how often a running export writes its count to its row
LOCK_POLL_SECONDS = 0.5

EXPORT_DAY_JOB = "export_day"


class ExportBusy(RuntimeError):
    """Another run is exporting that day right now."""


@dataclass(frozen=True)
class ExportSettings:
    events_per_part: int
    retry_delay: float  # first retry's delay, doubled each try
    tries: int = EXPORT_TRIES
    lock_wait: float = 0.0  # seconds to wait for another run of the day; 0 refuses at once


OnProgress = Callable[[int, int], None]  # (events written, events expected)


class Exporter:
    def __init__(
        self,
        engine: AsyncEngine,
        store: ObjectStore,
        settings: ExportSettings,
        notify_failure: Callable[[AsyncSession, ExportRun], Any] | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings
        self.session = async_sessionmaker(engine, expire_on_commit=False)
        self.notify_failure = notify_failure

    async def run(
        self, day: date, trigger: str, run_id: int | None = None, on_progress: OnProgress | None = None
    ) -> ExportRun:
        """Export `day` with up to `tries` tries. Returns the run's row: succeeded or failed (a failed
        run is recorded, logged as `export failed` and emailed to the admins). Raises ExportBusy when
        another run holds the day and the wait (lock_wait) ran out."""
        async with self.engine.connect() as lock:
            try:
                await self._lock(lock, day)
            except ExportBusy as exc:
                if run_id is not None:  # the admin's queued run: it did not happen, and says why
                    await self._finish(run_id, FAILED, 0, error=str(exc))
                raise
            try:
                return await self._run_locked(day, trigger, run_id, on_progress)
            finally:
                await asyncio.shield(self._unlock(lock, day))

    async def _lock(self, lock: AsyncConnection, day: date) -> None:
        deadline = time.monotonic() + self.settings.lock_wait
        while True:
            got = await lock.scalar(select(func.pg_try_advisory_lock(EXPORT_LOCK_CLASS, day.toordinal())))
            await lock.commit()  # a session lock: it outlives the transaction, which must not idle open
            if got:
                return
            if time.monotonic() >= deadline:
                raise ExportBusy(_("An export of %(day)s is running already.") % {"day": day.isoformat()})
            await asyncio.sleep(LOCK_POLL_SECONDS)

    async def _unlock(self, lock: AsyncConnection, day: date) -> None:
        await lock.scalar(select(func.pg_advisory_unlock(EXPORT_LOCK_CLASS, day.toordinal())))
        await lock.commit()

    async def _run_locked(
        self, day: date, trigger: str, run_id: int | None, on_progress: OnProgress | None
    ) -> ExportRun:
        async with self.engine.connect() as conn:
            expected = await count_events(conn, day)
            await conn.commit()
        run = await self._start(day, trigger, run_id, expected)
        tracker = _ProgressWriter(self.session, run.id, expected, on_progress)
        for attempt in range(1, self.settings.tries + 1):
            try:
                async with self.engine.connect() as conn:
                    manifest = await write_day(conn, self.store, day, self.settings.events_per_part, tracker)
            except asyncio.CancelledError:
                await asyncio.shield(self._finish(run.id, FAILED, attempt, error="cancelled (job timeout or shutdown)"))
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
                if attempt < self.settings.tries:
                    delay = self.settings.retry_delay * 2 ** (attempt - 1)
                    log.warning("export of %s: try %d failed (%s); retrying in %.1f s", day, attempt, error, delay)
                    await self._note_attempt(run.id, attempt, error)
                    await asyncio.sleep(delay)
                    continue
                log.error("export failed: shop day %s after %d tries: %s", day, attempt, error)
                return await self._failed(run.id, attempt, error)
            log.info(
                "export of shop day %s: %d events in %d part(s) to %s%s",
                day,
                manifest.count,
                len(manifest.parts),
                self.store.description,
                day_prefix(day),
            )
            return await self._finish(run.id, SUCCEEDED, attempt, count=manifest.count, parts=len(manifest.parts))
        raise AssertionError("unreachable: the last try returns")

    async def _start(self, day: date, trigger: str, run_id: int | None, expected: int) -> ExportRun:
        """Our run's row, running. We hold the day's lock, so any other row of the day still marked
        running (or queued and older than ours) belongs to a run that died: say so."""
        now = datetime.now(UTC)
        async with self.session() as db:
            await db.execute(
                update(ExportRun)
                .where(ExportRun.day == day, ExportRun.outcome == RUNNING)
                .values(outcome=FAILED, finished_at=now, error="interrupted: its process ended before it finished")
            )
            run = await db.get(ExportRun, run_id) if run_id is not None else None
            if run is None:
                run = ExportRun(day=day, trigger=trigger, outcome=RUNNING, requested_at=now)
                db.add(run)
            run.outcome, run.started_at, run.expected, run.count, run.error = RUNNING, now, expected, 0, ""
            await db.commit()
            return run

    async def _note_attempt(self, run_id: int, attempt: int, error: str) -> None:
        async with self.session() as db:
            await db.execute(update(ExportRun).where(ExportRun.id == run_id).values(attempts=attempt, error=error))
            await db.commit()

    async def _finish(self, run_id: int, outcome: str, attempt: int, **values: Any) -> ExportRun:
        async with self.session() as db:
            run = await db.get_one(ExportRun, run_id)
            run.outcome, run.attempts, run.finished_at = outcome, attempt, datetime.now(UTC)
            if outcome == SUCCEEDED:
                run.error = ""
            for name, value in values.items():
                setattr(run, name, value)
            await db.commit()
            return run

    async def _failed(self, run_id: int, attempt: int, error: str) -> ExportRun:
        run = await self._finish(run_id, FAILED, attempt, error=error)
        if self.notify_failure is not None:
            try:
                async with self.session() as db:
                    await self.notify_failure(db, run)
            except Exception:  # the run's outcome is recorded; the alarm and the dashboard still say so
                log.exception("could not email the admins about the failed export of %s", run.day)
        return run


class _ProgressWriter:
    """Called after each batch: tells the caller (the CLI's bar) and, at most every
    PROGRESS_EVERY_SECONDS, writes the count to the run's row (the admin page's live progress)."""

    def __init__(
        self, session: async_sessionmaker[AsyncSession], run_id: int, expected: int, on_progress: OnProgress | None
    ) -> None:
        self.session, self.run_id, self.expected, self.on_progress = session, run_id, expected, on_progress
        self.last_write = 0.0

    async def __call__(self, written: int) -> None:
        if self.on_progress is not None:
            self.on_progress(written, self.expected)
        now = time.monotonic()
        if now - self.last_write >= PROGRESS_EVERY_SECONDS:
            self.last_write = now
            async with self.session() as db:
                await db.execute(update(ExportRun).where(ExportRun.id == self.run_id).values(count=written))
                await db.commit()


# --- The admin's view ---------------------------------------------------------------------------------


async def recent_runs(db: AsyncSession, limit: int = 20) -> list[ExportRun]:
    return list((await db.scalars(select(ExportRun).order_by(ExportRun.id.desc()).limit(limit))).all())


# export_runs.id is a bigint: a larger id in an address is no run (the driver refuses to send it).
LARGEST_RUN_ID = 2**63 - 1


async def run_by_id(db: AsyncSession, run_id: int) -> ExportRun | None:
    if not 0 < run_id <= LARGEST_RUN_ID:
        return None
    return await db.get(ExportRun, run_id)


async def request_export(db: AsyncSession, day: date, actor: Actor) -> ExportRun:
    """The admin's "Export this day": a queued run and its audit row (flushed; the caller commits,
    then enqueues the job with `enqueue_export`)."""
    run = ExportRun(
        day=day, trigger="admin", outcome=QUEUED, requested_at=datetime.now(UTC), requested_by=actor.id, count=0
    )
    db.add(run)
    await db.flush()
    await record(
        db,
        actor,
        "analytics.export",
        "export_run",
        run.id,
        target_label=day.isoformat(),
        after={"day": day.isoformat(), "run": run.id},
    )
    return run


async def enqueue_export(redis: Any, run: ExportRun) -> bool:
    from sweetdream.platform.queue import enqueue

    return await enqueue(redis, EXPORT_DAY_JOB, f"export:{run.id}", run.day.isoformat(), run.id)


def failure_notifier(notifier: Any) -> Callable[[AsyncSession, ExportRun], Any]:
    """The failed-export email to every admin, each at most once per run (the notifier's claim)."""
    from sweetdream.accounts.services import UserService

    async def notify(db: AsyncSession, run: ExportRun) -> None:
        admins = await UserService(session=db).admin_emails()
        context = {"day": run.day.isoformat(), "error": run.error, "attempts": run.attempts, "run_id": run.id}
        for address, language in admins:  # each in the admin's own language
            email = notifier.render("export_failed", address, language, **context)
            await notifier.send_once(db, f"export:{run.id}:failed:{address}", email)

    return notify


def run_label(run: ExportRun) -> str:
    """What a person reads for a run's outcome."""
    labels = {
        QUEUED: _("Queued"),
        RUNNING: _("Running"),
        SUCCEEDED: _("Succeeded"),
        FAILED: _("Failed"),
    }
    return labels.get(run.outcome, run.outcome)


def exporter_for(settings: Any, engine: AsyncEngine, notifier: Any = None, lock_wait: float = 0.0) -> Exporter:
    """The exporter the settings describe: S3_BUCKET (or var/exports/), part size, retry delay."""
    from sweetdream.analytics.export import store_for

    store = store_for(settings.s3_bucket, settings.aws_region, settings.s3_endpoint_url, settings.var_dir)
    export_settings = ExportSettings(
        events_per_part=max(1, settings.export_events_per_part),
        retry_delay=settings.export_retry_delay,
        lock_wait=lock_wait,
    )
    notify = failure_notifier(notifier) if notifier is not None else None
    return Exporter(engine, store, export_settings, notify)
