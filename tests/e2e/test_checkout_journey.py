"""A visitor's whole purchase: add two sizes, change the cart, register at checkout, order, cancel;
and on a phone, a price raised between review and submit is shown before anything is placed.

Prices and stock come from the seeded demo catalogue (sweetdream.catalog.demo), never from the
page itself. Cancelling must hand the reserved stock back, which the product page shows.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sweetdream.catalog.cache import invalidate_catalog
from sweetdream.catalog.demo import PRODUCTS, DemoProduct, DemoVariant
from sweetdream.catalog.models import Product, Variant
from sweetdream.catalog.money import format_vnd
from tests.e2e.browser import BrowserProblems

PASSWORD = "correct horse battery"
PHONE = "0901234567"
ADDRESS = "12 Lê Lợi, Quận 1"


def two_sizes_in_stock() -> tuple[DemoProduct, DemoVariant, DemoVariant]:
    """A product whose size A goes from "In stock" to "Only N left" when two are ordered."""
    for p in PRODUCTS:
        if p.max_per_customer:
            continue
        for a in p.variants:
            if a.low_stock_threshold < a.stock <= a.low_stock_threshold + 2:
                b = next((v for v in p.variants if v is not a and v.stock >= 3), None)
                if b is not None:
                    return p, a, b
    raise AssertionError("the demo catalogue has no product with two sizes in stock")


def price_of(product: DemoProduct, variant: DemoVariant) -> int:
    return variant.price_override if variant.price_override is not None else product.price


def stock_text(page: Page, label: str) -> str:
    return page.locator(f'.size[data-size="{label}"] .stock').inner_text().strip()


def add_to_cart(page: Page, product: DemoProduct, variant: DemoVariant, expected_count: int) -> None:
    page.locator("#variant_id").select_option(label=f"{variant.label} — {format_vnd(price_of(product, variant))}")
    page.locator("#quantity").fill("1")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#add-result")).to_contain_text("Added")
    expect(page.locator("#cart-link")).to_contain_text(str(expected_count))


def test_visitor_orders_two_sizes_registers_at_checkout_then_cancels_and_stock_returns(page: Page) -> None:
    product, size_a, size_b = two_sizes_in_stock()
    price_a, price_b = price_of(product, size_a), price_of(product, size_b)

    page.goto(f"/products/{product.slug}")
    expect(page.get_by_role("heading", level=1)).to_have_text(product.name)
    stock_a_before = stock_text(page, size_a.label)
    assert stock_a_before == "In stock"

    add_to_cart(page, product, size_a, 1)
    add_to_cart(page, product, size_b, 2)

    page.goto("/cart")
    subtotal = page.locator("#cart-subtotal")
    expect(subtotal).to_have_text(format_vnd(price_a + price_b))
    row_a = page.locator("tr.cart-line").filter(has_text=f"({size_a.label})")
    expect(row_a).to_have_count(1)
    row_a.locator("input[type=number]").fill("2")
    row_a.get_by_role("button", name="Update").click()
    expect(subtotal).to_have_text(format_vnd(2 * price_a + price_b))
    expect(page.locator("#cart-link")).to_contain_text("3")

    page.get_by_role("link", name="Check out").click()
    expect(page).to_have_url(re.compile(r"/account/login\?next_url="))
    page.get_by_role("link", name="Create an account").click()
    expect(page).to_have_url(re.compile(r"/account/register"))

    email = f"buyer-{uuid.uuid4().hex[:12]}@example.com"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Full name").fill("Nguyễn Thị Mai")
    page.get_by_label("Phone").fill(PHONE)
    page.get_by_label("Delivery address").fill(ADDRESS)
    page.get_by_role("button", name="Create account").click()
    expect(page).not_to_have_url(re.compile(r"/account/register"))
    if not re.search(r"/checkout$", page.url):
        page.goto("/checkout")

    summary = page.locator(".summary-lines li")
    expect(summary).to_have_count(2)
    expect(summary.filter(has_text=f"2 × {product.name} ({size_a.label})")).to_contain_text(format_vnd(2 * price_a))
    expect(summary.filter(has_text=f"1 × {product.name} ({size_b.label})")).to_contain_text(format_vnd(price_b))
    expect(page.locator("#subtotal")).to_have_text(format_vnd(2 * price_a + price_b))

    page.locator("#place-order").click()
    expect(page).to_have_url(re.compile(r"/orders/SD-\d{6}$"))
    number = page.url.rsplit("/", 1)[1]
    expect(page.locator("#order-status")).to_have_text("Pending")
    # No thank-you before the order is confirmed: the page says what is happening.
    expect(page.locator("#order-headline")).to_have_text("We have received your order and are confirming it…")
    expect(page.locator("#cart-link .count")).to_have_count(0)

    page.goto(f"/products/{product.slug}")
    expect(page.locator(f'.size[data-size="{size_a.label}"] .stock')).to_have_text(f"Only {size_a.stock - 2} left")

    page.goto("/account/orders")
    order_link = page.get_by_role("link", name=number, exact=True)
    expect(order_link).to_be_visible()
    order_link.click()
    expect(page).to_have_url(re.compile(rf"/orders/{number}$"))
    page.locator("#cancel-order").click()
    expect(page.locator("#order-status")).to_have_text("Cancelled")
    expect(page.locator(".flash")).to_have_text(f"Order {number} was cancelled.")
    expect(page.locator("#cancel-order")).to_have_count(0)

    page.goto(f"/products/{product.slug}")
    expect(page.locator(f'.size[data-size="{size_a.label}"] .stock')).to_have_text(stock_a_before)


# --- a price change between review and submit, on a phone ------------------------------------------

PHONE_VIEWPORT = {"width": 375, "height": 740}
SHIPPING_FEE = 30_000  # the shop's default delivery fee; both totals below stay under free delivery
RAISE = 15_000
PRICES_CHANGED = "Prices changed since you reviewed your order: please check and place it again."


def roomy_size_under(limit: int) -> tuple[DemoProduct, DemoVariant]:
    """A size well above its low-stock threshold, cheaper than `limit`, and not the roomiest size
    of all (the live-order journeys buy that one): one order of it changes no stock label."""
    sizes = sorted(
        ((p, v) for p in PRODUCTS if not p.max_per_customer for v in p.variants),
        key=lambda pv: pv[1].stock - pv[1].low_stock_threshold,
        reverse=True,
    )
    return next((p, v) for p, v in sizes[1:] if price_of(p, v) + RAISE < limit and v.stock - v.low_stock_threshold > 3)


def set_price_override(product: DemoProduct, variant: DemoVariant, price: int | None) -> None:
    """The shop changes a size's price (as staff would), and cached catalogue pages follow."""

    async def change() -> None:
        engine = create_async_engine(os.environ["DATABASE_URL"], poolclass=NullPool)
        redis = Redis.from_url(os.environ["REDIS_URL"])
        try:
            async with engine.begin() as conn:
                product_id = select(Product.id).where(Product.slug == product.slug).scalar_subquery()
                changed = await conn.execute(
                    update(Variant)
                    .where(Variant.product_id == product_id, Variant.label == variant.label)
                    .values(price_override=price)
                )
                assert changed.rowcount == 1
            await invalidate_catalog(redis)
        finally:
            await redis.aclose()
            await engine.dispose()

    # The sync Playwright API keeps an event loop running on this thread: run ours on another.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, change()).result(timeout=60)


def above(upper: Locator, lower: Locator) -> bool:
    top, bottom = upper.bounding_box(), lower.bounding_box()
    assert top is not None and bottom is not None
    return top["y"] + top["height"] <= bottom["y"]


@pytest.mark.allow_console_errors(r"status of 409 .*\(at .*/checkout/?\)")  # the page that shows the change
def test_on_a_phone_a_price_raised_after_review_is_shown_and_placed_only_when_confirmed(
    new_context: Callable[..., BrowserContext], console_errors: BrowserProblems
) -> None:
    product, size = roomy_size_under(500_000 - SHIPPING_FEE)
    old_price = price_of(product, size)
    new_price = old_price + RAISE
    context = console_errors.watch_context(new_context(viewport=PHONE_VIEWPORT, has_touch=True, is_mobile=True))
    page = context.new_page()

    page.goto("/account/register")
    page.get_by_label("Email").fill(f"review-{uuid.uuid4().hex[:12]}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Full name").fill("Lê Thu Hà")
    page.get_by_label("Phone").fill(PHONE)
    page.get_by_label("Delivery address").fill(ADDRESS)
    page.get_by_role("button", name="Create account").click()
    expect(page).not_to_have_url(re.compile(r"/account/register"))

    page.goto(f"/products/{product.slug}")
    add_to_cart(page, product, size, 1)
    page.goto("/checkout")
    line = page.locator(".summary-lines li").filter(has_text=f"1 × {product.name} ({size.label})")
    place = page.locator("#place-order")
    expect(line).to_contain_text(format_vnd(old_price))
    expect(place).to_have_text(f"Place order · {format_vnd(old_price + SHIPPING_FEE)}")
    # One column on a phone: the shopper passes what they buy before the button that buys it.
    assert above(page.locator("#summary-heading"), place) and above(page.locator("#total"), place)

    try:
        set_price_override(product, size, new_price)  # raised while the shopper reads the page
        place.tap()
        expect(page).to_have_url(re.compile(r"/checkout/?$"))
        expect(page.locator("#checkout-error")).to_have_text(PRICES_CHANGED)
        changed = page.locator(".summary-lines li.changed")
        expect(changed).to_have_count(1)
        expect(changed.locator("del")).to_have_text(format_vnd(old_price))
        expect(changed.locator("ins")).to_have_text(format_vnd(new_price))
        expect(page.locator("#total del")).to_have_text(format_vnd(old_price + SHIPPING_FEE))
        expect(page.locator("#total ins")).to_have_text(format_vnd(new_price + SHIPPING_FEE))
        expect(place).to_have_text(f"Place order · {format_vnd(new_price + SHIPPING_FEE)}")
        assert above(changed, place)
        expect(page.get_by_label("Delivery address")).to_have_value(ADDRESS)  # nothing to type again
        history = context.new_page()  # another tab: nothing was placed
        history.goto("/account/orders")
        expect(history.locator(".empty")).to_contain_text("You haven't ordered anything yet.")
        history.close()

        place.tap()  # confirmed at the new price
        expect(page).to_have_url(re.compile(r"/orders/SD-\d{6}$"))
        expect(page.locator("#order-total")).to_have_text(format_vnd(new_price + SHIPPING_FEE))
    finally:
        set_price_override(product, size, size.price_override)
