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

from sweetdream.audit.services import name_values
from sweetdream.db import UUIDAuditBase, UUIDBase
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop, translate_known


class OrderStatus(enum.StrEnum):
    """Stored by name; people read `label`. The shopper may cancel until the bakery starts
    preparing (PENDING, PROCESSING); the admin marks that step (PREPARING)."""

    PENDING = "PENDING"  # placed; waiting for its payment (a card) or for the worker (cash on delivery)
    PROCESSING = "PROCESSING"  # "Confirmed": paid, or cash on delivery accepted
    PREPARING = "PREPARING"  # "Being prepared": baking has started; no longer cancellable online
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"

    @property
    def label(self) -> str:
        return _(STATUS_LABELS[self])


# Source strings, translated where they are shown (`label` reads the request's or the job's language).
STATUS_LABELS = {
    OrderStatus.PENDING: gettext_noop("Pending"),
    OrderStatus.PROCESSING: gettext_noop("Confirmed"),
    OrderStatus.PREPARING: gettext_noop("Being prepared"),
    OrderStatus.SHIPPED: gettext_noop("Shipped"),
    OrderStatus.DELIVERED: gettext_noop("Delivered"),
    OrderStatus.CANCELLED: gettext_noop("Cancelled"),
}

# How people read `Order.payment_status`.
PAYMENT_WORDS = {
    "due on delivery": gettext_noop("Cash on delivery"),
    "pending": gettext_noop("Awaiting payment"),
    "charging": gettext_noop("Being charged"),
    "paid": gettext_noop("Paid"),
    "declined": gettext_noop("Declined"),
    "refunding": gettext_noop("Being refunded"),
    "refunded": gettext_noop("Refunded"),
}
name_values("status", {status.value: word for status, word in STATUS_LABELS.items()})
name_values("payment_status", PAYMENT_WORDS)


def payment_words(payment_status: str) -> str:
    known = PAYMENT_WORDS.get(payment_status)
    return _(known) if known else payment_status


class PaymentStatus(enum.StrEnum):
    """`Order.payment_status` (a plain string column: a new value needs no migration).

    A card goes pending -> charging (marked under the order's row lock before the gateway is
    called) -> paid or declined; a paid order that is cancelled goes refunding -> refunded."""

    DUE_ON_DELIVERY = "due on delivery"
    PENDING = "pending"
    CHARGING = "charging"
    PAID = "paid"
    DECLINED = "declined"
    REFUNDING = "refunding"
    REFUNDED = "refunded"


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
        # The admin list's keyset (created_at, id) led by each filter (migration 7d3e9a41c2b8).
        Index("ix_orders_created_id", "created_at", "id", postgresql_include=["total", "status"]),
        Index("ix_orders_status_created_id", "status", "created_at", "id", postgresql_include=["total"]),
        Index(
            "ix_orders_payment_status_created_id",
            "payment_status",
            "created_at",
            "id",
            postgresql_include=["total", "status"],
        ),
        Index(
            "ix_orders_payment_method_created_id",
            "payment_method",
            "created_at",
            "id",
            postgresql_include=["total", "status"],
        ),
        Index("ix_orders_phone_created", "shipping_phone", "created_at"),
        Index(
            "ix_orders_name_prefix",
            text('(lower(shipping_name) COLLATE "C")'),
            postgresql_include=["total", "status", "shipping_name"],
        ),
        # Keys are per shopper: another shopper's key is just a different key, never their order.
        UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_idempotency_key"),
        Index("ix_orders_declined_at", "declined_at", postgresql_where=text("declined_at IS NOT NULL")),
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
    # Which set of payment details this is (1 at checkout, +1 each time the shopper pays again
    # after a decline): part of the gateway's idempotency key, so a new card is a new charge.
    payment_attempt: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    # When the card was declined: an order left unpaid for a while after that is cancelled.
    declined_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    refund_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    shipping_name: Mapped[str] = mapped_column(String(120))
    shipping_phone: Mapped[str] = mapped_column(String(32))
    shipping_address: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    subtotal: Mapped[int] = mapped_column(Integer)
    shipping_fee: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="VND")
    # The language the order was placed in: its emails' language when the shopper never chose one.
    language: Mapped[str | None] = mapped_column(String(8), nullable=True, default=None)

    lines: Mapped[list[OrderLine]] = relationship(lazy="raise", order_by="OrderLine.position")
    events: Mapped[list[OrderEvent]] = relationship(lazy="raise", order_by="OrderEvent.created_at")

    @property
    def charge_key(self) -> str:
        """The gateway's idempotency key for charging the current payment details."""
        return f"{self.number}-{self.payment_attempt}"


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
    # A class seat: when its session starts (a snapshot, as the label and price are). None for goods.
    starts_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, default=None)

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


class OrderEvent(UUIDBase):
    """One line of the order's timeline: a status change, or a payment step (a decline, a new
    card, a refund) that leaves the status as it was and carries its own `title`. Who, when, why."""

    __tablename__ = "order_events"

    order_id: Mapped[UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(String(40), nullable=True)
    actor: Mapped[str] = mapped_column(String(254))  # an email, or "system:<job>"
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=text("now()"))

    @property
    def label(self) -> str:
        """The title in the reader's language when it is one the shop writes (orders/services.py)."""
        return translate_known(self.title) if self.title else OrderStatus(self.to_status).label

    @property
    def shown_note(self) -> str:
        """The note; the shop's own fixed notes ("Order placed") in the reader's language."""
        return translate_known(self.note)


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
