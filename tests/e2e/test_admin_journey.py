"""The admin's day in one journey (issue #10), two browsers open at once: the admin's and a shopper's.

The admin signs in, creates a product with two sizes, adds its image from a browser with JavaScript
off (the development upload: no bucket in the e2e stack), and it is in the catalog. A shopper buys
it; the order appears at the top of the admin's open list and the dashboard's "today" without a
reload; the admin marks it preparing then shipped and the shopper's open order page follows each
move live. The sale is in the size's stock ledger, a delivery goes through it, the product is
withdrawn. The admin promotes that shopper, who opens the dashboard on their very next request,
and the audit log shows every one of these actions by this admin. axe-core finds nothing on each
admin page on the way (loaded into the admin's pages by an init script, which the shop's CSP does
not block: the admin's pages keep their real policy, and any violation fails the test).
"""

from __future__ import annotations

import io
import os
import re
import time
import uuid
from collections.abc import Callable

import pytest
import redis
from PIL import Image
from playwright.sync_api import BrowserContext, Locator, Page, expect

from sweetdream.orders import live
from tests.e2e.axe import AXE_SCRIPT, axe_violations
from tests.e2e.browser import BrowserProblems
from tests.e2e.test_accessibility import PASSWORD, create_admin
from tests.e2e.test_live_orders import (
    WAIT_SECONDS,
    assert_not_reloaded,
    mark_page,
    order_id,
    run_worker,
    wait_for_watchers,
)

NewContext = Callable[..., BrowserContext]
ORDER_URL = re.compile(r"/orders/(SD-\d{6})$")
LOCAL_IMAGE = re.compile(r"^/media/products/[0-9a-f-]{36}/[0-9a-f]{32}\.jpg$")  # a name of ours, not the file's


def wait_for_admin_streams(count: int) -> None:
    """Until `count` admin pages (list or dashboard) listen on the admin channel."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            ((_, listening),) = client.pubsub_numsub(live.ADMIN_CHANNEL)
            if listening >= count:
                return
            assert time.monotonic() < deadline, f"{listening} admin page(s) listening, expected {count}"
            time.sleep(0.05)
    finally:
        client.close()


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (240, 200, 150)).save(out, "JPEG")
    return out.getvalue()


def assert_accessible(page: Page) -> None:
    """axe-core on the page as it is now (the admin's pages carry axe from their context's init script)."""
    found = axe_violations(page)
    assert not found, "axe found:\n" + "\n".join(found)


def changed(entry: Locator, field: str) -> Locator:
    """The row of an audit entry's "what changed" table for one field (as the page names it)."""
    return entry.locator(".audit-diff tbody tr").filter(has=entry.page.get_by_role("rowheader", name=field, exact=True))


def sign_in(page: Page, email: str) -> None:
    page.goto("/account/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Admin", exact=True)).to_be_visible()


def register(page: Page, email: str, name: str) -> None:
    page.goto("/account/register")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Phone").fill("0912345678")
    page.get_by_label("Delivery address").fill("8 Hai Bà Trưng, Quận 1")
    page.get_by_role("button", name="Create account").click()
    expect(page).not_to_have_url(re.compile(r"/account/register"))


@pytest.mark.allow_console_errors(r"status of 403 .*\(at .*/admin\)")  # the shopper, before the promotion
def test_the_admin_runs_the_shop_from_the_browser_while_a_shopper_watches(
    new_context: NewContext, console_errors: BrowserProblems, base_url: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    name = f"Bánh Bò Nướng {tag}"
    slug = f"banh-bo-nuong-{tag}"
    admin_email = f"journey-admin-{tag}@example.com"
    shopper_email = f"journey-shopper-{tag}@example.com"

    # --- the admin signs in and creates a product with two sizes ------------------------------------
    create_admin(admin_email)
    admin_context = console_errors.watch_context(new_context())
    admin_context.add_init_script(path=str(AXE_SCRIPT))
    admin = admin_context.new_page()
    sign_in(admin, admin_email)
    admin.goto("/admin")
    assert_accessible(admin)
    admin.get_by_role("link", name="Products", exact=True).click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Products")
    assert_accessible(admin)
    admin.get_by_role("link", name="New product").click()
    assert_accessible(admin)
    admin.get_by_label("Name", exact=True).fill(name)
    admin.get_by_label("Category").select_option(label="Bánh mì ngọt")
    admin.get_by_label("Description").fill("Bánh bò nướng lá dứa. Pandan honeycomb cake.")
    admin.locator("#size-0-label").fill("Nhỏ")
    admin.locator("#size-0-price").fill("85.000")
    admin.locator("#size-0-stock").fill("6")
    admin.locator("#size-1-label").fill("Lớn")
    admin.locator("#size-1-price").fill("160000")
    admin.locator("#size-1-stock").fill("4")
    admin.get_by_role("button", name="Create product").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text(name)
    expect(admin.locator(".flash")).to_have_text(f"{name} is in the shop.")
    expect(admin.get_by_role("link", name=f"/products/{slug}")).to_be_visible()
    expect(admin.get_by_text("No image yet.")).to_be_visible()
    assert_accessible(admin)
    product_url = admin.url

    # --- its image, from a browser with JavaScript off (the same admin's session) -------------------
    no_script = console_errors.watch_context(
        new_context(storage_state=admin_context.storage_state(), java_script_enabled=False)
    )
    plain = no_script.new_page()
    plain.goto(product_url)
    plain.get_by_label("Add an image").set_input_files(
        files=[{"name": "banh-bo.jpg", "mimeType": "image/jpeg", "buffer": photo()}]
    )
    plain.get_by_role("button", name="Upload image").click()
    expect(plain).to_have_url(f"{product_url}#images")
    expect(plain.locator(".flash")).to_have_text("Image added.")
    expect(plain.locator(".admin-images img")).to_have_count(1)
    expect(plain.locator(".admin-images img")).to_have_attribute("alt", f"Image 1 of {name}")
    no_script.close()

    # --- it is in the catalog, with its image, for a visitor at once ------------------------------
    shopper_context = console_errors.watch_context(new_context())
    shop = shopper_context.new_page()
    shop.goto(f"/products?q={tag}")
    card = shop.locator(".card", has_text=name)
    expect(card).to_contain_text("₫85,000")
    expect(card.locator("img")).to_have_attribute("src", LOCAL_IMAGE)
    card.locator("a").click()
    expect(shop.get_by_role("heading", level=1)).to_have_text(name)

    # The visitor registers; as a customer, the dashboard is closed to them.
    register(shop, shopper_email, "Trần Bảo Ngọc")
    shop.goto("/admin")
    expect(shop.locator("main")).to_contain_text("staff only")
    shop.goto(f"/products/{slug}")
    shop.locator("#variant_id").select_option(label="Lớn — ₫160,000")
    shop.get_by_role("button", name="Add to cart").click()
    expect(shop.locator("#add-result")).to_contain_text("Added")
    shop.goto("/checkout")

    # --- the admin's list and dashboard are open, listening, when the shopper places the order ----
    dashboard = admin_context.new_page()
    dashboard.goto("/admin")
    today_before = int(dashboard.locator("#today-orders").inner_text())
    admin.goto("/admin/orders")
    assert_accessible(admin)
    mark_page(admin)
    mark_page(dashboard)
    wait_for_admin_streams(2)

    shop.locator("#place-order").click()
    expect(shop).to_have_url(ORDER_URL)
    number = shop.url.rsplit("/", 1)[1]
    expect(shop.locator("#order-status")).to_have_text("Pending")
    expect(shop.locator("main")).to_contain_text(name)

    newest = admin.locator("tbody.order-row").first
    expect(newest).to_contain_text(number)
    expect(newest).to_have_class(re.compile(r"\bis-new\b"))  # the visual cue
    expect(newest).to_contain_text("Pending")
    expect(newest).to_contain_text("Trần Bảo Ngọc₫190,000")  # ₫160,000 and ₫30,000 delivery
    expect(dashboard.locator("#today-orders")).to_have_text(str(today_before + 1))
    assert_not_reloaded(admin)
    assert_not_reloaded(dashboard)
    dashboard.close()

    run_worker()  # cash on delivery: the worker confirms it, and the admin's row follows
    expect(admin.locator("tbody.order-row", has_text=number)).to_contain_text("Confirmed")
    expect(shop.locator("#order-status")).to_have_text("Confirmed")
    assert_not_reloaded(admin)

    # --- the admin marks it preparing then shipped; the shopper's open page follows -----------------
    admin.get_by_role("link", name=number).click()
    expect(admin.get_by_role("heading", name=f"Order {number}")).to_be_visible()
    expect(admin.locator("#order-status")).to_have_text("Confirmed")
    assert_accessible(admin)
    wait_for_watchers(order_id(number), 1)
    mark_page(shop)

    admin.get_by_label("Note (optional)").fill("Oven 1, ready by noon")
    admin.get_by_role("button", name="Start preparing").click()
    expect(admin.locator(".flash")).to_contain_text(f"Order {number} is now being prepared.")
    expect(admin.locator("#order-status")).to_have_text("Being prepared")
    expect(admin.locator(".timeline")).to_contain_text("Oven 1, ready by noon")
    expect(shop.locator("#order-status")).to_have_text("Being prepared")

    admin.get_by_role("button", name="Mark shipped").click()
    expect(admin.locator(".flash")).to_contain_text(f"Order {number} is now shipped.")
    expect(shop.locator("#order-status")).to_have_text("Shipped")
    expect(shop.locator("#timeline li").last).to_contain_text("Shipped")
    assert_not_reloaded(shop)
    assert_accessible(admin)

    admin.get_by_role("link", name="Packing slip").click()
    expect(admin.get_by_role("heading", name=f"SweetDream · Order {number}")).to_be_visible()
    expect(admin.locator("main")).to_contain_text(name)
    assert_accessible(admin)

    # --- the sale is in the size's ledger; a delivery goes through it; then it is withdrawn ---------
    admin.goto(product_url)
    admin.get_by_role("link", name="Lớn", exact=True).click()
    ledger = admin.locator("#ledger ~ .table-scroll")
    expect(ledger).to_contain_text(number)
    expect(ledger).to_contain_text("-1")
    expect(admin.get_by_role("heading", name="Lớn: 3 in stock")).to_be_visible()
    assert_accessible(admin)

    admin.get_by_label("Why").first.select_option(label="Delivery")
    admin.locator(".stock-form").first.get_by_label("Units (delivered, wasted, or counted on the shelf)").fill("5")
    admin.get_by_role("button", name="Adjust stock").first.click()  # HTMX swaps only the stock section
    expect(admin.get_by_role("heading", name="Nhỏ: 11 in stock")).to_be_visible()
    expect(admin.locator("#ledger ~ .table-scroll")).to_contain_text("+5")

    admin.get_by_role("button", name="Withdraw from the shop").click()
    expect(admin.get_by_text("Withdrawn: shoppers don't see it.")).to_be_visible()
    expect(admin).to_have_url(product_url)
    assert admin.request.get(f"{base_url}/products/{slug}").status == 404  # and the other journeys see the seed

    # --- the admin promotes the shopper, who opens the dashboard on their next request ---------------
    admin.get_by_role("link", name="Customers", exact=True).click()
    admin.get_by_label("Email, name or phone").fill(f"journey-shopper-{tag}")  # HTMX swaps the list as they type
    row = admin.locator("#customer-results tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(shopper_email)
    expect(row).to_contain_text("₫")  # their order counts toward the total spent
    assert_accessible(admin)
    row.get_by_role("link", name="Trần Bảo Ngọc").click()
    expect(admin.get_by_role("heading", level=1)).to_contain_text("Trần Bảo Ngọc")
    expect(admin.get_by_role("link", name=number)).to_be_visible()
    assert_accessible(admin)

    admin.get_by_role("button", name="Promote to admin").click()  # no reason: the browser asks for one
    expect(admin.get_by_label("Why make this person an admin?")).to_be_focused()
    admin.get_by_label("Why make this person an admin?").fill("Runs the Saturday shift")
    admin.get_by_role("button", name="Promote to admin").click()
    expect(admin.locator(".flash")).to_contain_text(f"{shopper_email} is now an admin")
    expect(admin.get_by_role("button", name="Demote to customer")).to_be_visible()

    shop.goto("/admin")  # the next request: no sign-out, no sign-in
    expect(shop.get_by_role("heading", name="Dashboard")).to_be_visible()

    # --- the audit log shows all of it, each by this admin ---------------------------------------------
    admin.get_by_role("link", name="Audit log", exact=True).click()
    admin.get_by_label("Actor's email (or cli)").fill(admin_email)
    admin.get_by_role("button", name="Filter").click()
    entries = admin.locator(".audit-entry")
    expect(entries.locator(".audit-action")).to_have_text(
        [
            "user.promote",
            "product.withdraw",
            "stock.adjust",
            "order.move",
            "order.move",
            "product.update",
            "product.create",
        ]
    )
    expect(entries.locator(".audit-actor")).to_have_text([admin_email] * 7)
    assert_accessible(admin)

    promote, withdraw, delivery, shipped, preparing, image, created = (entries.nth(i) for i in range(7))
    expect(promote).to_contain_text(f"Target: {shopper_email}")
    expect(changed(promote, "Role")).to_have_text(re.compile(r"^Role\s*CUSTOMER\s*ADMIN$"))
    expect(promote.locator(".audit-note")).to_have_text("Note: Runs the Saturday shift")
    expect(withdraw).to_contain_text(f"Target: {name}")
    expect(changed(withdraw, "On sale")).to_have_text(re.compile(r"^On sale\s*yes\s*no$"))
    expect(delivery).to_contain_text(f"Target: {name} (Nhỏ)")
    expect(changed(delivery, "Stock")).to_have_text(re.compile(r"^Stock\s*6\s*11$"))
    expect(changed(delivery, "Change")).to_have_text(re.compile(r"^Change\s*—\s*5$"))
    expect(shipped).to_contain_text(f"Target: {number}")
    expect(changed(shipped, "Status")).to_have_text(re.compile(r"^Status\s*Being prepared\s*Shipped$"))
    expect(preparing).to_contain_text(f"Target: {number}")
    expect(changed(preparing, "Status")).to_have_text(re.compile(r"^Status\s*Confirmed\s*Being prepared$"))
    expect(preparing.locator(".audit-note")).to_have_text("Note: Oven 1, ready by noon")
    expect(image).to_contain_text(f"Target: {name}")
    expect(changed(image, "Images")).to_have_text(re.compile(rf'^Images\s*\[\]\s*\["{LOCAL_IMAGE.pattern[1:-1]}"\]$'))
    expect(created).to_contain_text(f"Target: {name}")
    expect(changed(created, "Address (slug)")).to_have_text(re.compile(rf"^Address \(slug\)\s*—\s*{slug}$"))
    sku = f"BANH-BO-NUONG-{tag.upper()}"
    sizes = (
        f'[{{"label": "Nhỏ", "low_stock_threshold": 3, "price": 85000, "sku": "{sku}-NHO", "starts_at": null}}, '
        f'{{"label": "Lớn", "low_stock_threshold": 3, "price": 160000, "sku": "{sku}-LON", "starts_at": null}}]'
    )
    expect(changed(created, "Sizes").locator("ins")).to_have_text(sizes)
