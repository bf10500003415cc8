"""The order service as controllers of any domain receive it (dependency injection), so the admin's
controllers need not import the shop's."""

from __future__ import annotations

from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.orders.services import OrderService


def provide_orders(request: Request, db_session: NamedDependency[AsyncSession]) -> OrderService:
    return OrderService(db_session, request.app.state.redis)
