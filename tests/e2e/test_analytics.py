"""A shopper browses, searches, adds to the cart and buys; the admin then finds those actions in
/admin/analytics: the product among the most viewed, the shopper among the top viewers, the sale
among the best sellers, and every step of the funnel counted. The charts load as images under the
page's strict CSP (a blocked style or script would show as a console error, which fails the test)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime

from playwright.sync_api import Browser, Page, expect
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sweetdream.analytics import services as analytics
from sweetdream.catalog.money import format_vnd
from tests.e2e.browser import BrowserProblems
from tests.e2e.test_accessibility import PASSWORD, PRODUCT, VARIANT, create_admin, run_async

ZONE = "Asia/Ho_Chi_Minh"


SHOPPER_ACTIONS = {"product_searched", "product_viewed", "cart_item_added", "checkout_started", "order_completed"}


def drain_until_recorded(email: str) -> None:
    """The worker's drain job (buffered events into PostgreSQL, then today's rollups), run until every
    action of the shopper is in: the web process sends its batch every 0.1 s, so the last events may
    still be on their way when the order page is shown. Gives up after 10 s."""
    import os

    async def work() -> None:
        engine = create_async_engine(os.environ["DATABASE_URL"], poolclass=NullPool)
        redis = Redis.from_url(os.environ["REDIS_URL"])
        try:
            deadline = time.monotonic() + 10
            while True:
                _, days = await analytics.drain_events(engine, redis, ZONE)
                for day in days | {analytics.shop_day(datetime.now(UTC), ZONE)}:
                    await analytics.refresh_rollups(engine, day, ZONE)
                async with engine.connect() as conn:
                    names = set(
                        (
                            await conn.execute(
                                text(
                                    "SELECT DISTINCT e.name FROM analytics_events e "
                                    "JOIN users u ON u.id = e.user_id WHERE u.email = :email"
                                ),
                                {"email": email},
                            )
                        ).scalars()
                    )
                if names >= SHOPPER_ACTIONS or time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.1)
        finally:
            await redis.aclose()
            await engine.dispose()

    run_async(work())


def funnel_count(page: Page, step: str) -> int:
    row = page.locator("#insight-funnel").locator("xpath=..").locator("tr").filter(has_text=step)
    return int(row.locator("td").first.inner_text())


def test_the_admin_sees_what_a_shopper_did(page: Page, browser: Browser, base_url: str) -> None:
    email = f"analytics-{uuid.uuid4().hex[:12]}@example.com"
    page.goto("/account/register")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Full name").fill("Đỗ Minh Châu")
    page.get_by_label("Phone").fill("0912345678")
    page.get_by_label("Delivery address").fill("8 Hai Bà Trưng, Quận 1")
    page.get_by_role("button", name="Create account").click()
    expect(page).not_to_have_url(re.compile(r"/account/register"))

    term = PRODUCT.name.split()[-1]
    page.goto("/products")
    page.locator("#q").fill(term)
    page.locator("#q").press("Enter")
    expect(page.locator("#results")).to_contain_text(PRODUCT.name)
    page.goto(f"/products/{PRODUCT.slug}")
    price = VARIANT.price_override if VARIANT.price_override is not None else PRODUCT.price
    page.locator("#variant_id").select_option(label=f"{VARIANT.label} — {format_vnd(price)}")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#add-result")).to_contain_text("Added")
    page.goto("/checkout")
    page.locator("#place-order").click()
    expect(page).to_have_url(re.compile(r"/orders/SD-\d{6}$"))

    drain_until_recorded(email)

    admin_email = f"analytics-admin-{uuid.uuid4().hex[:12]}@example.com"
    create_admin(admin_email)
    problems = BrowserProblems()
    context = problems.watch_context(browser.new_context(base_url=base_url))
    try:
        admin = context.new_page()
        admin.goto("/account/login")
        admin.get_by_label("Email").fill(admin_email)
        admin.get_by_label("Password").fill(PASSWORD)
        admin.get_by_role("button", name="Sign in").click()
        admin.goto("/admin/analytics")
        admin.get_by_label("Today").check()
        admin.get_by_role("button", name="Show").click()
        expect(admin).to_have_url(re.compile(r"range=today"))
        expect(admin.get_by_role("heading", level=1)).to_have_text("Analytics")
        views = admin.get_by_role("region", name="Most viewed products", exact=True)
        expect(views).to_contain_text(PRODUCT.name)
        expect(admin.get_by_role("region", name="Top viewers (signed in)", exact=True)).to_contain_text(email)
        expect(admin.get_by_role("region", name="Cart additions", exact=True)).to_contain_text(PRODUCT.name)
        expect(admin.get_by_role("region", name="Best sellers", exact=True)).to_contain_text(PRODUCT.name)
        for step in ("Viewed a product", "Added to cart", "Started checkout", "Placed an order"):
            assert funnel_count(admin, step) >= 1, step
        charts = admin.locator("img.chart")
        expect(charts).to_have_count(8)
        for n in range(8):  # every chart loaded as an image (a broken one has no natural width)
            expect(charts.nth(n)).to_have_js_property("complete", True)
            assert charts.nth(n).evaluate("img => img.naturalWidth") > 0
        with admin.expect_download() as download:
            admin.get_by_role("link", name="Download Best sellers as CSV").click()
        assert PRODUCT.name in download.value.path().read_text()
    finally:
        context.close()
    assert not problems.problems, problems.problems
