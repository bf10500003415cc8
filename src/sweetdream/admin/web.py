"""The staff dashboard. Every route here requires the ADMIN role, read fresh on each request."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.guards import requires_admin
from sweetdream.admin import services
from sweetdream.orders.dependencies import provide_orders
from sweetdream.orders.models import OrderStatus
from sweetdream.orders.services import ADMIN_MOVES, IllegalTransition, OrderService, admin_moves
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop
from sweetdream.platform.parsing import parse_page
from sweetdream.platform.web import BadRequest, Conflict, flash, form_data, render

PAGE_SIZE = 25
# What the move buttons say: the action, not the state it leads to.
MOVE_VERBS = {
    OrderStatus.PREPARING: gettext_noop("Start preparing"),
    OrderStatus.SHIPPED: gettext_noop("Mark shipped"),
    OrderStatus.DELIVERED: gettext_noop("Mark delivered"),
    OrderStatus.CANCELLED: gettext_noop("Cancel order…"),
}


class AdminController(Controller):
    path = "/admin"
    guards = [requires_admin]
    dependencies = {"orders": Provide(provide_orders, sync_to_thread=False)}

    @get("/", name="admin")
    async def dashboard(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        shown = await services.dashboard(db_session)
        return render(request, "admin/dashboard.html", figures=shown.figures, failed=shown.failed_events)

    @get("/orders", name="admin-orders")
    async def orders(
        self,
        request: Request,
        orders: NamedDependency[OrderService],
        status: FromQuery[str] = "",
        page: FromQuery[str] = "1",
    ) -> Template:
        number = parse_page(page)
        if status not in OrderStatus.__members__:
            status = ""
        rows, total = await orders.staff_page(OrderStatus(status) if status else None, number, PAGE_SIZE)
        return render(
            request,
            "admin/orders.html",
            orders=rows,
            status=status,
            statuses=list(OrderStatus),
            page=number,
            pages=max(1, -(-total // PAGE_SIZE)),
            total=total,
            moves_for=admin_moves,
            verbs=MOVE_VERBS,
        )

    @post("/orders/{number:str}/status", name="admin-order-status")
    async def set_status(
        self, request: Request, number: FromPath[str], orders: NamedDependency[OrderService]
    ) -> Redirect:
        """Move an order by hand: start preparing, mark shipped or delivered, or cancel with a
        reason (the shopper reads it; a paid order is refunded)."""
        data = await form_data(request)
        order_id = await orders.id_for_number(number[:20])
        if order_id is None:
            raise NotFoundException(_("No such order."))
        target = data.get("status", "")
        if target not in OrderStatus.__members__:
            raise BadRequest(_("Choose a move from the list."))
        to = OrderStatus(target)
        if to not in ADMIN_MOVES:
            raise Conflict(_("Orders are confirmed by their payment (or cash on delivery), not by hand."))
        note = data.get("note", "").strip()[:500]
        if to == OrderStatus.CANCELLED and not note:
            raise BadRequest(
                _("Say why the order is cancelled: the customer reads it in the email and on the order page.")
            )
        try:
            order = await orders.transition(order_id, to, request.state.user.email, note)
        except IllegalTransition as exc:
            raise Conflict(str(exc)) from exc
        flash(request, _("Order %(number)s is now %(status)s.") % {"number": order.number, "status": to.label.lower()})
        back = data.get("back", "")
        return Redirect(back if back.startswith("/admin/") else "/admin/orders", status_code=303)
