"""Error pages in the shop's layout for browsers, JSON for the API. A 500 is logged with its
request id (never request bodies) and shown to the shopper as a friendly page. When Redis or the
database can't be reached, every page says "We'll be right back" (503, Retry-After) and the log
gets one warning line per request instead of a traceback."""

from __future__ import annotations

import logging
import traceback
from typing import Any
from urllib.parse import urlencode

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop

log = logging.getLogger("sweetdream.errors")

# Source strings, translated when the page is rendered (platform/i18n.py).
TITLES = {
    400: gettext_noop("That request didn't look right"),
    401: gettext_noop("Please sign in"),
    403: gettext_noop("You don't have access to this page"),
    404: gettext_noop("Page not found"),
    405: gettext_noop("That action isn't allowed here"),
    409: gettext_noop("That can't be done right now"),
    413: gettext_noop("That was too large"),
    414: gettext_noop("That address is too long"),
    429: gettext_noop("Too many attempts"),
    500: gettext_noop("Something went wrong on our side"),
}
RETRY_AFTER_SECONDS = 30
UNAVAILABLE = gettext_noop("We'll be right back: the shop is taking a short break. Please try again in a minute.")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or (
        "application/json" in request.headers.get("accept", "") and "text/html" not in request.headers.get("accept", "")
    )


def _detail(status: int, exc: Exception) -> str:
    if status >= 500:
        return _("We have been told about it. Please try again in a moment.")
    detail = getattr(exc, "detail", "") or ""
    # Litestar's own messages for CSRF and routing are terse; say it for a shopper.
    if status == 403 and "CSRF" in detail:
        return _("Your form expired or came from another site. Please reload the page and try again.")
    if status == 404 and detail in {"", "Not Found"}:
        return _("We couldn't find that page. It may have moved.")
    return detail


def unreachable_service(exc: Exception) -> str | None:
    """Which of our services `exc` says can't be reached: "Redis", "the database", or None."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return "Redis"
    if isinstance(exc, PoolTimeoutError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return "the database"
    # asyncpg lets a failed connect's own error through (refused, no socket, timed out).
    if isinstance(exc, OSError | TimeoutError) and _raised_in(exc, "asyncpg"):
        return "the database"
    return None


def _raised_in(exc: BaseException, package: str) -> bool:
    modules = (frame.f_globals.get("__name__", "") for frame, _ in traceback.walk_tb(exc.__traceback__))
    return any(module.startswith(f"{package}.") for module in modules)


def _unavailable(request: Request, service: str, exc: Exception) -> Response[Any]:
    log.warning(
        "%s unreachable (%s): %s %s answered 503",
        service,
        type(exc).__name__,
        request.method,
        request.url.path,
        extra={"request_id": request.scope.get("state", {}).get("request_id")},
    )
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if _wants_json(request):
        body = {"status_code": HTTP_503_SERVICE_UNAVAILABLE, "detail": _(UNAVAILABLE)}
        return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE, media_type=MediaType.JSON, headers=headers)
    return Template(
        template_name="errors/unavailable.html",
        context={
            "message": _("The shop is taking a short break. Please try again in a minute."),
            "retry_url": _same_page(request),
            "layout": "layouts/full.html",
            "switch_next": "/",  # the language switch leads home from an error (not back to it)
        },
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers=headers,
    )


def _same_page(request: Request) -> str:
    """This page again (a GET's query included), always on this site."""
    path = "/" + request.url.path.lstrip("/")
    return f"{path}?{request.url.query}" if request.method == "GET" and request.url.query else path


def handle_exception(request: Request, exc: Exception) -> Response[Any]:
    service = unreachable_service(exc)
    if service:
        return _unavailable(request, service, exc)
    status = exc.status_code if isinstance(exc, HTTPException) else HTTP_500_INTERNAL_SERVER_ERROR
    if status == 401 and not _wants_json(request):
        return _to_sign_in(request)
    if status >= 500:
        log.exception("unhandled error", extra={"request_id": request.scope.get("state", {}).get("request_id")})
    headers = dict(getattr(exc, "headers", None) or {})
    message = _detail(status, exc)
    if _wants_json(request):
        body: dict[str, Any] = {"status_code": status, "detail": message}
        extra = getattr(exc, "extra", None)
        if extra and status < 500:
            body["extra"] = extra
        return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
    return Template(
        template_name="errors/error.html",
        context={
            "status": status,
            "title": _(TITLES.get(status, gettext_noop("Something went wrong"))),
            "message": message,
            "layout": "layouts/full.html",
            "switch_next": "/",  # the language switch leads home, and never echoes the refused address
        },
        status_code=status,
        headers=headers,
    )


def _to_sign_in(request: Request) -> Response[Any]:
    """A visitor who needs an account goes to sign in and comes back to where they were."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = "/account/login?" + urlencode({"next_url": target})
    if request.headers.get("hx-request"):
        return ClientRedirect(redirect_to=url)
    return Redirect(url, status_code=303)


def exception_handlers() -> dict[int | type[Exception], Any]:
    return {HTTPException: handle_exception, Exception: handle_exception}
