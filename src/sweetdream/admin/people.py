"""Customers and staff: the list and search, a customer's page, promote/demote, deactivate/reactivate.
ADMIN only (read per request); every change needs a reason and is in the audit log."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.stores.base import Store
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts import sessions, staff
from sweetdream.accounts.guards import current_actor, requires_admin
from sweetdream.accounts.models import Role
from sweetdream.admin import customers
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.parsing import clean_text
from sweetdream.platform.web import flash, form_data, render

PAGE_SIZE = 25
ROLE_FILTERS = {"": None, "CUSTOMER": Role.CUSTOMER, "ADMIN": Role.ADMIN}


class PeopleController(Controller):
    path = "/admin/customers"
    guards = [requires_admin]

    @get("/", name="admin-customers")
    async def customer_list(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        q: FromQuery[str] = "",
        role: FromQuery[str] = "",
        after: FromQuery[str] = "",
    ) -> Template:
        q = clean_text(q, customers.MAX_QUERY)
        role = role if role in ROLE_FILTERS else ""
        cursor = customers.Cursor.decode(after)
        rows, following = await customers.customer_page(db_session, q, ROLE_FILTERS[role], cursor, PAGE_SIZE)
        htmx = getattr(request, "htmx", None)
        list_only = bool(htmx) and htmx.target == "customer-results" and not htmx.history_restore_request  # type: ignore[union-attr]
        return render(
            request,
            "admin/people/_customer_results.html" if list_only else "admin/people/customers.html",
            rows=rows,
            q=q,
            role=role,
            paged=cursor is not None,
            next_cursor=following.encode() if following else "",
        )

    @get("/{user_id:uuid}", name="admin-customer")
    async def customer_page(
        self, request: Request, db_session: NamedDependency[AsyncSession], user_id: FromPath[UUID]
    ) -> Template:
        return await self._profile(request, db_session, user_id)

    async def _profile(
        self,
        request: Request,
        db: AsyncSession,
        user_id: UUID,
        status_code: int = 200,
        error: str = "",
        reason: str = "",
    ) -> Template:
        shown = await customers.profile(db, user_id)
        if shown is None:
            raise NotFoundException(_("No such account."))
        live = await _sessions_of(request, shown.user.id, shown.user.session_epoch)
        return render(
            request,
            "admin/people/customer.html",
            status_code=status_code,
            profile=shown,
            sessions=live,
            error=error,
            reason=reason,
        )

    @post("/{user_id:uuid}/role", name="admin-customer-role")
    async def change_role(
        self, request: Request, db_session: NamedDependency[AsyncSession], user_id: FromPath[UUID]
    ) -> Template | Redirect:
        data = await form_data(request)
        reason = data.get("reason", "")
        target = ROLE_FILTERS.get(data.get("role", ""))
        if target is None:
            return await self._refused(request, db_session, user_id, 400, _("Choose a role from the list."), reason)
        try:
            async with db_session.begin_nested():  # a refusal leaves nothing behind
                user = await staff.change_role(db_session, current_actor(request), user_id, target, reason)
        except staff.StaffError as exc:
            return await self._refused(request, db_session, user_id, exc.status, exc.message, reason)
        await db_session.commit()  # the request owns the unit of work
        if target == Role.ADMIN:
            flash(request, _("%(email)s is now an admin, from their next request.") % {"email": user.email})
        else:
            flash(request, _("%(email)s is no longer an admin, from their next request.") % {"email": user.email})
        return Redirect(f"/admin/customers/{user_id}", status_code=303)

    @post("/{user_id:uuid}/deactivate", name="admin-customer-deactivate")
    async def deactivate(
        self, request: Request, db_session: NamedDependency[AsyncSession], user_id: FromPath[UUID]
    ) -> Template | Redirect:
        return await self._set_active(request, db_session, user_id, active=False)

    @post("/{user_id:uuid}/reactivate", name="admin-customer-reactivate")
    async def reactivate(
        self, request: Request, db_session: NamedDependency[AsyncSession], user_id: FromPath[UUID]
    ) -> Template | Redirect:
        return await self._set_active(request, db_session, user_id, active=True)

    async def _set_active(self, request: Request, db: AsyncSession, user_id: UUID, active: bool) -> Template | Redirect:
        reason = (await form_data(request)).get("reason", "")
        try:
            async with db.begin_nested():  # a refusal leaves nothing behind
                user = await staff.set_active(db, current_actor(request), user_id, active, reason)
        except staff.StaffError as exc:
            return await self._refused(request, db, user_id, exc.status, exc.message, reason)
        await db.commit()
        if active:
            flash(request, _("%(email)s can sign in again.") % {"email": user.email})
        else:
            # After the commit: the sessions stored in Redis end now (the raised epoch already ended
            # any the index missed, on their next request).
            await sessions.end_all(request.app.state.redis, _session_store(request), user.id)
            flash(request, _("%(email)s is deactivated and signed out everywhere.") % {"email": user.email})
        return Redirect(f"/admin/customers/{user_id}", status_code=303)

    async def _refused(
        self, request: Request, db: AsyncSession, user_id: UUID, status: int, message: str, reason: str
    ) -> Template:
        """The customer's page again with the refusal beside the forms; nothing was changed."""
        if status == 404:
            raise NotFoundException(message)
        return await self._profile(request, db, user_id, status_code=status, error=message, reason=reason)


def _session_store(request: Request) -> Store:
    return request.app.state.session_config.get_store_from_app(request.app)


async def _sessions_of(request: Request, user_id: UUID, epoch: int) -> list[sessions.SignedInSession]:
    return await sessions.signed_in(request.app.state.redis, _session_store(request), user_id, epoch)
