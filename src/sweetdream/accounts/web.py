"""Register, sign in and out, and the account page."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Controller, Litestar, Request, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts import devices, sessions, shopper_cache
from sweetdream.accounts.forms import ProfileForm, RegistrationForm, password_problem
from sweetdream.accounts.guards import (
    SESSION_EPOCH,
    LoginRequired,
    current_user,
    requires_admin,
    requires_user,
    session_epoch,
)
from sweetdream.accounts.models import Role, User
from sweetdream.accounts.services import AccountError, UserService, shopper_row
from sweetdream.cart.services import cart_cutoff, session_cart_count
from sweetdream.catalog.cache import site_version
from sweetdream.db import EACH_STATEMENT_COMMITTED, commit_each_statement
from sweetdream.platform import i18n, ratelimit
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop
from sweetdream.platform.ratelimit import Limit, TooManyRequests, hit
from sweetdream.platform.sessions import SessionConfig, rotate_session_id
from sweetdream.platform.web import BadRequest, client_ip, flash, form_data, render, safe_next

# Sign-in limits count failed sign-ins only (a success gives its attempt back):
# - 10 per (email, client address) in 15 minutes stops one place guessing one account's password,
#   while a stranger's guesses from elsewhere never lock the owner out;
# - 50 per email an hour slows down guessing one account from many addresses; a browser that has
#   signed in to that account before (`devices`) is exempt, so the owner still gets in;
# - 30 per client address in 10 minutes stops spraying many accounts from one place yet leaves room
#   for a household or office behind one address.
LOGIN_PER_EMAIL_AND_CLIENT = Limit("login-email-client", attempts=10, window_seconds=15 * 60)
LOGIN_PER_EMAIL = Limit("login-email", attempts=50, window_seconds=60 * 60)
LOGIN_PER_CLIENT = Limit("login-client", attempts=30, window_seconds=10 * 60)
# Registration: 5 accounts an hour from one address is more than any real shopper needs.
REGISTER_PER_CLIENT = Limit("register-client", attempts=5, window_seconds=60 * 60)

DEACTIVATED = gettext_noop(
    "This account has been deactivated, so it can't sign in. Please contact the shop if you think this is a mistake."
)

# Hooks run after a successful sign-in (the cart merges the visitor's cart here).
AFTER_SIGN_IN: list[Any] = []


async def load_current_user(request: Request) -> None:
    """Read the user (and so the role) on every request: a promotion or demotion applies at once,
    and a session signed in before the password was changed ends here."""
    request.state.user = None
    if "session" not in request.scope:
        return
    user_id = request.session.get("user_id") if request.session else None
    if not user_id:
        return
    config: SQLAlchemyAsyncConfig = request.app.state.sqlalchemy_config
    db = config.provide_session(request.app.state, request.scope)
    handler = request.scope.get("route_handler")
    if handler is not None and handler.opt.get(EACH_STATEMENT_COMMITTED):
        await commit_each_statement(db)  # from this read on: no BEGIN, no COMMIT, no second connection
    found = await UserService(session=db).with_cart_count(str(user_id))
    user = found[0] if found else None
    if user is None:  # the account was removed: forget the stale session
        request.clear_session()
    elif not user.is_active:  # deactivated by staff (its sessions were ended then; this is a straggler)
        await _deactivated(request)
        user = None
    elif user.session_epoch != session_epoch(request):
        await _signed_out_elsewhere(request)
        user = None
    request.state.user = user
    if user is not None and found is not None:
        request.state.cart_count = found[1]


@dataclass(frozen=True)
class Shopper:
    """What a cached page's header shows of a signed-in shopper (see `shopper_state`)."""

    id: UUID
    name: str
    is_admin: bool


def session_user_id(session: dict[str, Any]) -> UUID | None:
    """The signed-in user's id a session names; None for a visitor (or a malformed id)."""
    try:
        return UUID(str(session["user_id"])) if session.get("user_id") else None
    except ValueError:
        return None


def shopper_from_row(user_id: UUID, row: Any, session: dict[str, Any]) -> dict[str, Any] | None:
    """The request state of a page answered before Litestar, from a row with `shopper_columns`:
    None when Litestar must answer (no such user, a deactivated one, or a session a password
    change ended: it says why and forgets the session)."""
    if row is None or not row["is_active"] or row["session_epoch"] != int(session.get(SESSION_EPOCH, 0)):
        return None
    return {
        "user": Shopper(user_id, row["name"], row["role"] == Role.ADMIN),
        "cart_count": int(row["cart_count"]),
        "saved_language": row["language"],  # the page must be in it (platform/pages.py checks)
    }


async def shopper_state(
    app: Litestar, session: dict[str, Any], kept: Sequence[bytes | None], version: bytes
) -> dict[str, Any] | None:
    """For a page served before Litestar (`platform.pages.cached_pages`): what the header needs of
    the session's owner, as `load_current_user` reads it (role and session epoch on every request,
    with the cart count). `kept` is what the page's Redis call found at `shopper_cache.PER_USER_KEYS`
    (the record, its generation) at `version`: the record when it is current, else one query, kept
    for the next pages. None when Litestar must answer."""
    if not session.get("user_id"):
        return {"user": None, "cart_count": session_cart_count(session)}
    uid = session_user_id(session)
    if uid is None:
        return None
    found, generation = kept
    site = site_version(version)
    row = shopper_cache.record_from(found, site)
    if row is None:
        row = await shopper_row(app.state.sqlalchemy_config.get_engine(), uid, cart_cutoff())
        if row is not None:
            await shopper_cache.remember(app.state.redis, uid, generation, row, site, row["cart_counted_until"])
    return shopper_from_row(uid, row, session)


async def _signed_out_elsewhere(request: Request) -> None:
    """End a session the user's password change ended, and tell the shopper why."""
    await rotate_session_id(request, request.app.state.session_config)
    request.set_session(
        {"flash": [{"kind": "error", "text": _("Your password was changed, so you were signed out here.")}]}
    )


async def _deactivated(request: Request) -> None:
    await rotate_session_id(request, request.app.state.session_config)
    request.set_session({"flash": [{"kind": "error", "text": _(DEACTIVATED)}]})


def current_user_middleware(app: ASGIApp) -> ASGIApp:
    """Runs after the session middleware and before guards (which run before `before_request`)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request: Request = Request(scope)
        await load_current_user(request)
        # i18n: a signed-in user's saved language, unless this browser chose one (platform/i18n.py).
        user = request.state.user
        saved = user.language if user is not None and i18n.cookie_choice(scope) is None else None
        with i18n.use_language(saved) if saved else nullcontext():
            await app(scope, receive, send)

    return middleware


def provide_users(db_session: NamedDependency[AsyncSession]) -> UserService:
    return UserService(session=db_session)


async def sign_in(request: Request, user: User) -> None:
    config: SessionConfig = request.app.state.session_config
    carried = {k: v for k, v in (request.session or {}).items() if k in CARRIED_ACROSS_SIGN_IN}
    session_id = await rotate_session_id(request, config)
    await _index_session(request, user, session_id)
    request.set_session({**carried, "user_id": str(user.id), SESSION_EPOCH: user.session_epoch})
    request.state.user = user
    for hook in AFTER_SIGN_IN:
        await hook(request, user)


async def stay_signed_in(request: Request, user: User) -> None:
    """This session goes on at the user's new epoch, under a new id (the old one is forgotten)."""
    session_id = await rotate_session_id(request, request.app.state.session_config)
    await _index_session(request, user, session_id)
    request.set_session({**(request.session or {}), SESSION_EPOCH: user.session_epoch})


async def _index_session(request: Request, user: User, session_id: str) -> None:
    """Staff see the account's sessions, and deactivation ends them all (accounts/sessions.py)."""
    user_agent = request.headers.get("user-agent", "")[:400]
    await sessions.remember(request.app.state.redis, user.id, session_id, user_agent, user.session_epoch)


class SignInLimits:
    """The failed-sign-in counts one attempt is held against (see LOGIN_PER_* above)."""

    def __init__(self, request: Request, email: str) -> None:
        self.redis = request.app.state.redis
        client = client_ip(request)
        known = devices.is_known(request.app.state.settings.secret_key, request.cookies.get(devices.COOKIE), email)
        self.per_email_and_client = (LOGIN_PER_EMAIL_AND_CLIENT, f"{email}|{client}")
        self.counted = [(LOGIN_PER_CLIENT, client), self.per_email_and_client]
        if not known:
            self.counted.append((LOGIN_PER_EMAIL, email))

    async def take(self) -> None:
        """Count this attempt as a failure until it succeeds; 429 if any count is full."""
        taken: list[tuple[Limit, str]] = []
        try:
            for limit, key in self.counted:
                await ratelimit.take(self.redis, limit, key)
                taken.append((limit, key))
        except TooManyRequests:
            await self._give_back(taken)
            raise

    async def not_a_failure(self) -> None:
        """The attempt got no answer (the database was down): it counts for nothing."""
        await self._give_back(self.counted)

    async def succeeded(self) -> None:
        """A success is no failure, and this client starts its count for the account again."""
        await self._give_back(self.counted)
        await ratelimit.clear(self.redis, *self.per_email_and_client)

    async def _give_back(self, taken: list[tuple[Limit, str]]) -> None:
        for limit, key in taken:
            await ratelimit.give_back(self.redis, limit, key)


def known_device_cookie(request: Request, email: str) -> Cookie:
    settings = request.app.state.settings
    return Cookie(
        key=devices.COOKIE,
        value=devices.token_for(settings.secret_key, email),
        path=devices.COOKIE_PATH,
        max_age=devices.MAX_AGE,
        secure=not settings.is_dev,
        httponly=True,
        samesite="lax",
    )


# Session keys a visitor keeps when they sign in (the cart adds its own).
CARRIED_ACROSS_SIGN_IN: set[str] = {"flash"}


class AccountController(Controller):
    path = "/account"
    dependencies = {"users": Provide(provide_users, sync_to_thread=False)}

    @get("/register", name="register")
    async def register_page(self, request: Request, next_url: FromQuery[str | None] = None) -> Template | Redirect:
        if current_user(request):
            return Redirect("/account", status_code=303)
        return render(request, "accounts/register.html", form=RegistrationForm(), next=safe_next(next_url), errors={})

    @post("/register")
    async def register(self, request: Request, users: NamedDependency[UserService]) -> Template | Redirect:
        await hit(request.app.state.redis, REGISTER_PER_CLIENT, client_ip(request))
        data = await form_data(request)
        form = RegistrationForm.parse(data)
        next_url = safe_next(data.get("next"))
        if not form.errors:
            try:
                user = await users.register(form, language=i18n.current_language.get())
            except AccountError as exc:
                form.errors[exc.field] = exc.message
            else:
                await users.repository.session.commit()
                await sign_in(request, user)
                flash(request, _("Welcome to SweetDream, %(name)s!") % {"name": user.name})
                return Redirect(next_url, status_code=303, cookies=[known_device_cookie(request, user.email)])
        form.password = ""  # never echoed back
        return render(request, "accounts/register.html", status_code=400, form=form, next=next_url, errors=form.errors)

    @get("/login", name="login")
    async def login_page(self, request: Request, next_url: FromQuery[str | None] = None) -> Template | Redirect:
        if current_user(request):
            return Redirect(safe_next(next_url), status_code=303)
        return render(request, "accounts/login.html", email="", next=safe_next(next_url), error=None)

    @post("/login")
    async def login(self, request: Request, users: NamedDependency[UserService]) -> Template | Redirect:
        data = await form_data(request)
        email = data.get("email", "").strip().lower()[:254]
        next_url = safe_next(data.get("next"))
        limits = SignInLimits(request, email)
        await limits.take()
        try:
            user = await users.authenticate(email, data.get("password", "")[:200]) if email else None
        except Exception:
            await limits.not_a_failure()
            raise
        if user is None:
            return render(
                request,
                "accounts/login.html",
                status_code=400,
                email=email,
                next=next_url,
                error=_("Email or password is incorrect."),
            )
        await limits.succeeded()
        await users.repository.session.commit()  # a rehashed password is saved
        if not user.is_active:  # told only to someone who knows the password
            return render(
                request,
                "accounts/login.html",
                status_code=403,
                email=email,
                next=next_url,
                error=_(DEACTIVATED),
            )
        await sign_in(request, user)
        flash(request, _("Welcome back, %(name)s.") % {"name": user.name})
        return Redirect(next_url, status_code=303, cookies=[known_device_cookie(request, email)])

    @post("/logout", name="logout")
    async def logout(self, request: Request) -> Redirect:
        user = current_user(request)
        session_id = request.cookies.get(request.app.state.session_config.key)
        if user is not None and session_id:
            await sessions.forget(request.app.state.redis, user.id, session_id)
        request.clear_session()
        return Redirect("/", status_code=303)

    @get("/", name="account", guards=[requires_user])
    async def account_page(self, request: Request) -> Template:
        user = current_user(request)
        assert user is not None
        form = ProfileForm(name=user.name, phone=user.phone, address=user.address)
        return render(request, "accounts/account.html", form=form, errors={}, password_errors={})

    @post("/", guards=[requires_user])
    async def update_profile(self, request: Request, users: NamedDependency[UserService]) -> Template | Redirect:
        user = current_user(request)
        assert user is not None
        form = ProfileForm.parse(await form_data(request))
        if form.errors:
            return render(
                request, "accounts/account.html", status_code=400, form=form, errors=form.errors, password_errors={}
            )
        await users.update_profile(user.id, form)
        await users.repository.session.commit()
        flash(request, _("Your details were saved."))
        return Redirect("/account", status_code=303)

    @post("/password", guards=[requires_user])
    async def change_password(self, request: Request, users: NamedDependency[UserService]) -> Template | Redirect:
        user = current_user(request)
        assert user is not None
        data = await form_data(request)
        errors: dict[str, str] = {}
        if data.get("new_password", "") != data.get("confirm_password", ""):
            errors["confirm_password"] = _("The two new passwords don't match.")
        else:
            try:
                user = await users.change_password(
                    user.id, data.get("current_password", ""), data.get("new_password", "")
                )
            except AccountError as exc:
                errors[exc.field] = exc.message
        if errors:
            form = ProfileForm(name=user.name, phone=user.phone, address=user.address)
            return render(
                request, "accounts/account.html", status_code=400, form=form, errors={}, password_errors=errors
            )
        await users.repository.session.commit()
        await stay_signed_in(request, user)
        flash(request, _("Your password was changed. You were signed out everywhere else."))
        return Redirect("/account", status_code=303)


def language_cookie(request: Request, language: str) -> Cookie:
    """The switch's choice, for a year; readable by nothing but the server (it only picks a language)."""
    return Cookie(
        key=i18n.COOKIE,
        value=language,
        path="/",
        max_age=i18n.COOKIE_MAX_AGE,
        secure=not request.app.state.settings.is_dev,
        httponly=True,
        samesite="lax",
    )


@post("/language", name="language", dependencies={"users": Provide(provide_users, sync_to_thread=False)})
async def switch_language(request: Request, users: NamedDependency[UserService]) -> Redirect:
    """The header's language switch: a cookie for this browser and, when signed in, the profile
    (so the choice follows the shopper to another browser, and their emails follow it too)."""
    data = await form_data(request)
    language = i18n.supported(data.get("language"))
    if language is None:
        raise BadRequest(_("Choose Tiếng Việt or English."))
    user = current_user(request)
    if user is not None:
        await users.set_language(user.id, language)
        await users.repository.session.commit()
    return Redirect(safe_next(data.get("next")), status_code=303, cookies=[language_cookie(request, language)])


__all__ = [
    "AccountController",
    "LoginRequired",
    "load_current_user",
    "password_problem",
    "requires_admin",
    "switch_language",
]
