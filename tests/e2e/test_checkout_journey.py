"""A visitor's whole purchase: add two sizes, change the cart, register at checkout, order, cancel.

Prices and stock come from the seeded demo catalogue (sweetdream.catalog.demo), never from the
page itself. Cancelling must hand the reserved stock back, which the product page shows.
"""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from sweetdream.catalog.demo import PRODUCTS, DemoProduct, DemoVariant
from sweetdream.catalog.money import format_vnd

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
