"""Catalog writes by staff: products, sizes, prices, stock adjustments, categories and images.

With catalog/stock.py this is the only code that writes the catalog's tables. Every write is audited
(`audit.services.record`, in the same transaction) and marks the catalog changed, so the cache is
invalidated by the commit (catalog/writes.py) and shoppers see the edit on their next request.
Services flush; the owner of the unit of work (the request, a CLI command) commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import ColumnElement, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from sweetdream.audit.services import Actor, record
from sweetdream.catalog import stock
from sweetdream.catalog.models import Category, Product, StockMovement, StockReason, Variant
from sweetdream.catalog.services import card_image, search_exact_for, search_text_for
from sweetdream.catalog.text import fold, slugify
from sweetdream.catalog.writes import catalog_changed
from sweetdream.orders.models import OrderLine
from sweetdream.platform.i18n import gettext as _

ADMIN_PAGE_SIZE = 25


class FieldErrors(ValueError):
    """Input refused field by field (nothing was written): {field name: message}."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class SizeInput:
    """One size row of the product form (already parsed: None where a number was missing/invalid)."""

    id: UUID | None
    label: str
    price: int | None
    stock: int | None  # new sizes only: existing stock changes through an adjustment
    threshold: int | None
    sku: str
    remove: bool = False
    starts_at: datetime | None = None  # a class seat: when its session starts (UTC)


@dataclass
class ProductInput:
    name: str
    slug: str
    category_id: UUID | None
    description: str
    max_per_customer: int | None
    sizes: list[SizeInput] = field(default_factory=list)


@dataclass(frozen=True)
class AdminProductRow:
    id: UUID
    name: str
    slug: str
    category_name: str
    is_active: bool
    sizes: int
    stock: int
    low: bool
    from_price: int
    image: str | None


@dataclass(frozen=True)
class AdminProductPage:
    rows: list[AdminProductRow]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _snapshot(product: Product) -> dict[str, Any]:
    """What the audit log keeps of a product: everything a person edits."""
    return {
        "name": product.name,
        "slug": product.slug,
        "category_id": str(product.category_id),
        "description": product.description,
        "max_per_customer": product.max_per_customer,
        "is_active": product.is_active,
        "sizes": [
            {
                "label": v.label,
                "sku": v.sku,
                "price": v.effective_price(product.price),
                "low_stock_threshold": v.low_stock_threshold,
                "starts_at": _iso(v.starts_at),
            }
            for v in product.variants
        ],
    }


def _iso(moment: datetime | None) -> str | None:
    """How the audit log keeps a session's start: UTC, to the minute."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="minutes")


def _same_minute(a: datetime | None, b: datetime | None) -> bool:
    """The form shows and sends minutes: a start is unchanged if it is the same minute."""
    return _iso(a) == _iso(b)


class CatalogWrites:
    """The admin's catalog editor. `actor` is recorded on every audit row and ledger row."""

    def __init__(self, db: AsyncSession, redis: Redis | None, actor: Actor) -> None:
        self.db = db
        self.redis = redis
        self.actor = actor

    @property
    def mover(self) -> stock.Mover:
        return stock.Mover(self.actor.email, self.actor.id)

    # --- reading for the editor ----------------------------------------------------------------

    async def categories(self) -> list[Category]:
        return list(await self.db.scalars(select(Category).order_by(Category.position, Category.name)))

    async def product(self, product_id: UUID) -> Product | None:
        return await self.db.scalar(
            select(Product)
            .where(Product.id == product_id)
            .options(selectinload(Product.variants), selectinload(Product.category))
            .execution_options(populate_existing=True)
        )

    async def product_page(
        self, q: str, category: str, status: str, low_only: bool, page: int, page_size: int = ADMIN_PAGE_SIZE
    ) -> AdminProductPage:
        """The staff list: every product (withdrawn too unless filtered), with its sizes' totals."""
        sizes = (
            select(
                func.count(Variant.id).label("sizes"),
                func.coalesce(func.sum(Variant.stock), 0).label("stock"),
                func.coalesce(func.bool_or(stock.low_stock_condition()), False).label("low"),
                func.min(func.coalesce(Variant.price_override, Product.price)).label("from_price"),
            )
            .where(Variant.product_id == Product.id)
            .lateral("sizes")
        )
        conditions: list[ColumnElement[bool]] = []
        if status == "active":
            conditions.append(Product.is_active.is_(True))
        elif status == "withdrawn":
            conditions.append(Product.is_active.is_(False))
        if category:
            conditions.append(Category.slug == category)
        if low_only:
            conditions.append(sizes.c.low.is_(True))
        words = fold(q).strip()
        if words:
            like = f"%{_escape_like(words)}%"
            conditions.append(
                or_(
                    Product.search_text.ilike(like, escape="\\"),
                    Product.slug.ilike(like, escape="\\"),
                    exists().where(Variant.product_id == Product.id, Variant.sku.ilike(like, escape="\\")),
                )
            )
        stmt = (
            select(
                Product.id,
                Product.name,
                Product.slug,
                Category.name.label("category_name"),
                Product.is_active,
                sizes.c.sizes,
                sizes.c.stock,
                sizes.c.low,
                func.coalesce(sizes.c.from_price, Product.price).label("from_price"),
                card_image().label("image"),  # the thumbnail once made
                func.count().over().label("total"),
            )
            .join(Category, Category.id == Product.category_id)
            .join(sizes, true())
            .where(*conditions)
            .order_by(Product.name_sort_key, Product.id)
            .limit(page_size)
            .offset((page - 1) * page_size)
        )
        rows = (await self.db.execute(stmt)).all()
        total = rows[0].total if rows else 0
        return AdminProductPage(
            [
                AdminProductRow(
                    r.id, r.name, r.slug, r.category_name, r.is_active, r.sizes, r.stock, r.low, r.from_price, r.image
                )
                for r in rows
            ],
            total,
            page,
            page_size,
        )

    async def ledger(self, variant_id: UUID, page: int) -> tuple[list[StockMovement], int]:
        return await stock.ledger(self.db, variant_id, page)

    # --- products ------------------------------------------------------------------------------

    async def create_product(self, data: ProductInput) -> Product:
        """A new product with its sizes (each size's stock opens its ledger)."""
        category = await self._validate(data, None)
        sizes = [s for s in data.sizes if not s.remove]
        base = min(s.price for s in sizes if s.price is not None)
        product = Product(
            slug=data.slug,
            name=data.name,
            description=data.description,
            category_id=category.id,
            price=base,
            images=[],
            max_per_customer=data.max_per_customer,
            search_text=search_text_for(data.name, data.description, category.name),
            search_exact=search_exact_for(data.name, data.description, category.name),
        )
        self.db.add(product)
        await self.db.flush()
        for position, size in enumerate(sizes):
            await self._add_size(product, size, base, position)
        await self.db.flush()
        product = await self._existing(product.id)
        await record(
            self.db,
            self.actor,
            "product.create",
            "product",
            product.id,
            target_label=product.name,
            after=_snapshot(product),
        )
        catalog_changed(self.db, self.redis)
        return product

    async def update_product(self, product_id: UUID, data: ProductInput) -> Product:
        product = await self._existing(product_id)
        before = _snapshot(product)
        old_prices = {v.id: v.effective_price(product.price) for v in product.variants}
        category = await self._validate(data, product)
        kept = [s for s in data.sizes if not s.remove]
        base = min(s.price for s in kept if s.price is not None)
        product.name = data.name
        product.slug = data.slug
        product.category_id = category.id
        product.description = data.description
        product.max_per_customer = data.max_per_customer
        product.price = base
        product.search_text = search_text_for(data.name, data.description, category.name)
        product.search_exact = search_exact_for(data.name, data.description, category.name)
        by_id = {v.id: v for v in product.variants}
        for size in data.sizes:
            if size.id is not None and size.remove:
                await self.db.delete(by_id[size.id])
        for position, size in enumerate(kept):
            assert size.price is not None and size.threshold is not None
            variant = by_id.get(size.id) if size.id else None
            if variant is None:
                await self._add_size(product, size, base, position)
            else:
                variant.label, variant.sku, variant.position = size.label, size.sku, position
                variant.low_stock_threshold = size.threshold
                variant.price_override = None if size.price == base else size.price
                if not _same_minute(variant.starts_at, size.starts_at):
                    await record(
                        self.db,
                        self.actor,
                        "variant.starts",
                        "variant",
                        variant.id,
                        target_label=f"{product.name} ({variant.label})",
                        before={"starts_at": _iso(variant.starts_at)},
                        after={"starts_at": _iso(size.starts_at)},
                    )
                    variant.starts_at = size.starts_at
                if old_prices[variant.id] != size.price:
                    await record(
                        self.db,
                        self.actor,
                        "variant.price",
                        "variant",
                        variant.id,
                        target_label=f"{product.name} ({variant.label})",
                        before={"price": old_prices[variant.id]},
                        after={"price": size.price},
                    )
        await self.db.flush()
        product = await self._existing(product_id)
        after = _snapshot(product)
        if after != before:
            await record(
                self.db,
                self.actor,
                "product.update",
                "product",
                product.id,
                target_label=product.name,
                before=before,
                after=after,
            )
        catalog_changed(self.db, self.redis)
        return product

    async def set_active(self, product_id: UUID, active: bool) -> Product:
        """Withdraw a product from the shop (it stays in past orders) or restore it."""
        product = await self._existing(product_id)
        if product.is_active != active:
            product.is_active = active
            await self.db.flush()
            await record(
                self.db,
                self.actor,
                "product.restore" if active else "product.withdraw",
                "product",
                product.id,
                target_label=product.name,
                before={"is_active": not active},
                after={"is_active": active},
            )
            catalog_changed(self.db, self.redis)
        return product

    async def adjust_stock(
        self,
        variant_id: UUID,
        reason: StockReason,
        *,
        delta: int | None = None,
        counted: int | None = None,
        note: str = "",
    ) -> StockMovement:
        """A delivery, waste or count correction through the ledger (stock.adjust), audited."""
        variant = await self.db.scalar(
            select(Variant).where(Variant.id == variant_id).options(selectinload(Variant.product))
        )
        if variant is None:
            raise FieldErrors({"quantity": _("That size no longer exists.")})
        before = await stock.left(self.db, variant_id)
        try:
            movement = await stock.adjust(
                self.db, variant_id, reason, self.mover, delta=delta, counted=counted, note=note, redis=self.redis
            )
        except stock.StockRefused:
            raise FieldErrors(
                {"quantity": _("Only %(left)d in stock: that much cannot be taken out.") % {"left": before}}
            ) from None
        await record(
            self.db,
            self.actor,
            "stock.adjust",
            "variant",
            variant_id,
            target_label=f"{variant.product.name} ({variant.label})",
            before={"stock": movement.level - movement.delta},
            after={"stock": movement.level, "reason": reason.value, "delta": movement.delta},
            note=note,
        )
        return movement

    async def add_image(self, product_id: UUID, key: str) -> Product:
        """Record an uploaded image (its storage key) on the product; the first is its main image."""
        product = await self._existing(product_id)
        before = list(product.images)
        product.images = [*before, key]
        await self.db.flush()
        await record(
            self.db,
            self.actor,
            "product.update",
            "product",
            product.id,
            target_label=product.name,
            before={"images": before},
            after={"images": product.images},
        )
        catalog_changed(self.db, self.redis)
        return product

    # --- categories ----------------------------------------------------------------------------

    async def create_category(self, name: str) -> Category:
        name = " ".join(name.split())
        self._check_category_name(name)
        slug = slugify(name)[:120]
        if await self.db.scalar(select(Category.id).where(Category.slug == slug)) is not None:
            raise FieldErrors({"name": _("A category with that name already exists.")})
        last = await self.db.scalar(select(func.max(Category.position))) or 0
        category = Category(slug=slug, name=name, description="", position=last + 1)
        self.db.add(category)
        await self.db.flush()
        await record(
            self.db, self.actor, "category.create", "category", category.id, target_label=name, after={"name": name}
        )
        catalog_changed(self.db, self.redis)
        return category

    async def rename_category(self, category_id: UUID, name: str) -> Category:
        name = " ".join(name.split())
        self._check_category_name(name)
        category = await self.db.get(Category, category_id)
        if category is None:
            raise FieldErrors({"name": _("That category no longer exists.")})
        before = category.name
        if before != name:
            category.name = name  # the slug (the shop's URLs) stays
            await self.db.flush()
            await record(
                self.db,
                self.actor,
                "category.rename",
                "category",
                category.id,
                target_label=name,
                before={"name": before},
                after={"name": name},
            )
            catalog_changed(self.db, self.redis)
        return category

    async def move_category(self, category_id: UUID, step: int) -> None:
        """Move a category one place up (-1) or down (+1) in the shop's order."""
        ordered = await self.categories()
        index = next((i for i, c in enumerate(ordered) if c.id == category_id), None)
        if index is None:
            raise FieldErrors({"category": _("That category no longer exists.")})
        target = index + step
        if not 0 <= target < len(ordered):
            return
        before = [c.name for c in ordered]
        ordered[index], ordered[target] = ordered[target], ordered[index]
        for position, category in enumerate(ordered):
            category.position = position
        await self.db.flush()
        await record(
            self.db,
            self.actor,
            "category.reorder",
            "category",
            category_id,
            target_label=ordered[target].name,
            before={"order": before},
            after={"order": [c.name for c in ordered]},
        )
        catalog_changed(self.db, self.redis)

    # --- rules ---------------------------------------------------------------------------------

    def _check_category_name(self, name: str) -> None:
        if not name:
            raise FieldErrors({"name": _("Give the category a name.")})
        if len(name) > 120:
            raise FieldErrors({"name": _("At most 120 characters.")})
        if not slugify(name):
            raise FieldErrors({"name": _("Use at least one letter or digit.")})

    async def _existing(self, product_id: UUID) -> Product:
        product = await self.product(product_id)
        if product is None:
            raise FieldErrors({"product": _("That product no longer exists.")})
        return product

    async def _add_size(self, product: Product, size: SizeInput, base: int, position: int) -> Variant:
        assert size.price is not None and size.threshold is not None
        variant = Variant(
            product_id=product.id,
            label=size.label,
            sku=size.sku,
            price_override=None if size.price == base else size.price,
            stock=size.stock or 0,
            low_stock_threshold=size.threshold,
            position=position,
            starts_at=size.starts_at,
        )
        self.db.add(variant)
        await self.db.flush()
        self.db.add(stock.opening(variant, StockReason.DELIVERY, self.mover))
        return variant

    async def _validate(self, data: ProductInput, product: Product | None) -> Category:
        """Every rule that needs the database, field by field; raises FieldErrors with all of them."""
        errors: dict[str, str] = {}
        category = await self.db.get(Category, data.category_id) if data.category_id else None
        if category is None:
            errors["category"] = _("Choose a category.")
        if data.slug:
            taken = select(Product.id).where(Product.slug == data.slug)
            if product is not None:
                taken = taken.where(Product.id != product.id)
            if await self.db.scalar(taken) is not None:
                errors["slug"] = _("Another product already has this address.")
        own = {v.id: v for v in product.variants} if product is not None else {}
        own_ids = set(own)
        now = datetime.now(UTC)
        for index, size in enumerate(data.sizes):
            if size.id is not None and size.id not in own_ids:
                errors[f"size-{index}-label"] = _("That size no longer exists.")
            elif (
                not size.remove
                and size.starts_at is not None
                and size.starts_at <= now
                and (size.id is None or not _same_minute(own[size.id].starts_at, size.starts_at))
            ):
                # A session already under way may keep its start; a new or moved one must be ahead.
                errors[f"size-{index}-starts"] = _("A class can't start in the past: choose a later time.")
            elif size.remove and size.id is not None and await self._has_orders(size.id):
                errors[f"size-{index}-remove"] = _("This size has orders and can't be removed: set its stock to 0.")
        skus = [s.sku for s in data.sizes if not s.remove and s.sku]
        if skus:
            clash = select(func.upper(Variant.sku)).where(func.upper(Variant.sku).in_([s.upper() for s in skus]))
            if own_ids:
                clash = clash.where(Variant.id.not_in(own_ids))
            taken_skus = set(await self.db.scalars(clash))
            for index, size in enumerate(data.sizes):
                if not size.remove and size.sku.upper() in taken_skus:
                    errors[f"size-{index}-sku"] = _("Another size already has this SKU.")
        if errors:
            raise FieldErrors(errors)
        assert category is not None
        return category

    async def _has_orders(self, variant_id: UUID) -> bool:
        return await self.db.scalar(select(exists().where(OrderLine.variant_id == variant_id))) or False


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
