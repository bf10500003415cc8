"""Stock belongs to the catalog: the one place that takes units of a size and gives them back.

Both run in the caller's transaction (the order that takes stock commits it with the order), and
the caller tells the catalog cache after its commit (`catalog.cache.invalidate_catalog`).
No oversell: a take is a conditional UPDATE (`stock >= n`); the `stock >= 0` CHECK constraint is
the second line of defence, and either refusal gives the same answer (None).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Update, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.catalog.models import Variant
from sweetdream.db import violated_constraint

STOCK_CONSTRAINT = "ck_variants_stock_not_negative"


@dataclass(frozen=True)
class Taken:
    """The size's stock after a take, and what a low-stock alert needs."""

    stock: int
    low_stock_threshold: int
    sku: str


def take_statement(variant_id: UUID, quantity: int) -> Update:
    """Take `quantity` only if that much is left."""
    return (
        update(Variant)
        .where(Variant.id == variant_id, Variant.stock >= quantity)
        .values(stock=Variant.stock - quantity)
        .returning(Variant.stock, Variant.low_stock_threshold, Variant.sku)
    )


async def take(db: AsyncSession, variant_id: UUID, quantity: int) -> Taken | None:
    """Take the units, or None if there are not that many left (the transaction must then be
    rolled back to its savepoint: after a refusal by the CHECK constraint it can do nothing else)."""
    try:
        row = (await db.execute(take_statement(variant_id, quantity))).first()
    except IntegrityError as exc:
        if violated_constraint(exc) != STOCK_CONSTRAINT:
            raise
        return None
    return Taken(row.stock, row.low_stock_threshold, row.sku) if row else None


async def give_back(db: AsyncSession, lines: Iterable[tuple[UUID, int]]) -> None:
    """Return (variant id, quantity) units, in variant-id order (row locks in one order: no deadlock)."""
    for variant_id, quantity in sorted(lines):
        await db.execute(update(Variant).where(Variant.id == variant_id).values(stock=Variant.stock + quantity))


async def left(db: AsyncSession, variant_id: UUID) -> int:
    return await db.scalar(select(Variant.stock).where(Variant.id == variant_id)) or 0
