"""Register, sign in and out, and the account page."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.forms import ProfileForm, RegistrationForm, password_problem, safe_next
from sweetdream.accounts.models import User
from sweetdream.accounts.services import AccountError, UserService
from sweetdream.platform.ratelimit import Limit, hit
from sweetdream.platform.sessions import SessionConfig, rotate_session_id
from sweetdream.platform.web import client_ip, flash, form_data, render

# Sign-in: 10 tries per email in 15 minutes stops guessing one account's password while a shopper who
# mistypes a few times is never blocked; 30 per client address in 10 minutes stops spraying many
# accounts from one place yet leaves room for a household or office behind one address.
LOGIN_PER_EMAIL = Limit("login-email", attempts=10, window_seconds=15 * 60)
LOGIN_PER_CLIENT = Limit("login-client", attempts=30, window_seconds=10 * 60)
# Registration: 5 accounts an hour from one address is more than any real shopper needs.
REGISTER_PER_CLIENT = Limit("register-client", attempts=5, window_seconds=60 * 60)

# Hooks run after a successful sign-in (the cart merges the visitor's cart here).
AFTER_SIGN_IN: list[Any] = []


class LoginRequired(NotAuthorizedException):
    """A visitor asked for a page that needs an account: they are sent to sign in and brought back."""


async def load_current_user(request: Request) -> None:
    """Read the user (and so the role) on every request: a promotion or demotion applies at once."""
    request.state.user = None
    if "session" not in request.scope:
        return
    user_id = request.session.get("user_id") if request.session else None
    if not user_id:
        return
    config: SQLAlchemyAsyncConfig = request.app.state.sqlalchemy_config
    db = config.provide_session(request.app.state, request.scope)
    try:
        user = await db.get(User, UUID(user_id))
    except ValueError:
        user = None
    if user is None:  # the account was removed: forget the stale session
        request.clear_session()
    request.state.user = user


def current_user_middleware(app: ASGIApp) -> ASGIApp:
    """Runs after the session middleware and before guards (which run before `before_request`)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await load_current_user(Request(scope))
        await app(scope, receive, send)

    return middleware


def current_user(request: Request) -> User | None:
    return request.state.get("user")


def requires_user(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if connection.state.get("user") is None:
        raise LoginRequired("Please sign in to continue.")


def requires_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    requires_user(connection, handler)
    if not connection.state.user.is_admin:
        raise PermissionDeniedException("This page is for SweetDream staff only.")


def provide_users(db_session: NamedDependency[AsyncSession]) -> UserService:
    return UserService(session=db_session)


async def sign_in(request: Request, user: User) -> None:
    config: SessionConfig = request.app.state.session_config
    carried = {k: v for k, v in (request.session or {}).items() if k in CARRIED_ACROSS_SIGN_IN}
    await rotate_session_id(request, config)
    request.set_session({**carried, "user_id": str(user.id)})
    request.state.user = user
    for hook in AFTER_SIGN_IN:
        await hook(request, user)


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
                user = await users.register(form)
            except AccountError as exc:
                form.errors[exc.field] = exc.message
            else:
                await users.repository.session.commit()
                await sign_in(request, user)
                flash(request, f"Welcome to SweetDream, {user.name}!")
                return Redirect(next_url, status_code=303)
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
        redis = request.app.state.redis
        await hit(redis, LOGIN_PER_CLIENT, client_ip(request))
        await hit(redis, LOGIN_PER_EMAIL, email)
        user = await users.authenticate(email, data.get("password", "")[:200]) if email else None
        if user is None:
            return render(
                request,
                "accounts/login.html",
                status_code=400,
                email=email,
                next=next_url,
                error="Email or password is incorrect.",
            )
        await users.repository.session.commit()  # a rehashed password is saved
        await sign_in(request, user)
        flash(request, f"Welcome back, {user.name}.")
        return Redirect(next_url, status_code=303)

    @post("/logout", name="logout")
    async def logout(self, request: Request) -> Redirect:
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
        flash(request, "Your details were saved.")
        return Redirect("/account", status_code=303)

    @post("/password", guards=[requires_user])
    async def change_password(self, request: Request, users: NamedDependency[UserService]) -> Template | Redirect:
        user = current_user(request)
        assert user is not None
        data = await form_data(request)
        errors: dict[str, str] = {}
        if data.get("new_password", "") != data.get("confirm_password", ""):
            errors["confirm_password"] = "The two new passwords don't match."  # noqa: S105 (a message)
        else:
            try:
                await users.change_password(user.id, data.get("current_password", ""), data.get("new_password", ""))
            except AccountError as exc:
                errors[exc.field] = exc.message
        if errors:
            form = ProfileForm(name=user.name, phone=user.phone, address=user.address)
            return render(
                request, "accounts/account.html", status_code=400, form=form, errors={}, password_errors=errors
            )
        await users.repository.session.commit()
        flash(request, "Your password was changed.")
        return Redirect("/account", status_code=303)


__all__ = ["AccountController", "LoginRequired", "load_current_user", "password_problem", "requires_admin"]
