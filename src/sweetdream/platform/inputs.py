"""Refuse, before any work, what a request can carry but no handler can use.

Runs after routing (so the path parameters are known) and before the session, the current user
and the CSRF check:
- a path parameter with a control character (`/orders/a%00b`): a 400. PostgreSQL refuses NUL in
  text and the file system refuses it in a name, so it would otherwise be a 500 deep in a handler.
  Form fields get the same check where they are read (`platform.web.form_data`).
- a path parameter with a name longer than 255 bytes (the file system's limit for one name; no
  slug, order number, id or file of ours comes near it): a 404, as for any name that does not
  exist. A static file's name past that limit is an OSError, and a 500, in the static files.
- a CSRF token (header, form field or cookie) that is not ASCII: a 403 as for any wrong token.
  Litestar compares tokens with `secrets.compare_digest`, which raises TypeError for a non-ASCII
  string: a 500 for anyone who posts `_csrf_token=é`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
from litestar.types import ASGIApp, Receive, Scope, Send

from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop
from sweetdream.platform.parsing import has_control_characters

MAX_NAME_BYTES = 255
CONTROL_CHARACTERS = gettext_noop(
    "Some of what was sent contains control characters (such as a NUL byte) that can't be part of "
    "an address, a name or a note. Please retype it and try again."
)


def reject_control_characters(pairs: Iterable[tuple[Any, Any]]) -> None:
    """A 400 if any of these (form fields, path parameters) carries a control character."""
    for key, value in pairs:
        if has_control_characters(str(key)) or has_control_characters(str(value)):
            raise ClientException(_(CONTROL_CHARACTERS))


def _check_path_parameters(params: dict[str, Any]) -> None:
    reject_control_characters(params.items())
    for value in params.values():
        if any(len(name.encode()) > MAX_NAME_BYTES for name in str(value).split("/")):
            raise NotFoundException()


async def _reject_non_ascii_csrf_token(request: Request[Any, Any, Any], csrf: CSRFConfig) -> None:
    if request.method in csrf.safe_methods or any(re.match(p, request.url.path) for p in _excluded(csrf)):
        return
    tokens = [request.cookies.get(csrf.cookie_name), request.headers.get(csrf.header_name)]
    content_type, _ = request.content_type
    if tokens[1] is None and content_type in {RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART}:
        form = await request.form()  # kept on the request: the CSRF middleware reads the same
        tokens.append(form.get("_csrf_token"))
    if any(isinstance(token, str) and not token.isascii() for token in tokens):
        raise PermissionDeniedException("CSRF token verification failed")


def _excluded(csrf: CSRFConfig) -> list[str]:
    if csrf.exclude is None:
        return []
    return [csrf.exclude] if isinstance(csrf.exclude, str) else list(csrf.exclude)


def unusable_input_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            _check_path_parameters(scope.get("path_params") or {})
            csrf = scope["litestar_app"].csrf_config
            if csrf is not None:
                await _reject_non_ascii_csrf_token(Request(scope, receive), csrf)
        await app(scope, receive, send)

    return middleware
