"""What a shopper sees while browsing the catalogue: filters, search, product pages, errors, phone.

Expected numbers come from the seeded demo catalogue (sweetdream.catalog.demo), never from the
page itself, so a wrong count or a missing product fails the journey.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Response, Route, expect

from sweetdream.catalog.demo import CATEGORIES, PRODUCTS, DemoProduct, DemoVariant
from sweetdream.catalog.money import format_vnd
from sweetdream.catalog.services import search_text_for
from sweetdream.catalog.text import search_words
from tests.e2e.browser import BrowserProblems

PAGE_SIZE = 24  # Settings.page_size
CATEGORY_NAMES = {c.slug: c.name for c in CATEGORIES}
PHONE = {"width": 375, "height": 740}
TALL_PHONE = {"width": 390, "height": 844}

NewContext = Callable[..., BrowserContext]


def products_in(category: str) -> list[DemoProduct]:
    return [p for p in PRODUCTS if p.category_slug == category]


def count_text(n: int, category: str | None = None) -> str:
    text = f"{n} product{'' if n == 1 else 's'}"
    return f"{text} in {CATEGORY_NAMES[category]}" if category else text


def matching(query: str) -> list[DemoProduct]:
    """The search rule: every word of the query starts a word of the folded name, category or description."""
    wanted = search_words(query)
    found = []
    for p in PRODUCTS:
        words = re.findall(r"[0-9a-z]+", search_text_for(p.name, p.description, CATEGORY_NAMES[p.category_slug]))
        if all(any(w.startswith(q) for w in words) for q in wanted):
            found.append(p)
    return found


def sorted_newest(products: list[DemoProduct]) -> list[str]:
    """Names in the grid's default order (newest first), first page only."""
    return [p.name for p in sorted(products, key=lambda p: p.created_days_ago)][:PAGE_SIZE]


def from_price(product: DemoProduct) -> int:
    """What a card shows and the price filter compares: the cheapest size."""
    return min(v.price_override if v.price_override is not None else product.price for v in product.variants)


def first_with(predicate: Callable[[DemoVariant], bool]) -> tuple[DemoProduct, DemoVariant]:
    return next((p, v) for p in PRODUCTS for v in p.variants if predicate(v))


def is_fragment_request(response: Response) -> bool:
    return "/products" in response.url and response.request.headers.get("hx-request") == "true"


def results_count(page: Page) -> Locator:
    return page.locator("#results .result-count")


# --- filter with HTMX ------------------------------------------------------------------------------


def test_category_filter_swaps_the_grid_without_a_page_load_and_back_restores_it(page: Page) -> None:
    cakes = products_in("banh-kem")
    page.goto("/products")
    expect(results_count(page)).to_have_text(count_text(len(PRODUCTS)))
    page.evaluate("window.__marker = 1")

    with page.expect_response(is_fragment_request) as fragment:
        page.locator("#category").select_option("banh-kem")
    assert fragment.value.status == 200

    expect(page).to_have_url(re.compile(r"/products\?(.*&)?category=banh-kem(&|$)"))
    expect(results_count(page)).to_have_text(count_text(len(cakes), "banh-kem"))
    expect(page.locator("#results .card-name")).to_have_text(sorted_newest(cakes))
    assert page.evaluate("window.__marker") == 1, "the filter reloaded the whole page"
    expect(page.locator("header .brand")).to_have_count(1)  # the fragment did not nest a second layout
    expect(page.locator("#filters")).to_have_count(1)

    page.go_back()
    expect(page).to_have_url(re.compile(r"/products$"))
    expect(results_count(page)).to_have_text(count_text(len(PRODUCTS)))
    expect(page.locator("#results .card")).to_have_count(PAGE_SIZE)
    expect(page.locator("#category")).to_have_value("")


@pytest.mark.allow_console_errors(r"404 .*\(at .*/favicon\.ico\)")  # the bare fragment has no <link rel=icon>
def test_back_from_a_product_to_a_filtered_list_shows_the_whole_page(page: Page) -> None:
    """A URL pushed by HTMX was answered with a fragment; going back to it must show the whole page."""
    cookies = products_in("banh-quy")
    page.goto("/products")
    with page.expect_response(is_fragment_request):
        page.locator("#category").select_option("banh-quy")
    expect(results_count(page)).to_have_text(count_text(len(cookies), "banh-quy"))

    page.locator("#results .card a").first.click()
    expect(page.locator("h1")).to_have_text(sorted_newest(cookies)[0])

    page.go_back()  # waits for the document's load event: what follows is already on screen
    expect(page).to_have_url(re.compile(r"category=banh-quy"))
    expect(page.locator("header .brand")).to_be_visible(timeout=2_000)
    expect(page.locator("#filters")).to_be_visible(timeout=2_000)
    expect(results_count(page)).to_have_text(count_text(len(cookies), "banh-quy"))


def hold_first_fragment_answer(page: Page) -> list[Route]:
    """The first HTMX request for the grid waits (as on a slow phone network) until the test
    lets it through with ``.continue_()``; later ones go straight to the server."""
    held: list[Route] = []
    seen: list[str] = []

    def handle(route: Route) -> None:
        if route.request.headers.get("hx-request") == "true" and not seen:
            seen.append(route.request.url)
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(r"/products(\?|$)"), handle)
    return held


def wait_for(page: Page, held: list[Route], timeout: float = 10.0) -> Route:
    deadline = time.monotonic() + timeout
    while not held:
        assert time.monotonic() < deadline, "the filter sent no request"
        page.wait_for_timeout(20)  # lets Playwright deliver the request to the route handler
    return held.pop()


def test_typing_a_price_while_the_last_filter_is_answered_keeps_every_digit(page: Page) -> None:
    """The answer to one filter lands while the shopper types the next price: nothing typed is lost."""
    at_least_100k = [p for p in PRODUCTS if from_price(p) >= 100_000]
    in_range = [p for p in PRODUCTS if 100_000 <= from_price(p) <= 500_000]
    assert 0 < len(in_range) < len(at_least_100k) < len(PRODUCTS)  # the demo data this test relies on
    page.goto("/products")
    held = hold_first_fragment_answer(page)

    page.locator("#min_price").press_sequentially("100000", delay=20)
    page.locator("#min_price").press("Tab")  # change: the form asks for min_price=100000 ...
    answer = wait_for(page, held)
    assert "min_price=100000" in answer.request.url
    expect(page.locator("#max_price")).to_be_focused()
    page.keyboard.type("500", delay=60)  # ... and the shopper types on
    answer.continue_()  # the answer arrives mid-typing
    expect(results_count(page)).to_have_text(count_text(len(at_least_100k)))
    page.keyboard.type("000", delay=60)

    assert page.locator("#max_price").input_value() == "500000"
    assert page.locator("#min_price").input_value() == "100000"
    expect(page.locator("#max_price")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page).to_have_url(re.compile(r"[?&]max_price=500000(&|$)"))
    expect(results_count(page)).to_have_text(count_text(len(in_range)))
    shown = [int(re.sub(r"\D", "", text)) for text in page.locator("#results .card-price").all_text_contents()]
    assert len(shown) == min(PAGE_SIZE, len(in_range)), shown
    assert all(100_000 <= price <= 500_000 for price in shown), shown


# --- search as you type ----------------------------------------------------------------------------


def test_search_as_you_type_folds_vietnamese_diacritics(page: Page) -> None:
    expected = matching("banh kem")
    named_banh_kem = [p.name for p in expected if "bánh kem" in p.name.lower()]
    assert 0 < len(expected) <= PAGE_SIZE and len(named_banh_kem) >= 10  # the demo data this test relies on
    page.goto("/products")
    page.evaluate("window.__marker = 1")

    page.locator("#q").press_sequentially("banh kem", delay=40)
    expect(results_count(page)).to_have_text(f"{len(expected)} results for “banh kem”")
    expect(page).to_have_url(re.compile(r"[?&]q=banh(\+|%20)kem(&|$)"))
    names = page.locator("#results .card-name").all_text_contents()
    assert sorted(names) == sorted(p.name for p in expected)
    assert set(named_banh_kem) <= set(names)  # every "Bánh kem …" is found without typing the accents
    assert page.evaluate("window.__marker") == 1, "typing reloaded the whole page"

    page.locator("#q").fill("")
    page.locator("#q").press_sequentially("bánh kem", delay=40)
    expect(results_count(page)).to_have_text(f"{len(expected)} results for “bánh kem”")
    assert sorted(page.locator("#results .card-name").all_text_contents()) == sorted(p.name for p in expected)


def test_search_as_you_type_ranks_like_the_header_search(page: Page) -> None:
    expected = matching("banh kem")
    page.goto("/")
    page.locator("#header-q").fill("banh kem")
    page.locator(".header-search").get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"/products\?q=banh(\+|%20)kem$"))
    expect(results_count(page)).to_have_text(f"{len(expected)} results for “banh kem”")
    best_match = page.locator("#results .card-name").all_text_contents()
    assert best_match[0].lower().startswith("bánh kem")

    page.goto("/products")
    page.locator("#q").press_sequentially("banh kem", delay=40)
    expect(results_count(page)).to_have_text(f"{len(expected)} results for “banh kem”")
    assert page.locator("#results .card-name").all_text_contents() == best_match
    expect(page.locator("#sort")).to_have_value("relevance", timeout=1_000)


def test_search_for_an_unknown_word_suggests_what_to_try(page: Page) -> None:
    page.goto("/products")
    page.locator("#q").press_sequentially("pizza", delay=20)
    expect(results_count(page)).to_have_text("0 results for “pizza”")
    expect(page.locator("#results .empty")).to_contain_text("Nothing matches “pizza”")


# --- product pages ---------------------------------------------------------------------------------


def test_open_a_product_from_the_grid(page: Page) -> None:
    newest = min(PRODUCTS, key=lambda p: p.created_days_ago)
    page.goto("/products")
    page.locator("#results .card a", has_text=newest.name).click()

    expect(page).to_have_url(re.compile(f"/products/{newest.slug}$"))
    expect(page.locator("h1")).to_have_text(newest.name)
    expect(page.locator("#price")).to_have_text(format_vnd(newest.price))
    expect(page.locator(".sizes .size-label")).to_have_text([v.label for v in newest.variants])


def test_product_page_shows_sold_out_and_low_stock_sizes(page: Page) -> None:
    product, sold_out = first_with(lambda v: v.stock == 0)
    response = page.goto(f"/products/{product.slug}")
    assert response is not None and response.status == 200
    expect(page.locator("h1")).to_have_text(product.name)
    size = page.locator(f'.sizes .size[data-size="{sold_out.label}"]')
    expect(size.locator(".stock")).to_have_text("Sold out")
    expect(size).to_have_class(re.compile(r"\bsoldout\b"))

    product, low = first_with(lambda v: 1 <= v.stock <= min(2, v.low_stock_threshold))
    page.goto(f"/products/{product.slug}")
    expect(page.locator("h1")).to_have_text(product.name)
    size = page.locator(f'.sizes .size[data-size="{low.label}"]')
    expect(size.locator(".stock")).to_have_text(f"Only {low.stock} left")
    expect(size.locator(".size-price")).to_have_text(format_vnd(low.price_override or product.price))


@pytest.mark.allow_console_errors(r"status of 404 .*\(at .*/products/does-not-exist\)")
def test_unknown_product_is_a_404_in_the_shop_layout(page: Page) -> None:
    response = page.goto("/products/does-not-exist")
    assert response is not None and response.status == 404
    expect(page.locator("header .brand")).to_be_visible()
    expect(page.locator("h1")).to_have_text(re.compile("not found", re.IGNORECASE))
    expect(page.get_by_role("link", name="Browse products")).to_be_visible()


# --- phone -----------------------------------------------------------------------------------------


def test_phone_catalog_fits_the_screen_and_a_product_opens_by_tapping(
    new_context: NewContext, console_errors: BrowserProblems
) -> None:
    context = console_errors.watch_context(new_context(viewport=PHONE, has_touch=True, is_mobile=True))
    page = context.new_page()
    page.goto("/products")
    expect(page.locator("#filters-panel > summary")).to_be_visible()
    expect(page.locator("#results .grid")).to_be_visible()
    expect(page.locator("#results .card")).to_have_count(PAGE_SIZE)
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= PHONE["width"] + 1 and scroll_width <= inner_width + 1, (scroll_width, inner_width)

    card = page.locator("#results .card a").first
    name = card.locator(".card-name").inner_text()
    card.tap()
    expect(page.locator("h1")).to_have_text(name)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= PHONE["width"] + 1, scroll_width


def test_phone_shows_products_on_the_first_screen_and_filters_behind_a_button(
    new_context: NewContext, console_errors: BrowserProblems
) -> None:
    context = console_errors.watch_context(new_context(viewport=TALL_PHONE, has_touch=True, is_mobile=True))
    page = context.new_page()
    page.goto("/products")
    first_card = page.locator("#results .card").first
    expect(first_card).to_be_visible()
    box = first_card.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= TALL_PHONE["height"], box
    expect(page.locator("#category")).to_be_hidden()

    page.locator("#filters-panel > summary").filter(has_text="Filters").tap()
    expect(page.locator("#category")).to_be_visible()
    cakes = products_in("banh-kem")
    with page.expect_response(is_fragment_request):
        page.locator("#category").select_option("banh-kem")
    expect(results_count(page)).to_have_text(count_text(len(cakes), "banh-kem"))
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= TALL_PHONE["width"], scroll_width


def test_wide_screens_show_the_filters_without_a_button(page: Page) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/products")
    expect(page.locator("#category")).to_be_visible()
    expect(page.locator("#filters-panel > summary")).to_be_hidden()


# --- pagination and no-JS --------------------------------------------------------------------------


def test_next_page_with_htmx(page: Page) -> None:
    pages = -(-len(PRODUCTS) // PAGE_SIZE)
    page.goto("/products")
    expect(page.locator(".pagination")).to_contain_text(f"Page 1 of {pages}")
    first_page = page.locator("#results .card-name").all_text_contents()

    with page.expect_response(is_fragment_request):
        page.locator(".pagination a[rel=next]").click()
    expect(page).to_have_url(re.compile(r"[?&]page=2(&|$)"))
    expect(page.locator(".pagination")).to_contain_text(f"Page 2 of {pages}")
    second_page = page.locator("#results .card-name").all_text_contents()
    assert len(second_page) == min(PAGE_SIZE, len(PRODUCTS) - PAGE_SIZE)
    assert not set(first_page) & set(second_page)
    expect(page.locator(".pagination a[rel=prev]")).to_be_visible()


def test_next_page_by_keyboard_takes_focus_and_the_view_to_the_results(page: Page) -> None:
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto("/products")
    next_link = page.locator(".pagination a[rel=next]")
    next_link.focus()  # the keyboard reaches "Next" at the bottom of the grid
    assert page.evaluate("window.scrollY") > 400

    with page.expect_response(is_fragment_request):
        page.keyboard.press("Enter")
    expect(page.locator(".pagination")).to_contain_text("Page 2 of")
    heading = page.locator("#results-heading")
    expect(heading).to_be_focused()
    expect(heading).to_have_text(count_text(len(PRODUCTS)))
    expect(heading).to_be_in_viewport()
    header = page.locator(".site-header").bounding_box()
    box = heading.bounding_box()
    assert header is not None and box is not None
    assert box["y"] >= header["y"] + header["height"], (box, header)  # not hidden under the sticky header

    # Only the count is announced: the grid is not a live region, a small status line is.
    expect(page.locator("#results")).not_to_have_attribute("aria-live", re.compile(".*"))
    expect(page.locator("[aria-live] .card")).to_have_count(0)
    status = page.locator("#results-status")
    expect(status).to_have_attribute("aria-live", "polite")
    page.locator("#category").focus()
    with page.expect_response(is_fragment_request):
        page.locator("#category").select_option("banh-kem")
    expect(status).to_have_text(count_text(len(products_in("banh-kem")), "banh-kem"))
    expect(page.locator("#category")).to_be_focused()  # a filter leaves the shopper where they are

    page.locator("#filters").get_by_role("button", name="Apply").focus()
    with page.expect_response(is_fragment_request):
        page.keyboard.press("Enter")  # submitting the form is asking for the results: focus goes there
    expect(heading).to_be_focused()


def test_filters_work_without_javascript(browser: Browser, base_url: str, console_errors: BrowserProblems) -> None:
    context = console_errors.watch_context(browser.new_context(base_url=base_url, java_script_enabled=False))
    try:
        page = context.new_page()
        page.goto("/products")
        page.locator("#category").select_option("banh-quy")
        page.locator("#filters").get_by_role("button", name="Apply").click()
        expect(page).to_have_url(re.compile(r"/products\?(.*&)?category=banh-quy(&|$)"))
        cookies = products_in("banh-quy")
        expect(results_count(page)).to_have_text(count_text(len(cookies), "banh-quy"))
        expect(page.locator("#results .card-category")).to_have_text([CATEGORY_NAMES["banh-quy"]] * len(cookies))
        expect(page.locator("#category")).to_have_value("banh-quy")

        page.goto("/products")
        page.locator(".pagination a[rel=next]").click()
        expect(page).to_have_url(re.compile(r"[?&]page=2(&|$)"))
        expect(page.locator(".pagination")).to_contain_text("Page 2 of")
    finally:
        context.close()


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.allow_console_errors(r"status of 400 .*\(at .*/products\?min_price=abc\)")
def test_a_price_that_is_not_a_number_is_explained_on_the_page(page: Page) -> None:
    response = page.goto("/products?min_price=abc")
    assert response is not None and response.status == 400
    expect(page.locator("#min_price-error")).to_contain_text("whole number")
    expect(page.locator("#min_price")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#results [role=alert]")).to_be_visible()


@pytest.mark.allow_console_errors(r"Response Status Error Code 400 from /products", r"status of 400 .*min_price=abc")
def test_a_price_that_is_not_a_number_is_explained_while_filtering_with_htmx(page: Page) -> None:
    page.goto("/products")
    with page.expect_response(lambda r: "min_price=abc" in r.url) as answer:
        page.locator("#min_price").fill("abc")
        page.locator("#min_price").press("Tab")  # change event: the form filters
    assert answer.value.status == 400
    expect(page.locator("#min_price-error")).to_contain_text("whole number", timeout=2_000)
    expect(page.locator("#min_price")).to_have_attribute("aria-invalid", "true")  # one field, marked invalid
    expect(page.locator("form#filters")).to_have_count(1)


# --- empty states ----------------------------------------------------------------------------------


def test_empty_category_shows_a_friendly_message(page: Page) -> None:
    assert not products_in("banh-theo-mua")
    response = page.goto("/products?category=banh-theo-mua")
    assert response is not None and response.status == 200
    expect(results_count(page)).to_have_text(count_text(0, "banh-theo-mua"))
    expect(page.locator("#results .empty")).to_contain_text(f"{CATEGORY_NAMES['banh-theo-mua']} has no products yet")
    expect(page.locator("#results .card")).to_have_count(0)
    page.locator("#results .empty").get_by_role("link", name="See all products").click()
    expect(results_count(page)).to_have_text(count_text(len(PRODUCTS)))
