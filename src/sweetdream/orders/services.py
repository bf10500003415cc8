"""Order rules: placing an order in one statement, and the one function that moves its status.

No oversell: every line's stock is taken by the statement that writes the order (orders/placing.py:
the catalog's reservation locks the sizes in variant-id order, so no deadlocks, checks `stock >= n`
for each under its lock and takes all lines or none); the `stock >= 0` CHECK constraint backs it up,
and either refusal is the same "sold out" answer. Checkouts of a contested size are served in the
order they came: each first waits its turn in the size's queue (catalog/stock.queued_for_taking).
Double submit: the form's idempotency key is unique per shopper, so a repeat finds the first order
instead of making a second (and the order's INSERT does nothing on a key a twin submit took
meanwhile); two checkouts of one cart (two tabs) meet at its lines, which the order's statement locks
and checks: the second finds them gone and places nothing.
No silent price change: the order is placed only if it is what the shopper reviewed (orders/review.py)
and each size still costs, under its lock, what the cart's read said.

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
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from sweetdream.accounts.models import User
from sweetdream.accounts.shopper_cache import shopper_changed
from sweetdream.analytics.recording import Tracker
from sweetdream.audit.services import Actor, record
from sweetdream.cart.services import CartLine, CartService, CartView, DbCartStore, started_message
from sweetdream.catalog import stock, writes
from sweetdream.catalog.models import StockReason, has_started
from sweetdream.catalog.money import format_vnd
from sweetdream.catalog.stock import Mover
from sweetdream.db import commit_each_statement, violated_constraint
from sweetdream.orders import live, placing
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
from sweetdream.payments import CardToken, ChargeResult, RefundResult
from sweetdream.platform.i18n import current_language, gettext_noop
from sweetdream.platform.i18n import gettext as _

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
    OrderStatus.PREPARING: gettext_noop(
        "Order %(number)s is being prepared, so it can no longer be cancelled online. "
        "Please contact us by replying to your order confirmation email."
    ),
    OrderStatus.SHIPPED: gettext_noop(
        "Order %(number)s has been shipped, so it can no longer be cancelled online. "
        "Please contact us by replying to your order confirmation email."
    ),
    OrderStatus.DELIVERED: gettext_noop(
        "Order %(number)s has been delivered, so it can no longer be cancelled online. "
        "Please contact us by replying to your order confirmation email."
    ),
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
        super().__init__(_("Your order changed since you reviewed it."))


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


ORDER_KEY_CONSTRAINT = placing.ORDER_KEY_CONSTRAINT


class _KeyTaken(Exception):
    """The order statement wrote nothing because this form's key is taken: a twin submit placed it."""


class OrderService:
    def __init__(self, db: AsyncSession, redis: Redis | None = None) -> None:
        self.db = db
        self.redis = redis
        self._new_events: list[UUID] = []  # outbox rows written in the open transaction
        # Products whose stock this transaction took (their cached pages are stale after commit),
        # and whether a size sold out (then the listings' cards and in-stock filter are too).

    def _announce(self, topic: str, payload: dict[str, Any]) -> None:
        """Write an outbox row in the open transaction; it is relayed to the queue after commit."""
        event = OutboxEvent(id=uuid4(), topic=topic, payload=payload)
        self.db.add(event)
        self._new_events.append(event.id)

    async def _commit_and_tell(self, moved: Order | None = None, placed: Order | None = None) -> None:
        """Commit; then hand the new outbox rows to the queue, tell open order pages and the admin's
        live list and dashboard, and make the cached catalog pages of any stock this changed stale
        (catalog/stock.py marks every stock change, catalog/writes.py), and drop what the pages keep
        of a shopper whose cart an order emptied: one round trip for all of it."""
        with writes.invalidation_held(self.db):
            await self.db.commit()
        events, self._new_events = self._new_events, []
        if self.redis is None:
            return
        notes: list[tuple[str, bytes]] = []
        if moved is not None:
            notes += [live.status_note(moved.id), live.admin_note("moved", moved.id)]
        if placed is not None:
            notes.append(live.admin_note("placed", placed.id))
        await relay(self.redis, events, notes, also=lambda pipe: writes.add_held_invalidation(self.db, pipe))

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
        tracker: Tracker | None = None,
    ) -> tuple[Order, bool]:
        """Returns (order, created). Everything is computed here from the database; nothing the
        browser sent about prices or totals is read. On any refusal nothing has changed.

        `reviewed` is the digest of the checkout page the shopper placed the order from: if the
        order would now differ from it (a price, a line, the fee), ReviewChanged is raised and
        nothing is placed. None is for callers that showed no page (scripts, tests).

        `tracker`, the shopper's analytics tracker (None: not tracked), gets the order_completed
        event written with the order: one event exactly when there is one order.

        Statements: the key's look-up, the cart, (classes: the seats held), and one statement that
        writes everything (orders/placing.py), each committed as it ends (`db.commit_each_statement`):
        the order's statement checks under its locks everything the reads before it found."""
        if not IDEMPOTENCY_KEY.match(idempotency_key):
            raise CheckoutError(_("This checkout form has expired. Please review your order and submit again."))
        # The order's statement then holds its sizes' locks, and their queues, only while it runs,
        # not for a COMMIT's round trip more: on a worker with 32 requests on its event loop that trip
        # waited its turn, and a contested size's checkouts queued behind it (issue #13).
        await commit_each_statement(self.db)
        existing = await self._by_key(idempotency_key, user.id)
        if existing is not None:
            await self.db.commit()
            return existing, False
        view = await cart.lines_to_order()
        try:
            order = await self._write_order(
                user, view, shipping, idempotency_key, fee, free_from, reviewed, tracker, cart
            )
        except (CheckoutError, _KeyTaken) as refusal:
            # A submit of this same form that committed after the look-up above (and emptied the cart)
            # is seen only now: its shopper gets that order, as a submit after it would.
            earlier = await self._by_key(idempotency_key, user.id)
            await self.db.commit()  # nothing was written
            if earlier is not None:
                return earlier, False
            if isinstance(refusal, _KeyTaken):  # the key's order is gone (never: orders are not deleted)
                expired = _("This checkout form has expired. Please review your order and submit again.")
                raise CheckoutError(expired) from None
            raise
        except IntegrityError as exc:
            # Only the `stock >= 0` CHECK is left to refuse here (the statement's own guards come
            # first); the refused statement wrote nothing.
            if violated_constraint(exc) != stock.STOCK_CONSTRAINT:
                raise
            await self.db.rollback()
            if user in self.db:  # the request's own user: the rollback expired it, and the page shows it
                await self.db.refresh(user)
            message = await self._short_of_stock_message(view)
            await self.db.commit()
            raise CheckoutError(message) from None
        await self._commit_and_tell(placed=order)
        return order, True

    async def _write_order(
        self,
        user: User,
        view: CartView,
        shipping: Shipping,
        key: str,
        fee: int,
        free_from: int,
        reviewed: str | None,
        tracker: Tracker | None,
        cart: CartService,
    ) -> Order:
        if not view.lines:
            raise CheckoutError(_("Your cart is empty."))
        blocked = next((line for line in view.lines if line.problems), None)
        if blocked is not None:
            if blocked.active and not has_started(blocked.starts_at) and blocked.stock < blocked.quantity:
                # Others bought it since the shopper's checkout page: the answer a lost race gets.
                raise CheckoutError(self._short_message(blocked, blocked.stock, True))
            raise CheckoutError(f"{blocked.product_name} ({blocked.size_label}): {blocked.problems[0]}")
        totals = totals_for(view, fee, free_from)
        # The lines and prices read here are the ones the order is written from.
        if reviewed is not None and review_of(view, totals.shipping_fee, totals.total).digest != reviewed:
            raise ReviewChanged()
        await self._check_seat_limits(user.id, view.lines)
        values = placing.order_values(
            idempotency_key=key,
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
            language=current_language.get(),  # its emails' language if the shopper never chose one
        )
        new = placing.NewOrder(uuid4(), user.id, user.email, values)
        event_id = uuid4()
        clear_cart = isinstance(cart.store, DbCartStore)  # a session's cart is emptied after, below
        statement = placing.statement(tracked=tracker is not None, clear_cart=clear_cart)
        placement = await placing.place(self.db, statement, placing.parameters(new, view.lines, event_id, tracker))
        if placement.order_id is None:
            short = placement.short_line(view.lines)
            if short is not None:
                left, on_sale = placement.on_sale.get(short.variant_id, (0, True))
                raise CheckoutError(self._short_message(short, left, on_sale))
            if placement.repriced(view.lines) or not placement.cart_held:
                # A price or the cart (another tab's checkout or edit) changed since the cart's read.
                raise ReviewChanged()
            raise _KeyTaken()  # every line had its stock and price: a twin submit of this form holds the key
        if clear_cart:
            shopper_changed(self.db, user.id)  # the statement emptied their cart: the header's badge
        else:
            await cart.store.clear()
        stock.reserved(self.db, self.redis, [line.product_slug for line in view.lines], placement.sold_out)
        self._new_events = [event_id, *placement.alerts]
        assert placement.number is not None and placement.created_at is not None
        placed_at = {"created_at": placement.created_at, "updated_at": placement.created_at}
        return Order(id=new.id, number=placement.number, user_id=user.id, **{**values, **placed_at})

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
                limit = {"name": line.product_name, "most": line.max_per_customer, "held": already, "room": room}
                if room:
                    message = _(
                        "%(name)s: at most %(most)d per customer; "
                        "you already hold %(held)d, so you can add %(room)d more."
                    )
                else:
                    message = _("%(name)s: at most %(most)d per customer; you already hold %(held)d.")
                raise CheckoutError(message % limit)

    async def _by_key(self, key: str, user_id: UUID) -> Order | None:
        return await self.db.scalar(select(Order).where(Order.idempotency_key == key, Order.user_id == user_id))

    @staticmethod
    def _short_message(line: CartLine, left: int, on_sale: bool) -> str:
        what = f"{line.product_name} ({line.size_label})"
        if left and not on_sale:
            return f"{what}: {started_message()}"
        if left == 0:
            return _("%(what)s: sold out while you were checking out.") % {"what": what}
        return _("%(what)s: only %(num)d left.") % {"what": what, "num": left}

    async def _short_of_stock_message(self, view: CartView) -> str:
        """Why the stock could not be taken, read again after the refused statement's rollback."""
        levels = await stock.on_sale_levels(self.db, [line.variant_id for line in view.lines])
        short = placing.first_short(view.lines, levels)
        if short is None:
            short = min(view.lines, key=lambda item: item.variant_id)
            return self._short_message(short, 0, True)
        left, on_sale = levels.get(short.variant_id, (0, True))
        return self._short_message(short, left, on_sale)

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

    # --- moving --------------------------------------------------------------------------------

    async def transition(
        self,
        order_id: UUID,
        to: OrderStatus,
        actor: str,
        note: str = "",
        cause: str = "",
        only_from: OrderStatus | None = None,
        audited_by: Actor | None = None,
    ) -> Order:
        """The only way an order's status changes. Records who, when and why, writes an outbox
        event, returns stock on cancellation (and asks for a refund of a paid order), and commits.
        Illegal moves raise IllegalTransition.

        With `only_from`, an order no longer in that status is returned unchanged: a job that
        runs twice moves the order once, and its second run is not an error.

        With `audited_by` (a person's move from the admin), the move is recorded in the audit
        log in the same transaction as "order.move" with the status before and after."""
        order = await self._locked(order_id)
        if only_from is not None and order.status != only_from:
            await self.db.commit()  # nothing written; releases the row lock
            return order
        previous = order.status
        await self._move(order, to, actor, note, cause)
        if audited_by is not None:
            await record(
                self.db,
                audited_by,
                "order.move",
                "order",
                order.id,
                target_label=order.number,
                before={"status": previous.value},
                after={"status": to.value},
                note=note,
            )
        await self._commit_and_tell(moved=order)
        return order

    async def cancel_by_customer(self, order_id: UUID, actor: str) -> Order:
        """The shopper's cancel, allowed until the bakery starts preparing; decided under the row
        lock, so it cannot slip past a move made at the same moment."""
        order = await self._locked(order_id)
        if order.status not in CUSTOMER_CANCELLABLE:
            await self.db.commit()
            if order.status == OrderStatus.CANCELLED:
                raise IllegalTransition(_("Order %(number)s is already cancelled.") % {"number": order.number})
            raise IllegalTransition(_(_NOT_CANCELLABLE[order.status]) % {"number": order.number})
        await self._move(order, OrderStatus.CANCELLED, actor, gettext_noop("Cancelled by the customer"))
        await self._commit_and_tell(moved=order)
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
            await self._commit_and_tell(moved=order)
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
                self._record(order, gettext_noop("Charged"), f"{card} charged as the order was being cancelled", actor)
                self._refund(order)
        else:
            order.payment_status = PaymentStatus.DECLINED
            order.payment_note = result.reason
            if order.status == OrderStatus.PENDING:
                order.declined_at = datetime.now(UTC)
            self._record(order, gettext_noop("Payment declined"), f"{card}: {result.reason}", actor)
        await self._commit_and_tell(moved=order)
        return order

    async def pay_again(self, order_id: UUID, method: PaymentMethod, card: CardToken | None, actor: str) -> Order:
        """After a decline: new card details (charged by the worker) or cash on delivery, in one
        step. The order keeps its lines and stock; the cart is not touched."""
        order = await self._locked(order_id)
        if order.status != OrderStatus.PENDING or order.payment_status != PaymentStatus.DECLINED:
            await self.db.commit()
            raise IllegalTransition(_("Order %(number)s is no longer waiting for payment.") % {"number": order.number})
        order.payment_attempt += 1  # a new idempotency key: new details are a new charge
        order.declined_at = None
        order.payment_note = ""
        order.payment_reference = None
        if card is not None:
            order.payment_method = PaymentMethod.CARD
            order.payment_token, order.card_last4 = card.token, card.last4
            order.payment_status = PaymentStatus.PENDING
            self._record(
                order, gettext_noop("Payment details changed"), f"Paying with the card ending {card.last4}", actor
            )
        else:
            order.payment_method = PaymentMethod.COD
            order.payment_token = order.card_last4 = None
            order.payment_status = PaymentStatus.DUE_ON_DELIVERY
            self._record(
                order, gettext_noop("Payment details changed"), gettext_noop("Switched to cash on delivery"), actor
            )
        self._announce("order.payment_requested", _order_payload(order))
        await self._commit_and_tell(moved=order)
        return order

    async def record_refund(self, order_id: UUID, refund: RefundResult, actor: str) -> Order:
        """The gateway gave the money back: the order says "refunded". A second call changes nothing."""
        order = await self._locked(order_id)
        if order.payment_status != PaymentStatus.REFUNDING:
            await self.db.commit()
            return order
        order.payment_status = PaymentStatus.REFUNDED
        order.refund_reference = refund.reference
        # The timeline keeps the shop's English notes (money too), whoever's language the job runs in.
        note = f"{format_vnd(refund.amount, 'en')} refunded to the card ending {order.card_last4}"
        self._record(order, gettext_noop("Refunded"), note, actor)
        await self._commit_and_tell(moved=order)
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
            raise IllegalTransition(_("That order does not exist."))
        return order

    async def _check(self, order: Order, to: OrderStatus) -> None:
        if to not in ALLOWED[order.status]:
            await self.db.commit()  # nothing written; releases the row lock
            raise IllegalTransition(
                _("Order %(number)s is %(status)s and can't become %(next)s.")
                % {"number": order.number, "status": order.status.label.lower(), "next": to.label.lower()}
            )

    async def _move(self, order: Order, to: OrderStatus, actor: str, note: str, cause: str = "") -> None:
        """Change the status inside the open transaction (the row is locked by the caller)."""
        await self._check(order, to)
        if to == OrderStatus.CANCELLED:
            await stock.give_back(
                self.db,
                [(line.variant_id, line.quantity) for line in order.lines],
                reason=StockReason.CANCEL,
                by=Mover(actor),
                order_number=order.number,
                redis=self.redis,
            )
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
