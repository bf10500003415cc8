"""What the staff dashboard shows: figures read from the other domains (read only; every change an
admin makes goes through the owning domain's service)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.models import Role, User
from sweetdream.catalog.models import Product
from sweetdream.orders import outbox
from sweetdream.orders.models import Order, OrderStatus
from sweetdream.platform.i18n import gettext_noop


@dataclass(frozen=True)
class Dashboard:
    figures: dict[str, int]
    failed_events: list[outbox.FailedEvent]


async def dashboard(db: AsyncSession) -> Dashboard:
    products = await db.scalar(select(func.count()).select_from(Product)) or 0
    customers = await db.scalar(select(func.count()).where(User.role == Role.CUSTOMER)) or 0
    orders = await db.scalar(select(func.count()).select_from(Order)) or 0
    pending = await db.scalar(select(func.count()).where(Order.status == OrderStatus.PENDING)) or 0
    # Fulfilment health: events the workers have not delivered yet, and those that gave up.
    failed = await outbox.failed(db, limit=20)
    figures = {
        gettext_noop("Products"): products,  # labels translated where shown
        gettext_noop("Customers"): customers,
        gettext_noop("Orders"): orders,
        gettext_noop("Pending orders"): pending,
        gettext_noop("Events waiting"): await outbox.undelivered_count(db),
        gettext_noop("Failed events"): len(failed),
    }
    return Dashboard(figures, failed)
