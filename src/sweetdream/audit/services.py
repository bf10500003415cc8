"""Recording and reading the audit log. Services of every domain call `record` inside their own unit
of work, so an action and its audit row commit (or roll back) together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.audit.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    """Who acted: a signed-in admin (id and email), or a named system actor ("cli", "worker")."""

    id: UUID | None
    email: str


async def record(
    db: AsyncSession,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object,
    *,
    target_label: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str = "",
) -> AuditEntry:
    """Adds one audit row to the caller's transaction (flushed, not committed)."""
    entry = AuditEntry(
        actor_id=actor.id,
        actor_email=actor.email,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        target_label=target_label[:200],
        before=before,
        after=after,
        note=note,
    )
    db.add(entry)
    await db.flush()
    return entry
