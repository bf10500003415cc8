"""The admin's catalog: products, sizes, prices, stock through the ledger, categories; every change
audited and seen by shoppers on their next request."""

from __future__ import annotations

import asyncio
import re
import secrets
from html import unescape

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, func, select, update

from sweetdream.accounts.models import Role
from sweetdream.app import create_app
from sweetdream.audit.models import AuditEntry
from sweetdream.catalog.models import Category, Product, StockMovement, Variant
from sweetdream.catalog.stock import ledger_mismatches
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in, stock_of
from tests.integration.helpers import post_form
from tests.integration.test_checkout import (
    at_once,
    checkout,
    review,
    stock_update_in_progress,
    until_waiting_for_a_lock,
)

GET_ROUTES = ["/admin/products", "/admin/products/new", "/admin/categories"]


def product_form(tag: str, **overrides: str) -> dict[str, str]:
    """A new product with two sizes, as the admin types it."""
    return {
        "name": f"Bánh Đậu Xanh Test {tag}",
        "slug": "",
        "category": "",
        "description": "Mung bean cake",
        "max_per_customer": "",
        "size-0-label": "Nhỏ",
        "size-0-price": "120.000",
        "size-0-stock": "7",
        "size-0-threshold": "2",
        "size-0-sku": f"TB-{tag}-S".upper(),
        "size-1-label": "Lớn",
        "size-1-price": "250000",
        "size-1-stock": "3",
        "size-1-threshold": "1",
        "size-1-sku": f"TB-{tag}-L".upper(),
        **overrides,
    }


async def first_category(db) -> Category:
    return await db.scalar(select(Category).order_by(Category.position).limit(1))


async def admin_client(client, settings, db):
    return await signed_in(client, settings, await make_user(db, Role.ADMIN))


async def create(client, db, tag: str, **overrides: str):
    category = await first_category(db)
    return await post_form(
        client, "/admin/products/new", product_form(tag, **{"category": str(category.id), **overrides})
    )


async def audit_rows(db, action: str, target_id: object) -> list[AuditEntry]:
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == action, AuditEntry.target_id == str(target_id))
        .order_by(AuditEntry.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def product_routes(db) -> tuple[list[str], list[str]]:
    product, (variant,) = await make_product(db, stock=3)
    category = await first_category(db)
    gets = [*GET_ROUTES, f"/admin/products/{product.id}", f"/admin/products/{product.id}/images/uploaded"]
    posts = [
        "/admin/products/new",
        f"/admin/products/{product.id}",
        f"/admin/products/{product.id}/withdraw",
        f"/admin/products/{product.id}/restore",
        f"/admin/products/{product.id}/sizes/{variant.id}/stock",
        f"/admin/products/{product.id}/images/presign",
        f"/admin/products/{product.id}/images/upload",
        f"/admin/products/{product.id}/images",
        "/admin/categories",
        f"/admin/categories/{category.id}/rename",
        f"/admin/categories/{category.id}/move",
    ]
    return gets, posts


async def test_every_catalog_route_is_for_admins_only(client, settings, db):
    gets, posts = await product_routes(db)
    for url in gets:  # a visitor is sent to sign in
        answer = await client.get(url)
        assert answer.status_code in (302, 303) and "/account/login" in answer.headers["location"], url
    await signed_in(client, settings, await make_user(db))
    for url in gets:
        assert (await client.get(url)).status_code == 403, url
    for url in posts:
        assert (await post_form(client, url, {"name": "x", "direction": "up"})).status_code == 403, url


async def test_a_post_without_the_csrf_token_is_refused(client, settings, db):
    _, posts = await product_routes(db)
    await admin_client(client, settings, db)
    before = await db.scalar(select(func.count()).select_from(AuditEntry))
    for url in posts:
        assert (await client.post(url, data={"name": "Hacked", "direction": "up"})).status_code == 403, url
    assert await db.scalar(select(func.count()).select_from(AuditEntry)) == before


async def test_an_admin_creates_a_product_with_two_sizes_and_shoppers_can_buy_it(client, settings, db):
    await admin_client(client, settings, db)
    tag = secrets.token_hex(3)
    answer = await create(client, db, tag)
    assert answer.status_code == 303, answer.text
    product = await db.scalar(select(Product).where(Product.slug == f"banh-dau-xanh-test-{tag}"))
    assert product is not None  # the slug: from the name, Vietnamese diacritics stripped
    assert answer.headers["location"] == f"/admin/products/{product.id}"
    sizes = list(await db.scalars(select(Variant).where(Variant.product_id == product.id).order_by(Variant.position)))
    assert [(v.label, v.effective_price(product.price), v.stock, v.low_stock_threshold) for v in sizes] == [
        ("Nhỏ", 120000, 7, 2),
        ("Lớn", 250000, 3, 1),
    ]
    assert await ledger_mismatches(db, [v.id for v in sizes]) == []
    (created,) = await audit_rows(db, "product.create", product.id)
    assert created.after["name"] == f"Bánh Đậu Xanh Test {tag}" and len(created.after["sizes"]) == 2

    page = await client.get(f"/products/{product.slug}")
    assert page.status_code == 200 and "₫120,000" in page.text and "₫250,000" in page.text
    listing = await client.get(f"/products?q=dau+xanh+test+{tag}")
    assert f"Bánh Đậu Xanh Test {tag}" in listing.text
    await db.execute(update(Product).where(Product.id == product.id).values(is_active=False))  # out of the catalog
    await db.commit()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": ""}, "name", "Give the product a name."),
        ({"size-0-price": "free"}, "size-0-price", "A price in đồng, for example 299000."),
        ({"size-1-price": "-5"}, "size-1-price", "A price in đồng, for example 299000."),
        ({"size-0-stock": "²"}, "size-0-stock", "A whole number from 0."),
        ({"size-1-label": ""}, "size-1-label", "Name the size (for example 16 cm)."),
        ({"slug": "Not A Slug!"}, "slug", "Only lowercase letters a-z, digits and single hyphens."),
        ({"category": "not-a-uuid"}, "category", "Choose a category."),
        ({"size-1-sku": "TB-SAME", "size-0-sku": "TB-SAME"}, "size-1-sku", "Two sizes have this SKU."),
    ],
)
async def test_a_bad_field_shows_its_error_beside_it_and_saves_nothing(client, settings, db, overrides, field, message):
    await admin_client(client, settings, db)
    products = await db.scalar(select(func.count()).select_from(Product))
    audits = await db.scalar(select(func.count()).select_from(AuditEntry))
    answer = await create(client, db, secrets.token_hex(3), **overrides)
    assert answer.status_code == 400
    text = unescape(answer.text)
    assert f'<p class="error" id="{field}-error">{message}</p>' in text
    assert "Nothing was saved" in text
    assert await db.scalar(select(func.count()).select_from(Product)) == products
    assert await db.scalar(select(func.count()).select_from(AuditEntry)) == audits


async def test_a_slug_or_sku_another_product_has_is_refused(client, settings, db):
    await admin_client(client, settings, db)
    existing, (variant,) = await make_product(db)
    answer = await create(client, db, secrets.token_hex(3), slug=existing.slug)
    assert answer.status_code == 400
    assert "Another product already has this address." in unescape(answer.text)
    answer = await create(client, db, secrets.token_hex(3), **{"size-1-sku": variant.sku})
    assert answer.status_code == 400
    assert "Another size already has this SKU." in unescape(answer.text)


async def test_a_price_edit_is_seen_by_the_next_shopper_request(client, settings, db):
    product, (variant,) = await make_product(db, stock=4, price=100_000)
    shopper = AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1")
    async with shopper:
        for _ in range(2):  # warms the cached product page and grid fragment
            assert "₫100,000" in (await shopper.get(f"/products/{product.slug}")).text
            assert "₫100,000" in (await shopper.get(f"/products?q={product.name}")).text
        await admin_client(client, settings, db)
        form = (await client.get(f"/admin/products/{product.id}")).text
        assert f'name="size-0-id" value="{variant.id}"' in form
        answer = await post_form(
            client,
            f"/admin/products/{product.id}",
            {
                "name": product.name,
                "slug": product.slug,
                "category": str(product.category_id),
                "description": product.description,
                "size-0-id": str(variant.id),
                "size-0-label": variant.label,
                "size-0-price": "135.000",
                "size-0-threshold": "2",
                "size-0-sku": variant.sku,
            },
        )
        assert answer.status_code == 303, unescape(answer.text)
        assert "₫135,000" in (await shopper.get(f"/products/{product.slug}")).text
        assert "₫135,000" in (await shopper.get(f"/products?q={product.name}")).text
    (price,) = await audit_rows(db, "variant.price", variant.id)
    assert (price.before, price.after) == ({"price": 100000}, {"price": 135000})
    assert len(await audit_rows(db, "product.update", product.id)) == 1


async def test_a_withdrawn_product_leaves_the_shop_and_a_restored_one_comes_back(client, settings, db):
    product, _ = await make_product(db)
    shopper = AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1")
    async with shopper:
        assert (await shopper.get(f"/products/{product.slug}")).status_code == 200  # cached now
        assert f'href="/products/{product.slug}"' in (await shopper.get(f"/products?q={product.name}")).text
        await admin_client(client, settings, db)
        assert (await post_form(client, f"/admin/products/{product.id}/withdraw", {})).status_code == 303
        assert (await shopper.get(f"/products/{product.slug}")).status_code == 404
        assert f'href="/products/{product.slug}"' not in (await shopper.get(f"/products?q={product.name}")).text
        assert (await post_form(client, f"/admin/products/{product.id}/restore", {})).status_code == 303
        assert (await shopper.get(f"/products/{product.slug}")).status_code == 200
    assert len(await audit_rows(db, "product.withdraw", product.id)) == 1
    assert len(await audit_rows(db, "product.restore", product.id)) == 1


async def test_the_low_stock_filter_lists_what_the_alert_would_announce(client, settings, db):
    await admin_client(client, settings, db)
    low, _ = await make_product(db, stock=2)  # threshold 2 (factories): 2 left is low, as the alert says
    fine, _ = await make_product(db, stock=3)
    listed = unescape((await client.get("/admin/products?low=1&q=test+cake")).text)
    assert low.name in listed and fine.name not in listed


async def test_stock_adjustments_go_through_the_ledger_and_are_audited(client, settings, db):
    await admin_client(client, settings, db)
    product, (variant,) = await make_product(db, stock=0)  # a factory size: no ledger yet
    url = f"/admin/products/{product.id}/sizes/{variant.id}/stock"

    async def adjust(reason: str, quantity: str):
        return await post_form(client, url, {"reason": reason, f"quantity-{variant.id}": quantity})

    assert (await adjust("delivery", "10")).status_code == 303
    assert (await adjust("waste", "3")).status_code == 303
    refused = await adjust("waste", "8")
    assert refused.status_code == 400 and "Only 7 in stock" in unescape(refused.text)
    assert (await adjust("count correction", "5")).status_code == 303
    assert (await adjust("theft", "1")).status_code == 400
    assert await stock_of(db, variant) == 5
    rows = list(
        await db.scalars(select(StockMovement).where(StockMovement.variant_id == variant.id).order_by(StockMovement.id))
    )
    assert [(m.reason, m.delta, m.level) for m in rows] == [
        ("delivery", 10, 10),
        ("waste", -3, 7),
        ("count correction", -2, 5),
    ]
    assert len(await audit_rows(db, "stock.adjust", variant.id)) == 3
    page = unescape((await client.get(f"/admin/products/{product.id}?ledger={variant.id}")).text)
    page = page[page.index('id="ledger"') :]  # the ledger's table, after the adjustment forms
    assert page.index("Count correction") < page.index("Waste") < page.index("Delivery")  # newest first


async def test_concurrent_checkouts_and_adjustments_lose_no_update_and_match_the_ledger(app, client, settings, db):
    await admin_client(client, settings, db)
    tag = secrets.token_hex(3)
    assert (await create(client, db, tag, **{"size-0-stock": "30", "size-1-stock": "30"})).status_code == 303
    product = await db.scalar(select(Product).where(Product.slug == f"banh-dau-xanh-test-{tag}"))
    variants = list(
        await db.scalars(select(Variant).where(Variant.product_id == product.id).order_by(Variant.position))
    )
    shoppers = []
    for n in range(12):
        user = await make_user(db)
        await put_in_cart(db, user, variants[n % 2], 2)
        shopper = AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1")
        await shopper.__aenter__()
        shopper.follow_redirects = False
        shoppers.append(await signed_in(shopper, settings, user))
    admins = []
    for _ in range(6):
        admin = AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1")
        await admin.__aenter__()
        admin.follow_redirects = False
        admins.append(await signed_in(admin, settings, await make_user(db, Role.ADMIN)))

    async def deliver(admin, variant, quantity: int):
        url = f"/admin/products/{product.id}/sizes/{variant.id}/stock"
        return await post_form(admin, url, {"reason": "delivery", f"quantity-{variant.id}": str(quantity)})

    try:
        reviews = [await review(s) for s in shoppers]
        requests = [checkout(s, seen) for s, seen in zip(shoppers, reviews, strict=True)]
        requests += [deliver(a, variants[i % 2], 5) for i, a in enumerate(admins)]
        # Both sizes' rows held while all 18 requests queue at their stock update: they really race there.
        async with stock_update_in_progress(db, variants[0]), stock_update_in_progress(db, variants[1]):
            running = asyncio.ensure_future(at_once(requests))
            await until_waiting_for_a_lock(db, len(requests))
        answers = await running
    finally:
        for c in shoppers + admins:
            await c.__aexit__(None, None, None)
    assert [a.status_code for a in answers] == [303] * 18
    # 30 each, 6 orders of 2 taken from each, 3 deliveries of 5 added to each: nothing lost.
    assert [await stock_of(db, v) for v in variants] == [30 - 12 + 15, 30 - 12 + 15]
    assert await ledger_mismatches(db, [v.id for v in variants]) == []
    reasons = await db.execute(
        select(StockMovement.reason, func.count())
        .where(StockMovement.variant_id.in_([v.id for v in variants]))
        .group_by(StockMovement.reason)
    )
    assert dict(reasons.all()) == {"delivery": 2 + 6, "order": 12}
    await db.execute(update(Product).where(Product.id == product.id).values(is_active=False))
    await db.commit()


async def test_the_whole_shop_keeps_stock_equal_to_its_ledger(db):
    """The seed and the migration opened every size's ledger; every change since went through it.
    (Sizes the test factories insert directly start with no ledger and are left out.)"""
    mismatched = await ledger_mismatches(db)
    factory_made = set(await db.scalars(select(Variant.id).where(Variant.sku.like("T-%"))))
    assert [m for m in mismatched if m[0] not in factory_made] == []


async def test_categories_are_created_renamed_and_reordered_with_an_audit_trail(client, settings, db):
    await admin_client(client, settings, db)
    name = f"Bánh Tết {secrets.token_hex(2)}"
    assert (await post_form(client, "/admin/categories", {"name": name})).status_code == 303
    category = await db.scalar(select(Category).where(Category.name == name))
    assert category is not None and category.slug.startswith("banh-tet-")
    assert (await post_form(client, "/admin/categories", {"name": name})).status_code == 400  # the same slug
    assert (await post_form(client, "/admin/categories", {"name": "  "})).status_code == 400
    renamed = name + " mới"
    assert (await post_form(client, f"/admin/categories/{category.id}/rename", {"name": renamed})).status_code == 303
    up = await post_form(client, f"/admin/categories/{category.id}/move", {"direction": "up"})
    assert up.status_code == 303
    fresh = select(Category).order_by(Category.position, Category.name).execution_options(populate_existing=True)
    ordered = [c.name for c in await db.scalars(fresh)]
    assert ordered[-2] == renamed  # it was last; now second to last
    assert renamed in (await client.get("/products")).text  # shoppers see the new name
    for action in ("category.create", "category.rename", "category.reorder"):
        assert len(await audit_rows(db, action, category.id)) == 1, action
    # Leave the shop's categories as seeded for the other tests (the admin has no delete: a test cleans up).
    await db.execute(delete(Category).where(Category.id == category.id))
    await db.commit()


async def test_an_order_and_its_cancel_are_in_the_ledger_with_the_order_number(client, settings, db):
    tag = secrets.token_hex(3)
    await admin_client(client, settings, db)
    assert (await create(client, db, tag)).status_code == 303
    product = await db.scalar(select(Product).where(Product.slug == f"banh-dau-xanh-test-{tag}"))
    variant = await db.scalar(select(Variant).where(Variant.product_id == product.id, Variant.position == 0))
    user = await make_user(db)
    await put_in_cart(db, user, variant, 2)
    shopper = AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1")
    async with shopper:
        shopper.follow_redirects = False
        await signed_in(shopper, settings, user)
        placed = await checkout(shopper)
        number = re.search(r"SD-\d{6}", placed.headers["location"]).group(0)
        assert (await post_form(shopper, f"/orders/{number}/cancel", {})).status_code in (200, 303)
    rows = list(
        await db.scalars(select(StockMovement).where(StockMovement.variant_id == variant.id).order_by(StockMovement.id))
    )
    assert [(m.reason, m.delta, m.level, m.order_number) for m in rows] == [
        ("delivery", 7, 7, None),
        ("order", -2, 5, number),
        ("cancel", 2, 7, number),
    ]
    assert rows[1].actor == user.email
    await db.execute(update(Product).where(Product.id == product.id).values(is_active=False))
    await db.commit()
    await asyncio.sleep(0)


async def test_the_catalog_version_moves_when_a_stock_change_commits_and_not_before(settings, db):
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from sweetdream.catalog import stock
    from sweetdream.catalog.cache import VERSION_KEY
    from sweetdream.catalog.models import StockReason

    _, (variant,) = await make_product(db, stock=4)
    redis = Redis.from_url(settings.redis_url)
    engine = create_async_engine(settings.database_url)
    try:
        await redis.set(VERSION_KEY, "before")
        async with async_sessionmaker(engine)() as session:
            async with session.begin():  # a CLI command's or job's unit of work
                await stock.adjust(session, variant.id, StockReason.DELIVERY, stock.Mover("cli"), delta=2, redis=redis)
                assert await redis.get(VERSION_KEY) == b"before"  # not yet committed: nothing to see
            after_commit = await redis.get(VERSION_KEY)
            assert after_commit != b"before"
            await stock.adjust(session, variant.id, StockReason.WASTE, stock.Mover("cli"), delta=-1, redis=redis)
            await session.rollback()
            await session.commit()  # a later commit of nothing: at most a needless bump, never a missed one
        assert await stock_of(db, variant) == 6
    finally:
        await redis.aclose()
        await engine.dispose()
