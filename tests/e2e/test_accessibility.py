"""Every distinct page a shopper or an admin reaches, checked by axe-core on a desktop and a phone,
and the pages with tables checked for sideways scrolling on a phone.

The shop is arranged the way people leave it: a shopper who registered, ordered, cancelled one order
and has something in the cart again; orders in every state; an admin. Axe must find nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from sweetdream.accounts.models import Role, User
from sweetdream.accounts.services import UserService
from sweetdream.catalog.demo import PRODUCTS, DemoProduct, DemoVariant
from sweetdream.catalog.models import Product
from sweetdream.catalog.money import format_vnd
from sweetdream.orders.models import Order, OrderStatus
from sweetdream.orders.services import OrderService
from tests.e2e.axe import axe_violations
from tests.e2e.browser import BrowserProblems

T = TypeVar("T")
NewContext = Callable[..., BrowserContext]

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
PHONE = VIEWPORTS["phone"]
PASSWORD = "correct horse battery"
ORDER_URL = re.compile(r"/orders/(SD-\d{6})$")
# A 404 and a 400 are what these pages are; the browser logs each as a failed load.
EXPECTED_ERRORS = (
    r"status of 404 .*\(at .*/products/does-not-exist\)",
    r"status of 400 .*\(at .*/products\?min_price=abc\)",
)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """The sync Playwright API keeps an event loop on the test's thread: run ours on another."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


async def _with_services(work: Callable[[AsyncSession, Redis], Coroutine[Any, Any, T]]) -> T:
    engine = create_async_engine(os.environ["DATABASE_URL"], poolclass=NullPool)
    client = Redis.from_url(os.environ["REDIS_URL"])
    try:
        async with AsyncSession(engine, expire_on_commit=False) as db:
            result = await work(db, client)
            await db.commit()
            return result
    finally:
        await client.aclose()
        await engine.dispose()


def create_admin(email: str) -> None:
    async def work(db: AsyncSession, _: Redis) -> None:
        await UserService(session=db).create_admin(email, PASSWORD, "Lê Quản Lý")

    run_async(_with_services(work))


def move(number: str, *steps: OrderStatus) -> None:
    """The shop moves an order through the one function that owns transitions."""

    async def work(db: AsyncSession, redis: Redis) -> None:
        order_id = await db.scalar(select(Order.id).where(Order.number == number))
        assert order_id is not None, number
        for to in steps:
            await OrderService(db, redis).transition(order_id, to, "a11y@sweetdream.test", "")

    run_async(_with_services(work))


def roomy_variant() -> tuple[DemoProduct, DemoVariant]:
    """The size with the most stock above its threshold: these orders never change what other journeys see."""
    return max(
        ((p, v) for p in PRODUCTS if not p.max_per_customer for v in p.variants),
        key=lambda pv: pv[1].stock - pv[1].low_stock_threshold,
    )


PRODUCT, VARIANT = roomy_variant()


def add_to_cart(page: Page) -> None:
    page.goto(f"/products/{PRODUCT.slug}")
    price = VARIANT.price_override if VARIANT.price_override is not None else PRODUCT.price
    page.locator("#variant_id").select_option(label=f"{VARIANT.label} — {format_vnd(price)}")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#add-result")).to_contain_text("Added")


def place_order(page: Page) -> str:
    add_to_cart(page)
    page.goto("/checkout")
    page.locator("#place-order").click()
    expect(page).to_have_url(ORDER_URL)
    match = ORDER_URL.search(page.url)
    assert match is not None
    return match.group(1)


ADMIN_CATALOG_PAGES = [
    "/admin/products",
    "/admin/products?low=1&status=active",
    "/admin/products/new",
    "/admin/categories",
]


def product_id_of(slug: str) -> str:
    async def work(db: AsyncSession, _: Redis) -> str:
        return str(await db.scalar(select(Product.id).where(Product.slug == slug)))

    return run_async(_with_services(work))


@dataclass(frozen=True)
class Shop:
    shopper: Any  # Playwright storage state, signed in
    admin: Any
    order: str  # the shopper's pending order
    product_id: str  # the demo product the orders bought (its admin page shows a ledger)


@pytest.fixture(scope="module")
def shop(browser: Browser, base_url: str) -> Shop:
    problems = BrowserProblems()
    context = problems.watch_context(browser.new_context(base_url=base_url))
    try:
        page = context.new_page()
        page.goto("/account/register")
        page.get_by_label("Email").fill(f"a11y-{uuid.uuid4().hex[:12]}@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Full name").fill("Phạm Thu Hà")
        page.get_by_label("Phone").fill("0987654321")
        page.get_by_label("Delivery address").fill("56 Pasteur, Quận 3")
        page.get_by_role("button", name="Create account").click()
        expect(page).not_to_have_url(re.compile(r"/account/register"))

        cancelled = place_order(page)
        page.locator("#cancel-order").click()
        expect(page.locator("#order-status")).to_have_text("Cancelled")
        move(place_order(page), OrderStatus.PROCESSING)
        move(place_order(page), OrderStatus.PROCESSING, OrderStatus.PREPARING)
        move(place_order(page), OrderStatus.PROCESSING, OrderStatus.PREPARING, OrderStatus.SHIPPED)
        move(
            place_order(page),
            OrderStatus.PROCESSING,
            OrderStatus.PREPARING,
            OrderStatus.SHIPPED,
            OrderStatus.DELIVERED,
        )
        pending = place_order(page)
        assert cancelled != pending
        add_to_cart(page)  # the cart is full again
        shopper = context.storage_state()
    finally:
        context.close()

    admin_email = f"a11y-admin-{uuid.uuid4().hex[:12]}@example.com"
    create_admin(admin_email)
    context = problems.watch_context(browser.new_context(base_url=base_url))
    try:
        page = context.new_page()
        page.goto("/account/login")
        page.get_by_label("Email").fill(admin_email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("link", name="Admin", exact=True)).to_be_visible()
        admin = context.storage_state()
    finally:
        context.close()
    assert not problems.problems, problems.problems
    return Shop(shopper=shopper, admin=admin, order=pending, product_id=product_id_of(PRODUCT.slug))


def pages_of(role: str, shop: Shop) -> list[str]:
    cakes = next(p for p in PRODUCTS if p.category_slug == "banh-kem")
    course = next(p for p in PRODUCTS if p.category_slug == "lop-hoc")  # a class: its session's date shows
    return {
        "visitor": [
            "/",
            "/products",
            "/products?category=banh-kem&min_price=100000&sort=price_asc",
            "/products?q=pizza",
            "/products?min_price=abc",
            f"/products/{cakes.slug}",
            f"/products/{course.slug}",
            "/products?category=lop-hoc",
            "/cart",
            "/account/login",
            "/account/register",
            "/products/does-not-exist",
        ],
        "shopper": ["/cart", "/checkout", f"/orders/{shop.order}", "/account/orders", "/account"],
        "admin": [
            "/admin",
            "/admin/orders",
            "/admin/orders?status=CANCELLED&from=2001-01-01&to=2001-01-31",  # the empty state
            f"/admin/orders?q={shop.order}",
            f"/admin/orders/{shop.order}",
            f"/admin/orders/{shop.order}/slip",
            *ADMIN_CATALOG_PAGES,
            f"/admin/products/{shop.product_id}",
            *people_pages(),
            "/admin/analytics",
            "/admin/exports",
        ],
    }[role]


def people_pages() -> list[str]:
    """The customers list, a search, the page of this module's shopper, and the audit log."""

    async def work(db: AsyncSession, _: Redis) -> str:
        shopper = await db.scalar(
            select(User.id)
            .where(User.email.like("a11y-%"), User.role == Role.CUSTOMER)
            .order_by(User.created_at.desc())
        )
        return str(shopper)

    shopper = run_async(_with_services(work))
    return ["/admin/customers", "/admin/customers?q=a11y", f"/admin/customers/{shopper}", "/admin/audit"]


def open_as(new_context: NewContext, problems: BrowserProblems, role: str, shop: Shop, viewport: str) -> Page:
    state = {"visitor": None, "shopper": shop.shopper, "admin": shop.admin}[role]
    context = new_context(
        storage_state=state,
        viewport=VIEWPORTS[viewport],
        is_mobile=viewport == "phone",
        has_touch=viewport == "phone",
        bypass_csp=True,  # axe is injected as a script: only this test's contexts allow it
    )
    return problems.watch_context(context).new_page()


@pytest.mark.allow_console_errors(*EXPECTED_ERRORS)
@pytest.mark.parametrize("viewport", ["desktop", "phone"])
@pytest.mark.parametrize("role", ["visitor", "shopper", "admin"])
def test_axe_finds_nothing_on_any_page(
    new_context: NewContext, console_errors: BrowserProblems, shop: Shop, role: str, viewport: str
) -> None:
    page = open_as(new_context, console_errors, role, shop, viewport)
    found: list[str] = []
    for url in pages_of(role, shop):
        page.goto(url)
        expect(page.locator("main")).to_be_visible()
        found += axe_violations(page)
        if url == "/products" and viewport == "phone":  # the filters, opened
            page.locator("#filters-panel > summary").click()
            expect(page.locator("#category")).to_be_visible()
            found += axe_violations(page)
    assert not found, f"{len(found)} axe violation(s):\n" + "\n".join(found)


@pytest.mark.parametrize("role", ["visitor", "shopper", "admin"])
def test_no_page_scrolls_sideways_on_a_phone(
    new_context: NewContext, console_errors: BrowserProblems, shop: Shop, role: str
) -> None:
    page = open_as(new_context, console_errors, role, shop, "phone")
    too_wide: list[str] = []
    for url in pages_of(role, shop):
        if url in {"/products/does-not-exist", "/products?min_price=abc"}:
            continue
        page.goto(url)
        expect(page.locator("main")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide.append(f"{url}: {width}px wide")
    assert not too_wide, too_wide
