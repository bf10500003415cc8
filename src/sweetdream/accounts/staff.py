"""Staff decisions about accounts: promote, demote, deactivate, reactivate. Each needs a reason, is
audited, and none may leave the shop without an active admin.

"The last admin" is decided under one transaction-scoped advisory lock taken by every change that
can remove an admin, so two admins demoting each other at the same moment are served one after the
other: the second sees one admin left and is refused. Services flush; the caller commits.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.models import Role, User
from sweetdream.accounts.shopper_cache import shopper_changed
from sweetdream.audit.services import Actor, record
from sweetdream.platform.i18n import gettext as _

MAX_REASON = 500
# Any fixed number: every change to who is an active admin takes this lock first.
_ADMINS_LOCK = 0x5D_AD_31_17


class StaffError(Exception):
    """A rule refused the change; `status` is the HTTP answer (400 bad input, 403 not allowed,
    404 no such account, 409 the state says no)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def clean_reason(raw: str) -> str:
    reason = raw.strip()
    if not reason:
        raise StaffError(400, _("Give a reason: it is kept in the audit log."))
    if len(reason) > MAX_REASON:
        raise StaffError(400, _("Keep the reason under %(num)d characters.") % {"num": MAX_REASON})
    return reason


async def _lock_admins(db: AsyncSession, actor: Actor) -> None:
    """Serialise changes to the set of active admins, then make sure the actor is still one of them
    (they may have been demoted by the change that held the lock before)."""
    await db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADMINS_LOCK})
    if actor.id is None:  # the command line: whoever runs it has the database
        return
    still_admin = await db.scalar(
        select(User.id).where(User.id == actor.id, User.role == Role.ADMIN, User.is_active.is_(True))
    )
    if still_admin is None:
        raise StaffError(403, _("You are no longer an admin, so you can't change accounts."))


async def _target(db: AsyncSession, user_id: UUID) -> User:
    user = await db.scalar(
        select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
    )
    if user is None:
        raise StaffError(404, _("No such account."))
    return user


async def _refuse_if_last_admin(db: AsyncSession, user: User) -> None:
    if user.role != Role.ADMIN or not user.is_active:
        return  # not an active admin: the count of admins does not change
    others = await db.scalar(
        select(func.count()).where(User.role == Role.ADMIN, User.is_active.is_(True), User.id != user.id)
    )
    if not others:
        raise StaffError(409, _("%(email)s is the last admin: promote someone else first.") % {"email": user.email})


async def change_role(db: AsyncSession, actor: Actor, user_id: UUID, role: Role, reason: str) -> User:
    """Promote to ADMIN or demote to CUSTOMER; takes effect on the user's next request (roles are
    read per request)."""
    reason = clean_reason(reason)
    await _lock_admins(db, actor)
    user = await _target(db, user_id)
    if user.role == role:
        raise StaffError(409, _("%(email)s is already %(role)s.") % {"email": user.email, "role": role.value})
    if role != Role.ADMIN:
        await _refuse_if_last_admin(db, user)
    before = user.role
    user.role = role
    shopper_changed(db, user.id)  # the header's "Admin" link on cached pages (accounts/shopper_cache.py)
    await db.flush()
    action = "user.promote" if role == Role.ADMIN else "user.demote"
    await record(
        db, actor, action, "user", user.id, target_label=user.email,
        before={"role": before.value}, after={"role": role.value}, note=reason,
    )  # fmt: skip
    return user


async def set_active(db: AsyncSession, actor: Actor, user_id: UUID, active: bool, reason: str) -> User:
    """Deactivate (sign-in refused; the epoch is raised, so every session ends on its next request
    even before the caller deletes them from the store) or reactivate an account."""
    reason = clean_reason(reason)
    await _lock_admins(db, actor)
    user = await _target(db, user_id)
    if user.is_active == active:
        message = _("%(email)s is already active.") if active else _("%(email)s is already deactivated.")
        raise StaffError(409, message % {"email": user.email})
    if not active:
        await _refuse_if_last_admin(db, user)
        user.session_epoch += 1
    user.is_active = active
    shopper_changed(db, user.id)
    await db.flush()
    await record(
        db, actor, "user.reactivate" if active else "user.deactivate", "user", user.id, target_label=user.email,
        before={"active": not active}, after={"active": active}, note=reason,
    )  # fmt: skip
    return user
