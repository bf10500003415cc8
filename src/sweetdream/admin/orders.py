"""The staff's orders: the list (filters, search, keyset pages, totals), live new orders, the staff
order page with its moves and packing slip, bulk moves and the CSV export. ADMIN only, read on each
request; every change goes through OrderService.transition and is audited."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage, Stream, Template
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.guards import requires_admin, session_epoch
from sweetdream.accounts.services import UserService
from sweetdream.audit.services import Actor, record
from sweetdream.orders import live, staff
from sweetdream.orders.dependencies import provide_orders
from sweetdream.orders.models import PAYMENT_WORDS, Order, OrderStatus, PaymentMethod, PaymentStatus
from sweetdream.orders.services import ADMIN_MOVES, IllegalTransition, OrderService, admin_moves
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop
from sweetdream.platform.web import BadRequest, Conflict, flash, form_data, render, render_fragment

log = logging.getLogger("sweetdream.admin")

# What the move buttons say: the action, not the state it leads to (translated where shown).
MOVE_VERBS = {
    OrderStatus.PREPARING: gettext_noop("Start preparing"),
    OrderStatus.SHIPPED: gettext_noop("Mark shipped"),
    OrderStatus.DELIVERED: gettext_noop("Mark delivered"),
    OrderStatus.CANCELLED: gettext_noop("Cancel order…"),
}
# What bulk moves may do: the two steps a kitchen marks for many orders at once.
BULK_MOVES = (OrderStatus.PREPARING, OrderStatus.SHIPPED)
BULK_LIMIT = 200
# A live stream ends after this long and the browser reconnects (a deploy never waits on a stream).
LIVE_STREAM_SECONDS = 300
KEEPALIVE_SECONDS = 15.0
ACCESS_CHECK_SECONDS = 30.0


def _actor(request: Request) -> Actor:
    user = request.state.user
    return Actor(user.id, user.email)


def _zone(request: Request) -> str:
    return str(request.app.state.settings.shop_timezone)


def _filter(request: Request) -> staff.OrderFilter:
    try:
        return staff.parse_filter(request.query_params)
    except staff.FilterError as exc:
        raise BadRequest(str(exc)) from exc


def _cursor(request: Request, name: str) -> staff.Cursor | None:
    raw = request.query_params.get(name, "")
    if not raw:
        return None
    try:
        return staff.Cursor.decode(raw)
    except staff.FilterError as exc:
        raise BadRequest(str(exc)) from exc


def _words(request: Request) -> dict[str, Any]:
    """What every order template shows: labels for statuses, payments and moves."""
    return {
        "moves_for": admin_moves,
        "verbs": {status: _(verb) for status, verb in MOVE_VERBS.items()},
        "payment_words": {key: _(word) for key, word in PAYMENT_WORDS.items()},
        "status_labels": {status: _(status.label) for status in OrderStatus},
    }


def _row(request: Request, order: Order, back: str, new: bool = False) -> str:
    """A new order's row (its own tbody) for the top of the list, or a moved order's cells."""
    return render_fragment(
        request, "admin/orders/_live_row.html", o=order, back=back, new=new, cells_only=not new, **_words(request)
    )


class AdminOrdersController(Controller):
    path = "/admin"
    guards = [requires_admin]
    dependencies = {"orders": Provide(provide_orders, sync_to_thread=False)}

    # --- the list ----------------------------------------------------------------------------

    @get("/orders", name="admin-orders")
    async def orders(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        found = _filter(request)
        after, before = _cursor(request, "after"), _cursor(request, "before")
        if after and before:
            raise BadRequest(_("Give either a newer or an older page, not both."))
        zone = _zone(request)
        shown = await staff.page(db_session, found, zone, after=after, before=before)
        counted = await staff.totals(db_session, found, zone)
        here = "/admin/orders?" + found.query(**({"after": after.encode()} if after else {}))
        return render(
            request,
            "admin/orders/list.html",
            page=shown,
            filter=found,
            totals=counted,
            cap=staff.COUNT_CAP,
            first_page=after is None and before is None,
            back=here,
            statuses=list(OrderStatus),
            payments=list(PaymentMethod),
            payment_statuses=list(PaymentStatus),
            bulk_moves=BULK_MOVES,
            **_words(request),
        )

    @get("/orders/live", name="admin-orders-live")
    async def live_list(self, request: Request) -> ServerSentEvent:
        """New orders matching the list's filter (event "new-order": a row for the top of the
        table) and moved orders (event "order-<id>": the row again)."""
        found = _filter(request)
        return ServerSentEvent(self._list_updates(request, found), headers={"Cache-Control": "no-cache"})

    async def _list_updates(self, request: Request, found: staff.OrderFilter) -> AsyncIterator[ServerSentEventMessage]:
        sessions = request.app.state.sqlalchemy_config
        back = "/admin/orders?" + found.query()
        zone = _zone(request)

        async def row_for(kind: str, order_id: object) -> ServerSentEventMessage | None:
            async with sessions.get_session() as db:
                order = await staff.row_if_listed(db, found, zone, order_id)  # type: ignore[arg-type]
                await db.commit()
            if order is None:
                return None
            event = "new-order" if kind == "placed" else f"order-{order.id}"
            return ServerSentEventMessage(event=event, data=_row(request, order, back, new=kind == "placed"))

        async for note in _notes(request):
            if note is None:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            message = await row_for(*note)
            if message is not None:
                yield message

    @get("/orders/live/today", name="admin-orders-today")
    async def live_today(self, request: Request) -> ServerSentEvent:
        """The dashboard's figures for today, again each time an order is placed or moved."""
        return ServerSentEvent(self._today_updates(request), headers={"Cache-Control": "no-cache"})

    async def _today_updates(self, request: Request) -> AsyncIterator[ServerSentEventMessage]:
        sessions = request.app.state.sqlalchemy_config
        async for note in _notes(request):
            if note is None:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            async with sessions.get_session() as db:
                figures = await staff.today(db, _zone(request))
                await db.commit()
            data = render_fragment(request, "admin/orders/_today.html", today=figures, changed=True)
            yield ServerSentEventMessage(event="today", data=data)

    # --- the export ----------------------------------------------------------------------------

    @get("/orders.csv", name="admin-orders-csv")
    async def export(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Stream:
        """The filtered orders as CSV, streamed from a server-side cursor; the export is audited."""
        found = _filter(request)
        await record(
            db_session, _actor(request), "orders.export", "orders", "", after=found.params(), note=found.query()
        )
        await db_session.commit()
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
        return Stream(
            _export(request, found),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="orders-{stamp}.csv"',
                "Cache-Control": "no-store",
            },
        )

    # --- bulk ----------------------------------------------------------------------------------

    @post("/orders/bulk", name="admin-orders-bulk")
    async def bulk(
        self, request: Request, db_session: NamedDependency[AsyncSession], orders: NamedDependency[OrderService]
    ) -> Template:
        """Move the selected orders one by one through the transition function; each gets its own
        answer (moved, or refused and why)."""
        form = await request.form()
        numbers = list(dict.fromkeys(str(n)[:20] for n in form.getall("number", []) if isinstance(n, str)))
        data = await form_data(request)
        target = data.get("status", "")
        if target not in {move.value for move in BULK_MOVES}:
            raise BadRequest(_("Choose “Start preparing” or “Mark shipped” for the selected orders."))
        if not numbers:
            raise BadRequest(_("Select at least one order."))
        if len(numbers) > BULK_LIMIT:
            raise BadRequest(_("Select at most %(n)d orders at a time.") % {"n": BULK_LIMIT})
        to = OrderStatus(target)
        note = data.get("note", "").strip()[:500]
        ids = await staff.ids_for_numbers(db_session, numbers)
        await db_session.commit()
        results: list[tuple[str, bool, str]] = []
        for number in numbers:
            if number not in ids:
                results.append((number, False, _("No such order.")))
                continue
            try:
                await orders.transition(ids[number], to, request.state.user.email, note, audited_by=_actor(request))
            except IllegalTransition as exc:
                results.append((number, False, str(exc)))
            else:
                results.append((number, True, _("Now %(status)s.") % {"status": _(to.label).lower()}))
        back = data.get("back", "")
        return render(
            request,
            "admin/orders/bulk.html",
            results=results,
            moved=sum(1 for _n, ok, _m in results if ok),
            to=to,
            back=back if back.startswith("/admin/orders") else "/admin/orders",
        )

    # --- one order -----------------------------------------------------------------------------

    @get("/orders/{number:str}", name="admin-order")
    async def show(
        self, request: Request, number: FromPath[str], db_session: NamedDependency[AsyncSession]
    ) -> Template:
        return render(request, "admin/orders/order.html", **await self._order(db_session, number), **_words(request))

    @get("/orders/{number:str}/slip", name="admin-order-slip")
    async def slip(
        self, request: Request, number: FromPath[str], db_session: NamedDependency[AsyncSession]
    ) -> Template:
        """A packing slip / kitchen ticket: what to bake and pack, and where it goes (print CSS)."""
        return render(request, "admin/orders/slip.html", **await self._order(db_session, number))

    async def _order(self, db: AsyncSession, number: str) -> dict[str, Any]:
        found = await staff.for_staff(db, number[:20])
        if found is None:
            raise NotFoundException(_("No such order."))
        order, customer = found
        return {"order": order, "customer": customer}

    @post("/orders/{number:str}/status", name="admin-order-status")
    async def set_status(
        self, request: Request, number: FromPath[str], orders: NamedDependency[OrderService]
    ) -> Redirect:
        """Move an order by hand: start preparing, mark shipped or delivered, or cancel with a
        reason (the shopper reads it; a paid order is refunded). Audited as "order.move"."""
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
            order = await orders.transition(order_id, to, request.state.user.email, note, audited_by=_actor(request))
        except IllegalTransition as exc:
            raise Conflict(str(exc)) from exc
        flash(
            request, _("Order %(number)s is now %(status)s.") % {"number": order.number, "status": _(to.label).lower()}
        )
        back = data.get("back", "")
        return Redirect(back if back.startswith("/admin/") else "/admin/orders", status_code=303)


async def _export(request: Request, found: staff.OrderFilter) -> AsyncIterator[bytes]:
    """The CSV from a session of its own: the request's session is closed once the response starts."""
    async with request.app.state.sqlalchemy_config.get_session() as db:
        async for chunk in staff.export_csv(db, found, _zone(request)):
            yield chunk
        await db.commit()


async def _still_admin(request: Request, user_id: UUID, epoch: int) -> bool:
    """Still signed in (account there, no password change since) and still an admin."""
    async with request.app.state.sqlalchemy_config.get_session() as db:
        user = await UserService(session=db).signed_in_user(user_id, epoch)
        await db.commit()
    return user is not None and user.is_admin


async def _notes(request: Request) -> AsyncIterator[tuple[str, object] | None]:
    """Each placed or moved order heard on the admin channel as (kind, order id); None when a
    keep-alive is due. Ends after LIVE_STREAM_SECONDS (the browser reconnects, and is guarded
    again), if Redis goes, or at the next check (every ACCESS_CHECK_SECONDS) once the viewer is
    no longer a signed-in admin: a demoted admin stops seeing new orders within that time."""
    user_id, epoch = request.state.user.id, session_epoch(request)
    deadline = time.monotonic() + LIVE_STREAM_SECONDS
    try:
        async with live.admin_subscription(request.app.state.redis) as pubsub:
            yield None  # at once: the browser (and any client) sees the stream open
            last_sent = time.monotonic()
            next_check = last_sent + ACCESS_CHECK_SECONDS
            while (now := time.monotonic()) < deadline:
                if now >= next_check:
                    if not await _still_admin(request, user_id, epoch):
                        return
                    next_check = now + ACCESS_CHECK_SECONDS
                if now - last_sent >= KEEPALIVE_SECONDS:
                    yield None
                    last_sent = now
                wait = min(next_check, last_sent + KEEPALIVE_SECONDS, deadline) - now
                message = await pubsub.get_message(timeout=max(wait, 0.01))
                if message is None:
                    continue
                note = live.read_admin_note(message.get("data"))
                if note is not None:
                    await asyncio.sleep(0)  # let other streams run between notes
                    yield note
                    last_sent = time.monotonic()
    except RedisError:
        log.warning("admin live stream ended: Redis unavailable")
