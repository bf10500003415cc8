"""Shop pages: home, product grid (full page or HTMX fragment), product detail."""

from __future__ import annotations

import re
from dataclasses import dataclass

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from markupsafe import Markup

from sweetdream.catalog.cache import CatalogCache
from sweetdream.catalog.filters import SORTS, parse_filter
from sweetdream.catalog.services import CatalogService
from sweetdream.platform.web import render, render_fragment

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class CategoryLink:
    slug: str
    name: str


async def _filter_choices(
    catalog: CatalogService, cache: CatalogCache, version: bytes | None = None
) -> tuple[list[CategoryLink], list[str]]:
    async def load() -> tuple[list[CategoryLink], list[str]]:
        categories = [CategoryLink(c.slug, c.name) for c in await catalog.categories()]
        return categories, await catalog.size_labels()

    return await cache.get_or_compute("filter-choices", load, version)


class ShopController(Controller):
    @get("/", name="home")
    async def home(
        self, request: Request, catalog: NamedDependency[CatalogService], catalog_cache: NamedDependency[CatalogCache]
    ) -> Template:
        categories, _ = await _filter_choices(catalog, catalog_cache)
        featured = await catalog_cache.get_or_compute("featured", catalog.featured)
        return render(request, "catalog/home.html", categories=categories, featured=featured)

    @get("/products", name="products")
    async def products(
        self, request: Request, catalog: NamedDependency[CatalogService], catalog_cache: NamedDependency[CatalogCache]
    ) -> Template:
        view, errors = parse_filter(request.query_params)
        version = await catalog_cache.version()
        categories, sizes = await _filter_choices(catalog, catalog_cache, version)
        if errors:
            return render(
                request,
                "catalog/products.html",
                status_code=400,
                view=view,
                errors=errors.errors,
                categories=categories,
                sizes=sizes,
                sorts=SORTS,
                results=Markup(""),
            )

        async def render_results() -> str:
            page = await catalog.list_products(view)
            category = next((c for c in categories if c.slug == view.category), None)
            return render_fragment(request, "catalog/_results.html", page=page, view=view, category=category)

        # Our own template's output, escaped when it was rendered.
        results = Markup(  # noqa: S704
            await catalog_cache.get_or_compute("results?" + view.cache_key(), render_results, version)
        )
        if getattr(request, "htmx", None) and request.htmx.target == "results":  # type: ignore[attr-defined]
            return Template(template_str=results)
        return render(
            request,
            "catalog/products.html",
            view=view,
            errors={},
            categories=categories,
            sizes=sizes,
            sorts=SORTS,
            results=results,
        )

    @get("/products/{slug:str}", name="product")
    async def product(
        self, request: Request, slug: FromPath[str], catalog: NamedDependency[CatalogService]
    ) -> Template:
        # A slug is lowercase ASCII words and hyphens; anything else (NUL bytes, paths) can't exist.
        product = await catalog.get_by_slug(slug) if SLUG.fullmatch(slug) else None
        if product is None:
            raise NotFoundException("We could not find that product. It may have been removed.")
        return render(request, "catalog/product.html", product=product)
