"""Fulfilment: what happens after an outbox event, run by the worker.

`deliver` handles one outbox row: it dispatches on the topic, then marks the row delivered.
Every step is idempotent on its own, so a job that runs twice (a retry, a redelivery by the
sweep, a worker killed mid-job, two runs at once) ends in the same state as one that ran once:
- the payment step charges only a PENDING order, marked "charging" under its row lock before the
  gateway is called, with an idempotency key per set of payment details; its answer is recorded
  once (OrderService.begin_charge / settle_payment);
- a refund is asked only of an order still "refunding", with an idempotency key per charge;
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
from sweetdream.orders import outbox
from sweetdream.orders.models import Order, OrderStatus, OutboxEvent, PaymentMethod, PaymentStatus
from sweetdream.orders.services import UNPAID_HOLD_MINUTES, OrderService
from sweetdream.payments import PaymentGateway
from sweetdream.platform.i18n import gettext_noop

PAYMENTS_ACTOR = "system:payments"
STATUS_EMAILS = {
    OrderStatus.PREPARING: "preparing",
    OrderStatus.SHIPPED: "shipped",
    OrderStatus.DELIVERED: "delivered",
    OrderStatus.CANCELLED: "cancelled",
}
# While money is on its way (a charge in flight, a refund asked for) the cancellation email waits:
# it says what happened to the money, so it is sent by the step that settles it.
MONEY_IN_FLIGHT = {PaymentStatus.CHARGING, PaymentStatus.REFUNDING}


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

    async def take_payment(self, db: AsyncSession, event: OutboxEvent, attempt: int) -> str:
        """`order.placed` and `order.payment_requested` (new details after a decline): take the
        payment, then tell the shopper how it went."""
        orders = OrderService(db, self.redis)
        order = await self._take_payment(orders, await _order(orders, event.payload), attempt)
        if order.status == OrderStatus.CANCELLED:
            return await self._email_cancelled(db, orders, order)
        if order.payment_status == PaymentStatus.DECLINED:
            # One email per set of details declined (the shopper may try another card, and fail again).
            await self._email_customer(db, order, "declined", key=f"order:{order.id}:declined:{order.payment_attempt}")
            return f"{order.number}: payment declined, held for another payment"
        if order.status == OrderStatus.PENDING:
            return f"{order.number}: pending, {order.payment_status}"
        await self._email_customer(db, order, "confirmation")  # the moved order, its lines loaded
        return f"{order.number}: {order.status.value}, confirmed"

    async def _take_payment(self, orders: OrderService, order: Order, attempt: int) -> Order:
        if order.payment_method == PaymentMethod.COD:
            return await orders.transition(
                order.id,
                OrderStatus.PROCESSING,
                PAYMENTS_ACTOR,
                gettext_noop("Cash on delivery: payment due on delivery"),  # shown translated (OrderEvent.shown_note)
                only_from=OrderStatus.PENDING,
            )
        charging = await orders.begin_charge(order.id)
        if charging is None:  # settled already, or cancelled before any charge began
            return await orders.by_id(order.id) or order
        # No lock is held while the gateway answers. GatewayUnavailable propagates: the job is
        # retried with backoff and asks again with the same idempotency key.
        result = await self.gateway.charge(
            charging.payment_token or "",
            charging.total,
            charging.currency,
            idempotency_key=charging.charge_key,
            attempt=attempt,
        )
        return await orders.settle_payment(order.id, result, PAYMENTS_ACTOR)

    async def refund(self, db: AsyncSession, event: OutboxEvent, attempt: int) -> str:
        """`order.refund`: give a cancelled paid order's money back through the gateway, then send
        the cancellation email that says so. GatewayUnavailable propagates and the job is retried."""
        orders = OrderService(db, self.redis)
        order = await _order(orders, event.payload)
        if order.payment_status == PaymentStatus.REFUNDING:
            result = await self.gateway.refund(
                order.payment_reference or "", order.total, idempotency_key=f"{order.charge_key}-refund"
            )
            order = await orders.record_refund(order.id, result, PAYMENTS_ACTOR)
        return await self._email_cancelled(db, orders, order)

    async def status_changed(self, db: AsyncSession, event: OutboxEvent, attempt: int) -> str:
        payload = event.payload
        to = OrderStatus(payload["to"])
        kind = STATUS_EMAILS.get(to)
        if kind is None:
            return f"{payload['number']}: {to.value}, nothing to send"
        orders = OrderService(db, self.redis)
        order = await _order(orders, payload)
        if to == OrderStatus.CANCELLED:
            return await self._email_cancelled(db, orders, order)
        sent = await self._email_customer(db, order, kind, note=payload.get("note", ""))
        return f"{order.number}: {kind} email {'sent' if sent else 'already sent'}"

    async def _email_cancelled(self, db: AsyncSession, orders: OrderService, order: Order) -> str:
        """The cancellation email, once the money has settled (refunded, or never charged)."""
        if order.status != OrderStatus.CANCELLED:
            return f"{order.number}: {order.status.value}, not cancelled"
        if order.payment_status in MONEY_IN_FLIGHT:
            return f"{order.number}: cancelled, email waits for the payment ({order.payment_status})"
        note = await orders.cancellation_note(order.id)
        sent = await self._email_customer(db, order, "cancelled", note=note)
        return f"{order.number}: cancelled ({order.payment_status}), email {'sent' if sent else 'already sent'}"

    async def stock_low(self, db: AsyncSession, event: OutboxEvent, attempt: int) -> str:
        """One event per crossing of the threshold (see OrderService._take_stock), one email per admin."""
        payload = event.payload
        admins = await UserService(session=db).admin_emails()
        for email, language in admins:
            message = self.notifier.render("low_stock", email, language, **payload)
            await self.notifier.send_once(db, f"stock-low:{event.id}:{email}", message)
        return f"low stock alert for {payload['sku']} to {len(admins)} admin(s)"

    async def _email_customer(self, db: AsyncSession, order: Order, kind: str, key: str = "", **context: Any) -> bool:
        user = await UserService(session=db).get(order.user_id)
        # The recipient's language: the one they chose, else the one they ordered in.
        language = user.language or order.language
        email = self.notifier.render(
            kind,
            user.email,
            language,
            order=order,
            number=order.number,
            unpaid_hold_minutes=UNPAID_HOLD_MINUTES,
            **context,
        )
        return await self.notifier.send_once(db, key or f"order:{order.id}:{kind}", email)

    async def cancel_unpaid(self) -> int:
        """Cancel orders left unpaid too long after a decline (the worker's cron, every minute)."""
        async with self.session() as db:
            return await OrderService(db, self.redis).cancel_unpaid(PAYMENTS_ACTOR)


Handler = Callable[[Fulfillment, AsyncSession, OutboxEvent, int], Awaitable[str]]
HANDLERS: dict[str, Handler] = {
    "order.placed": Fulfillment.take_payment,
    "order.payment_requested": Fulfillment.take_payment,
    "order.refund": Fulfillment.refund,
    "order.status_changed": Fulfillment.status_changed,
    "stock.low": Fulfillment.stock_low,
}


async def _order(orders: OrderService, payload: dict[str, Any]) -> Order:
    order = await orders.by_id(UUID(payload["order_id"]))
    if order is None:  # orders are never deleted; a missing one is a bug worth a failed row
        raise LookupError(f"order {payload.get('number')} not found")
    return order
