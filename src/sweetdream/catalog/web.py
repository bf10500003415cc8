"""Shop pages: home, product grid (full page or HTMX fragment), product detail."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXTemplate
from litestar.response import Template
from litestar.types import Scope
from markupsafe import Markup

from sweetdream.analytics import recording
from sweetdream.analytics.models import EventName
from sweetdream.catalog.cache import CatalogCache
from sweetdream.catalog.filters import SORTS, ProductFilter, parse_filter
from sweetdream.catalog.services import CatalogService
from sweetdream.platform.i18n import current_language, gettext_noop
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.pages import (
    FULL_LAYOUT,
    VARY,
    PageAddress,
    SharedPage,
    for_request,
    html_response,
    layout_for,
    page_key,
    render_shared,
)
from sweetdream.platform.web import render, render_fragment

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# The shopper events a page stands for (analytics): (name, properties), noted whenever it is served.
PageEvents = tuple[tuple[EventName, dict[str, Any]], ...]
EVENTS = "page_events"


def _note(scope: Any, events: PageEvents) -> None:
    for name, properties in events:
        recording.note_event(scope, name, properties)


@dataclass(frozen=True)
class CategoryLink:
    slug: str
    name: str


async def _filter_choices(
    catalog: CatalogService, cache: CatalogCache, version: bytes | None = None
) -> tuple[list[CategoryLink], list[str]]:
    async def load() -> tuple[list[CategoryLink], list[str]]:
        categories, sizes = await catalog.filter_choices()
        return [CategoryLink(slug, name) for slug, name in categories], sizes

    return await cache.get_or_compute("filter-choices", load, version)


class ShopController(Controller):
    """Catalog pages. The whole page comes from the catalog cache, rendered once for everyone with
    each shopper's own parts filled in (see `platform.pages`). A cached part is reused only at the
    version it was rendered at (the listings' for the grid and home, the product's for its page),
    so no one sees a stale price or stock. The cache comes from `state` rather than as a second
    dependency: Litestar resolves two independent dependencies in a task group, a cost on every request."""

    @get("/", name="home")
    async def home(self, request: Request, state: State, catalog: NamedDependency[CatalogService]) -> Response[str]:
        catalog_cache: CatalogCache = state.catalog_cache
        version = await catalog_cache.version()

        async def context() -> dict[str, Any]:
            categories, _sizes = await _filter_choices(catalog, catalog_cache, version)
            featured = await catalog_cache.get_or_compute("featured", catalog.featured, version)
            return {"categories": categories, "featured": featured}

        return await _cached_page(request, catalog_cache, version, "catalog/home.html", context, "/")

    @get("/products", name="products")
    async def products(
        self, request: Request, state: State, catalog: NamedDependency[CatalogService]
    ) -> Response[str] | Template:
        catalog_cache: CatalogCache = state.catalog_cache
        view, errors = parse_filter(request.query_params)
        version = await catalog_cache.version()
        htmx = getattr(request, "htmx", None)
        grid_only = bool(htmx) and htmx.target == "results" and not htmx.history_restore_request  # type: ignore[union-attr]
        if errors:
            return await _bad_filter(request, catalog, catalog_cache, version, view, errors.errors, grid_only)

        async def results() -> tuple[str, int]:
            async def render_results() -> tuple[str, int]:
                synonyms = await catalog_cache.get_or_compute("synonyms", catalog.synonyms, version) if view.q else None
                page = await catalog.list_products(view, synonyms)
                categories, _sizes = await _filter_choices(catalog, catalog_cache, version)
                category = next((c for c in categories if c.slug == view.category), None)
                html = render_fragment(request, "catalog/_results.html", page=page, view=view, category=category)
                return html, page.total

            return await catalog_cache.get_or_compute(results_key(view), render_results, version)

        def searched(total: int) -> PageEvents:
            return ((EventName.PRODUCT_SEARCHED, recording.product_searched(view.q, total)),) if view.q else ()

        if grid_only:
            # The grid, and out of band an empty #price-errors: clears a message a bad price showed.
            # Never the price inputs themselves: the shopper may be typing in one as this lands.
            cleared = render_fragment(request, "catalog/_price_errors_cleared.html")
            grid, total = await results()
            _note(request.scope, searched(total))
            return html_response(grid + cleared)

        async def context() -> dict[str, Any]:
            categories, sizes = await _filter_choices(catalog, catalog_cache, version)
            html, total = await results()
            # Our own template's output, escaped when it was rendered.
            grid = Markup(html)  # noqa: S704
            return {
                EVENTS: searched(total),
                "view": view,
                "errors": {},
                "categories": categories,
                "sizes": sizes,
                "sorts": SORTS,
                "results": grid,
            }

        return await _cached_page(request, catalog_cache, version, "catalog/products.html", context, view.url())

    @get("/products/{slug:str}", name="product")
    async def product(
        self,
        request: Request,
        slug: FromPath[str],
        state: State,
        catalog: NamedDependency[CatalogService],
    ) -> Response[str]:
        catalog_cache: CatalogCache = state.catalog_cache
        # A slug is lowercase ASCII words and hyphens; anything else (NUL bytes, paths) can't exist.
        if not SLUG.fullmatch(slug):
            raise NotFoundException(_(NOT_FOUND))
        version = await catalog_cache.version(slug)  # this product's: another's checkout leaves it

        async def context() -> dict[str, Any]:
            product = await catalog.get_by_slug(slug)
            if product is None:
                raise NotFoundException(_(NOT_FOUND))
            viewed = recording.product_viewed(product.id, product.name, product.price, product.category.name)
            return {"product": product, EVENTS: ((EventName.PRODUCT_VIEWED, viewed),)}

        return await _cached_page(request, catalog_cache, version, "catalog/product.html", context, f"/products/{slug}")


NOT_FOUND = gettext_noop("We could not find that product. It may have been removed.")


def results_key(view: ProductFilter) -> str:
    """The rendered grid's cache key: its words are in the request's language (platform/i18n.py)."""
    return f"results:{current_language.get()}?{view.cache_key()}"


def plain_page_url(connection: ASGIConnection, path: str) -> str | None:
    """The canonical URL (the page cache key) of the catalog page a request asks for, if any."""
    if path == "/":
        return "/"
    if path == "/products":
        view, errors = parse_filter(connection.query_params)
        return None if errors else view.url()
    if path.startswith("/products/") and SLUG.fullmatch(path.removeprefix("/products/")):
        return path
    return None


def page_address(connection: ASGIConnection, path: str) -> PageAddress | None:
    """Where the whole catalog page a (non-HTMX) request asks for is cached, and which version it
    depends on: its product's for a product page, the listings' otherwise (for `cached_pages`)."""
    url = plain_page_url(connection, path)
    if url is None:
        return None
    slug = url.removeprefix("/products/") if url.startswith("/products/") else None
    return PageAddress(page_key(FULL_LAYOUT, url), slug)


def note_page_events(scope: Scope, page: SharedPage) -> None:
    """A page served from the cache records what it stands for (a view, a search), as rendering it did."""
    _note(scope, page.events)


async def _cached_page(
    request: Request,
    cache: CatalogCache,
    version: bytes,
    name: str,
    context: Callable[[], Awaitable[dict[str, Any]]],
    url: str,
) -> Response[str]:
    """The whole page, from the cache at this version when it is there, with this shopper's parts.
    `url` is the page's canonical URL: `page_address` finds the same entry before Litestar runs."""
    layout = layout_for(request)
    key = page_key(layout, url)

    async def compute() -> SharedPage:
        page_context = await context()
        events = page_context.pop(EVENTS, ())
        return replace(render_shared(request, name, layout=layout, **page_context), events=events)

    hit = cache.peek(key, version) is not None
    page = await cache.get_or_compute(key, compute, version)
    _note(request.scope, page.events)
    return for_request(request, page, hit)


async def _bad_filter(
    request: Request,
    catalog: CatalogService,
    cache: CatalogCache,
    version: bytes,
    view: ProductFilter,
    errors: dict[str, str],
    grid_only: bool,
) -> Response[str] | Template:
    """A 400 with the message beside the field: the whole page, or for HTMX the messages alone, into
    #price-errors (the inputs keep what is typed in them, the grid keeps the last good answer and the
    address bar keeps its URL)."""
    raw = {name: request.query_params.get(name, "") for name in errors}
    if grid_only:
        return HTMXTemplate(
            template_name="catalog/_price_errors.html",
            context={"errors": errors},
            status_code=400,
            re_target="#price-errors",
            re_swap="innerHTML",
            push_url=False,
            headers=VARY,
        )
    categories, sizes = await _filter_choices(catalog, cache, version)
    return render(
        request,
        "catalog/products.html",
        status_code=400,
        view=view,
        errors=errors,
        raw=raw,
        categories=categories,
        sizes=sizes,
        sorts=SORTS,
        results=Markup(""),
    )
