"""The staff dashboard. Every route here requires the ADMIN role, read fresh on each request.
The orders' screens are admin/orders.py."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.guards import requires_admin
from sweetdream.admin import services
from sweetdream.orders import staff
from sweetdream.platform.web import render


class AdminController(Controller):
    path = "/admin"
    guards = [requires_admin]

    @get("/", name="admin")
    async def dashboard(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        shown = await services.dashboard(db_session)
        today = await staff.today(db_session, request.app.state.settings.shop_timezone)
        return render(request, "admin/dashboard.html", figures=shown.figures, failed=shown.failed_events, today=today)
