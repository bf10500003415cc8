"""Catalog tables: categories, products and their sizes (variants)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    FetchedValue,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from sweetdream.catalog.text import name_sort_key
from sweetdream.db import UUIDAuditBase


def has_started(starts_at: datetime | None, now: datetime | None = None) -> bool:
    """A size's class session has begun (`Variant.started`, for a size read as columns)."""
    return starts_at is not None and starts_at <= (now or datetime.now(UTC))


class Category(UUIDAuditBase):
    __tablename__ = "categories"

    slug: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)


# What the listings' indexes carry besides their keys: the stock filters read them there.
STOCK = ["in_stock_until", "sizes_in_stock", "seats_in_stock"]


class Product(UUIDAuditBase):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        Index("ix_products_search", "search_vector", postgresql_using="gin"),
        Index("ix_products_active_created", "is_active", "created_at"),
        Index("ix_products_category_created", "category_id", "is_active", "created_at", postgresql_include=STOCK),
        Index("ix_products_active_price", "is_active", "from_price", "id", postgresql_include=STOCK),
        Index("ix_products_category_price", "category_id", "is_active", "from_price", "id", postgresql_include=STOCK),
        # "Name A-Z": an index scan in Vietnamese order, keyset-friendly (key, id).
        Index("ix_products_name_sort", "name_sort_key", "id"),
    )

    slug: Mapped[str] = mapped_column(String(160), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[UUID] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"))
    price: Mapped[int] = mapped_column(Integer)  # VND, minor units (VND has none)
    currency: Mapped[str] = mapped_column(String(3), default="VND")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_featured: Mapped[bool] = mapped_column(Boolean, default=False)
    images: Mapped[list[str]] = mapped_column(JSONB, default=list)
    # {image url: the url of its 400 px WebP}: written by the worker's thumbnail job once it exists
    # (catalog/images.py), read by the grid's cards. Static demo images have none: cards use the image.
    thumbnails: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    # Capacity-limited items (a class: one unit of stock is one seat): most a shopper may hold
    # across their non-cancelled orders. None for ordinary goods.
    max_per_customer: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Accent-folded name/category/description, computed by the service (see catalog/text.py).
    search_text: Mapped[str] = mapped_column(Text, default="")
    search_vector: Mapped[str] = mapped_column(TSVECTOR, Computed("to_tsvector('simple', search_text)", persisted=True))
    # The same words lowercased with their diacritics kept: ranks 'dâu' above 'đậu' for a query 'dâu'.
    search_exact: Mapped[str] = mapped_column(Text, default="")
    search_exact_vector: Mapped[str] = mapped_column(
        TSVECTOR, Computed("to_tsvector('simple', search_exact)", persisted=True)
    )
    # Vietnamese order as bytes (catalog/text.py name_sort_key); set whenever the name is (below).
    name_sort_key: Mapped[str] = mapped_column(Text(collation="C"), default="")
    # Kept by the database's triggers from the sizes (migration 5ca1ab1e0f00), never written here:
    # the lowest price of its sizes, and until when something is left to buy (NULL: nothing; a
    # class seat: its session's start). Listings filter and sort by them through an index, whose
    # entries carry the stock columns (INCLUDE) so the filters need no row.
    from_price: Mapped[int | None] = mapped_column(
        Integer, nullable=True, server_default=FetchedValue(), server_onupdate=FetchedValue()
    )
    in_stock_until: Mapped[datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), nullable=True, server_default=FetchedValue(), server_onupdate=FetchedValue()
    )
    # The labels of its goods (sizes without a start) with stock, and whether it has class seats
    # with stock (whose start the size filter then checks on the sizes themselves).
    sizes_in_stock: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=FetchedValue(), server_onupdate=FetchedValue()
    )
    seats_in_stock: Mapped[bool] = mapped_column(Boolean, server_default=FetchedValue(), server_onupdate=FetchedValue())

    category: Mapped[Category] = relationship(lazy="raise")
    variants: Mapped[list[Variant]] = relationship(back_populates="product", lazy="raise", order_by="Variant.position")

    def on_sale(self, now: datetime | None = None) -> list[Variant]:
        """The sizes a shopper can buy now: stock left and, for a class seat, a session not begun."""
        return [v for v in self.variants if v.stock > 0 and not v.started(now)]

    def started_only(self, now: datetime | None = None) -> bool:
        """Nothing on sale and a class session has begun: the page says so rather than "Sold out"."""
        return not self.on_sale(now) and any(v.started(now) for v in self.variants)

    @validates("name")
    def _keep_sort_key(self, _key: str, name: str) -> str:
        """Every ORM write of a name (seed, demo, the admin editor) writes its sort key with it."""
        self.name_sort_key = name_sort_key(name)
        return name


class Variant(UUIDAuditBase):
    """A size of a product: its own SKU, optional price override and stock."""

    __tablename__ = "variants"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price_override IS NULL OR price_override >= 0", name="override_not_negative"),
        Index("ix_variants_product", "product_id"),
        Index("ix_variants_label_position", "label", "position"),
    )

    product_id: Mapped[UUID] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(40))
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    price_override: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    low_stock_threshold: Mapped[int] = mapped_column(Integer, default=3)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # A class: this size is a seat in the session that starts then (UTC). None for ordinary goods.
    # Once started it can no longer be bought (catalog/stock.py takes no seat of a started session).
    starts_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, default=None)

    product: Mapped[Product] = relationship(back_populates="variants", lazy="raise")

    def effective_price(self, product_price: int) -> int:
        return self.price_override if self.price_override is not None else product_price

    def started(self, now: datetime | None = None) -> bool:
        """A class session that has begun: shown as such, never sold."""
        return has_started(self.starts_at, now)


class SearchSynonym(UUIDAuditBase):
    """A search word and what it also means: a query with `term` also finds `expansion`.

    One direction per row ("cake" -> "bánh kem"); an equivalence is a row each way. Keys are the
    folded words (catalog/text.py synonym_key), so 'Sô cô la', 'so co la' and 'SÔ CÔ LA' are one term."""

    __tablename__ = "search_synonyms"
    __table_args__ = (UniqueConstraint("term_key", "expansion_key", name="uq_search_synonyms_term_expansion"),)

    term_key: Mapped[str] = mapped_column(Text)
    expansion_key: Mapped[str] = mapped_column(Text)
    term: Mapped[str] = mapped_column(Text)
    expansion: Mapped[str] = mapped_column(Text)


class StockReason(StrEnum):
    """Why a size's stock moved (stored as its value)."""

    ORDER = "order"
    CANCEL = "cancel"
    REFUND = "refund"
    DELIVERY = "delivery"
    WASTE = "waste"
    COUNT = "count correction"
    IMPORT = "import"
    SEED = "seed"


# The reasons an admin may give for an adjustment by hand (in the order the form lists them).
ADJUSTMENT_REASONS = (StockReason.DELIVERY, StockReason.WASTE, StockReason.COUNT)


class StockMovement(DefaultBase):
    """One change of a size's stock: the ledger. A size's stock always equals the sum of its deltas
    (catalog/stock.py writes the row in the transaction that changes the stock, under its row lock)."""

    __tablename__ = "stock_movements"
    __table_args__ = (Index("ix_stock_movements_variant_id", "variant_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    variant_id: Mapped[UUID] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[UUID | None] = mapped_column(GUID, nullable=True)
    actor: Mapped[str] = mapped_column(String(320))  # an email, or "system"
    order_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    level: Mapped[int] = mapped_column(Integer)  # the stock right after this movement
    note: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=text("now()"))
