"""A signed-in shopper's cart lives here; a visitor's lives in their server-side session."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import CheckConstraint, ForeignKey, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sweetdream.db import UUIDAuditBase


class CartItem(UUIDAuditBase):
    __tablename__ = "cart_items"
    __table_args__ = (
        UniqueConstraint("user_id", "variant_id", name="uq_cart_items_user_variant"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[UUID] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    quantity: Mapped[int] = mapped_column(Integer)
    # The price the shopper saw when adding, so the cart can say when it has changed since.
    price_seen: Mapped[int] = mapped_column(Integer)
