"""Helpers shared by the HTML controllers."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, cast

from jinja2 import Environment
from litestar import Request
from litestar.exceptions import HTTPException
from litestar.response import Template
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState

from sweetdream.platform.inputs import reject_control_characters
from sweetdream.platform.pages import VARY, csrf_input, layout_for


class BadRequest(HTTPException):
    status_code = 400


class Conflict(HTTPException):
    """The request is understood but the state says no (an illegal move, a changed price): 409."""

    status_code = 409


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Template:
    """Render a page; an HTMX request that swaps part of a page gets the bare layout (`layout_for`)."""
    context.setdefault("layout", layout_for(request))
    return Template(template_name=name, context=context, status_code=status_code, headers=VARY)


def template_macro(env: Environment, template: str, name: str) -> Callable[..., Any]:
    """A macro of `template` (`components/_forms.html`'s `field`) for the environment's globals, so
    templates call it without `{% from ... import %}`: an import costs every render a comparison of
    the two templates' globals, a tenth of the checkout page's render (issue #13). Where templates
    reload (development) it is looked up on each call, so an edit to the macro shows at once."""
    if env.auto_reload:
        return lambda *args, **kwargs: getattr(env.get_template(template).module, name)(*args, **kwargs)
    return cast("Callable[..., Any]", getattr(env.get_template(template).module, name))


def render_fragment(request: Request, name: str, **context: Any) -> str:
    """Render a template to a string (for caching fragments, and for server-sent events)."""
    engine = request.app.template_engine
    assert engine is not None
    token = value_or_default(ScopeState.from_scope(request.scope).csrf_token, "")
    return engine.get_template(name).render(request=request, csrf_input=csrf_input(token) if token else "", **context)


def flash(request: Request, text: str, kind: str = "success") -> None:
    """A one-time message shown at the top of the next page."""
    messages = list(request.session.get("flash", [])) if request.session else []
    messages.append({"kind": kind, "text": text})
    request.session["flash"] = messages[-5:]


def client_ip(request: Request) -> str:
    """The shopper's address, for rate limits: see `client_address`."""
    peer = request.client.host if request.client else None
    forwarded = request.headers.getall("x-forwarded-for", [])
    return client_address(forwarded, peer, request.app.state.settings.trust_proxy_hops)


def client_address(forwarded_for: list[str], peer: str | None, trusted_hops: int) -> str:
    """The address the outermost of our `trusted_hops` proxies saw the request come from.

    Each proxy appends the address it saw to X-Forwarded-For, after whatever the client sent, so
    the entry `trusted_hops` places from the right was written by our outermost proxy; anything
    left of it is the client's own claim and never believed. With no trusted proxy, too few
    entries (the request did not come through them) or no address there, it is the peer.
    """
    fallback = peer or "unknown"
    if trusted_hops <= 0:
        return fallback
    entries = [entry.strip() for line in forwarded_for for entry in line.split(",")]
    if len(entries) < trusted_hops:
        return fallback
    try:
        return str(ipaddress.ip_address(entries[-trusted_hops]))
    except ValueError:
        return fallback


async def form_data(request: Request) -> dict[str, str]:
    """A urlencoded or multipart form's text fields (files are ignored). Every form handler reads
    its form here, so a field with a control character is refused here, with a 400, for all."""
    form = await request.form()
    reject_control_characters(form.multi_items())  # every value, a repeated field's too
    return {key: value for key, value in form.items() if isinstance(value, str)}


def safe_next(raw: str | None, default: str = "/") -> str:
    """Only a same-site path: '/cart' yes; '//evil.com', 'https://evil.com', '/\\evil.com' no."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw or len(raw) > 500:
        return default
    if any(ord(ch) < 32 for ch in raw):
        return default
    return raw
