"""The audit log, read only: newest first, filtered, paged by keyset. No route here writes: the log
is append-only (a trigger refuses UPDATE and DELETE), and this controller has only GET."""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import urlencode

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.guards import requires_admin
from sweetdream.audit import services as audit
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.parsing import parse_int
from sweetdream.platform.web import render

PAGE_SIZE = 50
MAX_FILTER = 64  # the longest action, target type or id the log stores


def _day(raw: str, errors: dict[str, str], field: str) -> date | None:
    """A day as the date input sends it (YYYY-MM-DD); anything else is the field's error."""
    if not raw:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    errors[field] = _("Give a date as YYYY-MM-DD.")
    return None


class AuditController(Controller):
    path = "/admin/audit"
    guards = [requires_admin]

    @get("/", name="admin-audit")
    async def audit_log(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        action: FromQuery[str] = "",
        actor: FromQuery[str] = "",
        target_type: FromQuery[str] = "",
        target_id: FromQuery[str] = "",
        since: FromQuery[str] = "",
        until: FromQuery[str] = "",
        before: FromQuery[str] = "",
    ) -> Template:
        errors: dict[str, str] = {}
        filters = audit.AuditFilters(
            action=action.strip()[:MAX_FILTER],
            actor=actor.strip().lower()[:320],
            target_type=target_type.strip()[:MAX_FILTER],
            target_id=target_id.strip()[:MAX_FILTER],
            since=_day(since.strip(), errors, "since"),
            until=_day(until.strip(), errors, "until"),
            zone=request.app.state.settings.shop_timezone,
        )
        if filters.since and filters.until and filters.since > filters.until:
            errors["until"] = _("The end date is before the start date.")
        before_id = parse_int(before, max_digits=18) if before else None
        if before and before_id is None:
            errors["before"] = _("That page link is broken: start from the newest.")
        rows, next_before = ([], None) if errors else await audit.entries(db_session, filters, before_id, PAGE_SIZE)
        query = {
            "action": filters.action,
            "actor": filters.actor,
            "target_type": filters.target_type,
            "target_id": filters.target_id,
            "since": since.strip()[:10],
            "until": until.strip()[:10],
        }
        return render(
            request,
            "admin/audit/audit.html",
            status_code=400 if errors else 200,
            rows=rows,
            diff=audit.diff,
            actions=await audit.actions(db_session),
            query=query,
            errors=errors,
            paged=before_id is not None,
            next_before=next_before,
            kept=urlencode({key: value for key, value in query.items() if value}),
        )
