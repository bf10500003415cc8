"""What the customer screens show (read only): the list with each person's orders count, total spent
and last order, one customer's profile, and the search. Changes go through accounts/staff.py.

Fast at 100,000 customers and a million orders: the list pages by keyset on (created_at, id) over
`ix_users_created_id`, and each shown customer's figures come from one LATERAL aggregate over the
orders' user_id index: one query per page, whatever its size (measured at 100,000
customers and 1,000,000 orders: 2-6 ms a page, any page, search included; README "Admin").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.models import Role, User
from sweetdream.audit.models import AuditEntry
from sweetdream.orders.models import Order, OrderStatus

MAX_QUERY = 100
MIN_PHONE_DIGITS = 3  # fewer digits than this would match most of the shop


@dataclass(frozen=True)
class Figures:
    orders: int
    spent: int  # the totals of every order not cancelled, in VND
    last_order_at: datetime | None


@dataclass(frozen=True)
class CustomerRow:
    user: User
    figures: Figures


@dataclass(frozen=True)
class Cursor:
    """Where a page of the list ends: the last customer shown (newest first)."""

    created_at: datetime
    id: UUID

    def encode(self) -> str:
        return f"{int(self.created_at.timestamp() * 1_000_000)}.{self.id.hex}"

    @staticmethod
    def decode(raw: str | None) -> Cursor | None:
        """None for anything our links never carry (a hand-edited link starts from the top)."""
        match = re.fullmatch(r"(\d{1,17})\.([0-9a-f]{32})", raw or "")
        if match is None:
            return None
        micros = int(match.group(1))
        return Cursor(datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000),
                      UUID(hex=match.group(2)))  # fmt: skip


def _like_prefix(text: str) -> str:
    """`text` as the start of a LIKE pattern: its own % and _ are literal characters."""
    return re.sub(r"([\\%_])", r"\\\1", text) + "%"


def search_condition(q: str) -> ColumnElement[bool] | None:
    """A customer whose email, name (any case) or phone digits start with `q`; None for no search.
    Prefixes keep it on indexes at any size (`ix_users_*_prefix`, `ix_users_phone_digits`)."""
    term = q.strip().lower()[:MAX_QUERY]
    if not term:
        return None
    pattern = _like_prefix(term)
    matches = [User.email.like(pattern), func.lower(User.name).like(pattern)]
    digits = re.sub(r"\D", "", term)
    if len(digits) >= MIN_PHONE_DIGITS and re.fullmatch(r"[+0-9 .()-]+", term):
        matches.append(func.regexp_replace(User.phone, "[^0-9]", "", "g").like(digits + "%"))
    return or_(*matches)


def _with_figures(stmt: Select[Any]) -> Select[Any]:
    totals = (
        select(
            func.count().label("orders"),
            func.coalesce(func.sum(Order.total).filter(Order.status != OrderStatus.CANCELLED), 0).label("spent"),
            func.max(Order.created_at).label("last_order_at"),
        )
        .where(Order.user_id == User.id)
        .lateral("totals")
    )
    return stmt.add_columns(totals.c.orders, totals.c.spent, totals.c.last_order_at).join(totals, literal(True))


async def customer_page(
    db: AsyncSession, q: str, role: Role | None, after: Cursor | None, size: int
) -> tuple[list[CustomerRow], Cursor | None]:
    """One page of accounts, newest first, and the cursor of the next page (None on the last)."""
    conditions: list[ColumnElement[bool]] = []
    searched = search_condition(q)
    if searched is not None:
        conditions.append(searched)
    if role is not None:
        conditions.append(User.role == role)
    if after is not None:
        conditions.append(tuple_(User.created_at, User.id) < tuple_(literal(after.created_at), literal(after.id)))
    stmt = _with_figures(select(User).where(and_(True, *conditions)))
    rows = (await db.execute(stmt.order_by(User.created_at.desc(), User.id.desc()).limit(size + 1))).all()
    shown = [CustomerRow(user, Figures(orders, spent, last)) for user, orders, spent, last in rows[:size]]
    more = len(rows) > size
    return shown, (Cursor(shown[-1].user.created_at, shown[-1].user.id) if more else None)


@dataclass(frozen=True)
class Profile:
    user: User
    figures: Figures
    orders: list[Order]  # the newest RECENT_ORDERS
    history: list[AuditEntry]  # what staff did to the account, newest first


RECENT_ORDERS = 50


async def profile(db: AsyncSession, user_id: UUID) -> Profile | None:
    row = (await db.execute(_with_figures(select(User).where(User.id == user_id)))).first()
    if row is None:
        return None
    user, orders_count, spent, last = row
    orders = await db.scalars(
        select(Order).where(Order.user_id == user_id).order_by(Order.created_at.desc()).limit(RECENT_ORDERS)
    )
    history = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.target_type == "user", AuditEntry.target_id == str(user_id))
        .order_by(AuditEntry.id.desc())
        .limit(20)
    )
    return Profile(user, Figures(orders_count, spent, last), list(orders), list(history))
