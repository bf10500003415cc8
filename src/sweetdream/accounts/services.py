"""Account rules: registration, sign-in, profile, password and role changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import undefer

from sweetdream.accounts import staff
from sweetdream.accounts.forms import ProfileForm, RegistrationForm, normalise_email, password_problem
from sweetdream.accounts.models import Role, User
from sweetdream.accounts.passwords import hash_password, needs_rehash, verify_password
from sweetdream.accounts.shopper_cache import shopper_changed
from sweetdream.audit.services import Actor, record
from sweetdream.db import DirectRead
from sweetdream.platform.i18n import gettext as _

CLI = Actor(None, "cli")  # the audit log's actor for the command line


class AccountError(ValueError):
    """A rule refused the change; `field` says which form field the message belongs beside."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SignIn:
    user: User | None


class UserService(SQLAlchemyAsyncRepositoryService[User]):
    class Repository(SQLAlchemyAsyncRepository[User]):
        model_type = User

    repository_type = Repository

    async def admin_emails(self) -> list[tuple[str, str | None]]:
        """Where shop alerts go (low stock): every active admin, read fresh, with their language."""
        rows = await self.repository.session.execute(
            select(User.email, User.language).where(User.role == Role.ADMIN, User.is_active.is_(True))
        )
        return [(email, language) for email, language in rows]

    async def with_cart_count(self, user_id: str) -> tuple[User, int] | None:
        """The signed-in user and their cart badge in one query (every request's middleware);
        None for an id that is malformed or no longer exists."""
        from sweetdream.cart.services import cart_cutoff

        try:
            uid = UUID(user_id)
        except ValueError:
            return None
        statement = _user_with_cart_count()
        row = (await self.repository.session.execute(statement, {"uid": uid, "cutoff": cart_cutoff()})).first()
        return (row[0], int(row[1])) if row else None

    async def by_email(self, email: str, with_password: bool = False) -> User | None:
        stmt = select(User).where(User.email == normalise_email(email))
        if with_password:
            stmt = stmt.options(undefer(User.password_hash))
        return await self.repository.session.scalar(stmt)

    async def register(self, form: RegistrationForm, language: str | None = None) -> User:
        """A new customer; `language` is the one they registered in (their emails' language)."""
        if await self.by_email(form.email):
            raise AccountError("email", _("An account with this email already exists. Sign in instead?"))
        user = User(
            email=form.email,
            password_hash=await hash_password(form.password),
            name=form.name,
            phone=form.phone,
            address=form.address,
            role=Role.CUSTOMER,
            language=language,
        )
        session = self.repository.session
        try:
            async with session.begin_nested():  # a savepoint: the caller's transaction stays usable
                session.add(user)
                await session.flush()
        except IntegrityError as exc:  # two registrations for one email at the same moment
            raise AccountError("email", _("An account with this email already exists. Sign in instead?")) from exc
        return user

    async def authenticate(self, email: str, password: str) -> User | None:
        """The user if the password matches; the same work is done whether or not the email exists."""
        user = await self.by_email(email, with_password=True)
        if not await verify_password(user.password_hash if user else None, password):
            return None
        assert user is not None
        if needs_rehash(user.password_hash):  # parameters were raised since this hash was made
            user.password_hash = await hash_password(password)
            await self.repository.session.flush()
        return user

    async def update_profile(self, user_id: UUID, form: ProfileForm) -> None:
        shopper_changed(self.repository.session, user_id)  # the header shows the name
        await self.repository.session.execute(
            update(User).where(User.id == user_id).values(name=form.name, phone=form.phone, address=form.address)
        )

    async def set_language(self, user_id: UUID, language: str) -> None:
        """The language the user chose with the switch: their pages on any browser, and their emails."""
        shopper_changed(self.repository.session, user_id)  # a page is served in it
        await self.repository.session.execute(update(User).where(User.id == user_id).values(language=language))

    async def change_password(self, user_id: UUID, current: str, new: str) -> User:
        """Set a new password and end every session signed in before (they carry the old epoch)."""
        user = await self.repository.session.scalar(
            select(User).where(User.id == user_id).options(undefer(User.password_hash))
        )
        if user is None or not await verify_password(user.password_hash, current):
            raise AccountError("current_password", _("That isn't your current password."))
        problem = password_problem(new, user.email)
        if problem:
            raise AccountError("new_password", problem)
        user.password_hash = await hash_password(new)
        user.session_epoch += 1
        shopper_changed(self.repository.session, user.id)  # the epoch: other sessions end
        await self.repository.session.flush()
        return user

    async def signed_in_user(self, user_id: UUID, epoch: int) -> User | None:
        """The user, read afresh, if a session signed in at `epoch` is still theirs (not removed or
        deactivated, no password change since)."""
        user = await self.repository.session.get(User, user_id, populate_existing=True)
        return user if user is not None and user.is_active and user.session_epoch == epoch else None

    async def create_admin(self, email: str, password: str, name: str = "Admin", actor: Actor = CLI) -> User:
        """The command line's way in: a new admin, or an existing account made admin with a new
        password. Audited (actor "cli")."""
        email = normalise_email(email)
        problem = password_problem(password, email)
        if problem:
            raise AccountError("password", problem)
        existing = await self.by_email(email)
        session = self.repository.session
        if existing:
            if existing.role != Role.ADMIN:
                await staff.change_role(session, actor, existing.id, Role.ADMIN, "create-admin")
            existing.password_hash = await hash_password(password)
            existing.session_epoch += 1  # a new password: sessions signed in with the old one end
            shopper_changed(session, existing.id)
            await session.flush()
            await record(
                session, actor, "user.password_reset", "user", existing.id, target_label=email, note="create-admin"
            )
            return existing
        user = User(email=email, password_hash=await hash_password(password), name=name, role=Role.ADMIN)
        session.add(user)
        await session.flush()
        await record(
            session, actor, "user.create_admin", "user", user.id, target_label=email,
            after={"role": Role.ADMIN.value}, note="create-admin",
        )  # fmt: skip
        return user

    async def set_role(self, email: str, role: str, reason: str = "", actor: Actor = CLI) -> User:
        """The command line's `set-role`: the same rule as the admin's buttons (accounts/staff.py),
        audited with actor "cli"; setting the role an account already has changes nothing."""
        try:
            new_role = Role(role.strip().upper())
        except ValueError as exc:
            choices = ", ".join(r.value for r in Role)
            raise AccountError("role", f"Unknown role {role!r}: choose one of {choices}.") from exc
        user = await self.by_email(email)
        if user is None:
            raise AccountError("email", f"No account has the email {normalise_email(email)!r}.")
        if user.role == new_role:
            return user
        try:
            return await staff.change_role(
                self.repository.session, actor, user.id, new_role, reason or "set-role on the command line"
            )
        except staff.StaffError as exc:
            raise AccountError("role", exc.message) from exc


# --- the signed-in shopper, read on every request -----------------------------------------------
# Both statements are built once (building one costs more than running it) and share the cart badge's
# definition (`cart_count_column`): Litestar's middleware reads the User row, the page cache (which
# answers before Litestar, see platform/pages.py) reads the same through asyncpg directly.


@cache
def _user_with_cart_count() -> Select[User, int]:
    from sweetdream.cart.services import cart_count_column  # cart imports accounts

    badge = cart_count_column(User.id, bindparam("cutoff"))
    return select(User, badge).where(User.id == bindparam("uid"))


def shopper_columns() -> tuple[Any, ...]:
    """What a page answered before Litestar reads of its shopper (`accounts.web.shopper_from_row`):
    name, role, session epoch, active, saved language and the cart badge, for `User.id == :uid`
    (the badge counts lines changed since `:cutoff`). Pages that read more add their own columns."""
    from sweetdream.cart.services import cart_count_column

    badge = cart_count_column(User.id, bindparam("cutoff")).label("cart_count")
    return (User.name, User.role, User.session_epoch, User.is_active, User.language, badge)


@cache
def _shopper_sql() -> DirectRead:
    from sweetdream.cart.services import cart_counted_until_column  # cart imports accounts

    counted_until = cart_counted_until_column(User.id, bindparam("cutoff")).label("cart_counted_until")
    return DirectRead.of(select(*shopper_columns(), counted_until).where(User.id == bindparam("uid")))


async def shopper_row(engine: AsyncEngine, user_id: UUID, cutoff: datetime) -> Any:
    """name, role, session_epoch, is_active, language and cart_count of a user, and when the oldest
    line that count includes stops counting (cart_counted_until), through asyncpg (one round trip,
    no BEGIN ... ROLLBACK, a statement asyncpg prepares once per connection), or None."""
    return await _shopper_sql().fetchrow(engine, uid=user_id, cutoff=cutoff)
