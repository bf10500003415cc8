"""Catalog rules: the only code that writes categories, products and variants."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, joinedload

from sweetdream.catalog.cache import fresh_until
from sweetdream.catalog.filters import ProductFilter
from sweetdream.catalog.models import Category, Product, SearchSynonym, Variant
from sweetdream.catalog.stock import not_started_condition
from sweetdream.catalog.text import (
    exact_prefix_tsquery,
    exact_text,
    fold,
    has_diacritics,
    search_tsquery_text,
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
# A search in best-match order ranks at most this many matches (ranking reads each one's text; the
# first thousand take milliseconds, a million take seconds): past it, "more than 1000 results".
BEST_MATCH_CAP = 1_000


def capped_count(stmt: Select) -> Select:
    """How many rows `stmt` gives, counted up to COUNT_CAP + 1 (more than the cap means "more")."""
    limited = stmt.with_only_columns(literal(1)).order_by(None).limit(COUNT_CAP + 1).subquery("matches")
    return select(func.count()).select_from(limited)


def search_text_for(name: str, description: str, category_name: str) -> str:
    return fold(f"{name} {category_name} {description}")


def search_exact_for(name: str, description: str, category_name: str) -> str:
    """The same words as search_text, lowercased but with their diacritics (for the exact ranking)."""
    return exact_text(f"{name} {category_name} {description}")


def search_tsquery(
    query: str, synonyms: Mapping[str, Sequence[str]], last_word_prefix: bool = True
) -> ColumnElement[str] | None:
    """The shopper's query as a tsquery (`search_tsquery_text`), or None if it has no words. Its
    text goes into the statement as a constant, so the planner can tell a query that matches half
    the shop (read in any order, stopping at the cap) from a rare one (the GIN index)."""
    text = search_tsquery_text(query, synonyms, last_word_prefix)
    if not text:
        return None
    name = "tsquery" if last_word_prefix else "tsquery_whole_words"
    return func.to_tsquery("simple", bindparam(name, text, literal_execute=True))


def matches(query: ColumnElement[str]) -> ColumnElement[bool]:
    return Product.search_vector.op("@@")(query)


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

    async def filter_choices(self) -> tuple[list[tuple[str, str]], list[str]]:
        """The categories (slug, name) and the distinct size labels, in one statement.

        The labels come from a skip scan: each step of the recursive CTE asks the (label, position)
        index for the next label after the last one, so a million products' sizes cost a probe per
        distinct label rather than a GROUP BY over every size. They are listed in shop order (the
        lowest position a label has)."""
        later = aliased(Variant)
        labels = select(Variant.label).order_by(Variant.label).limit(1).cte("labels", recursive=True)
        next_label = select(later.label).where(later.label > labels.c.label).order_by(later.label).limit(1)
        labels = labels.union_all(select(next_label.scalar_subquery()).where(labels.c.label.is_not(None)))
        position = select(func.min(Variant.position)).where(Variant.label == labels.c.label).scalar_subquery()
        sizes = (
            select(func.array_agg(aggregate_order_by(labels.c.label, position, labels.c.label)))
            .where(labels.c.label.is_not(None))
            .scalar_subquery()
        )
        rows = (
            await self.session.execute(
                select(Category.slug, Category.name, sizes.label("sizes")).order_by(Category.position, Category.name)
            )
        ).all()
        return [(r.slug, r.name) for r in rows], list(rows[0].sizes or []) if rows else []

    async def synonyms(self) -> dict[str, list[str]]:
        """Every search synonym: term key -> its expansions' keys (a small table, cached per version)."""
        rows = await self.session.execute(
            select(SearchSynonym.term_key, SearchSynonym.expansion_key).order_by(
                SearchSynonym.term_key, SearchSynonym.expansion_key
            )
        )
        synonyms: dict[str, list[str]] = {}
        for term, expansion in rows:
            synonyms.setdefault(term, []).append(expansion)
        return synonyms

    async def list_products(
        self, view: ProductFilter, synonyms: Mapping[str, Sequence[str]] | None = None
    ) -> ProductPage:
        """One query: the page of cards with the total count (capped, see COUNT_CAP/BEST_MATCH_CAP).
        A search expands the `synonyms` given (the cached `synonyms()`), else reads them."""
        if view.q and synonyms is None:
            synonyms = await self.synonyms()
        stmt = self._listing(view, synonyms or {})
        rows = (await self.session.execute(stmt)).all()
        total = rows[0].total if rows else 0
        if not rows and view.page > 1:
            # Past the last page: count once so the view can say how many pages there are.
            total = await self.session.scalar(self._listing(view, synonyms or {}, count_only=True)) or 0
        cards = [_card(r) for r in rows]
        cap = BEST_MATCH_CAP if _ranks_matches(view) else COUNT_CAP
        return ProductPage(cards, min(total, cap), view.page, self.page_size, more=total > cap)

    def _listing(
        self,
        view: ProductFilter,
        synonyms: Mapping[str, Sequence[str]],
        count_only: bool = False,
        featured_only: bool = False,
    ) -> Select:
        """The listing's products as a page of cards. Every filter and sort reads a column of
        `products` (the from-price and in-stock time are kept there by the database, see the model),
        so an index gives the page's products in order and the cards' prices and stock are computed
        for those alone."""
        conditions: list[ColumnElement[bool]] = [Product.is_active.is_(True)]
        if featured_only:
            conditions.append(Product.is_featured.is_(True))
        if view.category:
            category = select(Category.id).where(Category.slug == view.category).scalar_subquery()
            conditions.append(Product.category_id == category)
        if view.size and view.in_stock:
            # Read from the index entry: goods of that size in stock; only a product with class
            # seats in stock has its sizes looked at (a seat counts until its session starts).
            seat = exists().where(
                Variant.product_id == Product.id, Variant.label == view.size, Variant.stock > 0, not_started_condition()
            )
            conditions.append(or_(Product.sizes_in_stock.contains([view.size]), and_(Product.seats_in_stock, seat)))
        elif view.size:
            conditions.append(exists().where(Variant.product_id == Product.id, Variant.label == view.size))
        elif view.in_stock:
            conditions.append(Product.in_stock_until > func.now())
        if view.min_price is not None:
            conditions.append(Product.from_price >= view.min_price)
        if view.max_price is not None:
            conditions.append(Product.from_price <= view.max_price)
        tsquery = search_tsquery(view.q, synonyms) if view.q else None
        if tsquery is not None and _ranks_matches(view):
            whole_words = search_tsquery(view.q, synonyms, last_word_prefix=False)
            return self._best_matches(select(Product).where(*conditions), view, tsquery, whole_words, count_only)
        if view.q:
            conditions.append(false() if tsquery is None else matches(tsquery))  # no words: nothing matches
        base = select(Product).where(*conditions)
        if count_only:
            return capped_count(base)
        # Ties broken by id in the sort's direction, so a price index serves either direction.
        orders: dict[str, list[ColumnElement[Any]]] = {
            "newest": [Product.created_at.desc(), Product.id.asc()],
            "relevance": [Product.created_at.desc(), Product.id.asc()],  # no query: the newest
            "price_asc": [Product.from_price.asc(), Product.id.asc()],
            "price_desc": [Product.from_price.desc(), Product.id.desc()],
            "name": [Product.name_sort_key.asc(), Product.id.asc()],
        }
        order = orders[view.sort]
        page = (
            base.with_only_columns(Product.id.label("id"), func.row_number().over(order_by=order).label("position"))
            .order_by(*order)
            .limit(self.page_size)
            .offset((view.page - 1) * self.page_size)
            .subquery("page")
        )
        # A featured list is short and takes its own LIMIT: no total needed.
        total = literal(0) if featured_only else capped_count(base).scalar_subquery()
        return _cards_of(page, total)

    def _best_matches(
        self,
        filtered: Select,
        view: ProductFilter,
        tsquery: ColumnElement[str],
        whole_words: ColumnElement[str] | None,
        count_only: bool,
    ) -> Select:
        """A search in best-match order. Ranking reads every match's text, so it ranks the first
        BEST_MATCH_CAP + 1 matches the index finds (every match, in a shop of that size; "more than
        N results" above it), read once for both the count and the page.

        Those first matches are the products with every word whole when there are enough of them
        ('bánh kem dâu' finds 'dâu', not only 'dâu...'), and only otherwise the products whose last
        word starts so: a prefix makes the index gather every word that starts so, and at a million
        products that gathering was most of a search's time (99 ms of 'banh & kem & dau:*', 29 ms
        of 'banh & kem & dau'). Either set holds only real matches; the whole words rank first."""
        columns = (Product.id, Product.search_vector, Product.search_exact_vector, Product.name_sort_key)
        first = filtered.with_only_columns(*columns).limit(BEST_MATCH_CAP + 1)  # `filtered`: all but the words
        if whole_words is None:
            found = first.where(matches(tsquery)).cte("matches")
        else:
            # Whole words first; PostgreSQL runs the prefix search only when they are too few (the
            # count is a one-time filter: the prefix's index scan is otherwise never executed).
            whole = first.where(matches(whole_words)).cte("whole_word_matches")
            enough = select(func.count()).select_from(whole).scalar_subquery() > BEST_MATCH_CAP
            prefixed = first.where(matches(tsquery), ~enough)
            found = union_all(select(*whole.c).where(enough), prefixed).cte("matches")
        if count_only:
            return select(func.count()).select_from(found)
        order = [*_relevance(view.q, tsquery, found.c), found.c.id]
        page = (
            select(found.c.id.label("id"), func.row_number().over(order_by=order).label("position"))
            .order_by(*order)
            .limit(self.page_size)
            .offset((view.page - 1) * self.page_size)
            .subquery("page")
        )
        return _cards_of(page, select(func.count()).select_from(found).scalar_subquery())

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
        rows = (await self.session.execute(self._listing(ProductFilter(), {}, featured_only=True).limit(limit))).all()
        return [_card(r) for r in rows]

    async def get_variant(self, variant_id: UUID) -> Variant | None:
        return await self.session.get(Variant, variant_id)


def _ranks_matches(view: ProductFilter) -> bool:
    """A search shown in best-match order (ranked within BEST_MATCH_CAP matches)."""
    return bool(view.q) and view.sort == "relevance"


def _relevance(query: str, tsquery: ColumnElement[str], columns: Any) -> list[ColumnElement[Any]]:
    """Closest matches first. A query typed with diacritics ('dâu') puts the products with those
    exact words ('dâu tây') before the ones that only match once folded ('đậu')."""
    order: list[ColumnElement[Any]] = []
    if has_diacritics(query):
        exact = func.to_tsquery("simple", exact_prefix_tsquery(query))
        order.append(func.ts_rank(columns.search_exact_vector, exact).desc())
    order.append(func.ts_rank(columns.search_vector, tsquery).desc())
    order.append(columns.name_sort_key.asc())
    return order


def _cards_of(page: Any, total: ColumnElement[int]) -> Select:
    """The cards of a page of product ids (`page`: id, position), with the listing's total. Prices,
    stock and a class's next session are computed here, for the page's products alone."""
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
