"""The checkout's one statement: an order and everything written with it, together or not at all.

One round trip writes the order, its lines, the first entry of its timeline, its outbox row, the
shopper's `order_completed` event, every line's stock with its ledger row (the catalog's
`stock.Reservation`), a low-stock alert for each size the order takes across its threshold, and
empties the cart (the cart's `cleared_when`). Each domain gives its part; this module puts them in
one `WITH`. It replaced a dozen ORM statements and a savepoint: the checkout's cost was Python's, not
the database's (issue #13).

Every part after the reservation's `enough` hangs on the order row being written (`placed`): the
order is inserted only if every line has its stock at the price the caller read (the statement waits
its turn in each size's queue, then locks the sizes in id order) and the shopper's cart still holds
each line at its quantity (the cart's `still_holds`: its lines locked after the sizes), and
`ON CONFLICT DO NOTHING` on the shopper's idempotency key makes a submit that lost the race to a
twin write nothing at all. So a refusal writes nothing and needs no savepoint or rollback; the
statement says why (each size's stock and price as locked, whether the cart held) and the caller
words the answer. Needing nothing after it, it runs as its own transaction (orders/services.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    ARRAY,
    CTE,
    BindParameter,
    ColumnElement,
    DateTime,
    FromClause,
    Integer,
    Select,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    cast,
    column,
    func,
    insert,
    literal,
    select,
    true,
)
from sqlalchemy import (
    Sequence as DbSequence,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.analytics.recording import OrderedItem, Tracker, order_completed_insert, order_completed_params
from sweetdream.cart.services import CartLine, cleared_when, still_holds
from sweetdream.catalog import stock
from sweetdream.orders.models import Order, OrderEvent, OrderLine, OrderStatus, OutboxEvent
from sweetdream.platform.i18n import gettext_noop

ORDER_KEY_CONSTRAINT = "uq_orders_user_idempotency_key"
ORDER_NUMBERS = DbSequence("order_number_seq")

_ORDERS: Table = Order.__table__  # type: ignore[assignment]
_LINES: Table = OrderLine.__table__  # type: ignore[assignment]
_EVENTS: Table = OrderEvent.__table__  # type: ignore[assignment]
_OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class NewOrder:
    """What the order row is written with (its number comes from the statement)."""

    id: UUID
    user_id: UUID
    email: str
    values: dict[str, Any]  # the orders columns other than id, number and user_id (`order_values`)


@dataclass(frozen=True)
class Placement:
    """What the statement did: the order (None: nothing was written), and why not if not."""

    order_id: UUID | None
    number: str | None
    created_at: datetime | None
    taken: int  # lines whose stock was taken (every line, or none)
    sold_out: bool  # a size's last unit went with this order
    alerts: list[UUID]  # the stock.low outbox rows written
    on_sale: dict[UUID, tuple[int, bool]]  # each size as the statement locked it: stock, not started
    prices: dict[UUID, int]  # each size's price as the statement locked it
    cart_held: bool  # the shopper's cart still held the lines as read (True for a cart kept elsewhere)

    def short_line(self, lines: Sequence[CartLine]) -> CartLine | None:
        """The first line (in size order, as stock is taken) that could not have its stock."""
        return first_short(lines, self.on_sale)

    def repriced(self, lines: Sequence[CartLine]) -> bool:
        """Whether a line's price changed between the caller's read and the statement's lock."""
        return any(self.prices.get(line.variant_id) != line.unit_price for line in lines)


def first_short(lines: Sequence[CartLine], levels: dict[UUID, tuple[int, bool]]) -> CartLine | None:
    """The first line, in size order (as stock is taken), whose size (stock, not started) can't fill it."""
    for line in sorted(lines, key=lambda item: item.variant_id):
        left, on_sale = levels.get(line.variant_id, (0, True))
        if left < line.quantity or not on_sale:
            return line
    return None


# The order's own columns, bound by name (`order_<column>`); id, number and user_id are set apart.
_ORDER_COLUMNS = (
    "status",
    "payment_attempt",
    "payment_note",
    "currency",
    "created_at",
    "updated_at",
    "idempotency_key",
    "payment_method",
    "payment_status",
    "payment_token",
    "card_last4",
    "shipping_name",
    "shipping_phone",
    "shipping_address",
    "note",
    "subtotal",
    "shipping_fee",
    "total",
    "language",
)
# The lines, one array a column (`line_<name>`): the same SQL whatever the number of lines.
_LINE_ARRAYS: tuple[tuple[str, Any], ...] = (
    ("id", Uuid()),
    ("product_id", Uuid()),
    ("variant_id", Uuid()),
    ("position", Integer()),
    ("product_name", String()),
    ("product_slug", String()),
    ("size_label", String()),
    ("sku", String()),
    ("unit_price", Integer()),
    ("quantity", Integer()),
    ("starts_at", DateTime(timezone=True)),
    ("alert_id", Uuid()),  # its stock.low outbox row, if this order takes the size across its threshold
)


def _bound(table: Table, name: str, key: str | None = None) -> BindParameter[Any]:
    return bindparam(key or f"order_{name}", type_=table.c[name].type)


def _wanted() -> CTE:
    """The order's lines as rows, from one array per column."""
    arrays = (bindparam(f"line_{name}", type_=ARRAY(kind)) for name, kind in _LINE_ARRAYS)
    rows = func.unnest(*arrays).table_valued(*(column(name, kind) for name, kind in _LINE_ARRAYS))
    return select(rows.render_derived(name="line")).cte("order_wanted")


def _order_number(sequence_value: ColumnElement[int]) -> ColumnElement[str]:
    """`SD-000123`: at least six digits, as f"SD-{n:06d}" writes it."""
    digits = cast(sequence_value, Text)
    return literal("SD-", String) + func.lpad(digits, func.greatest(6, func.length(digits)), "0", type_=String)


def _build(tracked: bool, clear_cart: bool) -> Select[Any]:
    """The one statement (see the module's docstring); its rows are each wanted size as locked, with
    the order beside (NULLs when it was not written). Built once per shape: only parameters vary."""
    wanted = _wanted()
    user_id = _bound(_ORDERS, "user_id")
    reservation = stock.Reservation(wanted, bindparam("line_count", type_=Integer()))
    locked, enough = reservation.locked, reservation.enough
    checks: FromClause = enough
    gate: list[ColumnElement[bool]] = [enough.c.ok]
    cart_held: ColumnElement[bool] = true()
    if clear_cart:  # the cart's lines are locked once the sizes are (every checkout locks in that order)
        sizes_held = select(func.count()).select_from(locked).scalar_subquery() > 0
        held = still_holds(user_id, wanted, reservation.lines, sizes_held)
        checks, cart_held = enough.join(held, true()), select(held.c.held).scalar_subquery()
        gate.append(held.c.held)
    numbered = select(ORDER_NUMBERS.next_value().label("n")).select_from(checks).where(*gate).cte("order_number")
    values: dict[str, ColumnElement[Any]] = {
        "id": _bound(_ORDERS, "id"),
        "number": _order_number(numbered.c.n),
        "user_id": user_id,
        **{name: _bound(_ORDERS, name) for name in _ORDER_COLUMNS},
    }
    placed = (
        pg_insert(_ORDERS)
        .from_select(list(values), select(*values.values()).select_from(numbered))
        .on_conflict_do_nothing(constraint=ORDER_KEY_CONSTRAINT)
        .returning(_ORDERS.c.id, _ORDERS.c.number, _ORDERS.c.created_at)
        .cte("order_placed")
    )
    was_placed = select(placed.c.id).exists()
    number = select(placed.c.number).scalar_subquery()

    taken = reservation.taken(was_placed)
    email = bindparam("shopper_email", type_=String())
    ledger = stock.Reservation.ledger(taken, number, email, bindparam("shopper_id", type_=Uuid()))
    line_columns = [
        "id",
        "order_id",
        "product_id",
        "variant_id",
        "position",
        "product_name",
        "product_slug",
        "size_label",
        "sku",
        "unit_price",
        "quantity",
        "starts_at",
    ]
    line_rows = select(*(placed.c.id if name == "order_id" else wanted.c[name] for name in line_columns))
    order_lines = (
        insert(_LINES).from_select(line_columns, line_rows.select_from(wanted.join(placed, true()))).cte("order_lines")
    )
    first_event = select(
        _bound(_EVENTS, "id", "timeline_id"),
        placed.c.id,
        literal(OrderStatus.PENDING.value, _EVENTS.c.to_status.type),
        _bound(_EVENTS, "actor", "shopper_email"),
        literal(gettext_noop("Order placed"), _EVENTS.c.note.type),  # stored as the source; shown translated
    ).select_from(placed)
    timeline = (
        insert(_EVENTS).from_select(["id", "order_id", "to_status", "actor", "note"], first_event).cte("order_timeline")
    )
    payload = func.jsonb_build_object(
        literal("order_id"),
        cast(placed.c.id, Text),
        literal("number"),
        placed.c.number,
        literal("user_id"),
        cast(user_id, Text),
        type_=JSONB,
    )
    announced = select(
        _bound(_OUTBOX, "id", "outbox_id"), literal("order.placed", _OUTBOX.c.topic.type), payload, literal(0)
    ).select_from(placed)
    outbox = insert(_OUTBOX).from_select(["id", "topic", "payload", "attempts"], announced).cte("order_outbox")
    # Only the update that takes stock across the threshold announces it: one alert per crossing,
    # however many orders follow (row updates on one size are serialised by its lock).
    alert = func.jsonb_build_object(
        literal("variant_id"),
        cast(taken.c.id, Text),
        literal("sku"),
        taken.c.sku,
        literal("product"),
        wanted.c.product_name,
        literal("size"),
        wanted.c.size_label,
        literal("stock"),
        taken.c.stock,
        literal("threshold"),
        taken.c.low_stock_threshold,
        type_=JSONB,
    )
    crossing = (
        select(wanted.c.alert_id, literal("stock.low", _OUTBOX.c.topic.type), alert, literal(0))
        .select_from(taken.join(wanted, wanted.c.variant_id == taken.c.id))
        .where(stock.crossed_low_condition(taken.c.stock, taken.c.low_stock_threshold, taken.c.quantity))
    )
    alerts = (
        insert(_OUTBOX)
        .from_select(["id", "topic", "payload", "attempts"], crossing)
        .returning(_OUTBOX.c.id)
        .cte("order_alerts")
    )
    writes: list[CTE] = [ledger, order_lines, timeline, outbox]
    if tracked:
        writes.append(order_completed_insert(number, was_placed).cte("order_completed"))
    if clear_cart:
        writes.append(cleared_when(user_id, was_placed).cte("cart_cleared"))
    return (
        select(
            locked.c.id,
            locked.c.stock,
            locked.c.open,
            locked.c.price,
            cart_held.label("cart_held"),
            placed.c.id.label("order_id"),
            placed.c.number,
            placed.c.created_at,
            select(func.count()).select_from(taken).scalar_subquery().label("taken"),
            select(func.min(taken.c.stock)).select_from(taken).scalar_subquery().label("lowest"),
            select(func.array_agg(alerts.c.id)).select_from(alerts).scalar_subquery().label("alerts"),
        )
        .select_from(locked.outerjoin(placed, true()))
        .add_cte(*writes)
    )


# Building the statement cost more CPU than running it: each shape is built once per process.
_STATEMENTS: dict[tuple[bool, bool], Select[Any]] = {}


def statement(tracked: bool, clear_cart: bool) -> Select[Any]:
    """The statement for an order with (`tracked`) or without its analytics event, emptying a cart
    kept in the database (`clear_cart`) or not."""
    shape = (tracked, clear_cart)
    if shape not in _STATEMENTS:
        _STATEMENTS[shape] = _build(tracked, clear_cart)
    return _STATEMENTS[shape]


def parameters(order: NewOrder, lines: Sequence[CartLine], event_id: UUID, tracker: Tracker | None) -> dict[str, Any]:
    """The values of `statement`'s parameters for this order."""
    arrays: dict[str, list[Any]] = {
        "id": [uuid4() for _ in lines],
        "product_id": [line.product_id for line in lines],
        "variant_id": [line.variant_id for line in lines],
        "position": list(range(len(lines))),
        "product_name": [line.product_name for line in lines],
        "product_slug": [line.product_slug for line in lines],
        "size_label": [line.size_label for line in lines],
        "sku": [line.sku for line in lines],
        "unit_price": [line.unit_price for line in lines],
        "quantity": [line.quantity for line in lines],
        "starts_at": [line.starts_at for line in lines],
        "alert_id": [uuid4() for _ in lines],
    }
    values: dict[str, Any] = {
        **{f"line_{name}": value for name, value in arrays.items()},
        "line_count": len(lines),
        "order_id": order.id,
        "order_user_id": order.user_id,
        **{f"order_{name}": order.values[name] for name in _ORDER_COLUMNS},
        "shopper_email": order.email,
        "shopper_id": order.user_id,
        "timeline_id": uuid4(),
        "outbox_id": event_id,
    }
    if tracker is not None:
        items = [
            OrderedItem(
                line.product_id, line.product_name, line.size_label, line.quantity, line.unit_price, line.category
            )
            for line in lines
        ]
        values.update(order_completed_params(tracker, order.id, order.user_id, int(order.values["total"]), items))
    return values


async def place(db: AsyncSession, query: Select[Any], values: dict[str, Any]) -> Placement:
    rows = (await db.execute(query, values)).all()
    first = rows[0] if rows else None
    return Placement(
        order_id=first.order_id if first else None,
        number=first.number if first else None,
        created_at=first.created_at if first else None,
        taken=int(first.taken) if first else 0,
        sold_out=first is not None and first.lowest == 0,
        alerts=list(first.alerts or []) if first else [],
        on_sale={row.id: (row.stock, row.open) for row in rows},
        prices={row.id: row.price for row in rows},
        cart_held=bool(first.cart_held) if first else False,
    )


def order_values(now: datetime | None = None, **values: Any) -> dict[str, Any]:
    """The orders columns a new order is written with, defaults included (the statement bypasses the ORM's)."""
    moment = now or datetime.now(UTC)
    defaults = {"status": OrderStatus.PENDING, "payment_attempt": 1, "payment_note": "", "currency": "VND"}
    return {**defaults, "created_at": moment, "updated_at": moment, **values}
