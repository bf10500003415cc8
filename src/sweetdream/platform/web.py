"""Helpers shared by the HTML controllers."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState

from sweetdream.platform.inputs import reject_control_characters
from sweetdream.platform.pages import VARY, csrf_input, layout_for


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Template:
    """Render a page; an HTMX request that swaps part of a page gets the bare layout (`layout_for`)."""
    context.setdefault("layout", layout_for(request))
    return Template(template_name=name, context=context, status_code=status_code, headers=VARY)


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
    """The shopper's address: the load balancer's X-Forwarded-For only when we are told to trust it."""
    if request.app.state.settings.trust_proxy:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()[:64]
    client = request.client
    return client.host if client else "unknown"


async def form_data(request: Request) -> dict[str, str]:
    """A urlencoded or multipart form's text fields (files are ignored). Every form handler reads
    its form here, so a field with a control character is refused here, with a 400, for all."""
    form = await request.form()
    reject_control_characters(form.multi_items())  # every value, a repeated field's too
    return {key: value for key, value in form.items() if isinstance(value, str)}
