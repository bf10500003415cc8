"""Who is asking: the signed-in user (read per request by accounts.web's middleware) and the
guards every domain's controllers use. Shared web helpers, so no domain imports another's web."""

from __future__ import annotations

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from sweetdream.accounts.models import User
from sweetdream.audit.services import Actor
from sweetdream.platform.i18n import gettext as _


class LoginRequired(NotAuthorizedException):
    """A visitor asked for a page that needs an account: they are sent to sign in and brought back."""


# The user's `session_epoch` when this session was signed in (sessions from before it existed: 0).
SESSION_EPOCH = "epoch"


def session_epoch(connection: ASGIConnection) -> int:
    return int((connection.session or {}).get(SESSION_EPOCH, 0))


def current_user(request: Request) -> User | None:
    return request.state.get("user")


def signed_in_user(request: Request) -> User:
    """The user of a handler guarded by `requires_user` (a visitor would have been sent to sign in)."""
    user = current_user(request)
    if user is None:
        raise LoginRequired(_("Please sign in to continue."))
    return user


def requires_user(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if connection.state.get("user") is None:
        raise LoginRequired(_("Please sign in to continue."))


def requires_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    requires_user(connection, handler)
    if not connection.state.user.is_admin:
        raise PermissionDeniedException(_("This page is for SweetDream staff only."))


def current_actor(request: Request) -> Actor:
    """The signed-in admin as the audit log records them."""
    user = request.state.user
    return Actor(user.id, user.email)
