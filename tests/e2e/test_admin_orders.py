"""The admin's live order list (issue #10): a shopper's new order appears at the top of the open
list without a reload; the admin opens it, marks it preparing then shipped, and the shopper's open
order page follows each move live. The dashboard's "today" figures follow too."""

from __future__ import annotations

import os
import re
import time

import redis
from playwright.sync_api import BrowserContext, expect

from sweetdream.orders import live
from tests.e2e.browser import BrowserProblems
from tests.e2e.test_live_orders import (  # noqa: F401 (shopper, signed_in: fixtures this module uses)
    WAIT_SECONDS,
    NewContext,
    order_id,
    place_order,
    run_worker,
    shopper,
    sign_in_as_admin,
    signed_in,
    wait_for_watchers,
)


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


def test_a_new_order_appears_live_and_the_admin_moves_it_while_the_shopper_watches(
    signed_in: BrowserContext,  # noqa: F811 (the fixture imported above)
    new_context: NewContext,
    console_errors: BrowserProblems,
) -> None:
    admin_context = console_errors.watch_context(new_context())
    admin = admin_context.new_page()
    sign_in_as_admin(admin)
    dashboard = admin_context.new_page()
    dashboard.goto("/admin")
    today_before = int(dashboard.locator("#today-orders").inner_text())
    admin.goto("/admin/orders")
    admin.evaluate("window.__noReload = 1")
    wait_for_admin_streams(2)

    shopper_page = signed_in.new_page()
    number = place_order(shopper_page)

    newest = admin.locator("tbody.order-row").first
    expect(newest).to_contain_text(number)
    expect(newest).to_have_class(re.compile(r"\bis-new\b"))  # the visual cue
    expect(newest).to_contain_text("Pending")
    assert admin.evaluate("window.__noReload") == 1, "the list was reloaded"
    expect(dashboard.locator("#today-orders")).to_have_text(str(today_before + 1))

    run_worker()  # cash on delivery: the worker confirms it, and the row follows
    expect(admin.locator("tbody.order-row", has_text=number)).to_contain_text("Confirmed")

    admin.get_by_role("link", name=number).click()
    expect(admin.get_by_role("heading", name=f"Order {number}")).to_be_visible()
    expect(admin.locator("#order-status")).to_have_text("Confirmed")
    wait_for_watchers(order_id(number), 1)

    admin.get_by_label("Note (optional)").fill("Oven 1, ready by noon")
    admin.get_by_role("button", name="Start preparing").click()
    expect(admin.locator(".flash")).to_contain_text(f"Order {number} is now being prepared.")
    expect(admin.locator("#order-status")).to_have_text("Being prepared")
    expect(admin.locator(".timeline")).to_contain_text("Oven 1, ready by noon")
    expect(shopper_page.locator("#order-status")).to_have_text("Being prepared")

    admin.get_by_role("button", name="Mark shipped").click()
    expect(admin.locator(".flash")).to_contain_text(f"Order {number} is now shipped.")
    expect(shopper_page.locator("#order-status")).to_have_text("Shipped")

    admin.get_by_role("link", name="Packing slip").click()
    expect(admin.get_by_role("heading", name=f"SweetDream · Order {number}")).to_be_visible()
