"""Error pages in the shop's layout for browsers, JSON for the API. A 500 is logged with its
request id (never request bodies) and shown to the shopper as a friendly page."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = logging.getLogger("sweetdream.errors")

TITLES = {
    400: "That request didn't look right",
    401: "Please sign in",
    403: "You don't have access to this page",
    404: "Page not found",
    405: "That action isn't allowed here",
    409: "That can't be done right now",
    413: "That was too large",
    414: "That address is too long",
    429: "Too many attempts",
    500: "Something went wrong on our side",
}


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or (
        "application/json" in request.headers.get("accept", "") and "text/html" not in request.headers.get("accept", "")
    )


def _detail(status: int, exc: Exception) -> str:
    if status >= 500:
        return "We have been told about it. Please try again in a moment."
    detail = getattr(exc, "detail", "") or ""
    # Litestar's own messages for CSRF and routing are terse; say it for a shopper.
    if status == 403 and "CSRF" in detail:
        return "Your form expired or came from another site. Please reload the page and try again."
    if status == 404 and detail in {"", "Not Found"}:
        return "We couldn't find that page. It may have moved."
    return detail


def handle_exception(request: Request, exc: Exception) -> Response[Any]:
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
            "title": TITLES.get(status, "Something went wrong"),
            "message": message,
            "layout": "layouts/full.html",
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
