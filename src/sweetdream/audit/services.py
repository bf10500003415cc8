"""Recording and reading the audit log. Services of every domain call `record` inside their own unit
of work, so an action and its audit row commit (or roll back) together."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.audit.models import AuditEntry
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop, translate_known


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


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    """What the log is narrowed to; every field optional. Days are shop days (`zone`)."""

    action: str = ""
    actor: str = ""  # an email (or "cli"), matched from its start
    target_type: str = ""
    target_id: str = ""
    since: date | None = None  # from the start of this shop day
    until: date | None = None  # to the end of this shop day
    zone: str = "Asia/Ho_Chi_Minh"


def shop_day_start(day: date, zone: str) -> datetime:
    """The UTC instant the shop's day begins (00:00 in the shop's zone)."""
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _conditions(filters: AuditFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.action:
        conditions.append(AuditEntry.action == filters.action)
    if filters.actor:
        escaped = filters.actor.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(func.lower(AuditEntry.actor_email).like(escaped + "%"))
    if filters.target_type:
        conditions.append(AuditEntry.target_type == filters.target_type)
    if filters.target_id:
        conditions.append(AuditEntry.target_id == filters.target_id)
    if filters.since:
        conditions.append(AuditEntry.occurred_at >= shop_day_start(filters.since, filters.zone))
    if filters.until:
        conditions.append(AuditEntry.occurred_at < shop_day_start(filters.until + timedelta(days=1), filters.zone))
    return conditions


async def entries(
    db: AsyncSession, filters: AuditFilters, before_id: int | None, size: int
) -> tuple[list[AuditEntry], int | None]:
    """One page of the log, newest first (keyset on the id), and the id the next page starts before."""
    conditions = _conditions(filters)
    if before_id is not None:
        conditions.append(AuditEntry.id < before_id)
    rows = list(await db.scalars(select(AuditEntry).where(*conditions).order_by(AuditEntry.id.desc()).limit(size + 1)))
    return rows[:size], (rows[size - 1].id if len(rows) > size else None)


# A loose index scan: one index probe per distinct action, however long the log grows (a plain
# DISTINCT would read every row's action).
_DISTINCT_ACTIONS = text(
    """
    WITH RECURSIVE seen(action) AS (
        SELECT min(action) FROM audit_entries
        UNION ALL
        SELECT (SELECT min(e.action) FROM audit_entries e WHERE e.action > seen.action)
        FROM seen WHERE seen.action IS NOT NULL
    )
    SELECT action FROM seen WHERE action IS NOT NULL
    """
)


async def actions(db: AsyncSession) -> list[str]:
    """Every action the log holds, in order, for the filter's list (`ix_audit_entries_action_id`)."""
    return list(await db.scalars(_DISTINCT_ACTIONS))


# What a person reads for each field the services record (before/after keys); a key not listed
# is shown as it is.
FIELD_LABELS = {
    "name": gettext_noop("Name"),
    "slug": gettext_noop("Address (slug)"),
    "category_id": gettext_noop("Category"),
    "description": gettext_noop("Description"),
    "max_per_customer": gettext_noop("Most per customer"),
    "is_active": gettext_noop("On sale"),
    "active": gettext_noop("Account active"),
    "sizes": gettext_noop("Sizes"),
    "price": gettext_noop("Price"),
    "starts_at": gettext_noop("Class starts (UTC)"),
    "stock": gettext_noop("Stock"),
    "reason": gettext_noop("Reason"),
    "delta": gettext_noop("Change"),
    "images": gettext_noop("Images"),
    "order": gettext_noop("Order of categories"),
    "status": gettext_noop("Status"),
    "role": gettext_noop("Role"),
    "day": gettext_noop("Shop day"),
    "run": gettext_noop("Export run"),
    # An export's filters (orders.export): the order list's query parameters.
    "q": gettext_noop("Search"),
    "payment": gettext_noop("Payment method"),
    "payment_status": gettext_noop("Payment status"),
    "from": gettext_noop("From"),
    "to": gettext_noop("To"),
}


# Stored values a domain names for people, by field (an order's status "PREPARING" reads "Being
# prepared"): each domain registers its own words (`name_values`), so the audit log needs no import of it.
VALUE_WORDS: dict[str, dict[str, str]] = {}


def name_values(field: str, words: dict[str, str]) -> None:
    """`words`: stored value -> source string (gettext_noop), translated when the log is read."""
    VALUE_WORDS.setdefault(field, {}).update(words)


@dataclass(frozen=True)
class Change:
    field: str
    before: str
    after: str

    @property
    def label(self) -> str:
        return _(FIELD_LABELS[self.field]) if self.field in FIELD_LABELS else self.field


def _shown(field: str, value: Any) -> str:
    if isinstance(value, str) and value in VALUE_WORDS.get(field, {}):
        return _(VALUE_WORDS[field][value])
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str):
        return translate_known(value)  # a value from the shop's own lists ("paid") in the reader's words
    return str(value)


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[Change]:
    """The fields that differ, in a stable order: what a person reads instead of two JSON blobs.
    A field only in `after` was added (before "—"); only in `before`, removed (after "—")."""
    old, new = before or {}, after or {}
    return [
        Change(key, _shown(key, old.get(key)), _shown(key, new.get(key)))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]
