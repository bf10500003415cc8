"""Staff in the browser: an admin finds a customer, promotes them with a reason, the audit log shows
it, and the promoted person opens the dashboard on their very next request (no sign-in again)."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from sweetdream.accounts.services import UserService
from tests.e2e.browser import BrowserProblems

T = TypeVar("T")
PASSWORD = "correct horse battery"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """The sync Playwright API keeps an event loop on the test's thread: run ours on another."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


def create_admin(email: str) -> None:
    async def work() -> None:
        engine = create_async_engine(os.environ["DATABASE_URL"], poolclass=NullPool)
        try:
            async with AsyncSession(engine, expire_on_commit=False) as db:
                await UserService(session=db).create_admin(email, PASSWORD, "Lê Quản Lý")
                await db.commit()
        finally:
            await engine.dispose()

    run_async(work())


def sign_in(page: Page, email: str) -> None:
    page.goto("/account/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/account/login"))


def register(page: Page, email: str, name: str) -> None:
    page.goto("/account/register")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Phone").fill("0911222333")
    page.get_by_label("Delivery address").fill("8 Hai Bà Trưng, Quận 1")
    page.get_by_role("button", name="Create account").click()
    expect(page).not_to_have_url(re.compile(r"/account/register"))


@pytest.mark.allow_console_errors(r"status of 403 .*\(at .*/admin\)")  # the customer, before the promotion
def test_an_admin_promotes_a_customer_who_then_opens_the_dashboard(
    browser: Browser, base_url: str, console_errors: BrowserProblems, new_context: Callable[..., Any]
) -> None:
    tag = uuid.uuid4().hex[:8]
    customer_email = f"promo-{tag}@example.com"
    customer = console_errors.watch_context(new_context()).new_page()
    register(customer, customer_email, "Trần Bảo Ngọc")
    customer.goto("/admin")
    expect(customer.locator("main")).to_contain_text("staff only")

    admin_email = f"boss-{tag}@example.com"
    create_admin(admin_email)
    admin = console_errors.watch_context(new_context()).new_page()
    sign_in(admin, admin_email)
    admin.goto("/admin/customers")
    admin.get_by_label("Email, name or phone").fill(f"promo-{tag}")  # HTMX swaps the list as they type
    row = admin.locator("#customer-results tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(customer_email)
    row.get_by_role("link", name="Trần Bảo Ngọc").click()
    expect(admin.get_by_role("heading", level=1)).to_contain_text("Trần Bảo Ngọc")

    admin.get_by_role("button", name="Promote to admin").click()  # no reason: the browser asks for one
    expect(admin.get_by_label("Why make this person an admin?")).to_be_focused()
    admin.get_by_label("Why make this person an admin?").fill("Runs the Saturday shift")
    admin.get_by_role("button", name="Promote to admin").click()
    expect(admin.locator(".flash")).to_contain_text(f"{customer_email} is now an admin")
    expect(admin.get_by_role("button", name="Demote to customer")).to_be_visible()

    admin.get_by_role("link", name="Audit log", exact=True).click()
    entry = admin.locator(".audit-entry").first
    expect(entry).to_contain_text("user.promote")
    expect(entry).to_contain_text(admin_email)
    expect(entry).to_contain_text(customer_email)
    expect(entry).to_contain_text("Note: Runs the Saturday shift")
    expect(entry.locator(".audit-diff tbody tr")).to_have_text(re.compile(r"Role\s*CUSTOMER\s*ADMIN"))

    customer.goto("/admin")  # the next request: no sign-out, no sign-in
    expect(customer.get_by_role("heading", name="Dashboard")).to_be_visible()
