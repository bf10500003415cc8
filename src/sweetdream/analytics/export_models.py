"""One row per run of the nightly export (the cron job, `sweetdream export` or the admin's button).

The exported objects carry no run time (a rerun must be byte-identical), so when and how each run
went lives here: outcome, how many events it wrote (updated as it goes, for the progress bar),
how many part files, and the error of a run that finally failed.
"""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import BigInteger, Date, Identity, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

QUEUED = "queued"  # asked for from the admin page, waiting for a worker
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"

TRIGGERS = ("cron", "cli", "admin")


class ExportRun(DefaultBase):
    __tablename__ = "export_runs"
    __table_args__ = (Index("ix_export_runs_day_id", "day", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    day: Mapped[date] = mapped_column(Date)  # the shop day (Asia/Ho_Chi_Minh) exported
    trigger: Mapped[str] = mapped_column(String(16))  # cron, cli or admin
    outcome: Mapped[str] = mapped_column(String(16))  # queued, running, succeeded or failed
    requested_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    expected: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # events in the day when it started
    count: Mapped[int] = mapped_column(BigInteger, default=0)  # events written (so far, while running)
    parts: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[UUID | None] = mapped_column(GUID, nullable=True)  # the admin who pressed the button
