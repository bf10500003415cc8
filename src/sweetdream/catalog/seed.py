"""Load the demo catalog (idempotent: rows are matched by slug/SKU, a second run adds nothing),
and a large synthetic catalog for benchmarks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.catalog import demo, stock
from sweetdream.catalog.models import Category, Product, StockReason, Variant
from sweetdream.catalog.services import search_exact_for, search_text_for
from sweetdream.catalog.text import name_sort_key, slugify
from sweetdream.platform.shop_time import in_shop_time
from sweetdream.settings import Settings

DEFAULT_ZONE = Settings.shop_timezone


async def load_demo_catalog(session: AsyncSession, zone: str = DEFAULT_ZONE, today: date | None = None) -> int:
    """Insert the demo categories, products and sizes that are missing. Returns products added.
    Class sessions are dated from `today` (the shop's date by default), always ahead of it."""
    now = datetime.now(UTC)
    today = today or in_shop_time(now, zone).date()
    await session.execute(
        insert(Category)
        .values(
            [
                {"slug": c.slug, "name": c.name, "description": c.description, "position": c.position}
                for c in demo.CATEGORIES
            ]
        )
        .on_conflict_do_nothing(index_elements=["slug"])
    )
    categories = {c.slug: c for c in await session.scalars(select(Category))}
    existing = {p.slug: p for p in await session.scalars(select(Product))}
    added = 0
    for p in demo.PRODUCTS:
        if p.slug in existing:
            # Fields added after a catalog was first seeded are filled in, never overwritten.
            if existing[p.slug].max_per_customer is None and p.max_per_customer is not None:
                existing[p.slug].max_per_customer = p.max_per_customer
            await _date_demo_sessions(session, existing[p.slug], p, today, zone, now)
            continue
        category = categories[p.category_slug]
        product = Product(
            slug=p.slug,
            name=p.name,
            description=p.description,
            category_id=category.id,
            price=p.price,
            images=list(p.images),
            is_featured=p.featured,
            search_text=search_text_for(p.name, p.description, category.name),
            search_exact=search_exact_for(p.name, p.description, category.name),
            created_at=now - timedelta(days=p.created_days_ago),
            max_per_customer=p.max_per_customer,
        )
        product.variants = [
            Variant(
                label=v.label,
                sku=f"{p.slug}-{slugify(v.label)}".upper()[:64],  # what the admin's editor accepts: A-Z 0-9 -
                stock=v.stock,
                price_override=v.price_override,
                low_stock_threshold=v.low_stock_threshold,
                position=i,
                starts_at=demo.session_start(v, today, zone),
            )
            for i, v in enumerate(p.variants)
        ]
        session.add(product)
        added += 1
    await session.flush()
    await stock.open_missing_balances(session, StockReason.SEED)  # level == sum of the ledger from the start
    return added


async def _date_demo_sessions(
    session: AsyncSession, product: Product, demo_product: demo.DemoProduct, today: date, zone: str, now: datetime
) -> None:
    """A demo class seeded before it had a date, or whose session has passed, gets its next session
    (and the label that goes with it: its old one named a date). One that is ahead is left as it is,
    so an admin's date stands; past orders keep the date they were booked for (order lines)."""
    seats = [v for v in demo_product.variants if v.weekday is not None]
    if len(seats) != 1:
        return
    variants = list(await session.scalars(select(Variant).where(Variant.product_id == product.id)))
    if len(variants) != 1 or (variants[0].starts_at is not None and variants[0].starts_at > now):
        return
    variants[0].starts_at = demo.session_start(seats[0], today, zone)
    variants[0].label = seats[0].label


async def load_bench_catalog(session: AsyncSession, count: int) -> int:
    """Top the catalog up to `count` products by cloning demo products under new slugs (bulk insert)."""
    have = await session.scalar(select(func.count()).select_from(Product)) or 0
    categories = {c.slug: c for c in await session.scalars(select(Category))}
    now = datetime.now(UTC)
    products: list[dict[str, object]] = []
    variants: list[dict[str, object]] = []
    import uuid

    for n in range(have, count):
        p = demo.PRODUCTS[n % len(demo.PRODUCTS)]
        pid = uuid.uuid4()
        slug = f"{p.slug}-{n}"
        name = f"{p.name} #{n}"
        category = categories[p.category_slug]
        products.append(
            {
                "id": pid,
                "slug": slug,
                "name": name,
                "description": p.description,
                "category_id": category.id,
                "price": p.price + (n % 7) * 1000,
                "images": list(p.images),
                "is_featured": False,
                "search_text": search_text_for(name, p.description, category.name),
                "search_exact": search_exact_for(name, p.description, category.name),
                "name_sort_key": name_sort_key(name),  # a bulk insert skips the model's name hook
                "currency": "VND",
                "is_active": True,
                "created_at": now - timedelta(minutes=n),
                "updated_at": now,
            }
        )
        for i, v in enumerate(p.variants):
            variants.append(
                {
                    "id": uuid.uuid4(),
                    "product_id": pid,
                    "label": v.label,
                    "sku": f"B{n}-{i}",
                    "stock": v.stock + 5,
                    "price_override": v.price_override,
                    "low_stock_threshold": v.low_stock_threshold,
                    "position": i,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    for start in range(0, len(products), 1000):
        await session.execute(insert(Product), products[start : start + 1000])
    for start in range(0, len(variants), 2000):
        await session.execute(insert(Variant), variants[start : start + 2000])
    await stock.open_missing_balances(session, StockReason.SEED)
    return len(products)
