"""Whole catalog pages rendered once and served to every visitor who is just browsing.

A visitor who is not signed in and has nothing in their session (no cart, no flash message) sees
exactly what the next such visitor sees, except for their CSRF token: the header says "Sign in",
the cart badge is empty. So such a page is rendered once (per catalog version, see
`catalog.cache`) with a placeholder where the token goes, and each response substitutes the
visitor's own token: a string replace instead of a template render.

Pages vary with the `HX-Request` header (an HTMX request gets a fragment or the bare layout), so
their responses say so in `Vary`: a browser's Back button must never show a cached fragment as a
page.
"""

from __future__ import annotations

import html
import secrets
from typing import Any

from litestar import Request, Response
from litestar.enums import MediaType
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState

VARY = {"Vary": "HX-Request, HX-Target"}
# Random per process: no product name or query a shopper types can contain it by chance.
_TOKEN = "csrf-" + secrets.token_hex(16)


def layout_for(request: Request) -> str:
    """The bare layout for an HTMX request that swaps part of a page; the full one otherwise.

    A boosted link and htmx's history restore (when its history cache misses) both want a page.
    """
    htmx = getattr(request, "htmx", None)
    partial = bool(htmx) and not (htmx.boosted or htmx.history_restore_request)  # type: ignore[union-attr]
    return "layouts/bare.html" if partial else "layouts/full.html"


def is_plain_visitor(request: Request) -> bool:
    """Not signed in, and an empty session: the page shows nothing of theirs but the CSRF token."""
    return request.state.get("user") is None and not request.scope.get("session")


def render_for_any_visitor(request: Request, name: str, **context: Any) -> str:
    """A page for any plain visitor, with a placeholder for the CSRF token (see `for_visitor`)."""
    engine = request.app.template_engine
    assert engine is not None
    context.setdefault("layout", layout_for(request))
    return engine.get_template(name).render(
        request=request,
        csrf_token=lambda: _TOKEN,
        csrf_input=f'<input type="hidden" name="_csrf_token" value="{_TOKEN}" />',
        **context,
    )


def for_visitor(request: Request, page: str, status_code: int = 200) -> Response[str]:
    """The page from `render_for_any_visitor` with this visitor's CSRF token in it."""
    token = value_or_default(ScopeState.from_scope(request.scope).csrf_token, "")
    return html_response(page.replace(_TOKEN, html.escape(token)), status_code)


def html_response(body: str, status_code: int = 200, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(body, media_type=MediaType.HTML, status_code=status_code, headers={**VARY, **(headers or {})})
