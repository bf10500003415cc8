"""Fulfilment: what happens after an outbox event, run by the worker.

`deliver` handles one outbox row: it dispatches on the topic, then marks the row delivered.
Every step is idempotent on its own, so a job that runs twice (a retry, a redelivery by the
sweep, a worker killed mid-job, two runs at once) ends in the same state as one that ran once:
- the payment step acts only on a PENDING order (the order row lock serialises two runs);
- each email is sent at most once per (order, kind) (notifications.send_once);
- the row is marked delivered last, in the transaction of the final step.
A job holds one database connection at a time, so the pool bounds nothing but throughput.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.services import UserService
from sweetdream.fulfillment.notifications import Notifier
from sweetdream.fulfillment.payments import PaymentGateway
from sweetdream.orders import outbox
from sweetdream.orders.models import Order, OrderStatus, OutboxEvent, PaymentMethod
from sweetdream.orders.services import OrderService

PAYMENTS_ACTOR = "system:payments"
STATUS_EMAILS = {OrderStatus.SHIPPED: "shipped", OrderStatus.DELIVERED: "delivered", OrderStatus.CANCELLED: "cancelled"}


@dataclass
class Fulfillment:
    """What the handlers need; the worker builds one at startup (workers/settings.py)."""

    session: Callable[[], AbstractAsyncContextManager[AsyncSession]]
    redis: Redis
    notifier: Notifier
    gateway: PaymentGateway

    async def deliver(self, event_id: UUID, attempt: int = 1) -> str:
        """Handle one outbox row. Returns what was done; raises to ask for a retry.

        No lock is held across the work (it commits as it goes: an order moves, then its email
        is sent); each step guards itself instead, so a second run of the same event at the same
        time changes nothing: the order row lock and status check, the unique key of each email.
        """
        async with self.session() as db:
            event = await outbox.pending(db, event_id)
            if event is None:
                await db.commit()
                return "already delivered"
            handler = HANDLERS.get(event.topic)
            outcome = await handler(self, db, event, attempt) if handler else f"no handler for {event.topic}"
            await outbox.mark_delivered(db, event_id)
            await db.commit()
            return outcome

    async def record_failure(self, event_id: UUID, error: str, final: bool) -> None:
        async with self.session() as db:
            await outbox.record_failure(db, event_id, error, final)

    async def sweep(self) -> int:
        async with self.session() as db:
            return await outbox.sweep(db, self.redis)

    # --- handlers -----------------------------------------------------------------------------

    async def order_placed(self, db: AsyncSession, event: OutboxEvent, attempt: int) -> str:
        payload = event.payload
        orders = OrderService(db, self.redis)
        order = await _order(orders, payload)
        if order.status == OrderStatus.PENDING:
            order = await self._take_payment(orders, order, attempt)
        if order.status == OrderStatus.CANCELLED:
            return f"{order.number}: cancelled, no confirmation"
        await self._email_customer(db, order, "confirmation")  # the moved order, its lines loaded
        return f"{order.number}: {order.status.value}, confirmed"

    async def _take_payment(self, orders: OrderService, order: Order, attempt: int) -> Order:
        if order.payment_method == PaymentMethod.COD:
            return await orders.transition(
                order.id,
                OrderStatus.PROCESSING,
                PAYMENTS_ACTOR,
                "Cash on delivery: payment due on delivery",
                only_from=OrderStatus.PENDING,
            )
        # GatewayUnavailable propagates: the job is retried with backoff, the order stays PENDING.
        result = await self.gateway.charge(
            order.payment_token or "", order.total, order.currency, idempotency_key=order.number, attempt=attempt
        )
        return await orders.settle_payment(order.id, result.approved, result.reference, result.reason, PAYMENTS_ACTOR)

    async def status_changed(self, db: AsyncSession, event: OutboxEvent, attempt: int) -> str:
        payload = event.payload
        to = OrderStatus(payload["to"])
        kind = STATUS_EMAILS.get(to)
        if kind is None:
            return f"{payload['number']}: {to.value}, nothing to send"
        if to == OrderStatus.CANCELLED and payload.get("cause") == "payment_declined":
            kind = "declined"
        order = await _order(OrderService(db, self.redis), payload)
        sent = await self._email_customer(db, order, kind, note=payload.get("note", ""))
        return f"{order.number}: {kind} email {'sent' if sent else 'already sent'}"

    async def stock_low(self, db: AsyncSession, event: OutboxEvent, attempt: int) -> str:
        """One event per crossing of the threshold (see OrderService._take_stock), one email per admin."""
        payload = event.payload
        admins = await UserService(session=db).admin_emails()
        for email in admins:
            message = self.notifier.render("low_stock", email, **payload)
            await self.notifier.send_once(db, f"stock-low:{event.id}:{email}", message)
        return f"low stock alert for {payload['sku']} to {len(admins)} admin(s)"

    async def _email_customer(self, db: AsyncSession, order: Order, kind: str, **context: Any) -> bool:
        user = await UserService(session=db).get(order.user_id)
        email = self.notifier.render(kind, user.email, order=order, number=order.number, **context)
        return await self.notifier.send_once(db, f"order:{order.id}:{kind}", email)


Handler = Callable[[Fulfillment, AsyncSession, OutboxEvent, int], Awaitable[str]]
HANDLERS: dict[str, Handler] = {
    "order.placed": Fulfillment.order_placed,
    "order.status_changed": Fulfillment.status_changed,
    "stock.low": Fulfillment.stock_low,
}


async def _order(orders: OrderService, payload: dict[str, Any]) -> Order:
    order = await orders.by_id(UUID(payload["order_id"]))
    if order is None:  # orders are never deleted; a missing one is a bug worth a failed row
        raise LookupError(f"order {payload.get('number')} not found")
    return order
