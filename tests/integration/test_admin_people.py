"""Customers and staff in the admin: search, a customer's page, deactivate/reactivate, promote/demote,
the last admin kept (also when two admins act at the same moment), all of it audited. Real HTTP,
real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import event, func, select, text, update

from sweetdream.accounts.models import Role, User
from sweetdream.admin.customers import customer_page
from sweetdream.app import create_app
from sweetdream.audit.models import AuditEntry
from sweetdream.orders.models import Order, OrderStatus, PaymentMethod
from tests.integration.factories import make_user, signed_in
from tests.integration.helpers import cli, csrf_token, post_form, register, sign_in, unique_email
from tests.integration.test_checkout import at_once

ANDROID_CHROME = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"


@pytest.fixture
async def other(settings) -> AsyncIterator[AsyncTestClient]:
    """A second browser (with an app of its own: a test client runs its app on an event loop of its own)."""
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as second:
        second.follow_redirects = False
        yield second


async def an_admin(client, settings, db) -> User:
    admin = await make_user(db, Role.ADMIN)
    await signed_in(client, settings, admin)
    return admin


async def add_order(db, user: User, total: int, status: OrderStatus, placed: datetime) -> Order:
    order = Order(
        number=f"SD-{secrets.randbelow(10**6):06d}{secrets.token_hex(2)}"[:20],
        user_id=user.id,
        idempotency_key=secrets.token_hex(8),
        status=status,
        payment_method=PaymentMethod.COD,
        payment_status="due on delivery",
        shipping_name=user.name,
        shipping_phone=user.phone,
        shipping_address="1 Street",
        subtotal=total - 30_000,
        shipping_fee=30_000,
        total=total,
        created_at=placed,
    )
    db.add(order)
    await db.commit()
    return order


async def audit_rows(db, user_id, action: str) -> list[AuditEntry]:
    return list(
        await db.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_type == "user", AuditEntry.target_id == str(user_id), AuditEntry.action == action)
            .order_by(AuditEntry.id)
        )
    )


async def fresh(db, user_id) -> User:
    return await db.get(User, user_id, populate_existing=True)


def emails_listed(html: str) -> list[str]:
    return re.findall(r"<td>([^<]+@example\.com)</td>", html)


# --- who may ---------------------------------------------------------------------------------------


async def test_every_people_route_refuses_a_visitor_and_a_customer(client, settings, db):
    someone = await make_user(db)
    pages = ["/admin/customers", f"/admin/customers/{someone.id}"]
    posts = [f"/admin/customers/{someone.id}/{what}" for what in ("role", "deactivate", "reactivate")]
    for url in pages:
        r = await client.get(url)
        assert r.status_code == 303 and r.headers["location"].startswith("/account/login?next_url="), url
    for url in posts:
        r = await post_form(client, url, {"reason": "x", "role": "ADMIN"})
        assert r.status_code == 303 and r.headers["location"].startswith("/account/login"), url
    await signed_in(client, settings, await make_user(db))  # a customer: not even another's page
    for url in pages:
        assert (await client.get(url)).status_code == 403, url
    for url in posts:
        assert (await post_form(client, url, {"reason": "x", "role": "ADMIN"})).status_code == 403, url
    after = await fresh(db, someone.id)
    assert after.role == Role.CUSTOMER and after.is_active


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(client, settings, db):
    await an_admin(client, settings, db)
    someone = await make_user(db)
    for what in ("role", "deactivate", "reactivate"):
        r = await client.post(f"/admin/customers/{someone.id}/{what}", data={"reason": "because", "role": "ADMIN"})
        assert r.status_code == 403, what
    after = await fresh(db, someone.id)
    assert after.role == Role.CUSTOMER and after.is_active
    assert await audit_rows(db, someone.id, "user.promote") == []


# --- the list and search -----------------------------------------------------------------------------


async def test_search_finds_by_email_name_and_phone_prefix_and_nothing_else(client, settings, db):
    tag = secrets.token_hex(3)
    alice = await make_user(db)
    await db.execute(
        update(User)
        .where(User.id == alice.id)
        .values(email=f"qa-{tag}@example.com", name="Alice", phone="0912 345 678")
    )
    bao = await make_user(db)
    digits = f"08{secrets.randbelow(10**8):08d}"
    await db.execute(update(User).where(User.id == bao.id).values(name=f"Zq{tag} Bảo", phone=digits))
    await db.commit()
    await an_admin(client, settings, db)

    r = await client.get(f"/admin/customers?q=QA-{tag}")
    assert r.status_code == 200 and emails_listed(r.text) == [f"qa-{tag}@example.com"]
    r = await client.get(f"/admin/customers?q=zq{tag}")  # any case
    assert emails_listed(r.text) == [bao.email]
    spaced = f"{digits[:4]} {digits[4:7]}.{digits[7:]}"  # typed with spaces and dots
    r = await client.get("/admin/customers", params={"q": spaced})
    assert emails_listed(r.text) == [bao.email]
    r = await client.get(f"/admin/customers?q=a-{tag}")  # the middle of an email is not its start
    assert emails_listed(r.text) == []
    r = await client.get("/admin/customers", params={"q": "%"})  # a literal %, not "anything"
    assert r.status_code == 200 and emails_listed(r.text) == []
    assert "No account's email, name or phone starts with “%”." in r.text
    r = await client.get("/admin/customers", params={"q": "<b>x"})
    assert "starts with “&lt;b&gt;x”" in r.text  # what was typed is shown, never run
    r = await client.get("/admin/customers", params={"q": "_" * 300})  # too long: cut, still no error
    assert r.status_code == 200 and emails_listed(r.text) == []
    # A NUL (PostgreSQL refuses one; the fuzzer found a 500) is dropped like any control character.
    r = await client.get("/admin/customers", params={"q": f"qa-{tag}\x00"})
    assert r.status_code == 200 and emails_listed(r.text) == [f"qa-{tag}@example.com"]
    for page in ("/admin/products", "/admin/orders"):
        assert (await client.get(page, params={"q": "a\x00b", "category": "\x00"})).status_code == 200, page


async def test_the_list_shows_each_customers_orders_total_spent_and_last_order(client, settings, db):
    tag = secrets.token_hex(3)
    shopper = await make_user(db)
    await db.execute(update(User).where(User.id == shopper.id).values(name=f"Fig{tag}"))
    await db.commit()
    await add_order(db, shopper, 230_000, OrderStatus.DELIVERED, datetime(2026, 11, 20, 3, 0, tzinfo=UTC))
    await add_order(db, shopper, 130_000, OrderStatus.CANCELLED, datetime(2026, 11, 25, 18, 30, tzinfo=UTC))
    await add_order(db, shopper, 100_000, OrderStatus.PENDING, datetime(2026, 11, 22, 3, 0, tzinfo=UTC))
    await an_admin(client, settings, db)
    r = await client.get(f"/admin/customers?q=fig{tag}")
    row = r.text.split(shopper.email)[1].split("</tr>")[0]
    cells = re.findall(r"<td>([^<]*)</td>", row)
    # phone, orders (3), spent (not the cancelled one), last order (shop day: 26/11 01:30)
    assert cells[:4] == ["0901234567", "3", "₫330,000", "26 Nov 2026"], cells


async def test_the_list_pages_by_keyset_without_overlap(client, settings, db):
    tag = secrets.token_hex(3)
    made = []
    for _ in range(27):
        user = await make_user(db)
        made.append(user)
    await db.execute(update(User).where(User.id.in_([u.id for u in made])).values(name=f"Page{tag}"))
    await db.commit()
    await an_admin(client, settings, db)
    first = await client.get(f"/admin/customers?q=page{tag}")
    assert first.status_code == 200
    shown = emails_listed(first.text)
    assert len(shown) == 25
    older = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert older is not None
    second = await client.get(unescape(older.group(1)))
    rest = emails_listed(second.text)
    assert len(rest) == 2 and not set(rest) & set(shown)
    assert set(shown + rest) == {u.email for u in made}
    assert 'rel="next"' not in second.text
    broken = await client.get(f"/admin/customers?q=page{tag}&after=not-a-cursor")  # starts from the top
    assert broken.status_code == 200 and emails_listed(broken.text) == shown


async def test_the_list_runs_one_query_whatever_the_page_size(db):
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    sync_engine = db.bind.sync_engine
    event.listen(sync_engine, "before_cursor_execute", count)
    try:
        for size in (1, 25, 100):
            await customer_page(db, "", None, None, size)
            await customer_page(db, "a", Role.CUSTOMER, None, size)
    finally:
        event.remove(sync_engine, "before_cursor_execute", count)
    assert len(statements) == 6  # one per page: no query per customer shown


# --- a customer's page -------------------------------------------------------------------------------


async def test_a_customers_page_shows_profile_orders_totals_and_sessions(app, client, other, settings, db):
    email = unique_email("page")
    other.headers["user-agent"] = ANDROID_CHROME
    assert (await register(other, email=email)).status_code == 303
    shopper = await db.scalar(select(User).where(User.email == email))
    order = await add_order(db, shopper, 250_000, OrderStatus.PROCESSING, datetime.now(UTC) - timedelta(hours=1))
    await an_admin(client, settings, db)
    r = await client.get(f"/admin/customers/{shopper.id}")
    assert r.status_code == 200
    assert email in r.text and "12 Lê Lợi, Quận 1, TP.HCM" in r.text
    assert f'<a href="/admin/orders/{order.number}">{order.number}</a>' in r.text
    assert "₫250,000" in r.text
    assert "Chrome on Android · signed in" in r.text
    await post_form(other, "/account/logout", {})
    r = await client.get(f"/admin/customers/{shopper.id}")
    assert "Not signed in anywhere." in r.text
    assert (
        await client.get(f"/admin/customers/{secrets.token_hex(16)[:8]}-0000-4000-8000-000000000000")
    ).status_code == 404


# --- deactivate and reactivate -----------------------------------------------------------------------


async def test_deactivating_ends_every_session_at_once_and_refuses_sign_in(app, client, other, settings, db):
    email = unique_email("gone")
    assert (await register(other, email=email)).status_code == 303
    session_id = other.cookies["sd_session"]
    shopper = await db.scalar(select(User).where(User.email == email))
    admin = await an_admin(client, settings, db)

    r = await post_form(client, f"/admin/customers/{shopper.id}/deactivate", {"reason": "Chargeback fraud"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/customers/{shopper.id}"
    redis = Redis.from_url(settings.redis_url)
    try:
        assert await redis.exists(f"session:{session_id}") == 0  # ended in the store, not just later
    finally:
        await redis.aclose()
    r = await other.get("/account/")
    assert r.status_code == 303 and r.headers["location"].startswith("/account/login")

    refused = await sign_in(other, email)
    assert refused.status_code == 403
    assert "This account has been deactivated, so it can't sign in." in unescape(refused.text)
    assert (await other.get("/account/")).status_code == 303  # still not signed in

    (entry,) = await audit_rows(db, shopper.id, "user.deactivate")
    assert (entry.actor_id, entry.actor_email) == (admin.id, admin.email)
    assert entry.target_label == email
    assert (entry.before, entry.after, entry.note) == ({"active": True}, {"active": False}, "Chargeback fraud")
    page = await client.get(f"/admin/customers/{shopper.id}")
    assert "Deactivated: can't sign in" in unescape(page.text) and "Chargeback fraud" in page.text

    again = await post_form(client, f"/admin/customers/{shopper.id}/deactivate", {"reason": "twice"})
    assert again.status_code == 409 and "is already deactivated" in again.text

    r = await post_form(client, f"/admin/customers/{shopper.id}/reactivate", {"reason": "Bank cleared it"})
    assert r.status_code == 303
    assert (await sign_in(other, email)).status_code == 303
    assert (await other.get("/account/")).status_code == 200
    (back,) = await audit_rows(db, shopper.id, "user.reactivate")
    assert (back.before, back.after, back.note) == ({"active": False}, {"active": True}, "Bank cleared it")


async def test_a_change_without_a_reason_or_with_a_bad_role_is_refused_and_changes_nothing(client, settings, db):
    await an_admin(client, settings, db)
    someone = await make_user(db)
    for what, data in (
        ("deactivate", {"reason": "   "}),
        ("deactivate", {}),
        ("role", {"role": "ADMIN", "reason": ""}),
        ("role", {"role": "KING", "reason": "because"}),
        ("role", {"role": "ADMIN", "reason": "x" * 501}),
    ):
        r = await post_form(client, f"/admin/customers/{someone.id}/{what}", data)
        assert r.status_code == 400, (what, data, r.status_code)
    r = await post_form(client, f"/admin/customers/{someone.id}/role", {"role": "ADMIN", "reason": ""})
    assert "Give a reason: it is kept in the audit log." in r.text
    r = await post_form(client, f"/admin/customers/{someone.id}/role", {"role": "CUSTOMER", "reason": "already"})
    assert r.status_code == 409
    after = await fresh(db, someone.id)
    assert after.role == Role.CUSTOMER and after.is_active
    count = await db.scalar(select(func.count()).where(AuditEntry.target_id == str(someone.id)))
    assert count == 0


# --- roles -------------------------------------------------------------------------------------------


async def test_a_promotion_applies_on_the_next_request_and_is_audited(client, other, settings, db):
    email = unique_email("promo")
    assert (await register(other, email=email)).status_code == 303
    assert (await other.get("/admin")).status_code == 403
    shopper = await db.scalar(select(User).where(User.email == email))
    admin = await an_admin(client, settings, db)

    r = await post_form(client, f"/admin/customers/{shopper.id}/role", {"role": "ADMIN", "reason": "New shift lead"})
    assert r.status_code == 303
    assert (await other.get("/admin")).status_code == 200  # no sign-in again
    (entry,) = await audit_rows(db, shopper.id, "user.promote")
    assert (entry.actor_email, entry.before, entry.after, entry.note) == (
        admin.email, {"role": "CUSTOMER"}, {"role": "ADMIN"}, "New shift lead"
    )  # fmt: skip

    r = await post_form(client, f"/admin/customers/{shopper.id}/role", {"role": "CUSTOMER", "reason": "Shift over"})
    assert r.status_code == 303
    assert (await other.get("/admin")).status_code == 403
    (demoted,) = await audit_rows(db, shopper.id, "user.demote")
    assert (demoted.before, demoted.after, demoted.note) == ({"role": "ADMIN"}, {"role": "CUSTOMER"}, "Shift over")


async def only_admins(db, *keep: User) -> None:
    """Every other admin (made by earlier tests) becomes a customer: `keep` are the shop's admins."""
    await db.execute(
        update(User).where(User.role == Role.ADMIN, User.id.not_in([u.id for u in keep])).values(role=Role.CUSTOMER)
    )
    await db.commit()


async def test_the_last_admin_can_be_neither_demoted_nor_deactivated(client, settings, db):
    admin = await an_admin(client, settings, db)
    await only_admins(db, admin)
    r = await post_form(client, f"/admin/customers/{admin.id}/role", {"role": "CUSTOMER", "reason": "leaving"})
    assert r.status_code == 409 and f"{admin.email} is the last admin: promote someone else first." in r.text
    r = await post_form(client, f"/admin/customers/{admin.id}/deactivate", {"reason": "leaving"})
    assert r.status_code == 409 and "is the last admin" in r.text
    after = await fresh(db, admin.id)
    assert after.role == Role.ADMIN and after.is_active
    assert await audit_rows(db, admin.id, "user.demote") == []
    # A second admin makes it possible.
    second = await make_user(db, Role.ADMIN)
    r = await post_form(client, f"/admin/customers/{second.id}/deactivate", {"reason": "left the company"})
    assert r.status_code == 303
    r = await post_form(client, f"/admin/customers/{admin.id}/role", {"role": "CUSTOMER", "reason": "x"})
    assert r.status_code == 409  # the deactivated one does not count


async def until_waiting(db, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while await db.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")) < count:
        assert asyncio.get_running_loop().time() < deadline, "the two requests never met"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("move", ["role", "deactivate"])
async def test_two_admins_removing_each_other_at_once_leave_one_admin(client, other, settings, db, move):
    first = await make_user(db, Role.ADMIN)
    second = await make_user(db, Role.ADMIN)
    await only_admins(db, first, second)
    await signed_in(client, settings, first)
    await signed_in(other, settings, second)
    data = {"role": "CUSTOMER", "reason": "a race"}
    token_1, token_2 = await csrf_token(client), await csrf_token(other)
    requests = [
        client.post(f"/admin/customers/{second.id}/{move}", data={**data, "_csrf_token": token_1}),
        other.post(f"/admin/customers/{first.id}/{move}", data={**data, "_csrf_token": token_2}),
    ]
    # Both accounts' rows are held (as another change to them would), so both requests are in flight
    # and waiting at the same moment; then they are let go together.
    await db.execute(select(User.id).where(User.id.in_([first.id, second.id])).with_for_update())
    racing = asyncio.ensure_future(at_once(requests))
    await until_waiting(db, 2)
    await db.commit()
    results = await racing
    statuses = sorted(r.status_code for r in results)
    assert statuses[0] == 303 and statuses[1] in (403, 409), statuses
    admins = await db.scalar(select(func.count()).where(User.role == Role.ADMIN, User.is_active.is_(True)))
    assert admins == 1


async def test_the_cli_uses_the_same_rule_and_is_audited_as_cli(app, db):
    shopper = await make_user(db)
    result = await cli(app, "set-role", shopper.email, "ADMIN", "--reason", "Runbook step 4")
    assert result.exit_code == 0, result.output
    (entry,) = await audit_rows(db, shopper.id, "user.promote")
    assert (entry.actor_id, entry.actor_email, entry.note) == (None, "cli", "Runbook step 4")
    await only_admins(db, shopper)
    result = await cli(app, "set-role", shopper.email, "CUSTOMER")
    assert result.exit_code != 0 and "is the last admin" in result.output
    assert (await fresh(db, shopper.id)).role == Role.ADMIN


async def test_a_csrf_token_is_needed_even_for_a_signed_in_admin_of_another_browser(client, other, settings, db):
    """The token of one browser does not work in another (double-submit cookie)."""
    await an_admin(client, settings, db)
    someone = await make_user(db)
    token = await csrf_token(other)
    r = await client.post(f"/admin/customers/{someone.id}/deactivate", data={"reason": "x", "_csrf_token": token})
    assert r.status_code == 403
    assert (await fresh(db, someone.id)).is_active


async def test_a_session_the_index_never_saw_also_ends_on_deactivation(client, other, settings, db):
    shopper = await make_user(db)
    await signed_in(other, settings, shopper)  # a session made straight in the store: not indexed
    assert (await other.get("/account/")).status_code == 200
    await an_admin(client, settings, db)
    r = await post_form(client, f"/admin/customers/{shopper.id}/deactivate", {"reason": "Asked to close it"})
    assert r.status_code == 303
    r = await other.get("/account/")
    assert r.status_code == 303 and r.headers["location"].startswith("/account/login")
    page = await other.get("/products")
    assert "This account has been deactivated" in unescape(page.text)


async def test_a_path_that_is_not_an_account_id_is_not_found(client, settings, db):
    await an_admin(client, settings, db)
    for path in ("/admin/customers/not-a-uuid", "/admin/customers/12345"):
        r = await client.get(path)
        assert r.status_code in (400, 404), (path, r.status_code)
    r = await post_form(client, "/admin/customers/00000000-0000-4000-8000-000000000000/deactivate", {"reason": "x"})
    assert r.status_code == 404


async def test_an_htmx_search_gets_only_the_list(client, settings, db):
    await an_admin(client, settings, db)
    shopper = await make_user(db)
    headers = {"HX-Request": "true", "HX-Target": "customer-results"}
    r = await client.get("/admin/customers", params={"q": shopper.email}, headers=headers)
    assert r.status_code == 200
    assert emails_listed(r.text) == [shopper.email]
    assert "<h1>" not in r.text and 'id="customer-q"' not in r.text  # the form stays as the admin left it


async def test_two_registrations_for_one_email_at_once_make_one_account(client, other, db):
    """Services flush and the request commits: the loser of the unique email gets the form's message
    (a savepoint, not a rollback of the request's whole transaction), never a 500."""
    email = unique_email("twice")
    token_1, token_2 = await csrf_token(client), await csrf_token(other)
    form = {"email": email, "password": "correct horse battery", "name": "Lan", "phone": "0901234567", "address": "1 A"}
    # The email's unique index entry is held by an uncommitted insert of the same email, so both
    # registrations get past "does it exist?" and meet at the index together.
    await db.execute(
        text(
            "INSERT INTO users (id, email, password_hash, name, phone, address, role, created_at, updated_at) "
            "VALUES (gen_random_uuid(), :e, 'x', 'held', '', '', 'CUSTOMER', now(), now())"
        ),
        {"e": email},
    )
    racing = asyncio.ensure_future(
        at_once([
            client.post("/account/register", data={**form, "_csrf_token": token_1}),
            other.post("/account/register", data={**form, "_csrf_token": token_2}),
        ])
    )  # fmt: skip
    await until_waiting(db, 2)
    await db.rollback()  # the holder gives up: the two registrations race for the email
    results = await racing
    assert sorted(r.status_code for r in results) == [303, 400]
    loser = next(r for r in results if r.status_code == 400)
    assert "An account with this email already exists. Sign in instead?" in unescape(loser.text)
    assert await db.scalar(select(func.count()).where(User.email == email)) == 1
