"""Orders, their lines (snapshots of name, size and price), status history, and the outbox."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sweetdream.db import UUIDAuditBase, UUIDBase


class OrderStatus(enum.StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


class PaymentMethod(enum.StrEnum):
    COD = "COD"
    CARD = "CARD"


def _enum(kind: type[enum.Enum], name: str) -> Enum:
    return Enum(kind, name=name, native_enum=False, length=16)


class Order(UUIDAuditBase):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("subtotal >= 0 AND shipping_fee >= 0 AND total = subtotal + shipping_fee", name="totals"),
        Index("ix_orders_user_created", "user_id", "created_at"),
        Index("ix_orders_status_created", "status", "created_at"),
        # Keys are per shopper: another shopper's key is just a different key, never their order.
        UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_idempotency_key"),
    )

    number: Mapped[str] = mapped_column(String(20), unique=True)
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    # The checkout form's key: a second submit of the same form finds this order instead of making one.
    idempotency_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "order_status"), default=OrderStatus.PENDING)
    payment_method: Mapped[PaymentMethod] = mapped_column(_enum(PaymentMethod, "payment_method"))
    payment_status: Mapped[str] = mapped_column(String(32), default="pending")
    # Card orders: the gateway's token and the card's last four digits. The card number itself
    # never reaches the database or the logs.
    payment_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    card_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    payment_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payment_note: Mapped[str] = mapped_column(Text, default="")
    shipping_name: Mapped[str] = mapped_column(String(120))
    shipping_phone: Mapped[str] = mapped_column(String(32))
    shipping_address: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    subtotal: Mapped[int] = mapped_column(Integer)
    shipping_fee: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="VND")

    lines: Mapped[list[OrderLine]] = relationship(lazy="raise", order_by="OrderLine.position")
    events: Mapped[list[OrderEvent]] = relationship(lazy="raise", order_by="OrderEvent.created_at")


class OrderLine(UUIDBase):
    __tablename__ = "order_lines"
    __table_args__ = (CheckConstraint("quantity > 0 AND unit_price >= 0", name="line_values"),)

    order_id: Mapped[UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[UUID] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"), index=True)
    variant_id: Mapped[UUID] = mapped_column(ForeignKey("variants.id", ondelete="RESTRICT"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    product_name: Mapped[str] = mapped_column(String(200))
    product_slug: Mapped[str] = mapped_column(String(160))
    size_label: Mapped[str] = mapped_column(String(40))
    sku: Mapped[str] = mapped_column(String(64))
    unit_price: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


class OrderEvent(UUIDBase):
    """One status change: who, when, why."""

    __tablename__ = "order_events"

    order_id: Mapped[UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(254))  # an email, or "system:<job>"
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=text("now()"))


class OutboxEvent(UUIDBase):
    """Written in the same transaction as the change it announces; a relay delivers it to the queue.

    The row id is the event id and the queue's job id, so delivering twice enqueues once.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_undelivered", "created_at", postgresql_where=text("delivered_at IS NULL")),
        Index("ix_outbox_failed", "failed_at", postgresql_where=text("failed_at IS NOT NULL")),
    )

    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=text("now()"))
    # When the sweep (or `outbox retry`) last offered the row again; the writer's own relay right
    # after commit leaves it empty, so a value here means the row needed a second chance.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
