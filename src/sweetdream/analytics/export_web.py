"""/admin/exports: recent runs of the nightly export and "Export this day" (ADMIN only).

The panel (`templates/analytics/_export.html`) is also meant for /admin/analytics; this small page
serves it on its own. Pressing the button records a queued run (audited: "analytics.export"),
commits, and enqueues the worker's `export_day` job; the run's row shows its progress (the job
writes its count as it goes), polled by HTMX every second while it is queued or running.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.guards import requires_admin
from sweetdream.analytics.export import shop_today
from sweetdream.analytics.export_runs import enqueue_export, recent_runs, request_export, run_by_id, run_label
from sweetdream.audit.services import Actor
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.web import BadRequest, flash, form_data, render

EARLIEST_DAY = date(2020, 1, 1)


def parse_export_day(raw: str, today: date) -> date:
    """The form's date: a real day, not before EARLIEST_DAY, not after today in the shop."""
    try:
        day = date.fromisoformat(raw.strip()[:10])
    except ValueError as exc:
        raise BadRequest(_("Choose a day to export (YYYY-MM-DD).")) from exc
    if day > today:
        raise BadRequest(_("That day has not begun in the shop yet."))
    if day < EARLIEST_DAY:
        raise BadRequest(_("Choose a day from 2020 on."))
    return day


async def export_panel(db: AsyncSession) -> dict[str, Any]:
    """What `analytics/_export.html` needs: /admin/analytics renders it with
    `**await export_panel(db_session)` in its context and `{% include "analytics/_export.html" %}`."""
    today = shop_today()
    return {
        "runs": await recent_runs(db),
        "run_label": run_label,
        "default_day": (today - timedelta(days=1)).isoformat(),
        "today": today.isoformat(),
    }


class ExportController(Controller):
    path = "/admin/exports"
    guards = [requires_admin]

    @get("/", name="admin-exports")
    async def page(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        return render(request, "analytics/exports.html", **await export_panel(db_session))

    @get("/runs/{run_id:int}", name="admin-export-run")
    async def run_row(
        self, request: Request, run_id: FromPath[int], db_session: NamedDependency[AsyncSession]
    ) -> Template:
        """One run's row (HTMX polls it while the run is queued or running)."""
        run = await run_by_id(db_session, run_id)
        if run is None:
            raise NotFoundException(_("No such export run."))
        return render(request, "analytics/_export_run.html", run=run, run_label=run_label)

    @post("/", name="admin-export-day")
    async def export_day(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Redirect:
        data = await form_data(request)
        day = parse_export_day(data.get("day", ""), shop_today())
        user = request.state.user
        run = await request_export(db_session, day, Actor(user.id, user.email))
        await db_session.commit()  # the job reads the run's row: it must exist before the job does
        await enqueue_export(request.app.state.redis, run)
        flash(request, _("Export of %(day)s queued.") % {"day": day.isoformat()})
        return Redirect("/admin/exports", status_code=303)
