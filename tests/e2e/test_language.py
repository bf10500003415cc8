"""A Vietnamese shopper switches to English and back, then buys: browse -> cart -> checkout -> order
page, every page in one language only (no string of the other language), and axe finds nothing.

"The other language" is read from the catalog itself: no text a person reads on an English page
may be one of the Vietnamese translations, and none on a Vietnamese page one of the English sources
(tests/integration/test_languages.py's checker)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import Browser, Page, expect

from sweetdream.catalog.demo import PRODUCTS
from tests.e2e.axe import axe_violations
from tests.e2e.browser import BrowserProblems
from tests.integration.test_languages import ShownText, english_in, vi_catalog

PASSWORD = "correct horse battery"


def vietnamese_in(page: str) -> list[str]:
    """Text of an English page that is one of the Vietnamese translations."""
    translations = {t for source, t in vi_catalog().items() if t != source and "%(" not in t and "<" not in t}
    parser = ShownText()
    parser.feed(page)
    return [text for text in parser.shown if text in translations]


def in_one_language(page: Page, language: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", language)
    content = page.content()
    other = english_in(content) if language == "vi" else vietnamese_in(content)
    assert other == [], f"{page.url} ({language}) shows {other}"


def a_product_in_stock() -> Any:
    for product in PRODUCTS:
        if not product.max_per_customer and any(v.stock >= 3 for v in product.variants):
            return product
    raise AssertionError("no product in stock in the demo catalogue")


def test_a_shopper_switches_language_and_buys_in_vietnamese(
    browser: Browser, base_url: str, console_errors: BrowserProblems
) -> None:
    # A Vietnamese browser (the suite's contexts ask for English); axe is injected, hence bypass_csp.
    context = console_errors.watch_context(browser.new_context(base_url=base_url, locale="vi-VN", bypass_csp=True))
    try:
        buy_in_vietnamese(context.new_page())
    finally:
        context.close()


def buy_in_vietnamese(page: Page) -> None:
    found: list[str] = []

    page.goto("/")
    in_one_language(page, "vi")
    expect(page.get_by_role("link", name="Tất cả sản phẩm").first).to_be_visible()
    page.get_by_role("button", name="English").click()
    in_one_language(page, "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Fresh cakes, baked every morning")
    page.goto("/products")
    in_one_language(page, "en")
    found += axe_violations(page)
    page.get_by_role("button", name="Tiếng Việt").click()
    expect(page).to_have_url(re.compile(r"/products$"))
    in_one_language(page, "vi")
    found += axe_violations(page)

    product = a_product_in_stock()
    page.goto(f"/products/{product.slug}")
    in_one_language(page, "vi")
    found += axe_violations(page)
    page.get_by_role("button", name="Thêm vào giỏ").click()
    expect(page.locator("#add-result")).to_contain_text("Đã thêm")
    page.goto("/cart")
    in_one_language(page, "vi")
    found += axe_violations(page)
    page.get_by_role("link", name="Thanh toán").click()
    page.get_by_role("link", name="Tạo tài khoản").click()
    in_one_language(page, "vi")
    page.get_by_label("Email").fill(f"lang-{uuid.uuid4().hex[:12]}@example.com")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_label("Họ và tên").fill("Trần Văn Bình")
    page.get_by_label("Số điện thoại").fill("0901234567")
    page.get_by_label("Địa chỉ giao hàng").fill("12 Lê Lợi, Quận 1")
    page.get_by_role("button", name="Tạo tài khoản").click()
    expect(page).not_to_have_url(re.compile(r"/account/register"))
    if not re.search(r"/checkout/?$", page.url):
        page.goto("/checkout")
    in_one_language(page, "vi")
    found += axe_violations(page)
    page.locator("#place-order").click()
    expect(page).to_have_url(re.compile(r"/orders/SD-\d{6}$"))
    expect(page.locator("#order-status")).to_have_text(re.compile("Chờ xử lý|Đã xác nhận"))
    in_one_language(page, "vi")
    found += axe_violations(page)

    # And the same order page in English, once switched: no Vietnamese left in the shop's words.
    page.get_by_role("button", name="English").click()
    in_one_language(page, "en")
    expect(page.locator("h2", has_text="Timeline")).to_be_visible()
    assert not found, f"{len(found)} axe violation(s):\n" + "\n".join(found)
