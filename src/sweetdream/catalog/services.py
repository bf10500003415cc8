"""Catalog rules: the only code that writes categories, products and variants."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import ColumnElement, Select, Text, and_, delete, exists, false, func, literal, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from sweetdream.catalog.cache import fresh_until
from sweetdream.catalog.filters import ProductFilter
from sweetdream.catalog.models import Category, Product, SearchSynonym, Variant
from sweetdream.catalog.stock import not_started_condition
from sweetdream.catalog.text import (
    exact_prefix_tsquery,
    exact_text,
    fold,
    has_diacritics,
    search_words,
    spans_covering,
    synonym_key,
)
from sweetdream.catalog.writes import catalog_changed


@dataclass(frozen=True)
class ProductCard:
    """One tile of the product grid: only what the grid shows."""

    slug: str
    name: str
    category_name: str
    image: str | None
    from_price: int
    to_price: int
    in_stock: bool  # something left to buy (a class: a seat in a session that has not started)
    next_start: datetime | None = None  # a class: its next session's start (the card shows it)
    started: bool = False  # a class whose every session has begun


@dataclass(frozen=True)
class ProductPage:
    cards: list[ProductCard]
    total: int
    page: int
    page_size: int
    # More matches than COUNT_CAP: `total` is the cap and the page says "10000+ products".
    more: bool = False

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


# A listing counts its matches up to here (a million products take a second to count; the first
# 10,001 take milliseconds): past it the page says "10000+" and offers the first COUNT_CAP matches.
COUNT_CAP = 10_000


def capped_count(stmt: Select) -> Select:
    """How many rows `stmt` gives, counted up to COUNT_CAP + 1 (more than the cap means "more")."""
    limited = stmt.with_only_columns(literal(1)).order_by(None).limit(COUNT_CAP + 1).subquery("matches")
    return select(func.count()).select_from(limited)


def search_text_for(name: str, description: str, category_name: str) -> str:
    return fold(f"{name} {category_name} {description}")


def search_exact_for(name: str, description: str, category_name: str) -> str:
    """The same words as search_text, lowercased but with their diacritics (for the exact ranking)."""
    return exact_text(f"{name} {category_name} {description}")


def search_tsquery(query: str) -> ColumnElement[str] | None:
    """The shopper's query as a folded prefix tsquery with synonyms expanded, or None if it has no words.

    'tra sua ngon' -> '(tra:* | (milk <-> tea)) & (sua:* | (milk <-> tea)) & (ngon:*)' when the
    synonym 'trà sữa' -> 'milk tea' exists: per word, the OR of the expansions of every term that
    covers it, which equals ((tra & sua) | milk tea) & ngon. The synonyms are looked up inside the
    listing query itself (an init plan over a small indexed table): a search costs no extra round
    trip, and the rendered results are cached per process at the catalog version, which the
    synonym commands bump.
    """
    words = search_words(query)
    if not words:
        return None
    parts = []
    for word, spans in zip(words, spans_covering(words), strict=True):
        expansions = (
            select(
                func.string_agg(
                    literal(" | (") + func.replace(SearchSynonym.expansion_key, " ", " <-> ") + literal(")"),
                    literal(""),
                )
            )
            .where(SearchSynonym.term_key.in_(spans))
            .scalar_subquery()
        )
        parts.append(literal(f"({word}:*") + func.coalesce(expansions, "") + literal(")"))
    return select(func.to_tsquery("simple", func.concat_ws(" & ", *parts))).scalar_subquery()


class CatalogService:
    """Reads the catalog. Given a session factory, it opens a session only when it first queries,
    so a page served whole from the catalog cache costs no database work at all."""

    def __init__(self, session: AsyncSession | Callable[[], AsyncSession], page_size: int = 24) -> None:
        self._session = session
        self.page_size = page_size

    @property
    def session(self) -> AsyncSession:
        if not isinstance(self._session, AsyncSession):
            self._session = self._session()
        return self._session

    async def categories(self) -> list[Category]:
        result = await self.session.scalars(select(Category).order_by(Category.position, Category.name))
        return list(result)

    async def size_labels(self) -> list[str]:
        result = await self.session.scalars(
            select(Variant.label).group_by(Variant.label).order_by(func.min(Variant.position), Variant.label)
        )
        return list(result)

    async def list_products(self, view: ProductFilter) -> ProductPage:
        """One query: the page of cards with the total count (window function)."""
        stmt = self._listing(view)
        rows = (await self.session.execute(stmt)).all()
        total = rows[0].total if rows else 0
        if not rows and view.page > 1:
            # Past the last page: count once so the view can say how many pages there are.
            total = await self.session.scalar(self._listing(view, count_only=True)) or 0
        cards = [_card(r) for r in rows]
        return ProductPage(cards, min(total, COUNT_CAP), view.page, self.page_size, more=total > COUNT_CAP)

    def _listing(self, view: ProductFilter, count_only: bool = False, featured_only: bool = False) -> Select:
        effective = func.coalesce(Variant.price_override, Product.price)
        on_sale = not_started_condition()
        prices = (
            select(
                func.min(effective).label("from_price"),
                func.max(effective).label("to_price"),
                func.coalesce(func.bool_or(and_(Variant.stock > 0, on_sale)), False).label("in_stock"),
                func.min(Variant.starts_at).filter(on_sale).label("next_start"),
                func.coalesce(func.bool_and(~on_sale), False).label("started"),
            )
            .where(Variant.product_id == Product.id)
            .lateral("prices")
        )
        conditions: list[ColumnElement[bool]] = [Product.is_active.is_(True)]
        if featured_only:
            conditions.append(Product.is_featured.is_(True))
        if view.category:
            conditions.append(Category.slug == view.category)
        if view.size:
            size_match = and_(Variant.product_id == Product.id, Variant.label == view.size)
            if view.in_stock:
                size_match = and_(size_match, Variant.stock > 0, on_sale)
            conditions.append(exists().where(size_match))
        elif view.in_stock:
            conditions.append(prices.c.in_stock.is_(True))
        if view.min_price is not None:
            conditions.append(prices.c.from_price >= view.min_price)
        if view.max_price is not None:
            conditions.append(prices.c.from_price <= view.max_price)
        tsquery = search_tsquery(view.q) if view.q else None
        if view.q:
            if tsquery is None:  # only punctuation: nothing can match
                conditions.append(false())
            else:
                conditions.append(Product.search_vector.op("@@")(tsquery))
        # The prices (a lateral per product) are computed for every matching product only when a
        # filter or the sort needs them; otherwise the page's products are chosen first (an index
        # can give them in order) and the prices computed for those 24 alone (`_page_of`).
        needs_prices = (view.in_stock and not view.size) or view.min_price is not None or view.max_price is not None
        needs_prices = needs_prices or view.sort in ("price_asc", "price_desc")
        base = select(Product)
        if view.category or needs_prices:  # otherwise the count and the page's ids need no category
            base = base.join(Category, Category.id == Product.category_id)
        if needs_prices:
            base = base.join(prices, true())
        base = base.where(*conditions)
        if count_only:
            return capped_count(base)
        newest = [Product.created_at.desc()]
        order = {
            "newest": newest,
            "price_asc": [prices.c.from_price.asc()],
            "price_desc": [prices.c.from_price.desc()],
            "name": [Product.name_sort_key.asc()],
            # Best match: the closest matches first for a query; with no query, the newest.
            "relevance": self._relevance(view.q, tsquery) if tsquery is not None else newest,
        }[view.sort]
        if not needs_prices:
            return self._page_of(base, order, prices, view, featured_only)
        return (
            base.with_only_columns(
                Product.slug,
                Product.name,
                Category.name.label("category_name"),
                card_image().label("image"),
                prices.c.from_price,
                prices.c.to_price,
                prices.c.in_stock,
                prices.c.next_start,
                prices.c.started,
                func.count().over().label("total"),
            )
            .order_by(*order, Product.id)
            .limit(self.page_size)
            .offset((view.page - 1) * self.page_size)
        )

    def _page_of(self, base: Select, order: list[Any], prices: Any, view: ProductFilter, featured_only: bool) -> Select:
        """The page's products in order (their ids, from `base`), then their cards: the prices are
        computed for the page alone. The total comes in the same statement (a count run once)."""
        page = (
            base.with_only_columns(
                Product.id.label("id"), func.row_number().over(order_by=[*order, Product.id]).label("position")
            )
            .order_by(*order, Product.id)
            .limit(self.page_size)
            .offset((view.page - 1) * self.page_size)
            .subquery("page")
        )
        # A featured list is short and takes its own LIMIT: no total needed.
        total = literal(0) if featured_only else capped_count(base).scalar_subquery()
        return (
            select(
                Product.slug,
                Product.name,
                Category.name.label("category_name"),
                card_image().label("image"),
                prices.c.from_price,
                prices.c.to_price,
                prices.c.in_stock,
                prices.c.next_start,
                prices.c.started,
                total.label("total"),
            )
            .select_from(page)
            .join(Product, Product.id == page.c.id)
            .join(Category, Category.id == Product.category_id)
            .join(prices, true())
            .order_by(page.c.position)
        )

    @staticmethod
    def _relevance(query: str, tsquery: ColumnElement[str]) -> list[ColumnElement[Any]]:
        """Closest matches first. A query typed with diacritics ('dâu') puts the products with those
        exact words ('dâu tây') before the ones that only match once folded ('đậu')."""
        order: list[ColumnElement[Any]] = []
        if has_diacritics(query):
            exact = func.to_tsquery("simple", exact_prefix_tsquery(query))
            order.append(func.ts_rank(Product.search_exact_vector, exact).desc())
        order.append(func.ts_rank(Product.search_vector, tsquery).desc())
        order.append(Product.name_sort_key.asc())
        return order

    async def get_by_slug(self, slug: str) -> Product | None:
        """The product with its category and sizes, in one query."""
        result = await self.session.execute(
            select(Product)
            .where(Product.slug == slug, Product.is_active.is_(True))
            .options(joinedload(Product.variants), joinedload(Product.category))
        )
        product = result.unique().scalar_one_or_none()
        if product is not None:  # its page changes by itself when a class session starts
            fresh_until(min((v.starts_at for v in product.variants if v.starts_at and not v.started()), default=None))
        return product

    async def featured(self, limit: int = 8) -> list[ProductCard]:
        rows = (await self.session.execute(self._listing(ProductFilter(), featured_only=True).limit(limit))).all()
        return [_card(r) for r in rows]

    async def get_variant(self, variant_id: UUID) -> Variant | None:
        return await self.session.get(Variant, variant_id)


def _card(row: Any) -> ProductCard:
    """A listing row as a card. A class's card changes by itself when its next session starts:
    the cached grid it is part of is fresh only until then (catalog/cache.py `fresh_until`)."""
    fresh_until(row.next_start)
    return ProductCard(
        row.slug,
        row.name,
        row.category_name,
        row.image,
        row.from_price,
        row.to_price,
        row.in_stock,
        row.next_start,
        row.started,
    )


def card_image() -> ColumnElement[str]:
    """A card's picture: the main image's thumbnail once the worker has made it, else the image."""
    main = Product.images.op("->>", return_type=Text)(0)
    return func.coalesce(Product.thumbnails.op("->>", return_type=Text)(main), main)


async def record_thumbnail(db: AsyncSession, redis: Redis | None, product_id: UUID, image: str, thumbnail: str) -> bool:
    """The worker made `thumbnail` (a URL) of the product's `image`: cards show it from the next
    request (the product's page and the listings go stale when this commits). False if the product
    no longer has that image. Running it twice changes nothing the second time."""
    slug = await db.scalar(
        update(Product)
        .where(Product.id == product_id, Product.images.contains([image]))
        .values(thumbnails=Product.thumbnails.op("||")(func.jsonb_build_object(image, thumbnail)))
        .returning(Product.slug)
    )
    if slug is None:
        return False
    catalog_changed(db, redis, [slug], listings=True)
    return True


class SynonymError(ValueError):
    """A synonym that cannot be stored, with a message for the person who typed it."""


async def add_synonym(session: AsyncSession, term: str, expansion: str) -> SearchSynonym:
    """A search for `term` also finds `expansion` from the next search on (bump the catalog after
    committing). Adding the same pair again changes nothing."""
    term_key, expansion_key = synonym_key(term), synonym_key(expansion)
    if not term_key or not expansion_key:
        raise SynonymError("A synonym needs letters or digits on both sides.")
    if term_key == expansion_key:
        raise SynonymError("The term and its expansion are the same words once accents are ignored.")
    existing = await session.scalar(
        select(SearchSynonym).where(SearchSynonym.term_key == term_key, SearchSynonym.expansion_key == expansion_key)
    )
    if existing is not None:
        return existing
    synonym = SearchSynonym(
        term_key=term_key,
        expansion_key=expansion_key,
        term=" ".join(term.split()),
        expansion=" ".join(expansion.split()),
    )
    session.add(synonym)
    await session.flush()
    return synonym


async def list_synonyms(session: AsyncSession) -> list[SearchSynonym]:
    result = await session.scalars(select(SearchSynonym).order_by(SearchSynonym.term_key, SearchSynonym.expansion_key))
    return list(result)


async def remove_synonym(session: AsyncSession, term: str, expansion: str | None = None) -> int:
    """Remove a term's expansion, or all of its expansions. Returns how many rows went."""
    stmt = delete(SearchSynonym).where(SearchSynonym.term_key == synonym_key(term))
    if expansion is not None:
        stmt = stmt.where(SearchSynonym.expansion_key == synonym_key(expansion))
    result = await session.execute(stmt)
    await session.flush()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
