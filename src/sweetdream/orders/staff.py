"""The staff's view of every order: filters, search, keyset pages, capped totals and the CSV export.

Fast at a million orders: every list is read newest first by the keyset (created_at, id), and each
filter has an index led by it then by that keyset (migration 7d3e9a41c2b8), so a page costs one
short index range whatever its depth (`after=` / `before=` cursors, never OFFSET). The count and
revenue of a filtered set are exact up to COUNT_CAP orders, read from the index alone; above it the
page says "more than 10,000" rather than make every list view scan a million rows.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from sweetdream.accounts.models import User
from sweetdream.orders.models import Order, OrderStatus, PaymentMethod, PaymentStatus
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.parsing import clean_text

PAGE_SIZE = 25
COUNT_CAP = 10_000
MAX_QUERY = 100
# An order number as staff type it: "SD-000123", "sd000123" or just "123".
NUMBER = re.compile(r"^(?:SD-?)?(\d{1,9})$", re.IGNORECASE)
# A phone as shoppers write it (the checkout's own rule): eight digits or more.
PHONE = re.compile(r"^\+?[0-9 .-]{8,20}$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Cells a spreadsheet would run as a formula (OWASP's list, with tab and carriage return).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class FilterError(ValueError):
    """A filter or cursor that can't be read: answered with a 400 and this message."""


@dataclass(frozen=True)
class OrderFilter:
    q: str = ""
    status: OrderStatus | None = None
    payment: PaymentMethod | None = None
    payment_status: PaymentStatus | None = None
    date_from: date | None = None
    date_to: date | None = None

    @property
    def is_empty(self) -> bool:
        return self == OrderFilter()

    def params(self) -> dict[str, str]:
        """The filter as query parameters (for links, the live stream and the export)."""
        values = {
            "q": self.q,
            "status": self.status.value if self.status else "",
            "payment": self.payment.value if self.payment else "",
            "payment_status": self.payment_status.value if self.payment_status else "",
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
        }
        return {key: value for key, value in values.items() if value}

    def query(self, **extra: str) -> str:
        return urlencode({**self.params(), **extra})


def parse_filter(params: Mapping[str, str]) -> OrderFilter:
    """The list's filters from query parameters; anything unreadable raises FilterError."""
    q = clean_text(params.get("q"), MAX_QUERY + 1)
    if len(q) > MAX_QUERY:
        raise FilterError(_("Search for at most %(n)d characters.") % {"n": MAX_QUERY})
    date_from = _day(params.get("from", ""), "from")
    date_to = _day(params.get("to", ""), "to")
    if date_from and date_to and date_from > date_to:
        raise FilterError(_("The start date is after the end date."))
    return OrderFilter(
        q=q,
        status=_choice(OrderStatus, params.get("status", ""), _("status")),
        payment=_choice(PaymentMethod, params.get("payment", ""), _("payment method")),
        payment_status=_choice(PaymentStatus, params.get("payment_status", ""), _("payment status")),
        date_from=date_from,
        date_to=date_to,
    )


E = TypeVar("E", OrderStatus, PaymentMethod, PaymentStatus)


def _choice(kind: type[E], raw: str, what: str) -> E | None:
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise FilterError(_("There is no %(what)s %(value)r.") % {"what": what, "value": raw[:40]}) from None


def _day(raw: str, which: str) -> date | None:
    if not raw:
        return None
    try:
        if not DAY.match(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise FilterError(_("Write the %(which)s date as YYYY-MM-DD.") % {"which": which}) from None


# --- cursors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in the keyset: the (created_at, id) of an order on the page's edge."""

    created_at: datetime
    id: UUID

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}~{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def of(cls, order: Order) -> Cursor:
        return cls(order.created_at, order.id)

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            if len(text) > 120:
                raise ValueError(text)
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            moment, ident = raw.split("~")
            created_at = datetime.fromisoformat(moment)
            if created_at.tzinfo is None:
                raise ValueError(moment)
            return cls(created_at, UUID(ident))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise FilterError(_("That page link is damaged: start again from the first page.")) from None


@dataclass
class OrderPage:
    orders: list[Order]
    newer: str | None = None  # cursor for the page of newer orders (before=)
    older: str | None = None  # cursor for the page of older orders (after=)


@dataclass(frozen=True)
class Totals:
    count: int  # exact when not `over_cap`
    revenue: int  # of the orders not cancelled; exact when not `over_cap`
    over_cap: bool = False


@dataclass
class Today:
    orders: int
    revenue: int
    since: datetime = field(default_factory=lambda: datetime.now(UTC))


# --- the queries -------------------------------------------------------------------------------


def conditions(f: OrderFilter, zone: str) -> list[ColumnElement[bool]]:
    """The WHERE of a filter, each condition one an index leads with."""
    where: list[ColumnElement[bool]] = []
    if f.status:
        where.append(Order.status == f.status)
    if f.payment:
        where.append(Order.payment_method == f.payment)
    if f.payment_status:
        where.append(Order.payment_status == f.payment_status.value)
    if f.date_from:
        where.append(Order.created_at >= day_start(f.date_from, zone))
    if f.date_to:
        where.append(Order.created_at < day_start(f.date_to + timedelta(days=1), zone))
    if f.q:
        where.append(search_condition(f.q))
    return where


def is_name_search(q: str) -> bool:
    return not (NUMBER.match(q) or "@" in q or PHONE.match(q))


def _folded_name() -> ColumnElement[str]:
    """The name as ix_orders_name_prefix holds it: lower-cased, in the C collation."""
    return func.lower(Order.shipping_name).collate("C")


def search_condition(q: str) -> ColumnElement[bool]:
    """Number, email, phone or the start of the recipient's name: which one is read from the text."""
    number = NUMBER.match(q)
    if number:
        return Order.number == f"SD-{int(number.group(1)):06d}"
    if "@" in q:  # emails are stored lower-cased: the users' unique index finds the shopper
        user_id = select(User.id).where(User.email == q.lower()).scalar_subquery()
        return Order.user_id == user_id
    if PHONE.match(q):
        return Order.shipping_phone == q
    return name_starts_with(q)


def name_starts_with(q: str) -> ColumnElement[bool]:
    """lower(name) in [prefix, prefix + U+10FFFF) in the C collation: the same range a prefix LIKE
    reads, written so that even a generic prepared plan uses ix_orders_name_prefix."""
    prefix = q.lower()
    name = _folded_name()
    return and_(name >= literal(prefix).collate("C"), name < literal(prefix + "\U0010ffff").collate("C"))


def day_start(day: date, zone: str) -> datetime:
    """Midnight of `day` on the shop's clock, as the UTC instant stored."""
    return datetime.combine(day, time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def page_statement(
    f: OrderFilter, zone: str, after: Cursor | None = None, before: Cursor | None = None, size: int = PAGE_SIZE
) -> Select[Order]:
    """The page's query: size + 1 rows (the extra one says whether there is a page beyond), newest
    first, or oldest first when reading the page newer than `before` (reversed by `page`)."""
    keyset = tuple_(Order.created_at, Order.id)
    stmt = select(Order).where(*conditions(f, zone))
    if before is not None:
        stmt = stmt.where(keyset > tuple_(literal(before.created_at), literal(before.id)))
        return stmt.order_by(Order.created_at, Order.id).limit(size + 1)
    if after is not None:
        stmt = stmt.where(keyset < tuple_(literal(after.created_at), literal(after.id)))
    return stmt.order_by(Order.created_at.desc(), Order.id.desc()).limit(size + 1)


async def page(
    db: AsyncSession,
    f: OrderFilter,
    zone: str,
    after: Cursor | None = None,
    before: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> OrderPage:
    """One page, newest first: the first page, or the one older than `after`, or the one newer than
    `before`. An order placed meanwhile joins the top and never shifts a later page."""
    rows = list(await db.scalars(page_statement(f, zone, after, before, size)))
    if before is not None:
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        return OrderPage(
            rows,
            newer=Cursor.of(rows[0]).encode() if more_newer and rows else None,
            older=Cursor.of(rows[-1]).encode() if rows else before.encode(),
        )
    more_older = len(rows) > size
    rows = rows[:size]
    newer = None
    if after is not None:
        newer = Cursor.of(rows[0]).encode() if rows else after.encode()
    return OrderPage(rows, newer=newer, older=Cursor.of(rows[-1]).encode() if more_older else None)


def totals_statement(f: OrderFilter, zone: str) -> Select[int, int]:
    """At most COUNT_CAP + 1 of the filtered orders, counted and summed. Read along the keyset (the
    newest first) the filter's own index answers from its entries alone (they INCLUDE total and
    status); a name search reads the name index instead, which is narrower than the keyset."""
    capped_rows = select(Order.total, Order.status).where(*conditions(f, zone))
    if not f.q:
        capped_rows = capped_rows.order_by(Order.created_at.desc(), Order.id.desc())
    elif is_name_search(f.q):  # along the name index: its entries alone (a scan of orders cost 0.3 s)
        capped_rows = capped_rows.order_by(_folded_name())
    capped = capped_rows.limit(COUNT_CAP + 1).subquery()
    kept = case((capped.c.status != OrderStatus.CANCELLED.value, capped.c.total), else_=0)
    return select(func.count(), func.coalesce(func.sum(kept), 0))


async def totals(db: AsyncSession, f: OrderFilter, zone: str) -> Totals:
    """Count and revenue of the filtered set: exact up to COUNT_CAP orders (an index-only read of
    at most COUNT_CAP + 1 entries), "more than" above it."""
    count, revenue = (await db.execute(totals_statement(f, zone))).one()
    if count > COUNT_CAP:
        return Totals(COUNT_CAP, 0, over_cap=True)
    return Totals(int(count), int(revenue))


async def today(db: AsyncSession, zone: str, now: datetime | None = None) -> Today:
    """Orders placed since midnight shop time, and their revenue (cancelled orders left out)."""
    moment = now or datetime.now(UTC)
    start = day_start(moment.astimezone(ZoneInfo(zone)).date(), zone)
    kept = case((Order.status != OrderStatus.CANCELLED, Order.total), else_=0)
    count, revenue = (
        await db.execute(select(func.count(), func.coalesce(func.sum(kept), 0)).where(Order.created_at >= start))
    ).one()
    return Today(int(count), int(revenue), start)


async def row_if_listed(db: AsyncSession, f: OrderFilter, zone: str, order_id: UUID) -> Order | None:
    """The order if it belongs in a list with this filter (what a live list adds or updates)."""
    return await db.scalar(select(Order).where(Order.id == order_id, *conditions(f, zone)))


async def for_staff(db: AsyncSession, number: str) -> tuple[Order, User] | None:
    """The order with its lines, timeline and shopper, for the staff order page and its slip."""
    order = await db.scalar(
        select(Order).where(Order.number == number).options(selectinload(Order.lines), selectinload(Order.events))
    )
    if order is None:
        return None
    user = await db.get_one(User, order.user_id)
    return order, user


async def ids_for_numbers(db: AsyncSession, numbers: list[str]) -> dict[str, UUID]:
    rows = await db.execute(select(Order.number, Order.id).where(Order.number.in_(numbers)))
    return {row.number: row.id for row in rows}


# --- the CSV export ----------------------------------------------------------------------------

CSV_COLUMNS = (
    "number",
    "placed_at",
    "status",
    "payment_method",
    "payment_status",
    "customer_email",
    "recipient",
    "phone",
    "address",
    "subtotal",
    "shipping_fee",
    "total",
    "currency",
)
EXPORT_BATCH = 2_000


def safe_cell(value: Any) -> Any:
    """A text cell a spreadsheet would read as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def export_statement(f: OrderFilter, zone: str) -> Select[*tuple[Any, ...]]:
    return (
        select(
            Order.number,
            Order.created_at,
            Order.status,
            Order.payment_method,
            Order.payment_status,
            User.email,
            Order.shipping_name,
            Order.shipping_phone,
            Order.shipping_address,
            Order.subtotal,
            Order.shipping_fee,
            Order.total,
            Order.currency,
        )
        .join(User, User.id == Order.user_id)
        .where(*conditions(f, zone))
        .order_by(Order.created_at.desc(), Order.id.desc())
    )


async def export_csv(db: AsyncSession, f: OrderFilter, zone: str) -> AsyncIterator[bytes]:
    """The filtered orders as CSV, newest first, read through a server-side cursor in batches:
    memory stays the same at a thousand rows or a million."""
    shop = ZoneInfo(zone)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    yield ("\ufeff" + out.getvalue()).encode()  # the BOM makes spreadsheets read UTF-8 (Vietnamese names)
    result = await db.stream(export_statement(f, zone).execution_options(yield_per=EXPORT_BATCH))
    async for batch in result.partitions():
        out.seek(0)
        out.truncate()
        for row in batch:
            placed = row.created_at.astimezone(shop).strftime("%Y-%m-%d %H:%M")
            writer.writerow(
                [
                    safe_cell(row.number),
                    placed,
                    row.status.value,
                    row.payment_method.value,
                    row.payment_status,
                    safe_cell(row.email),
                    safe_cell(row.shipping_name),
                    safe_cell(row.shipping_phone),
                    safe_cell(row.shipping_address),
                    row.subtotal,
                    row.shipping_fee,
                    row.total,
                    row.currency,
                ]
            )
        yield out.getvalue().encode()
