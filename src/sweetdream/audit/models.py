"""One row per admin action: who, when, what, before/after and the note they gave.

Append-only by construction: a trigger (see the migration) refuses UPDATE and DELETE, so not even a
bug in a route can rewrite history. Ids are a sequence, so the newest-first list pages by keyset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import BigInteger, Identity, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column


class AuditEntry(DefaultBase):
    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_action_id", "action", "id"),
        Index("ix_audit_entries_actor_id_id", "actor_id", "id"),
        Index("ix_audit_entries_target", "target_type", "target_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=text("now()"))
    actor_id: Mapped[UUID | None] = mapped_column(GUID, nullable=True)  # None: the CLI or a job
    actor_email: Mapped[str] = mapped_column(String(320))  # a snapshot: the log outlives a renamed user
    action: Mapped[str] = mapped_column(String(64))  # "order.move", "product.update", "user.promote", ...
    target_type: Mapped[str] = mapped_column(String(32))  # "order", "product", "variant", "user", ...
    target_id: Mapped[str] = mapped_column(String(64))
    target_label: Mapped[str] = mapped_column(String(200), default="")  # what a person recognises
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
