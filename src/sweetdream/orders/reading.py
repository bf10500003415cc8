"""A shopper's own order read for its page answered before Litestar (platform/pages.py): the user
and their order, with its lines and timeline, in one statement through asyncpg. Read only; the order
comes back as plain values with the models' own properties (`line_total`, `label`, `shown_note`),
so the page's template reads the same as when Litestar renders it (ORM objects cost a third of the
read)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, func, select, tuple_
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncEngine

from sweetdream.accounts.models import User
from sweetdream.accounts.services import shopper_columns
from sweetdream.cart.services import cart_cutoff
from sweetdream.db import DirectRead
from sweetdream.orders.models import Order, OrderEvent, OrderLine, OrderStatus, PaymentMethod

# The order's columns the page shows.
_ORDER_FIELDS = (
    "id", "number", "user_id", "status", "payment_method", "payment_status", "card_last4", "payment_note",
    "shipping_name", "shipping_phone", "shipping_address", "note", "subtotal", "shipping_fee", "total",
    "created_at",
)  # fmt: skip


@dataclass
class OrderLineView:
    product_name: str
    size_label: str
    starts_at: datetime | None
    quantity: int
    unit_price: int
    line_total = OrderLine.line_total


@dataclass
class OrderEventView:
    from_status: str | None
    to_status: str
    title: str | None
    note: str
    created_at: datetime
    label = OrderEvent.label
    shown_note = OrderEvent.shown_note


@dataclass
class OrderView:
    """What the order page shows of an `Order` (orders/order.html, orders/_live.html)."""

    id: UUID
    number: str
    user_id: UUID
    status: OrderStatus
    payment_method: PaymentMethod
    payment_status: str
    card_last4: str | None
    payment_note: str
    shipping_name: str
    shipping_phone: str
    shipping_address: str
    note: str
    subtotal: int
    shipping_fee: int
    total: int
    created_at: datetime
    lines: list[OrderLineView]
    events: list[OrderEventView]


# The lines' and events' columns, read as records in their views' field order.
_LINE_FIELDS = tuple(f.name for f in fields(OrderLineView))
_EVENT_FIELDS = tuple(f.name for f in fields(OrderEventView))


@cache
def _shopper_order_sql() -> DirectRead:
    lines = (
        select(
            func.array_agg(
                aggregate_order_by(tuple_(*(getattr(OrderLine, f) for f in _LINE_FIELDS)), OrderLine.position)
            )
        )
        .where(OrderLine.order_id == Order.id)
        .scalar_subquery()
    )
    events = (
        select(
            func.array_agg(
                aggregate_order_by(tuple_(*(getattr(OrderEvent, f) for f in _EVENT_FIELDS)), OrderEvent.created_at)
            )
        )
        .where(OrderEvent.order_id == Order.id)
        .scalar_subquery()
    )
    order_columns = [getattr(Order, f).label(f"order_{f}") for f in _ORDER_FIELDS]
    statement = (
        select(*shopper_columns(), *order_columns, lines.label("lines"), events.label("events"))
        .select_from(User)
        # Only the shopper's own order: anyone else's is not found here (Litestar answers it: a 404).
        .outerjoin(Order, and_(Order.user_id == User.id, Order.number == bindparam("number")))
        .where(User.id == bindparam("uid"))
    )
    return DirectRead.of(statement)


async def shopper_with_order(engine: AsyncEngine, user_id: UUID, number: str) -> tuple[Any, OrderView | None]:
    """The shopper's row (`accounts.services.shopper_columns`; None if no such user) and their
    order numbered `number` with its lines and timeline (None if they have no such order)."""
    row = await _shopper_order_sql().fetchrow(engine, uid=user_id, cutoff=cart_cutoff(), number=number)
    if row is None or row["order_id"] is None:
        return row, None
    values = {f: row[f"order_{f}"] for f in _ORDER_FIELDS}
    values["status"] = OrderStatus(values["status"])
    values["payment_method"] = PaymentMethod(values["payment_method"])
    lines = [OrderLineView(*r) for r in row["lines"] or ()]
    events = [OrderEventView(*r) for r in row["events"] or ()]
    return row, OrderView(**values, lines=lines, events=events)
