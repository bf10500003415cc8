"""Checkout, the order page (owner or admin only), order history and cancellation."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage, Template
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts import web as accounts_web
from sweetdream.accounts.forms import PHONE
from sweetdream.accounts.guards import requires_user, session_epoch, signed_in_user
from sweetdream.accounts.services import UserService
from sweetdream.analytics import recording
from sweetdream.analytics.models import EventName
from sweetdream.cart.services import CartService, CartView, shopper_with_cart
from sweetdream.db import EACH_STATEMENT_COMMITTED
from sweetdream.orders import live
from sweetdream.orders.dependencies import provide_orders
from sweetdream.orders.models import Order, PaymentMethod, PaymentStatus
from sweetdream.orders.reading import shopper_with_order
from sweetdream.orders.review import DIGEST, UNREADABLE, Review, changes_between, parse_review, review_of
from sweetdream.orders.services import (
    UNPAID_HOLD_MINUTES,
    CheckoutError,
    IllegalTransition,
    OrderService,
    ReviewChanged,
    Shipping,
    totals_for,
)
from sweetdream.payments import CARD_FIELDS, PaymentGateway, parse_card
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.pages import ShopperPage, ShopperRequest
from sweetdream.platform.parsing import parse_page
from sweetdream.platform.ratelimit import Limit, hit
from sweetdream.platform.web import Conflict, flash, form_data, render, render_fragment

log = logging.getLogger("sweetdream.orders")

# A real shopper places a handful of orders a day; 10 a minute stops scripted abuse of stock.
CHECKOUT_PER_USER = Limit("checkout-user", attempts=10, window_seconds=60)
# Paying again after a decline: a few cards at most; more looks like someone testing stolen cards.
PAY_AGAIN_PER_USER = Limit("pay-again-user", attempts=5, window_seconds=600)


def cart_for(request: Request, db: AsyncSession) -> CartService:
    """The shopper's cart (checkout is for signed-in shoppers: their cart in the database)."""
    return CartService.of(db, signed_in_user(request).id, request.session)


# An open order page's live stream ends after this long and the browser reconnects: a deploy
# never waits on a stream, and a reconnect is sent the current state first.
LIVE_STREAM_SECONDS = 300
KEEPALIVE_SECONDS = 15.0
# A stream re-checks its viewer this often (signed in, no password change since, still owner or
# admin): a demoted admin or a signed-out session stops receiving the order within this long.
ACCESS_CHECK_SECONDS = 30.0


def parse_shipping(data: dict[str, str]) -> tuple[Shipping, dict[str, str]]:
    def clean(name: str, limit: int) -> str:
        return " ".join(data.get(name, "").split())[:limit]

    errors: dict[str, str] = {}
    shipping_name, phone, address = clean("name", 120), clean("phone", 32), clean("address", 500)
    note = data.get("note", "").strip()[:500]
    if not shipping_name:
        errors["name"] = _("Who should we deliver to?")
    if not PHONE.match(phone):
        errors["phone"] = _("Enter a phone number the courier can call, for example 0901 234 567.")
    if len(address) < 8:
        errors["address"] = _("Enter the full delivery address: street, ward, district, city.")
    method = data.get("payment_method", PaymentMethod.COD.value)
    if method not in PaymentMethod.__members__:
        errors["payment_method"] = _("Choose a payment method from the list.")
        method = PaymentMethod.COD.value
    return Shipping(shipping_name, phone, address, note, PaymentMethod(method)), errors


def _parse_payment(data: dict[str, str]) -> tuple[PaymentMethod, str, dict[str, str]]:
    """The new payment after a decline: (method, card number if a card, errors by field)."""
    method = data.get("payment_method", "")
    if method == PaymentMethod.COD.value:
        return PaymentMethod.COD, "", {}
    if method != PaymentMethod.CARD.value:
        return PaymentMethod.CARD, "", {"payment_method": _("Choose a card or cash on delivery.")}
    number, errors = parse_card(data)
    return PaymentMethod.CARD, number, errors


class CheckoutController(Controller):
    path = "/checkout"
    guards = [requires_user]
    dependencies = {"orders": Provide(provide_orders, sync_to_thread=False)}

    async def _page(
        self,
        request: Request,
        db: AsyncSession,
        values: dict[str, str],
        errors: dict[str, str],
        key: str,
        status_code: int = 200,
        error: str = "",
        changed_since: Review | None = None,
        changed: bool = False,
        view: CartView | None = None,
    ) -> Template:
        """The checkout page, with the review its form carries. After a change since the shopper's
        review (`changed`), each difference from what they saw (`changed_since`, if known) is marked."""
        settings = request.app.state.settings
        view = view or await cart_for(request, db).view()
        totals = totals_for(view, settings.shipping_fee, settings.free_shipping_threshold)
        review = review_of(view, totals.shipping_fee, totals.total)
        changes = changes_between(changed_since, review) if changed else None
        return render(
            request,
            "orders/checkout.html",
            status_code=status_code,
            cart=view,
            totals=totals,
            review=review,
            changes=changes,
            values=values,
            errors=errors,
            idempotency_key=key,
            error=changes.headline if changes else error,
            free_from=settings.free_shipping_threshold,
        )

    @get("/", name="checkout")
    async def show(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template | Redirect:
        user = signed_in_user(request)
        view = await cart_for(request, db_session).view()
        if not view.lines:
            flash(request, _("Your cart is empty: add something first."), "error")
            return Redirect("/cart", status_code=303)
        settings = request.app.state.settings
        total = totals_for(view, settings.shipping_fee, settings.free_shipping_threshold).total
        recording.note_event(request.scope, EventName.CHECKOUT_STARTED, recording.checkout_started(total, view.count))
        values = {
            "name": user.name,
            "phone": user.phone,
            "address": user.address,
            "note": "",
            "payment_method": PaymentMethod.COD.value,
        }
        return await self._page(request, db_session, values, {}, secrets.token_urlsafe(24), view=view)

    # The request's statements commit as they end (the checkout's order statement needs it), from the
    # user's read on: no transaction to end and no second connection to wait for before placing.
    @post("/", name="place-order", opt={EACH_STATEMENT_COMMITTED: True})
    async def place(self, request: Request, orders: NamedDependency[OrderService]) -> Template | Redirect:
        user = signed_in_user(request)
        await hit(request.app.state.redis, CHECKOUT_PER_USER, str(user.id))
        data = await form_data(request)
        key = data.get("idempotency_key", "")
        shipping, errors = parse_shipping(data)
        card_number = ""
        if shipping.payment_method == PaymentMethod.CARD:
            card_number, card_errors = parse_card(data)
            errors.update(card_errors)
        values = {name: value for name, value in data.items() if name not in CARD_FIELDS}  # never echo a card
        reviewed = data.get("reviewed", "")
        unreadable = "" if DIGEST.fullmatch(reviewed) else _(UNREADABLE)
        if errors or unreadable:
            return await self._page(
                request, orders.db, values, errors, key or secrets.token_urlsafe(24), 400, unreadable
            )
        if card_number:
            gateway: PaymentGateway = request.app.state.payment_gateway
            shipping = replace(shipping, card=gateway.tokenize(card_number))
        settings = request.app.state.settings
        try:
            order, _placed = await orders.place(
                user,
                cart_for(request, orders.db),
                shipping,
                key,
                settings.shipping_fee,
                settings.free_shipping_threshold,
                reviewed,
                tracker=recording.tracker_of(request.scope),
            )
        except ReviewChanged:
            # What the shopper saw, if the form's copy is the one the digest was made from.
            seen = parse_review(data.get("reviewed_lines", ""))
            seen = seen if seen is not None and seen.digest == reviewed else None
            return await self._page(
                request, orders.db, values, {}, secrets.token_urlsafe(24), 409, changed_since=seen, changed=True
            )
        except CheckoutError as exc:
            return await self._page(request, orders.db, values, {}, secrets.token_urlsafe(24), 409, exc.message)
        # No "thank you" here: the payment is not known yet. The order page says how it went.
        return Redirect(f"/orders/{order.number}", status_code=303)


def _live_fragment(request: Request, order: Order) -> str:
    return render_fragment(request, "orders/_live.html", order=order, unpaid_hold_minutes=UNPAID_HOLD_MINUTES)


# --- a signed-in shopper's checkout and order pages, answered before Litestar (platform/pages.py) ---
# The same pages `CheckoutController.show` and `OrderController.show` render (tests/integration/
# test_shopper_pages.py compares them byte for byte), from one statement each; anything else (an
# empty cart, someone else's order, an ended session) is left to those handlers.
_ORDER_PATH = re.compile(r"/orders/([A-Za-z0-9-]{1,20})")


async def shoppers_checkout_page(request: ShopperRequest) -> str | None:
    """GET /checkout: the cart's lines priced from the database now, never from a cache."""
    user_id = accounts_web.session_user_id(request.session)
    if user_id is None:
        return None
    row, view = await shopper_with_cart(request.database(), user_id)
    if not view.lines:  # "Your cart is empty": Litestar flashes it and sends the shopper to the cart
        return None
    if not request.admit(accounts_web.shopper_from_row(user_id, row, request.session)):
        return None
    settings = request.litestar.state.settings
    totals = totals_for(view, settings.shipping_fee, settings.free_shipping_threshold)
    values = {
        "name": row["name"],
        "phone": row["phone"],
        "address": row["address"],
        "note": "",
        "payment_method": PaymentMethod.COD.value,
    }
    page = request.render(
        "orders/checkout.html",
        cart=view,
        totals=totals,
        review=review_of(view, totals.shipping_fee, totals.total),
        changes=None,
        values=values,
        errors={},
        idempotency_key=secrets.token_urlsafe(24),
        error="",
        free_from=settings.free_shipping_threshold,
    )
    recording.note_event(
        request.scope, EventName.CHECKOUT_STARTED, recording.checkout_started(totals.total, view.count)
    )
    return page


async def shoppers_order_page(request: ShopperRequest) -> str | None:
    """GET /orders/<number>: the shopper's own order (anyone else's goes to Litestar: a 404)."""
    user_id = accounts_web.session_user_id(request.session)
    match = _ORDER_PATH.fullmatch(request.scope["path"])
    if user_id is None or match is None:
        return None
    row, order = await shopper_with_order(request.database(), user_id, match.group(1))
    if order is None or not request.admit(accounts_web.shopper_from_row(user_id, row, request.session)):
        return None
    return request.render("orders/order.html", order=order, unpaid_hold_minutes=UNPAID_HOLD_MINUTES)


def shopper_page(path: str) -> ShopperPage | None:
    """The checkout and order pages answered before Litestar, for `platform.pages.cached_pages`."""
    if path in ("/checkout", "/checkout/"):
        return shoppers_checkout_page
    return shoppers_order_page if _ORDER_PATH.fullmatch(path) else None


class OrderController(Controller):
    guards = [requires_user]
    dependencies = {"orders": Provide(provide_orders, sync_to_thread=False)}

    @get("/orders/{number:str}", name="order")
    async def show(self, request: Request, number: FromPath[str], orders: NamedDependency[OrderService]) -> Template:
        order = await orders.for_viewer(number[:20], signed_in_user(request))
        if order is None:  # someone else's or no such order: the same answer, so nothing is confirmed
            raise NotFoundException(_("We couldn't find that order."))
        return render(request, "orders/order.html", order=order, unpaid_hold_minutes=UNPAID_HOLD_MINUTES)

    @get("/orders/{number:str}/events", name="order-events")
    async def events(
        self, request: Request, number: FromPath[str], orders: NamedDependency[OrderService]
    ) -> ServerSentEvent:
        """The order's live status as Server-Sent Events: the current state at once, then again
        each time the order moves (any web process hears it through Redis pub/sub)."""
        order_id = await orders.viewable_id(number[:20], signed_in_user(request))
        if order_id is None:
            raise NotFoundException(_("We couldn't find that order."))
        updates = self._live_updates(request, order_id, number[:20], signed_in_user(request).id, session_epoch(request))
        return ServerSentEvent(updates, headers={"Cache-Control": "no-cache"})

    async def _live_updates(
        self, request: Request, order_id: UUID, number: str, viewer_id: UUID, epoch: int
    ) -> AsyncIterator[ServerSentEventMessage]:
        sessions = request.app.state.sqlalchemy_config

        async def current() -> ServerSentEventMessage | None:
            """The order as the viewer sees it now; None once they may no longer see it."""
            async with sessions.get_session() as db:
                user = await UserService(session=db).signed_in_user(viewer_id, epoch)
                fresh = await OrderService(db).for_viewer(number, user) if user else None
                await db.commit()
            return ServerSentEventMessage(event="status", data=_live_fragment(request, fresh)) if fresh else None

        async def still_allowed() -> bool:
            """Still signed in (account there, no password change since) and still owner or admin."""
            async with sessions.get_session() as db:
                user = await UserService(session=db).signed_in_user(viewer_id, epoch)
                allowed = user is not None and await OrderService(db).viewable_id(number, user) is not None
                await db.commit()
            return allowed

        deadline = time.monotonic() + LIVE_STREAM_SECONDS
        try:
            # Subscribe first, then read: a move committed in between is then both in the state
            # sent and announced, never lost between the two.
            async with live.subscription(request.app.state.redis, order_id) as pubsub:
                first = await current()
                if first is None:
                    return
                first.retry = 2000  # reconnect after 2 s if the stream drops
                yield first
                last_sent = time.monotonic()
                next_check = last_sent + ACCESS_CHECK_SECONDS
                while (now := time.monotonic()) < deadline:
                    if now >= next_check:
                        if not await still_allowed():
                            return  # the browser reconnects, and is refused
                        next_check = now + ACCESS_CHECK_SECONDS
                    if now - last_sent >= KEEPALIVE_SECONDS:
                        yield ServerSentEventMessage(comment="keep-alive")
                        last_sent = now
                    wait = min(next_check, last_sent + KEEPALIVE_SECONDS, deadline) - now
                    note = await pubsub.get_message(timeout=max(wait, 0.01))
                    if note is None:
                        continue
                    await asyncio.sleep(0.05)  # let a burst of moves settle, then read once
                    update = await current()
                    if update is None:
                        return
                    yield update
                    last_sent = time.monotonic()
        except RedisError:
            # Redis went away: end the stream; the browser reconnects and is sent the state afresh.
            log.warning("live status stream for %s ended: Redis unavailable", number)

    @post("/orders/{number:str}/cancel", name="order-cancel")
    async def cancel(self, request: Request, number: FromPath[str], orders: NamedDependency[OrderService]) -> Redirect:
        """The shopper cancels their own order, until the bakery starts preparing it (409 after)."""
        user = signed_in_user(request)
        order_id = await orders.owned_id(number[:20], user.id)
        if order_id is None:
            raise NotFoundException(_("We couldn't find that order."))
        try:
            order = await orders.cancel_by_customer(order_id, user.email)
        except IllegalTransition as exc:
            raise Conflict(str(exc)) from exc
        if order.payment_status == PaymentStatus.REFUNDING:
            flash(
                request, _("Order %(number)s was cancelled. Your payment is being refunded.") % {"number": order.number}
            )
        else:
            flash(request, _("Order %(number)s was cancelled.") % {"number": order.number})
        return Redirect(f"/orders/{order.number}", status_code=303)

    @post("/orders/{number:str}/payment", name="order-payment")
    async def pay_again(
        self, request: Request, number: FromPath[str], orders: NamedDependency[OrderService]
    ) -> Template | Redirect:
        """After a decline: another card, or cash on delivery, in one form post. The order keeps
        its lines and stock (the cart is not touched); the worker takes the new payment."""
        user = signed_in_user(request)
        order_id = await orders.owned_id(number[:20], user.id)
        if order_id is None:
            raise NotFoundException(_("We couldn't find that order."))
        await hit(request.app.state.redis, PAY_AGAIN_PER_USER, str(user.id))
        data = await form_data(request)
        method, card_number, errors = _parse_payment(data)
        if errors:
            order = await orders.for_viewer(number[:20], user)
            assert order is not None  # the shopper's own, found above
            return render(
                request,
                "orders/order.html",
                status_code=400,
                order=order,
                payment_errors=errors,
                unpaid_hold_minutes=UNPAID_HOLD_MINUTES,
            )
        gateway: PaymentGateway = request.app.state.payment_gateway
        card = gateway.tokenize(card_number) if method == PaymentMethod.CARD else None
        try:
            order = await orders.pay_again(order_id, method, card, user.email)
        except IllegalTransition as exc:
            raise Conflict(str(exc)) from exc
        return Redirect(f"/orders/{order.number}", status_code=303)

    @get("/account/orders", name="order-history")
    async def history(
        self, request: Request, orders: NamedDependency[OrderService], page: FromQuery[str] = "1"
    ) -> Template:
        number = parse_page(page)
        items, total = await orders.history(signed_in_user(request).id, number)
        pages = max(1, -(-total // 10))
        return render(request, "orders/history.html", orders=items, page=number, pages=pages, total=total)
