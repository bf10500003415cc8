"""Stock belongs to the catalog: the one place that changes a size's stock, and its ledger.

Every change (an order takes units, a cancel gives them back, an admin's delivery, waste or count
correction, the seed) is one UPDATE of `variants.stock` that returns the new level, and one
`stock_movements` row written in the same transaction with that level: the row lock the UPDATE
holds until the commit serialises the movements of a size, so its stock always equals the sum of
its ledger's deltas. All run in the caller's transaction; each marks the catalog changed, so the
cache is invalidated when that transaction commits (catalog/writes.py).

No oversell: a take is a conditional UPDATE (`stock >= n`, and for a class seat a session that has
not started: `starts_at > now()`); the `stock >= 0` CHECK constraint is
the second line of defence, and either refusal gives the same answer (None).

A checkout takes every line of an order inside one statement (`Reservation`: its turn in each size's
queue, the sizes locked in id order, checked under those locks to have enough, not to have started
and to cost what was read, then all taken or none, each take's ledger row), which orders/services.py builds
into the statement that writes the order: the catalog's tables are written by the catalog's SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import (
    CTE,
    ColumnElement,
    FromClause,
    ScalarSelect,
    Select,
    Table,
    Text,
    Update,
    and_,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from sweetdream.catalog.models import Product, StockMovement, StockReason, Variant
from sweetdream.catalog.writes import catalog_changed
from sweetdream.db import violated_constraint

STOCK_CONSTRAINT = "ck_variants_stock_not_negative"
SYSTEM = "system"
# pg_advisory_xact_lock(class, key): the queue of checkouts for a size (`queued_for_taking`).
TAKE_QUEUE_CLASS = 0x5707


@dataclass(frozen=True)
class Mover:
    """Who moved the stock: a shopper or admin (id and email), or the system."""

    email: str = SYSTEM
    id: UUID | None = None


@dataclass(frozen=True)
class Taken:
    """The size's stock after a take, and what a low-stock alert needs."""

    stock: int
    low_stock_threshold: int
    sku: str


class StockRefused(ValueError):
    """An adjustment that would leave a negative stock (nothing changed)."""


def is_low(level: int, threshold: int) -> bool:
    """The low-stock rule: the alert email, the admin's low-stock filter and the product page use it."""
    return level <= threshold


def crossed_low(level: int, threshold: int, taken: int) -> bool:
    """This take brought the size to low stock (one alert per crossing, not one per order)."""
    return is_low(level, threshold) and not is_low(level + taken, threshold)


def low_stock_condition() -> ColumnElement[bool]:
    """`is_low` in SQL, for lists."""
    return Variant.stock <= Variant.low_stock_threshold


def not_started_condition() -> ColumnElement[bool]:
    """`Variant.started` in SQL: ordinary goods, or a class whose session has not begun (the
    database's clock: the same for every process)."""
    return or_(Variant.starts_at.is_(None), Variant.starts_at > func.now())


async def on_sale_levels(db: AsyncSession, variant_ids: Iterable[UUID]) -> dict[UUID, tuple[int, bool]]:
    """Each size's stock now and whether it may still be sold (its class session not begun)."""
    rows = await db.execute(
        select(Variant.id, Variant.stock, not_started_condition()).where(Variant.id.in_(list(variant_ids)))
    )
    return {row[0]: (row[1], bool(row[2])) for row in rows}


def queued_for_taking(size_ids: Select[UUID]) -> ScalarSelect[int]:
    """An expression that waits for this transaction's turn at each size `size_ids` reads (how many
    it queued for). Checkouts of a contested size queue here, before they lock its row: PostgreSQL
    grants an advisory lock to its waiters in the order they asked, and a size's row lock did not
    (issue #13, 64 shoppers on the last units of one size: place p99 1.2-1.5 s -> 0.58-0.75 s, the
    median 0.31 s -> 0.36-0.46 s, at the same throughput). Each size is one transaction-scoped lock
    (released at the commit or rollback), taken in key order, so no two checkouts wait on each other
    in a circle; two sizes whose keys collide only share a queue. The row locks (`Reservation.locked`)
    still guard the stock. A checkout holds its turn from here to its commit, so the fewer round trips
    that follow, the more checkouts a size serves a second: the queue is taken in the statement that
    takes the stock (`Reservation`), and the checkout's statement commits as it ends."""
    ids = size_ids.subquery()
    keys = select(func.hashtext(cast(ids.c[0], Text)).label("key")).distinct().order_by("key").subquery()
    return select(func.count(func.pg_advisory_xact_lock(TAKE_QUEUE_CLASS, keys.c.key))).scalar_subquery()


def has_enough(
    stock: ColumnElement[int] | InstrumentedAttribute[int], quantity: ColumnElement[int] | int
) -> ColumnElement[bool]:
    """The no-oversell guard of every take: that much is left."""
    return stock >= quantity


def take_statement(variant_id: UUID, quantity: int) -> Update:
    """Take `quantity` only if that much is left, and never a seat of a class that has started."""
    return (
        update(Variant)
        .where(Variant.id == variant_id, has_enough(Variant.stock, quantity), not_started_condition())
        .values(stock=Variant.stock - quantity)
        .returning(Variant.stock, Variant.low_stock_threshold, Variant.sku)
    )


_VARIANTS: Table = Variant.__table__  # type: ignore[assignment]
_PRODUCTS: Table = Product.__table__  # type: ignore[assignment]
_MOVEMENTS: Table = StockMovement.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Reservation:
    """Every line of an order taken in one statement, all or none, for the caller to build into its
    own (a data-modifying WITH): `wanted` has one row per size (`variant_id`, `quantity`, and the
    `unit_price` the caller read and will write).

    `locked` first waits for the statement's turn in each size's queue (`queued_for_taking`), then
    locks the sizes in id order and reads each one's stock and price. Only the head of a size's queue
    ever waits at its row, so the row lock's waiters cannot pile up behind one another (64 of them
    waiting at the row deadlocked this statement before there was a queue). A lock that waited reads
    the row its holder committed, and the UPDATE in `taken` follows the row to that version too
    (PostgreSQL re-checks an updated row's conditions on its newest version under READ COMMITTED).
    `enough` says whether every size has what is wanted, its session has not started and its price is
    still the one read. `taken` updates every size behind the caller's gate (its order was written,
    which the caller makes depend on `enough`), with the `stock >= 0` CHECK behind that; `ledger`
    writes each take's movement with its level. As all of it is one statement, a refusal writes
    nothing: no savepoint, nothing to roll back, and the statement may commit as it ends."""

    wanted: FromClause
    lines: ColumnElement[int]  # how many rows `wanted` has (an expression: the statement is built once)

    @cached_property
    def locked(self) -> CTE:
        """id, stock (now), open (not a class session that has started), price (now): one row per
        size that exists, after this transaction's turn in each one's queue."""
        sizes = select(self.wanted.c.variant_id)
        return (
            select(
                _VARIANTS.c.id,
                _VARIANTS.c.stock,
                not_started_condition().label("open"),
                func.coalesce(_VARIANTS.c.price_override, _PRODUCTS.c.price).label("price"),
                # PostgreSQL computes a row's columns before it locks the row: the queue comes first.
                queued_for_taking(sizes).label("queued"),
            )
            .join_from(_VARIANTS, _PRODUCTS, _PRODUCTS.c.id == _VARIANTS.c.product_id)
            .where(_VARIANTS.c.id.in_(sizes))
            .order_by(_VARIANTS.c.id)
            # FOR NO KEY UPDATE of the sizes alone: what the UPDATE takes; carts' foreign keys pass.
            .with_for_update(of=_VARIANTS, key_share=True)
            .cte("stock_locked")
        )

    @cached_property
    def enough(self) -> CTE:
        """One row, `ok`: every wanted size exists, has that much left, is on sale and costs what was read."""
        locked = self.locked
        short_or_ok = locked.join(self.wanted, self.wanted.c.variant_id == locked.c.id)
        return (
            select((func.count() == self.lines).label("ok"))
            .select_from(short_or_ok)
            .where(
                has_enough(locked.c.stock, self.wanted.c.quantity),
                locked.c.open,
                locked.c.price == self.wanted.c.unit_price,
            )
            .cte("stock_enough")
        )

    def taken(self, gate: ColumnElement[bool]) -> CTE:
        """Take the units once `gate` holds: id, stock (the level after), low_stock_threshold, sku, quantity.

        Every wanted size, or none: the caller's gate holds only if `enough` found each one's stock,
        start and price right under its lock, and nothing changes a row this statement holds. The
        UPDATE repeats no condition on the row and computes the new stock from `locked`, not from the
        row it scanned: PostgreSQL reads that row as the statement's snapshot had it, before the
        statement waited at the size, so a size restocked meanwhile was passed by (half an order
        taken) or, without the condition, written from its old level (the restock lost)."""
        locked = self.locked
        return (
            update(_VARIANTS)
            .where(_VARIANTS.c.id == self.wanted.c.variant_id, locked.c.id == _VARIANTS.c.id, gate)
            # The ORM's `onupdate` is not run for an UPDATE inside a WITH: the time is set here.
            .values(stock=locked.c.stock - self.wanted.c.quantity, updated_at=func.now())
            .returning(
                _VARIANTS.c.id,
                _VARIANTS.c.stock,
                _VARIANTS.c.low_stock_threshold,
                _VARIANTS.c.sku,
                self.wanted.c.quantity,
            )
            .cte("stock_taken")
        )

    @staticmethod
    def ledger(
        taken: CTE, order_number: ColumnElement[str], by_email: ColumnElement[str], by_id: ColumnElement[UUID | None]
    ) -> CTE:
        """Each take's ledger row (reason "order"), with the level the update returned; `by_email`
        and `by_id` (the shopper, a `Mover`) are expressions, so a statement can be built once."""
        rows = select(
            taken.c.id,
            -taken.c.quantity,
            literal(StockReason.ORDER.value),
            by_id,
            func.left(by_email, 320, type_=_MOVEMENTS.c.actor.type),
            order_number,
            taken.c.stock,
            literal(""),
        ).select_from(taken)
        columns = ["variant_id", "delta", "reason", "actor_id", "actor", "order_number", "level", "note"]
        return insert(_MOVEMENTS).from_select(columns, rows).returning(_MOVEMENTS.c.id).cte("stock_ledger")


def crossed_low_condition(
    level: ColumnElement[int], threshold: ColumnElement[int], taken: ColumnElement[int]
) -> ColumnElement[bool]:
    """`crossed_low` in SQL: this take brought the size to low stock."""
    return and_(level <= threshold, level + taken > threshold)


def reserved(db: AsyncSession, redis: Redis | None, product_slugs: Iterable[str], sold_out: bool) -> None:
    """After a reservation's statement: those products' cached pages go stale when the transaction
    commits, and the listings too if a size sold out (what a card and the in-stock filter show)."""
    catalog_changed(db, redis, sorted(set(product_slugs)), listings=sold_out)


def _movement(
    variant_id: UUID, delta: int, level: int, reason: StockReason, by: Mover, order_number: str | None, note: str = ""
) -> StockMovement:
    return StockMovement(
        variant_id=variant_id,
        delta=delta,
        level=level,
        reason=reason.value,
        actor=by.email[:320],
        actor_id=by.id,
        order_number=order_number,
        note=note,
    )


async def take(
    db: AsyncSession,
    variant_id: UUID,
    quantity: int,
    *,
    by: Mover = Mover(),
    order_number: str | None = None,
    redis: Redis | None = None,
    product_slug: str | None = None,
) -> Taken | None:
    """Take the units for an order, or None if there are not that many left or the size is a seat
    of a class session that has started (`has_started` tells which; the transaction must
    then be rolled back to its savepoint: after a refusal by the CHECK constraint it can do nothing else).
    With `product_slug`, only that product's cached pages go stale (and the listings if the size sold out)."""
    try:
        row = (await db.execute(take_statement(variant_id, quantity))).first()
    except IntegrityError as exc:
        if violated_constraint(exc) != STOCK_CONSTRAINT:
            raise
        return None
    if row is None:
        return None
    db.add(_movement(variant_id, -quantity, row.stock, StockReason.ORDER, by, order_number))
    catalog_changed(db, redis, None if product_slug is None else [product_slug], listings=row.stock == 0)
    return Taken(row.stock, row.low_stock_threshold, row.sku)


async def give_back(
    db: AsyncSession,
    lines: Iterable[tuple[UUID, int]],
    *,
    reason: StockReason = StockReason.CANCEL,
    by: Mover = Mover(),
    order_number: str | None = None,
    redis: Redis | None = None,
) -> None:
    """Return (variant id, quantity) units, in variant-id order (row locks in one order: no deadlock)."""
    for variant_id, quantity in sorted(lines):
        level = await db.scalar(
            update(Variant)
            .where(Variant.id == variant_id)
            .values(stock=Variant.stock + quantity)
            .returning(Variant.stock)
        )
        if level is not None:  # a size deleted since the order keeps no stock to return
            db.add(_movement(variant_id, quantity, level, reason, by, order_number))
    await db.flush()
    catalog_changed(db, redis)


async def adjust(
    db: AsyncSession,
    variant_id: UUID,
    reason: StockReason,
    by: Mover,
    *,
    delta: int | None = None,
    counted: int | None = None,
    note: str = "",
    redis: Redis | None = None,
) -> StockMovement:
    """An adjustment by hand: `delta` units in (delivery) or out (waste), or the level `counted` on
    the shelf (a count correction: the delta is worked out under the row lock, so a checkout at the
    same moment is not lost). Refused with StockRefused if the stock would go below zero."""
    if (delta is None) == (counted is None):
        raise ValueError("give either delta or counted")
    if counted is not None:
        current = await db.scalar(select(Variant.stock).where(Variant.id == variant_id).with_for_update())
        if current is None:
            raise StockRefused("That size no longer exists.")
        delta = counted - current
    assert delta is not None
    level = await db.scalar(
        update(Variant)
        .where(Variant.id == variant_id, Variant.stock + delta >= 0)
        .values(stock=Variant.stock + delta)
        .returning(Variant.stock)
    )
    if level is None:
        raise StockRefused("There is not that much stock to take out.")
    movement = _movement(variant_id, delta, level, reason, by, None, note)
    db.add(movement)
    await db.flush()
    catalog_changed(db, redis)
    return movement


def opening(variant: Variant, reason: StockReason, by: Mover = Mover()) -> StockMovement:
    """The first ledger row of a new size (its id must be set): its whole stock, so level == sum."""
    return _movement(variant.id, variant.stock, variant.stock, reason, by, None)


async def left(db: AsyncSession, variant_id: UUID) -> int:
    return await db.scalar(select(Variant.stock).where(Variant.id == variant_id)) or 0


async def has_started(db: AsyncSession, variant_id: UUID) -> bool:
    """Why a take was refused when stock was left: the class session has begun."""
    started = await db.scalar(select(~not_started_condition()).where(Variant.id == variant_id))
    return bool(started)


async def ledger(db: AsyncSession, variant_id: UUID, page: int, page_size: int = 20) -> tuple[list[StockMovement], int]:
    """A size's movements, newest first, and how many there are."""
    total = await db.scalar(select(func.count()).where(StockMovement.variant_id == variant_id)) or 0
    rows = await db.scalars(
        select(StockMovement)
        .where(StockMovement.variant_id == variant_id)
        .order_by(StockMovement.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return list(rows), total


async def ledger_mismatches(db: AsyncSession, variant_ids: Sequence[UUID] | None = None) -> list[tuple[UUID, int, int]]:
    """Sizes whose stock differs from the sum of their ledger: (id, stock, sum). Empty when all is well."""
    sums = (
        select(StockMovement.variant_id, func.sum(StockMovement.delta).label("total"))
        .group_by(StockMovement.variant_id)
        .subquery()
    )
    stmt = (
        select(Variant.id, Variant.stock, func.coalesce(sums.c.total, 0))
        .outerjoin(sums, sums.c.variant_id == Variant.id)
        .where(Variant.stock != func.coalesce(sums.c.total, 0))
    )
    if variant_ids is not None:
        stmt = stmt.where(Variant.id.in_(variant_ids))
    return [(r[0], r[1], int(r[2])) for r in (await db.execute(stmt)).all()]


async def open_missing_balances(db: AsyncSession, reason: StockReason) -> int:
    """An opening ledger row (the whole stock) for every size that has none yet: what the seed and
    bulk imports call after inserting sizes, so level == sum of the ledger holds for them too."""
    no_movement = ~select(StockMovement.id).where(StockMovement.variant_id == Variant.id).exists()
    rows = select(Variant.id, Variant.stock, literal(reason.value), literal(SYSTEM), Variant.stock).where(no_movement)
    result = await db.execute(
        insert(StockMovement).from_select(["variant_id", "delta", "reason", "actor", "level"], rows)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
