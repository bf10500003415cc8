"""Order rules: placing an order in one transaction, and the one function that moves its status.

No oversell: each line's stock is taken with a conditional UPDATE (`stock >= n`) inside the
transaction that writes the order, in variant-id order (no deadlocks), all lines or none; the
`stock >= 0` CHECK constraint backs it up, and either refusal is the same "sold out" answer.
Double submit: the form's idempotency key is unique per shopper; checkouts by one shopper are
serialised by locking their user row, so a repeat finds the first order instead of making a second.
No silent price change: the order is placed only if it is what the shopper reviewed (orders/review.py).

Money never moves silently: a card is marked "charging" under the order's row lock (and committed)
before the gateway is called, and the gateway's answer is recorded under the lock again. A cancel
in between is accepted (the shopper may cancel until the bakery starts preparing); if the charge
then lands, it is refunded. Every cancelled paid order is refunded through the gateway by the
worker (an outbox event), and the order says so ("refunding", then "refunded").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from redis.asyncio import Redis
from sqlalchemy import Select, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from sweetdream.accounts.models import User
from sweetdream.cart.services import CartLine, CartService, CartView
from sweetdream.catalog import stock
from sweetdream.catalog.cache import invalidate_catalog, invalidate_products
from sweetdream.catalog.money import format_vnd
from sweetdream.db import violated_constraint
from sweetdream.fulfillment.payments import CardToken, ChargeResult, RefundResult
from sweetdream.orders import live
from sweetdream.orders.models import (
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    OutboxEvent,
    PaymentMethod,
    PaymentStatus,
)
from sweetdream.orders.outbox import relay
from sweetdream.orders.review import review_of

log = logging.getLogger("sweetdream.orders")

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

ALLOWED: dict[OrderStatus, set[OrderStatus]] = {
    OrderStatus.PENDING: {OrderStatus.PROCESSING, OrderStatus.CANCELLED},
    OrderStatus.PROCESSING: {OrderStatus.PREPARING, OrderStatus.CANCELLED},
    OrderStatus.PREPARING: {OrderStatus.SHIPPED, OrderStatus.CANCELLED},
    OrderStatus.SHIPPED: {OrderStatus.DELIVERED},
    OrderStatus.DELIVERED: set(),
    OrderStatus.CANCELLED: set(),
}
# A bakery's rule: the shopper may cancel online until the bakery starts preparing the order.
CUSTOMER_CANCELLABLE = frozenset({OrderStatus.PENDING, OrderStatus.PROCESSING})
# The moves staff make by hand, in the order the buttons show them (cancel last). Confirming an
# order (PENDING -> PROCESSING) is its payment's to do: a button could confirm an unpaid card order.
ADMIN_MOVES = (OrderStatus.PREPARING, OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.CANCELLED)
# How long a declined order keeps its stock while the shopper pays again; then it is cancelled.
UNPAID_HOLD = timedelta(minutes=30)
UNPAID_HOLD_MINUTES = int(UNPAID_HOLD.total_seconds() // 60)

_NOT_CANCELLABLE = {
    OrderStatus.PREPARING: "is being prepared",
    OrderStatus.SHIPPED: "has been shipped",
    OrderStatus.DELIVERED: "has been delivered",
}


def admin_moves(status: OrderStatus) -> list[OrderStatus]:
    """The moves an admin may make from `status`, cancel last."""
    return [to for to in ADMIN_MOVES if to in ALLOWED[status]]


class CheckoutError(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ReviewChanged(CheckoutError):
    """The order as it would be placed now is not the one the shopper reviewed: nothing was placed."""

    def __init__(self) -> None:
        super().__init__("Your order changed since you reviewed it.")


class IllegalTransition(ValueError):
    """Refused status change: shown as a 409 with this message."""


@dataclass(frozen=True)
class Shipping:
    name: str
    phone: str
    address: str
    note: str
    payment_method: PaymentMethod
    card: CardToken | None = None  # card orders: the gateway's token, never the number


@dataclass(frozen=True)
class Totals:
    subtotal: int
    shipping_fee: int

    @property
    def total(self) -> int:
        return self.subtotal + self.shipping_fee


def totals_for(cart: CartView, flat_fee: int, free_from: int) -> Totals:
    subtotal = cart.subtotal
    return Totals(subtotal, 0 if subtotal >= free_from or subtotal == 0 else flat_fee)


ORDER_KEY_CONSTRAINT = "uq_orders_user_idempotency_key"


class _ShortOfStock(Exception):
    """A line's stock could not be taken; raised inside the savepoint, answered after its rollback."""

    def __init__(self, line: CartLine) -> None:
        super().__init__(line.variant_id)
        self.line = line


class OrderService:
    def __init__(self, db: AsyncSession, redis: Redis | None = None) -> None:
        self.db = db
        self.redis = redis
        self._new_events: list[UUID] = []  # outbox rows written in the open transaction
        # Products whose stock this transaction took (their cached pages are stale after commit),
        # and whether a size sold out (then the listings' cards and in-stock filter are too).
        self._stock_taken_from: set[str] = set()
        self._sold_out = False

    def _announce(self, topic: str, payload: dict[str, Any]) -> None:
        """Write an outbox row in the open transaction; it is relayed to the queue after commit."""
        event = OutboxEvent(id=uuid4(), topic=topic, payload=payload)
        self.db.add(event)
        self._new_events.append(event.id)

    def _forget_rolled_back(self) -> None:
        """The savepoint was rolled back: its outbox rows and stock takes never happened."""
        self._new_events.clear()
        self._stock_taken_from.clear()
        self._sold_out = False

    async def _after_commit(self, stock_changed: bool, moved: Order | None = None) -> None:
        """Hand the new outbox rows to the queue; tell cached catalog pages and open order pages.

        A placed order tells only the pages of the products it took stock from (and the listings
        if a size sold out); other stock changes (a cancel gives stock back) tell every page."""
        events, self._new_events = self._new_events, []
        taken_from, self._stock_taken_from = self._stock_taken_from, set()
        sold_out, self._sold_out = self._sold_out, False
        if self.redis is None:
            return
        if stock_changed:  # cached catalog pages must not show the old figures
            try:
                if taken_from:
                    await invalidate_products(self.redis, taken_from, listings_changed=sold_out)
                else:
                    await invalidate_catalog(self.redis)
            except Exception:  # the change is committed; a 500 now would only hide that from the shopper
                log.error("could not invalidate the catalog cache after a stock change", exc_info=True)
        if moved is not None:
            await live.publish(self.redis, moved.id)
        await relay(self.redis, events)

    # --- placing -------------------------------------------------------------------------------

    async def place(
        self,
        user: User,
        cart: CartService,
        shipping: Shipping,
        idempotency_key: str,
        fee: int,
        free_from: int,
        reviewed: str | None = None,
    ) -> tuple[Order, bool]:
        """Returns (order, created). Everything is computed here from the database; nothing the
        browser sent about prices or totals is read. On any refusal nothing has changed.

        `reviewed` is the digest of the checkout page the shopper placed the order from: if the
        order would now differ from it (a price, a line, the fee), ReviewChanged is raised and
        nothing is placed. None is for callers that showed no page (scripts, tests)."""
        if not IDEMPOTENCY_KEY.match(idempotency_key):
            raise CheckoutError("This checkout form has expired. Please review your order and submit again.")
        # Serialise this shopper's checkouts: the idempotency check below then sees any earlier submit.
        await self.db.execute(select(User.id).where(User.id == user.id).with_for_update())
        existing = await self._by_key(idempotency_key, user.id)
        if existing is not None:
            await self.db.commit()  # nothing written; releases the lock (a rollback would expire the user)
            return existing, False
        view = await cart.view()
        try:
            # A savepoint: a refused line undoes every stock update and row written here, and only those.
            async with self.db.begin_nested():
                order = await self._write_order(user, view, shipping, idempotency_key, fee, free_from, reviewed)
                await cart.store.clear()
        except CheckoutError:
            self._forget_rolled_back()
            await self.db.commit()
            raise
        except _ShortOfStock as short:  # the savepoint is rolled back: the session reads again
            self._forget_rolled_back()
            message = await self._short_of_stock_message(short.line)
            await self.db.commit()
            raise CheckoutError(message) from None
        except IntegrityError as exc:
            self._forget_rolled_back()
            await self.db.commit()
            if violated_constraint(exc) != ORDER_KEY_CONSTRAINT:
                raise
            # A concurrent submit of the same form won the key: its order is this submit's answer.
            order_or_none = await self._by_key(idempotency_key, user.id)
            if order_or_none is None:
                raise
            return order_or_none, False
        await self.db.commit()
        await self._after_commit(stock_changed=True)
        return order, True

    async def _write_order(
        self, user: User, view: CartView, shipping: Shipping, key: str, fee: int, free_from: int, reviewed: str | None
    ) -> Order:
        if not view.lines:
            raise CheckoutError("Your cart is empty.")
        blocked = next((line for line in view.lines if line.problems), None)
        if blocked is not None:
            raise CheckoutError(f"{blocked.product_name} ({blocked.size_label}): {blocked.problems[0]}")
        totals = totals_for(view, fee, free_from)
        # The lines and prices read here are the ones the order is written from.
        if reviewed is not None and review_of(view, totals.shipping_fee, totals.total).digest != reviewed:
            raise ReviewChanged()
        await self._check_seat_limits(user.id, view.lines)
        number = await self.db.scalar(text("SELECT nextval('order_number_seq')"))
        order = Order(
            number=f"SD-{number:06d}",
            user_id=user.id,
            idempotency_key=key,
            status=OrderStatus.PENDING,
            payment_method=shipping.payment_method,
            payment_status="due on delivery" if shipping.payment_method == PaymentMethod.COD else "pending",
            payment_token=shipping.card.token if shipping.card else None,
            card_last4=shipping.card.last4 if shipping.card else None,
            shipping_name=shipping.name,
            shipping_phone=shipping.phone,
            shipping_address=shipping.address,
            note=shipping.note,
            subtotal=totals.subtotal,
            shipping_fee=totals.shipping_fee,
            total=totals.total,
        )
        self.db.add(order)
        await self.db.flush()
        for position, line in enumerate(view.lines):
            self.db.add(
                OrderLine(
                    order_id=order.id,
                    product_id=line.product_id,
                    variant_id=line.variant_id,
                    position=position,
                    product_name=line.product_name,
                    product_slug=line.product_slug,
                    size_label=line.size_label,
                    sku=line.sku,
                    unit_price=line.unit_price,
                    quantity=line.quantity,
                )
            )
        self.db.add(
            OrderEvent(
                order_id=order.id,
                from_status=None,
                to_status=OrderStatus.PENDING,
                actor=user.email,
                note="Order placed",
            )
        )
        self._announce("order.placed", _order_payload(order))
        await self.db.flush()
        # Stock last: its row locks are then held only from here to the commit, which is what
        # limits a rush on the last units of one size. A refusal rolls back the rows above too.
        for line in sorted(view.lines, key=lambda item: item.variant_id):
            await self._take_stock(line)
        return order

    async def _take_stock(self, line: CartLine) -> None:
        taken = await stock.take(self.db, line.variant_id, line.quantity)
        if taken is None:
            raise _ShortOfStock(line)
        self._stock_taken_from.add(line.product_slug)
        self._sold_out = self._sold_out or taken.stock == 0
        # Only the update that takes stock across the threshold announces it: one alert per
        # crossing, however many orders follow (row updates on one size are serialised).
        if taken.stock <= taken.low_stock_threshold < taken.stock + line.quantity:
            self._announce(
                "stock.low",
                {
                    "variant_id": str(line.variant_id),
                    "sku": taken.sku,
                    "product": line.product_name,
                    "size": line.size_label,
                    "stock": taken.stock,
                    "threshold": taken.low_stock_threshold,
                },
            )

    async def _check_seat_limits(self, user_id: UUID, lines: list[CartLine]) -> None:
        limited = [line for line in lines if line.max_per_customer is not None]
        if not limited:
            return
        held = dict(
            (
                await self.db.execute(
                    select(OrderLine.variant_id, func.sum(OrderLine.quantity))
                    .join(Order, Order.id == OrderLine.order_id)
                    .where(
                        Order.user_id == user_id,
                        Order.status != OrderStatus.CANCELLED,
                        OrderLine.variant_id.in_([line.variant_id for line in limited]),
                    )
                    .group_by(OrderLine.variant_id)
                )
            ).all()
        )
        for line in limited:
            assert line.max_per_customer is not None
            already = int(held.get(line.variant_id, 0))
            if already + line.quantity > line.max_per_customer:
                room = max(line.max_per_customer - already, 0)
                raise CheckoutError(
                    f"{line.product_name}: at most {line.max_per_customer} per customer; you already hold {already}"
                    + (f", so you can add {room} more." if room else ".")
                )

    async def _by_key(self, key: str, user_id: UUID) -> Order | None:
        return await self.db.scalar(select(Order).where(Order.idempotency_key == key, Order.user_id == user_id))

    async def _short_of_stock_message(self, line: CartLine) -> str:
        left = await stock.left(self.db, line.variant_id)
        what = f"{line.product_name} ({line.size_label})"
        return f"{what}: sold out while you were checking out." if left == 0 else f"{what}: only {left} left."

    # --- reading -------------------------------------------------------------------------------

    async def for_viewer(self, number: str, viewer: User) -> Order | None:
        """The order if this viewer may see it (its owner or an admin); None otherwise, exists or not."""
        return await self.db.scalar(
            _viewable(number, viewer).options(selectinload(Order.lines), selectinload(Order.events))
        )

    async def viewable_id(self, number: str, viewer: User) -> UUID | None:
        """The id of the order if this viewer may see it (one small query, nothing loaded)."""
        return await self.db.scalar(_viewable(number, viewer).with_only_columns(Order.id))

    async def owned_id(self, number: str, user_id: UUID) -> UUID | None:
        """The id of the order if it is this shopper's own (what they may cancel or pay)."""
        return await self.db.scalar(select(Order.id).where(Order.number == number, Order.user_id == user_id))

    async def id_for_number(self, number: str) -> UUID | None:
        return await self.db.scalar(select(Order.id).where(Order.number == number))

    async def history(self, user_id: UUID, page: int, page_size: int = 10) -> tuple[list[Order], int]:
        total = await self.db.scalar(select(func.count()).select_from(Order).where(Order.user_id == user_id)) or 0
        orders = await self.db.scalars(
            select(Order)
            .where(Order.user_id == user_id)
            .order_by(Order.created_at.desc(), Order.number.desc())
            .limit(page_size)
            .offset((page - 1) * page_size)
        )
        return list(orders), total

    async def staff_page(self, status: OrderStatus | None, page: int, page_size: int) -> tuple[list[Order], int]:
        """One page of every shopper's orders, newest first (optionally of one status), and how many
        there are in all."""
        filters = [Order.status == status] if status else []
        # Counted from the orders table itself: a count derived from `select(Order)` by swapping its
        # columns loses the FROM when there is no filter, and answered 1 for the whole shop.
        total = await self.db.scalar(select(func.count()).select_from(Order).where(*filters)) or 0
        rows = await self.db.scalars(
            select(Order)
            .where(*filters)
            .order_by(Order.created_at.desc(), Order.number.desc())  # a total order: pages never overlap
            .limit(page_size)
            .offset((page - 1) * page_size)
        )
        return list(rows), total

    # --- moving --------------------------------------------------------------------------------

    async def transition(
        self,
        order_id: UUID,
        to: OrderStatus,
        actor: str,
        note: str = "",
        cause: str = "",
        only_from: OrderStatus | None = None,
    ) -> Order:
        """The only way an order's status changes. Records who, when and why, writes an outbox
        event, returns stock on cancellation (and asks for a refund of a paid order), and commits.
        Illegal moves raise IllegalTransition.

        With `only_from`, an order no longer in that status is returned unchanged: a job that
        runs twice moves the order once, and its second run is not an error."""
        order = await self._locked(order_id)
        if only_from is not None and order.status != only_from:
            await self.db.commit()  # nothing written; releases the row lock
            return order
        await self._move(order, to, actor, note, cause)
        await self.db.commit()
        await self._after_commit(stock_changed=to == OrderStatus.CANCELLED, moved=order)
        return order

    async def cancel_by_customer(self, order_id: UUID, actor: str) -> Order:
        """The shopper's cancel, allowed until the bakery starts preparing; decided under the row
        lock, so it cannot slip past a move made at the same moment."""
        order = await self._locked(order_id)
        if order.status not in CUSTOMER_CANCELLABLE:
            await self.db.commit()
            if order.status == OrderStatus.CANCELLED:
                raise IllegalTransition(f"Order {order.number} is already cancelled.")
            raise IllegalTransition(
                f"Order {order.number} {_NOT_CANCELLABLE[order.status]}, so it can no longer be cancelled online. "
                "Please contact us by replying to your order confirmation email."
            )
        await self._move(order, OrderStatus.CANCELLED, actor, "Cancelled by the customer")
        await self.db.commit()
        await self._after_commit(stock_changed=True, moved=order)
        return order

    async def cancel_unpaid(self, actor: str, hold: timedelta = UNPAID_HOLD) -> int:
        """Cancel orders whose card was declined more than `hold` ago and that were not paid
        since (their stock returns). Returns how many; running twice cancels nothing more."""
        cutoff = datetime.now(UTC) - hold
        due = list(
            await self.db.scalars(
                select(Order.id)
                .where(Order.declined_at <= cutoff, Order.status == OrderStatus.PENDING)
                .where(Order.payment_status == PaymentStatus.DECLINED)
                .order_by(Order.declined_at)
                .limit(100)
            )
        )
        await self.db.commit()
        note = f"Not paid within {int(hold.total_seconds() // 60)} minutes of the card being declined"
        cancelled = 0
        for order_id in due:
            order = await self._locked(order_id)
            # Re-read under the lock: the shopper may have paid again a moment ago.
            if order.status != OrderStatus.PENDING or order.payment_status != PaymentStatus.DECLINED:
                await self.db.commit()
                continue
            await self._move(order, OrderStatus.CANCELLED, actor, note, "unpaid")
            await self.db.commit()
            await self._after_commit(stock_changed=True, moved=order)
            cancelled += 1
        return cancelled

    # --- paying --------------------------------------------------------------------------------

    async def begin_charge(self, order_id: UUID) -> Order | None:
        """Mark a card order "charging" under its row lock and commit, before the gateway is
        called: a cancel from now on leaves the answer to settle_payment, which refunds a charge
        that lands on a cancelled order. Returns the order to charge, or None if there is none.

        An order already "charging" is returned too: an earlier try was cut short (a crash, a
        timeout), and asking the gateway again with the same idempotency key is how we learn
        whether that charge went through."""
        order = await self._locked(order_id)
        if order.payment_status == PaymentStatus.CHARGING:
            await self.db.commit()
            return order
        chargeable = order.status == OrderStatus.PENDING and order.payment_status == PaymentStatus.PENDING
        if chargeable:
            order.payment_status = PaymentStatus.CHARGING
        await self.db.commit()
        return order if chargeable else None

    async def settle_payment(self, order_id: UUID, result: ChargeResult, actor: str) -> Order:
        """Record the gateway's answer to the charge begin_charge started. Approved: paid, and a
        PENDING order is confirmed (PROCESSING); an order cancelled meanwhile is refunded.
        Declined: the order stays PENDING with its stock held, for the shopper to pay again (it
        is cancelled after UNPAID_HOLD otherwise). A second answer for the same charge changes nothing."""
        order = await self._locked(order_id)
        if order.payment_status != PaymentStatus.CHARGING:
            await self.db.commit()
            return order
        card = f"Card ending {order.card_last4}"
        if result.approved:
            order.payment_status = PaymentStatus.PAID
            order.payment_reference = result.reference
            order.payment_note = ""
            if order.status == OrderStatus.PENDING:
                await self._move(order, OrderStatus.PROCESSING, actor, f"{card} charged")
            else:  # cancelled while the charge was on its way: the money goes back
                self._record(order, "Charged", f"{card} charged as the order was being cancelled", actor)
                self._refund(order)
        else:
            order.payment_status = PaymentStatus.DECLINED
            order.payment_note = result.reason
            if order.status == OrderStatus.PENDING:
                order.declined_at = datetime.now(UTC)
            self._record(order, "Payment declined", f"{card}: {result.reason}", actor)
        await self.db.commit()
        await self._after_commit(stock_changed=False, moved=order)
        return order

    async def pay_again(self, order_id: UUID, method: PaymentMethod, card: CardToken | None, actor: str) -> Order:
        """After a decline: new card details (charged by the worker) or cash on delivery, in one
        step. The order keeps its lines and stock; the cart is not touched."""
        order = await self._locked(order_id)
        if order.status != OrderStatus.PENDING or order.payment_status != PaymentStatus.DECLINED:
            await self.db.commit()
            raise IllegalTransition(f"Order {order.number} is no longer waiting for payment.")
        order.payment_attempt += 1  # a new idempotency key: new details are a new charge
        order.declined_at = None
        order.payment_note = ""
        order.payment_reference = None
        if card is not None:
            order.payment_method = PaymentMethod.CARD
            order.payment_token, order.card_last4 = card.token, card.last4
            order.payment_status = PaymentStatus.PENDING
            self._record(order, "Payment details changed", f"Paying with the card ending {card.last4}", actor)
        else:
            order.payment_method = PaymentMethod.COD
            order.payment_token = order.card_last4 = None
            order.payment_status = PaymentStatus.DUE_ON_DELIVERY
            self._record(order, "Payment details changed", "Switched to cash on delivery", actor)
        self._announce("order.payment_requested", _order_payload(order))
        await self.db.commit()
        await self._after_commit(stock_changed=False, moved=order)
        return order

    async def record_refund(self, order_id: UUID, refund: RefundResult, actor: str) -> Order:
        """The gateway gave the money back: the order says "refunded". A second call changes nothing."""
        order = await self._locked(order_id)
        if order.payment_status != PaymentStatus.REFUNDING:
            await self.db.commit()
            return order
        order.payment_status = PaymentStatus.REFUNDED
        order.refund_reference = refund.reference
        note = f"{format_vnd(refund.amount)} refunded to the card ending {order.card_last4}"
        self._record(order, "Refunded", note, actor)
        await self.db.commit()
        await self._after_commit(stock_changed=False, moved=order)
        return order

    async def cancellation_note(self, order_id: UUID) -> str:
        """Why the order was cancelled (the note of its move to CANCELLED)."""
        note = await self.db.scalar(
            select(OrderEvent.note)
            .where(OrderEvent.order_id == order_id, OrderEvent.to_status == OrderStatus.CANCELLED)
            .where(OrderEvent.from_status != OrderStatus.CANCELLED)
            .limit(1)
        )
        return note or ""

    # --- inside the row lock -------------------------------------------------------------------

    async def _locked(self, order_id: UUID) -> Order:
        order = await self.db.scalar(
            select(Order)
            .where(Order.id == order_id)
            .with_for_update()
            .options(selectinload(Order.lines))
            .execution_options(populate_existing=True)  # a locked read must see the row as it is now
        )
        if order is None:
            await self.db.commit()
            raise IllegalTransition("That order does not exist.")
        return order

    async def _check(self, order: Order, to: OrderStatus) -> None:
        if to not in ALLOWED[order.status]:
            await self.db.commit()  # nothing written; releases the row lock
            raise IllegalTransition(
                f"Order {order.number} is {order.status.label.lower()} and can't become {to.label.lower()}."
            )

    async def _move(self, order: Order, to: OrderStatus, actor: str, note: str, cause: str = "") -> None:
        """Change the status inside the open transaction (the row is locked by the caller)."""
        await self._check(order, to)
        if to == OrderStatus.CANCELLED:
            await stock.give_back(self.db, [(line.variant_id, line.quantity) for line in order.lines])
            if order.payment_status == PaymentStatus.PAID:
                self._refund(order)
            # A charge still in flight ("charging") is settled by settle_payment, which refunds it.
        previous = order.status
        order.status = to
        self.db.add(OrderEvent(order_id=order.id, from_status=previous, to_status=to, actor=actor, note=note))
        self._announce(
            "order.status_changed",
            {**_order_payload(order), "from": previous.value, "to": to.value, "note": note, "cause": cause},
        )

    def _refund(self, order: Order) -> None:
        """Ask the worker to give a paid order's money back (in the open transaction)."""
        order.payment_status = PaymentStatus.REFUNDING
        self._announce("order.refund", _order_payload(order))

    def _record(self, order: Order, title: str, note: str, actor: str) -> None:
        """A payment step on the timeline; the status stays as it is."""
        self.db.add(
            OrderEvent(
                order_id=order.id, from_status=order.status, to_status=order.status, title=title, actor=actor, note=note
            )
        )

    async def by_id(self, order_id: UUID) -> Order | None:
        """The order with its lines (what the emails show)."""
        return await self.db.scalar(select(Order).where(Order.id == order_id).options(selectinload(Order.lines)))


def _viewable(number: str, viewer: User) -> Select[Order]:
    """The order numbered `number` if its owner or an admin is looking."""
    stmt = select(Order).where(Order.number == number)
    return stmt if viewer.is_admin else stmt.where(Order.user_id == viewer.id)


def _order_payload(order: Order) -> dict[str, Any]:
    return {"order_id": str(order.id), "number": order.number, "user_id": str(order.user_id)}
