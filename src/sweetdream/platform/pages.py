"""Whole catalog pages rendered once and served to every visitor who is just browsing.

A visitor who is not signed in and has nothing in their session (no cart, no flash message) sees
exactly what the next such visitor sees, except for their CSRF token: the header says "Sign in",
the cart badge is empty. So such a page is rendered once (per catalog version, see
`catalog.cache`) with a placeholder where the token goes, and each response substitutes the
visitor's own token: a string replace instead of a template render.

Pages vary with the `HX-Request` header (an HTMX request gets a fragment or the bare layout), so
their responses say so in `Vary`: a browser's Back button must never show a cached fragment as a
page.

Pages, stylesheets and scripts go out gzip-compressed to a client that accepts it: Litestar's
compression middleware (`compression_config`) wraps the whole app, cached pages included.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar, Request, Response
from litestar.config.compression import CompressionConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import MediaType
from litestar.middleware.csrf import generate_csrf_token
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState

from sweetdream.platform.i18n import current_language

# Accept-Language: a page's language follows it (platform/i18n.py), so a shared cache must too.
VARY = {"Vary": "HX-Request, HX-Target, Accept-Language"}
# Smaller bodies gain little; level 6 is most of level 9's saving at a fraction of its time.
COMPRESS_FROM_BYTES = 1024
GZIP_LEVEL = 6
# The live order stream: each event must leave as it is written, not wait in a compressor.
NOT_COMPRESSED = [r"^/orders/[^/]+/events$"]
FULL_LAYOUT = "layouts/full.html"
# Random per process: no product name or query a shopper types can contain it by chance.
_TOKEN = "csrf-" + secrets.token_hex(16)


def layout_for(request: Request) -> str:
    """The bare layout for an HTMX request that swaps part of a page; the full one otherwise.

    A boosted link and htmx's history restore (when its history cache misses) both want a page.
    """
    htmx = getattr(request, "htmx", None)
    partial = bool(htmx) and not (htmx.boosted or htmx.history_restore_request)  # type: ignore[union-attr]
    return "layouts/bare.html" if partial else FULL_LAYOUT


def is_plain_visitor(request: Request) -> bool:
    """Not signed in, and an empty session: the page shows nothing of theirs but the CSRF token."""
    return request.state.get("user") is None and not request.scope.get("session")


def csrf_input(token: str) -> str:
    """The hidden form field Litestar's templates call `csrf_input`."""
    return f'<input type="hidden" name="_csrf_token" value="{html.escape(token)}" />'


def with_token(page: str, token: str) -> str:
    """A page from `render_for_any_visitor` with this visitor's CSRF token in it."""
    return page.replace(_TOKEN, html.escape(token))


def render_for_any_visitor(request: Request, name: str, **context: Any) -> str:
    """A page for any plain visitor, with a placeholder for the CSRF token (see `for_visitor`)."""
    engine = request.app.template_engine
    assert engine is not None
    context.setdefault("layout", layout_for(request))
    return engine.get_template(name).render(
        request=request,
        csrf_token=lambda: _TOKEN,
        csrf_input=csrf_input(_TOKEN),
        **context,
    )


def for_visitor(request: Request, page: str, status_code: int = 200) -> Response[str]:
    """The page from `render_for_any_visitor` with this visitor's CSRF token in it."""
    token = value_or_default(ScopeState.from_scope(request.scope).csrf_token, "")
    return html_response(with_token(page, token), status_code)


def html_response(body: str, status_code: int = 200, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(body, media_type=MediaType.HTML, status_code=status_code, headers={**VARY, **(headers or {})})


def compression_config() -> CompressionConfig:
    return CompressionConfig(
        backend="gzip", minimum_size=COMPRESS_FROM_BYTES, gzip_compress_level=GZIP_LEVEL, exclude=NOT_COMPRESSED
    )


def page_key(layout: str, url: str) -> str:
    """Where a plain visitor's page is cached: by language, layout and canonical URL.

    i18n: the language is part of the key, so an English visitor never gets a Vietnamese page
    (the request's language is set before this runs: platform/i18n.py's middleware)."""
    return f"page:{current_language.get()}:{layout}:{url}"


PageLookup = Callable[[Litestar, ASGIConnection, str], Awaitable[str | None]]


def plain_visitor_pages(app: ASGIApp, litestar: Litestar, lookup: PageLookup) -> ASGIApp:
    """Serve a plain visitor's cached page without entering Litestar's middleware and routing.

    A GET with no session cookie and no HTMX header is a plain visitor by construction (no user, an
    empty session); if `lookup(app, connection, path)` has their page cached at the current catalog version,
    it goes out with their CSRF token in it and, as Litestar's CSRF middleware would, a new token in a
    cookie when they have none. Anything else (a miss, another page, an error) goes to Litestar, which
    renders and caches the page: what a visitor sees is the same either way, only faster.
    """
    csrf = litestar.csrf_config
    assert csrf is not None
    session_cookie = litestar.state.session_config.key
    cookie_header = Cookie(
        key=csrf.cookie_name,
        value=_TOKEN,
        path=csrf.cookie_path,
        secure=csrf.cookie_secure,
        httponly=csrf.cookie_httponly,
        samesite=csrf.cookie_samesite,
        domain=csrf.cookie_domain,
    ).to_header(header="")
    vary = VARY["Vary"].encode()

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "GET"
            or any(k == b"hx-request" for k, _ in scope["headers"])
        ):
            await app(scope, receive, send)
            return
        connection: ASGIConnection = ASGIConnection(scope)
        cookies = connection.cookies
        page = None
        if not cookies.get(session_cookie):
            try:
                page = await lookup(litestar, connection, scope["path"])
            except Exception:  # Litestar answers instead, with its error handling
                page = None
        if page is None:
            await app(scope, receive, send)
            return
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"vary", vary)]
        token = cookies.get(csrf.cookie_name)
        if not token:
            token = generate_csrf_token(csrf.secret)
            headers.append((b"set-cookie", cookie_header.replace(_TOKEN, token).encode("latin-1")))
        body = with_token(page, token).encode()
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return middleware
