"""The admin's catalog in a browser: an admin creates a product with two sizes and an image (the
development upload: no bucket in the e2e stack), it is in the catalog, and a shopper buys it."""

from __future__ import annotations

import io
import re
import uuid

from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_accessibility import PASSWORD, create_admin

ORDER_URL = re.compile(r"/orders/(SD-\d{6})$")


def sign_in(page: Page, email: str) -> None:
    page.goto("/account/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Admin", exact=True)).to_be_visible()


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (240, 200, 150)).save(out, "JPEG")
    return out.getvalue()


def test_admin_creates_a_product_with_two_sizes_and_an_image_and_a_shopper_buys_it(
    page: Page, browser: Browser, base_url: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    name = f"Bánh Bò Nướng {tag}"
    admin_email = f"catalog-admin-{tag}@example.com"
    create_admin(admin_email)
    sign_in(page, admin_email)

    page.goto("/admin/products")
    page.get_by_role("link", name="New product").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Category").select_option(label="Bánh mì ngọt")
    page.get_by_label("Description").fill("Bánh bò nướng lá dứa. Pandan honeycomb cake.")
    page.locator("#size-0-label").fill("Nhỏ")
    page.locator("#size-0-price").fill("85.000")
    page.locator("#size-0-stock").fill("6")
    page.locator("#size-1-label").fill("Lớn")
    page.locator("#size-1-price").fill("160000")
    page.locator("#size-1-stock").fill("4")
    page.get_by_role("button", name="Create product").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.get_by_text("is in the shop.")).to_be_visible()
    slug = f"banh-bo-nuong-{tag}"
    expect(page.get_by_role("link", name=f"/products/{slug}")).to_be_visible()

    page.get_by_label("Add an image").set_input_files(
        files=[{"name": "banh-bo.jpg", "mimeType": "image/jpeg", "buffer": photo()}]
    )
    page.get_by_role("button", name="Upload image").click()
    expect(page.get_by_text("Image added.")).to_be_visible()
    expect(page.locator(".admin-images img")).to_have_count(1)

    # In the catalog, for a visitor, at once.
    shopper = browser.new_context(base_url=base_url)
    try:
        shop = shopper.new_page()
        shop.goto(f"/products?q={tag}")
        card = shop.locator(".card", has_text=name)
        expect(card).to_be_visible()
        expect(card).to_contain_text("₫85,000")
        expect(card.locator("img")).to_have_attribute("src", re.compile(r"^/media/products/.+\.jpg$"))
        card.locator("a").click()
        expect(shop.get_by_role("heading", level=1)).to_have_text(name)

        # A shopper buys the large size.
        shop.goto("/account/register")
        shop.get_by_label("Email").fill(f"buyer-{tag}@example.com")
        shop.get_by_label("Password").fill(PASSWORD)
        shop.get_by_label("Full name").fill("Trần Văn Bình")
        shop.get_by_label("Phone").fill("0912345678")
        shop.get_by_label("Delivery address").fill("8 Hai Bà Trưng, Quận 1")
        shop.get_by_role("button", name="Create account").click()
        expect(shop).not_to_have_url(re.compile(r"/account/register"))
        shop.goto(f"/products/{slug}")
        shop.locator("#variant_id").select_option(label="Lớn — ₫160,000")
        shop.get_by_role("button", name="Add to cart").click()
        expect(shop.locator("#add-result")).to_contain_text("Added")
        shop.goto("/checkout")
        shop.locator("#place-order").click()
        expect(shop).to_have_url(ORDER_URL)
        expect(shop.locator("main")).to_contain_text(name)
    finally:
        shopper.close()

    # The admin sees the sale in the size's ledger.
    page.reload()
    page.get_by_role("link", name="Lớn", exact=True).click()
    ledger = page.locator("#ledger ~ .table-scroll")
    expect(ledger).to_contain_text("Order")
    expect(ledger).to_contain_text("-1")

    # A delivery of 5 small ones, through the ledger (HTMX swaps only the stock section).
    page.get_by_label("Why").first.select_option(label="Delivery")
    page.locator(".stock-form").first.get_by_label("Units (delivered, wasted, or counted on the shelf)").fill("5")
    page.get_by_role("button", name="Adjust stock").first.click()
    expect(page.get_by_role("heading", name="Nhỏ: 11 in stock")).to_be_visible()
    expect(page.locator("#ledger ~ .table-scroll")).to_contain_text("+5")

    # Withdrawn, it leaves the shop (and the other journeys find the catalog as seeded).
    page.get_by_role("button", name="Withdraw from the shop").click()
    expect(page.get_by_text("Withdrawn: shoppers don't see it.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/admin/products/[0-9a-f-]{36}$"))
    assert page.request.get(f"{base_url}/products/{slug}").status == 404
