"""The staff dashboard. Every route here requires the ADMIN role, read fresh on each request."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.models import Role, User
from sweetdream.accounts.web import requires_admin
from sweetdream.catalog.models import Product
from sweetdream.platform.web import render


class AdminController(Controller):
    path = "/admin"
    guards = [requires_admin]

    @get("/", name="admin")
    async def dashboard(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        products = await db_session.scalar(select(func.count()).select_from(Product)) or 0
        customers = await db_session.scalar(select(func.count()).where(User.role == Role.CUSTOMER)) or 0
        return render(request, "admin/dashboard.html", figures={"Products": products, "Customers": customers})
