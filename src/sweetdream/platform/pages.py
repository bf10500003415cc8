"""Whole catalog pages rendered once and served to every visitor and shopper.

A catalog page is the same for everyone but for a few per-shopper parts: the header's account
links (their name, "Admin") and cart badge, the flash messages, and the CSRF token. So a page is
rendered once (per catalog version, see `catalog.cache`) as a `SharedPage`: with a marker where
each per-shopper part goes (templates call `per_shopper("cart/_badge.html")` instead of including
it) and a placeholder for the token. Each response fills in that shopper's parts (three tiny
templates) and token: a plain visitor's parts are filled in once, at render time, so their page
is a string replace.

Signed-in shoppers (and visitors with a cart) are served before Litestar's middleware too
(`cached_pages`): one Redis round trip reads the page's version, their session (renewing it, as
the session store does) and what the header needs of the user (role and session epoch, every
request, with their cart count), kept in Redis and dropped after every change
(accounts/shopper_cache.py); one query reads it when it is not there. Anything else (a flash
message to show, a session to end, a page not cached at this version) goes to Litestar, which
renders what is missing: the page is the same either way.

A signed-in shopper's own pages (the cart, the checkout page, their order's page) are answered
there too (`ShopperPage`): one Redis round trip reads (and renews) the session, one asyncpg
statement reads the user with what the page shows (the cart's lines at the current prices and
stock, or the order), and the page's template is rendered as its Litestar handler renders it.
Anything else (a flash message, an ended session, another shopper's order, an empty checkout, a
query string, an HTMX request) goes to Litestar.

Pages vary with the `HX-Request` header (an HTMX request gets a fragment or the bare layout), so
their responses say so in `Vary`: a browser's Back button must never show a cached fragment as a
page.

Pages, stylesheets and scripts go out gzip-compressed to a client that accepts it: Litestar's
compression middleware (`compression_config`) wraps the whole app, cached pages included.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from jinja2 import pass_context
from jinja2.runtime import Context
from litestar import Litestar, Request, Response
from litestar.config.compression import CompressionConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import MediaType
from litestar.middleware.csrf import generate_csrf_token
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils import normalize_path
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState
from markupsafe import Markup, escape
from redis.exceptions import RedisError

from sweetdream.platform import i18n

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
# Where a per-shopper part goes in a shared page: `<!--slot-<random>:<template name>-->`.
_SLOT = "slot-" + secrets.token_hex(16) + ":"
_SLOTS = re.compile("<!--" + _SLOT + "([^>]*?)-->")
CACHE_HEADER = "x-cache"  # "hit" or "miss": whether a page came from the page cache

log = logging.getLogger("sweetdream.pages")


@dataclass(frozen=True)
class SharedPage:
    """A page as everyone sees it: `pieces` alternate text and the template name of a per-shopper
    part (text, part, text, ..., text); `visitor` is it filled in for a plain visitor."""

    pieces: tuple[str, ...]
    visitor: str
    events: tuple[Any, ...] = ()  # what serving the page records (analytics: a view, a search)

    @property
    def parts(self) -> tuple[str, ...]:
        return self.pieces[1::2]

    def fill(self, parts: Mapping[str, str]) -> str:
        pieces = list(self.pieces)
        pieces[1::2] = [parts[name] for name in self.parts]
        return "".join(pieces)


@pass_context
def per_shopper(context: Context, name: str) -> Markup:
    """In a template: the per-shopper part `name` (a template), or its marker in a shared page."""
    if context.get("shared_page"):
        return Markup("<!--" + _SLOT + name + "-->")  # noqa: S704 (our own marker, no input in it)
    return Markup(context.environment.get_template(name).render(context.get_all()))  # noqa: S704


# A part the same for everyone, by its template (weakly: a changed file in development is a new
# template, and a test run makes many apps), language and the names of the values it shows: its
# text split at those values' markers (`once_per_language`).
_RENDERED_ONCE: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], tuple[str, ...]]] = weakref.WeakKeyDictionary()
_SHOWN_MARK = "shown-" + secrets.token_hex(16)
_SHOWN = re.compile(f"<!--{_SHOWN_MARK}:(\\w+)-->")  # a value's name: any keyword argument's


@pass_context
def once_per_language(context: Context, partial: str, /, **shown: Any) -> Markup:
    """In a template: the template `partial` rendered once per language and served to everyone, for
    the fixed parts of a page (the checkout's delivery form). It is rendered with no variables but
    `shown`, each a marker that this request's value (escaped) replaces: so it cannot show anyone's
    data but what is given, and what is given must only be shown (a test or a filter in the partial
    would see the marker, not the value)."""
    template = context.environment.get_template(partial)
    by_key = _RENDERED_ONCE.setdefault(template, {})
    key = (i18n.current_language.get(), *shown)
    pieces = by_key.get(key)
    if pieces is None:
        markers = {value: Markup(f"<!--{_SHOWN_MARK}:{value}-->") for value in shown}  # noqa: S704 (our marker)
        pieces = by_key[key] = tuple(_SHOWN.split(template.render(markers)))
    filled = list(pieces)
    filled[1::2] = [escape(shown[value]) for value in pieces[1::2]]
    return Markup("".join(filled))  # noqa: S704 (the template's text, and the values escaped)


def render_parts(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    """This request's per-shopper parts, with the token placeholder (`with_token` fills it)."""
    engine = request.app.template_engine
    assert engine is not None
    context = {"request": request, "csrf_token": _token, "csrf_input": _TOKEN_INPUT}
    return {name: engine.get_template(name).render(context) for name in set(names)}


# Per-shopper parts already rendered, by what they show (`shopper_parts`); cleared when this full.
PARTS_MEMO_SIZE = 4096


def shopper_parts(
    request: Request, names: tuple[str, ...], memo: dict[tuple[Any, ...], dict[str, str]]
) -> dict[str, str]:
    """`render_parts` for a request answered before Litestar (no session in its scope: no flash to
    show), from `memo` when the same parts were rendered before: they show only the language, the
    shopper's name and role (the header's links) and their cart count (the badge)."""
    user = request.state.get("user")
    key: tuple[Any, ...] = (
        i18n.current_language.get(),
        names,
        (user.name, user.is_admin) if user is not None else None,
        request.state.get("cart_count"),
    )
    engine = request.app.template_engine
    assert engine is not None
    env = engine.engine
    if env.auto_reload:  # development: the same Template objects while their files are unchanged
        key += tuple(env.get_template(name) for name in names)
    parts = memo.get(key)
    if parts is None:
        parts = render_parts(request, names)
        if len(memo) >= PARTS_MEMO_SIZE:
            memo.clear()
        memo[key] = parts
    return parts


def as_plain_visitor(request: Request) -> Request:
    """The same request as a visitor with no account and an empty session sees it."""
    state = {**request.scope.get("state", {}), "user": None, "cart_count": 0}
    return Request({**request.scope, "state": state, "session": None})


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


def _token() -> str:
    return _TOKEN


_TOKEN_INPUT = csrf_input(_TOKEN)  # a page's hidden field with the placeholder: `with_token` fills it in


def with_token(page: str, token: str) -> str:
    """A page from `render_shared` with this visitor's CSRF token in it."""
    return page.replace(_TOKEN, html.escape(token))


def render_shared(request: Request, name: str, **context: Any) -> SharedPage:
    """A page for everyone: markers for the per-shopper parts, a placeholder for the CSRF token."""
    engine = request.app.template_engine
    assert engine is not None
    context.setdefault("layout", layout_for(request))
    body = engine.get_template(name).render(
        request=request,
        csrf_token=_token,
        csrf_input=_TOKEN_INPUT,
        shared_page=True,
        **context,
    )
    pieces = tuple(_SLOTS.split(body))
    page = SharedPage(pieces, visitor="")
    visitor = page.fill(render_parts(as_plain_visitor(request), page.parts))
    return SharedPage(pieces, visitor)


def for_request(request: Request, page: SharedPage, hit: bool, status_code: int = 200) -> Response[str]:
    """The page from `render_shared` with this shopper's parts and CSRF token in it."""
    token = value_or_default(ScopeState.from_scope(request.scope).csrf_token, "")
    body = page.visitor if is_plain_visitor(request) else page.fill(render_parts(request, page.parts))
    return html_response(with_token(body, token), status_code, {CACHE_HEADER: "hit" if hit else "miss"})


def html_response(body: str, status_code: int = 200, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(body, media_type=MediaType.HTML, status_code=status_code, headers={**VARY, **(headers or {})})


def compression_config() -> CompressionConfig:
    return CompressionConfig(
        backend="gzip", minimum_size=COMPRESS_FROM_BYTES, gzip_compress_level=GZIP_LEVEL, exclude=NOT_COMPRESSED
    )


def page_key(layout: str, url: str) -> str:
    """Where a page is cached: by language, layout and canonical URL (the one place that says so).
    The request's language is set before this runs (platform/i18n.py's middleware), so an English
    visitor never gets a Vietnamese page."""
    return f"page:{i18n.current_language.get()}:{layout}:{url}"


@dataclass(frozen=True)
class PageAddress:
    """A cacheable page a request asks for: its cache key, and the product it shows (None for a
    listing page), whose version tells whether the cached page is current."""

    key: str
    product_slug: str | None


class PageCache(Protocol):
    """What the page middleware needs of the catalog cache (`catalog.cache.CatalogCache`)."""

    async def version(self, product_slug: str | None = None) -> bytes: ...

    async def version_and_value(
        self, product_slug: str | None, key: str, renew_seconds: int, per_user: Sequence[str] = ()
    ) -> tuple[bytes, bytes | None, list[bytes | None]]: ...

    def peek(self, key: str, version: bytes) -> Any: ...


# (connection, path) -> the page's address, or None for a page that is not cached this way.
PageAddressOf = Callable[[ASGIConnection, str], PageAddress | None]
# (app, session, found, version) -> the request state the per-shopper parts read (`user`,
# `cart_count`), or None when Litestar must answer (an account removed, a session ended by a
# password change). `found`: the values the page's Redis call read at each of `cached_pages`'s
# `per_user_keys` followed by the session's user id (what is kept of the shopper); `version`: the
# page's version read in that call.
StateOf = Callable[[Litestar, dict[str, Any], list[bytes | None], bytes], Awaitable[dict[str, Any] | None]]
# (scope, page) -> None: called for each page served here (the catalog notes the page's events).
OnServed = Callable[[Scope, SharedPage], None]


# A shopper's own page is its blocks rendered into the full layout rendered once (`ShopperRequest`).
_MARK = "mark-" + secrets.token_hex(16)
_TITLE_MARK, _CONTENT_MARK, _BLOCKS_SPLIT = (f"<!--{_MARK}-{n}-->" for n in range(3))
_NEXT_MARK = f"/{_MARK}"  # the layout's request path: the language switch's way back (nothing to escape)
_CHROME = (
    f'{{% extends "{FULL_LAYOUT}" %}}{{% block title %}}{_TITLE_MARK}{{% endblock %}}'
    f"{{% block content %}}{_CONTENT_MARK}{{% endblock %}}"
)
_BLOCKS_ONLY = (
    f"{{% block title %}}{{{{ site_name }}}}{{% endblock %}}{_BLOCKS_SPLIT}{{% block content %}}{{% endblock %}}"
)


# What the layout is made of, but the per-shopper parts (rendered for each request anyway).
_CHROME_TEMPLATES = (FULL_LAYOUT, "components/_header.html", "components/_language.html")


# Compiled once per template environment (weakly: a test run makes many apps).
_COMPILED: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def _compiled(env: Any) -> tuple[Any, Any]:
    """The chrome's template, and a layout that renders a page's title and content blocks alone."""
    found = _COMPILED.get(env)
    if found is None:
        found = _COMPILED[env] = (env.from_string(_CHROME), env.from_string(_BLOCKS_ONLY))
    return found


def _chrome_template(env: Any) -> Any:
    return _compiled(env)[0]


def _blocks_only(env: Any) -> Any:
    return _compiled(env)[1]


@dataclass
class ShopperRequest:
    """What a signed-in shopper's own page answered before Litestar gets (see `ShopperPage`)."""

    scope: Scope
    litestar: Litestar
    session: dict[str, Any]
    chromes: dict[tuple[Any, ...], SharedPage]  # the layout around these pages, by language (`_chrome`)
    parts_memo: dict[tuple[Any, ...], dict[str, str]]  # see `shopper_parts`

    def admit(self, state: dict[str, Any] | None) -> bool:
        """Take the shopper's request state (`user`, `cart_count`, `saved_language`: see
        `accounts.web.shopper_from_row`); False when Litestar must answer instead: no state (an
        ended session), or a saved language that is not this request's (Litestar applies it)."""
        if state is None:
            return False
        saved = state.pop("saved_language", None)
        if saved and saved != i18n.current_language.get() and i18n.cookie_choice(self.scope) is None:
            return False
        self.scope.setdefault("state", {}).update(state)
        return True

    def render(self, name: str, **context: Any) -> str:
        """The template rendered as `platform.web.render` renders it for this (non-HTMX) request,
        with the CSRF token's placeholder (the middleware puts the shopper's token in).

        Only the page's own blocks (title, content) are rendered here: the layout around them (the
        head, header and footer) is rendered once per language with markers (`_chrome`), and this
        shopper's parts (header links, cart badge, flash) are filled in as on a cached page."""
        litestar = self.litestar
        scope: Any = {**self.scope, "app": litestar, "litestar_app": litestar, "session": None}
        request: Request[Any, Any, Any] = Request(scope)
        engine = litestar.template_engine
        assert engine is not None
        env = engine.engine
        blocks = env.get_template(name).render(
            request=request, csrf_token=_token, csrf_input=_TOKEN_INPUT, layout=_blocks_only(env), **context
        )
        title, content = blocks.split(_BLOCKS_SPLIT, 1)
        chrome = self._chrome(request, env)
        page = chrome.fill(shopper_parts(request, chrome.parts, self.parts_memo))
        path = html.escape(self.scope["path"])  # the language switch's way back (no query: see `cached_pages`)
        return page.replace(_TITLE_MARK, title, 1).replace(_NEXT_MARK, path, 1).replace(_CONTENT_MARK, content, 1)

    def _chrome(self, request: Request[Any, Any, Any], env: Any) -> SharedPage:
        """The full layout in this language, with markers for the title, the content, the language
        switch's way back and each per-shopper part: rendered once per language (and, where
        templates reload, again when the layout's own templates change)."""
        key: tuple[Any, ...] = (i18n.current_language.get(),)
        if env.auto_reload:  # development: the same Template objects while their files are unchanged
            key += tuple(env.get_template(name) for name in _CHROME_TEMPLATES)
        chrome = self.chromes.get(key)
        if chrome is None:
            # Its own state: Litestar keeps a request's parsed URL there, and this one is a marker.
            scope: Any = {**request.scope, "path": _NEXT_MARK, "query_string": b"", "state": {}}
            marked: Request[Any, Any, Any] = Request(scope)
            body = _chrome_template(env).render(
                request=marked, csrf_token=_token, csrf_input=_TOKEN_INPUT, shared_page=True
            )
            chrome = self.chromes[key] = SharedPage(tuple(_SLOTS.split(body)), visitor="")
        return chrome

    def database(self) -> Any:
        """The app's database engine (an `AsyncEngine`)."""
        return self.litestar.state.sqlalchemy_config.get_engine()


# A signed-in shopper's own page answered before Litestar: its body (from `ShopperRequest.render`),
# or None when Litestar must answer.
ShopperPage = Callable[[ShopperRequest], Awaitable[str | None]]
# path -> the page that answers it before Litestar, or None (each domain's web module has one).
ShopperPageOf = Callable[[str], ShopperPage | None]


def cached_pages(
    app: ASGIApp,
    litestar: Litestar,
    cache: PageCache,
    address_of: PageAddressOf,
    state_of: StateOf,
    on_served: OnServed,
    shopper_pages: Sequence[ShopperPageOf] = (),
    per_user_keys: Sequence[str] = (),
) -> ASGIApp:
    """Serve a cached catalog page without entering Litestar's middleware and routing.

    Only a GET without HTMX headers for a page `address_of` knows. A visitor with no session
    cookie is a plain visitor by construction: their page needs one Redis call (the version).
    With a session cookie, the same call also reads (and renews) the session and what is kept of
    its shopper at `per_user_keys` (accounts/shopper_cache.py: the user's name, role, session epoch
    and cart count), which `state_of` reads from the database when it is missing or stale. The
    page goes out with their parts and CSRF token in it and, as Litestar's middleware would, a new
    CSRF token in a cookie when they have none and their session cookie renewed. Anything else (a
    miss, a flash message, an ended session, an error) goes to Litestar, which renders and caches
    the page: what a shopper sees is the same either way, only faster.

    `shopper_pages` answer a signed-in shopper's own pages (GET without a query string) the same
    way: the session read and renewed in one Redis call, then the page (`ShopperPage`).
    """
    csrf = litestar.csrf_config
    assert csrf is not None
    sessions = litestar.state.session_config
    session_store = litestar.stores.get("sessions")
    store_prefix = f"{session_store.namespace}:"  # type: ignore[attr-defined]
    csrf_cookie_header = Cookie(
        key=csrf.cookie_name,
        value=_TOKEN,
        path=csrf.cookie_path,
        secure=csrf.cookie_secure,
        httponly=csrf.cookie_httponly,
        samesite=csrf.cookie_samesite,
        domain=csrf.cookie_domain,
    ).to_header(header="")
    session_cookie_header = Cookie(
        key=sessions.key,
        value=_TOKEN,
        path=sessions.path,
        max_age=sessions.max_age,
        secure=sessions.secure,
        httponly=sessions.httponly,
        samesite=sessions.samesite,
        domain=sessions.domain,
    ).to_header(header="")
    vary = VARY["Vary"].encode()
    chromes: dict[tuple[Any, ...], SharedPage] = {}  # the layout around a shopper's own pages, by language
    parts_memo: dict[tuple[Any, ...], dict[str, str]] = {}  # per-shopper parts rendered (`shopper_parts`)

    async def shopper_page(scope: Scope, address: PageAddress, session_id: str) -> tuple[SharedPage, str] | None:
        """The page and its body filled in for the session's owner, or None when Litestar must answer."""
        version, raw, found = await cache.version_and_value(
            address.product_slug, store_prefix + session_id, sessions.max_age, per_user_keys
        )
        page: SharedPage | None = cache.peek(address.key, version)
        if page is None or raw is None:
            return None
        session = msgspec.json.decode(raw)
        if not isinstance(session, dict) or session.get("flash"):
            return None  # a message to show once: Litestar pops it from the session
        state = await state_of(litestar, session, found, version)
        if state is None:
            return None
        saved = state.pop("saved_language", None)
        if saved and saved != i18n.current_language.get() and i18n.cookie_choice(scope) is None:
            return None  # the shopper's saved language, not this browser's: Litestar applies it
        scope.setdefault("state", {}).update(state)
        request: Request[Any, Any, Any] = Request({**scope, "app": litestar, "litestar_app": litestar, "session": None})  # type: ignore[arg-type]
        return page, page.fill(shopper_parts(request, page.parts, parts_memo))

    def shopper_page_for(scope: Scope) -> ShopperPage | None:
        if not shopper_pages or scope.get("query_string"):
            return None
        path = scope["path"]
        return next((page for page_of in shopper_pages if (page := page_of(path)) is not None), None)

    async def own_page(scope: Scope, page: ShopperPage, session_id: str) -> str | None:
        """The shopper's own page, or None when Litestar must answer."""
        raw = await session_store.get(session_id, renew_for=sessions.max_age)  # as the session middleware reads it
        if raw is None:
            return None
        session = msgspec.json.decode(raw)
        if not isinstance(session, dict) or session.get("flash") or not session.get("user_id"):
            return None  # a message to show once, or a visitor: Litestar answers
        scope["path"] = normalize_path(scope["path"])  # "/cart/" is "/cart", as Litestar's router makes it
        return await page(ShopperRequest(scope, litestar, session, chromes, parts_memo))

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "GET"
            or any(k == b"hx-request" for k, _ in scope["headers"])
        ):
            await app(scope, receive, send)
            return
        connection: ASGIConnection = ASGIConnection(scope)
        served: tuple[SharedPage, str] | None = None
        own: str | None = None
        try:
            address = address_of(connection, scope["path"])
            shopper = shopper_page_for(scope) if address is None else None
        except Exception:  # a bug in this path: Litestar answers instead, and the log says why
            log.warning("page cache: Litestar answers %s after an error", scope["path"], exc_info=True)
            address = shopper = None
        if address is None and shopper is None:
            await app(scope, receive, send)
            return
        try:
            cookies = connection.cookies
            session_id = cookies.get(sessions.key)
            signed = bool(session_id) and session_id != "null"
            if address is None:
                own = await own_page(scope, shopper, session_id) if signed else None  # type: ignore[arg-type]
            elif not signed:
                page = cache.peek(address.key, await cache.version(address.product_slug))
                served = (page, page.visitor) if page is not None else None
            else:
                served = await shopper_page(scope, address, session_id)  # type: ignore[arg-type]
        except (RedisError, OSError):  # an outage: Litestar answers it (the "right back" page) and says so
            served = own = None
        except Exception:  # a bug in this path: Litestar answers instead, and the log says why
            log.warning("page cache: Litestar answers %s after an error", scope["path"], exc_info=True)
            served = own = None
        if own is not None:
            await respond(send, own, cookies, session_id, [])
            return
        if served is None:
            await app(scope, receive, send)
            return
        page, body = served
        on_served(scope, page)
        await respond(send, body, cookies, session_id, [(CACHE_HEADER.encode(), b"hit")])

    async def respond(
        send: Send, body: str, cookies: Mapping[str, str], session_id: str | None, extra: list[tuple[bytes, bytes]]
    ) -> None:
        """The page with the shopper's CSRF token in it, and the cookies Litestar's middleware would set."""
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"vary", vary), *extra]
        token = cookies.get(csrf.cookie_name)
        if not token:
            token = generate_csrf_token(csrf.secret)
            headers.append((b"set-cookie", csrf_cookie_header.replace(_TOKEN, token).encode("latin-1")))
        if session_id and session_id != "null":
            # Renewed like every response Litestar sends: the cookie lives 30 days from the last visit.
            headers.append((b"set-cookie", session_cookie_header.replace(_TOKEN, session_id).encode("latin-1")))
        encoded = with_token(body, token).encode()
        headers.append((b"content-length", str(len(encoded)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": encoded, "more_body": False})

    return middleware
