"""The cart page and its actions. With HTMX each action swaps the cart fragment and fires a
`cart-changed` event that refreshes the header badge; without JavaScript they are plain forms."""

from __future__ import annotations

from uuid import UUID

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXTemplate
from litestar.response import Redirect, Template
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts import web as accounts_web
from sweetdream.accounts.models import User
from sweetdream.analytics import recording
from sweetdream.analytics.models import EventName
from sweetdream.cart.services import (
    MAX_QUANTITY,
    CartError,
    CartService,
    DbCartStore,
    SessionCartStore,
    session_cart_count,
    shopper_with_cart,
)
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.pages import ShopperPage, ShopperRequest
from sweetdream.platform.parsing import parse_int
from sweetdream.platform.web import flash, form_data, render


def provide_cart(request: Request, db_session: NamedDependency[AsyncSession]) -> CartService:
    user: User | None = request.state.get("user")
    return CartService.of(db_session, user.id if user else None, request.session)


def cart_count_middleware(app: ASGIApp) -> ASGIApp:
    """The header's cart badge: from the session for visitors; a shopper's was read with their
    user (`accounts.web.load_current_user`, one query), so it costs nothing here."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state = scope.setdefault("state", {})
            if state.get("user") is None:
                state["cart_count"] = session_cart_count(scope.get("session"))  # type: ignore[arg-type]
        await app(scope, receive, send)

    return middleware


async def merge_visitor_cart(request: Request, user: User) -> None:
    """At sign-in the visitor's cart joins the account's (same size adds up, capped by stock)."""
    if not request.session.get("cart"):
        return
    config: SQLAlchemyAsyncConfig = request.app.state.sqlalchemy_config
    db = config.provide_session(request.app.state, request.scope)
    await CartService(db, DbCartStore(db, user.id)).merge_from(SessionCartStore(request.session))
    await db.commit()


accounts_web.AFTER_SIGN_IN.append(merge_visitor_cart)
accounts_web.CARRIED_ACROSS_SIGN_IN.add("cart")


async def shoppers_cart_page(request: ShopperRequest) -> str | None:
    """GET /cart for a signed-in shopper, answered before Litestar (platform/pages.py): the page
    `CartController.show` renders, from one statement (the user and their lines at the current
    prices and stock). None (Litestar answers) for an ended session or another language."""
    user_id = accounts_web.session_user_id(request.session)
    if user_id is None:
        return None
    row, view = await shopper_with_cart(request.database(), user_id)
    if not request.admit(accounts_web.shopper_from_row(user_id, row, request.session)):
        return None
    return request.render("cart/cart.html", cart=view, error="", max_quantity=MAX_QUANTITY)


def shopper_page(path: str) -> ShopperPage | None:
    """The cart's page answered before Litestar, for `platform.pages.cached_pages`."""
    return shoppers_cart_page if path in ("/cart", "/cart/") else None


def _quantity(raw: str | None) -> int | None:
    """A quantity the shopper typed: up to three ASCII digits (the cart checks the range)."""
    return parse_int(raw.strip(), max_digits=3) if raw is not None else None


def _variant_id(raw: str | None) -> UUID | None:
    try:
        return UUID(raw or "")
    except ValueError:
        return None


class CartController(Controller):
    path = "/cart"
    dependencies = {"cart": Provide(provide_cart, sync_to_thread=False)}

    async def _cart_page(
        self, request: Request, cart: CartService, status_code: int = 200, error: str = ""
    ) -> Template:
        view = await cart.view()
        if request.htmx:  # type: ignore[attr-defined]
            return HTMXTemplate(
                template_name="cart/_cart.html",
                context={"cart": view, "error": error, "max_quantity": MAX_QUANTITY},
                status_code=status_code,
                trigger_event="cart-changed",
                params={"count": view.count},
                after="receive",
            )
        return render(
            request, "cart/cart.html", status_code=status_code, cart=view, error=error, max_quantity=MAX_QUANTITY
        )

    @get("/", name="cart")
    async def show(self, request: Request, cart: NamedDependency[CartService]) -> Template:
        return await self._cart_page(request, cart)

    @get("/badge", name="cart-badge")
    async def badge(self, request: Request) -> Template:
        return Template(template_name="cart/_badge.html")

    @post("/items", name="cart-add")
    async def add(self, request: Request, cart: NamedDependency[CartService]) -> Template | Redirect:
        data = await form_data(request)
        variant_id, quantity = _variant_id(data.get("variant_id")), _quantity(data.get("quantity", "1"))
        back = data.get("back", "/cart") if data.get("back", "").startswith("/products/") else "/cart"
        try:
            if variant_id is None:
                raise CartError(_("Please choose a size."))
            if quantity is None:
                raise CartError(_("Choose a quantity from 1 to %(most)d.") % {"most": MAX_QUANTITY})
            line, count = await cart.add_counted(variant_id, quantity)
        except CartError as exc:
            if request.htmx:  # type: ignore[attr-defined]
                return HTMXTemplate(template_name="cart/_added.html", context={"error": str(exc)}, status_code=409)
            flash(request, str(exc), "error")
            return Redirect(back, status_code=303)
        await cart.db.commit()
        recording.note_event(
            request.scope,
            EventName.CART_ITEM_ADDED,
            recording.cart_item_added(
                None, line.variant_id, line.product_name, line.size_label, quantity, line.unit_price
            ),
        )
        if request.htmx:  # type: ignore[attr-defined]
            return HTMXTemplate(
                template_name="cart/_added.html",
                context={"line": line, "error": ""},
                trigger_event="cart-changed",
                params={"count": count},
                after="receive",
            )
        flash(
            request, _("Added %(name)s (%(size)s) to your cart.") % {"name": line.product_name, "size": line.size_label}
        )
        return Redirect("/cart", status_code=303)

    @post("/items/{variant_id:str}", name="cart-update")
    async def update(
        self, request: Request, variant_id: FromPath[str], cart: NamedDependency[CartService]
    ) -> Template | Redirect:
        data = await form_data(request)
        target, quantity = _variant_id(variant_id), _quantity(data.get("quantity"))
        remove = data.get("action") == "remove"
        try:
            if target is None:
                raise CartError(_("That item is not in your cart."))
            if remove:
                await cart.remove(target)
            elif quantity is None:
                raise CartError(_("Choose a quantity from 0 to %(most)d.") % {"most": MAX_QUANTITY})
            else:
                await cart.update(target, quantity)
        except CartError as exc:
            if not request.htmx:  # type: ignore[attr-defined]
                flash(request, str(exc), "error")
                return Redirect("/cart", status_code=303)
            return await self._cart_page(request, cart, status_code=409, error=str(exc))
        await cart.db.commit()
        if not request.htmx:  # type: ignore[attr-defined]
            return Redirect("/cart", status_code=303)
        return await self._cart_page(request, cart)
