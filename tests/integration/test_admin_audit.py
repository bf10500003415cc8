"""The audit log page: admin only, newest first, filters (shop days), a readable before/after, keyset
pages; append-only in the database (a trigger) and read-only on the web (no route writes it)."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from sweetdream.accounts.models import Role
from sweetdream.audit.models import AuditEntry
from sweetdream.audit.services import diff
from tests.integration.factories import make_user, signed_in
from tests.integration.helpers import csrf_token


async def log(db, action: str, at: datetime, **values) -> AuditEntry:
    entry = AuditEntry(
        occurred_at=at,
        actor_id=values.pop("actor_id", None),
        actor_email=values.pop("actor_email", "lan@example.com"),
        action=action,
        target_type=values.pop("target_type", "product"),
        target_id=values.pop("target_id", "p-1"),
        target_label=values.pop("target_label", "Bánh flan"),
        before=values.pop("before", None),
        after=values.pop("after", None),
        note=values.pop("note", ""),
    )
    db.add(entry)
    await db.commit()
    return entry


def shown_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'id="audit-(\d+)"', html)]


async def test_the_log_refuses_a_visitor_and_a_customer(client, settings, db):
    r = await client.get("/admin/audit")
    assert r.status_code == 303 and r.headers["location"].startswith("/account/login?next_url=%2Fadmin%2Faudit")
    await signed_in(client, settings, await make_user(db))
    assert (await client.get("/admin/audit")).status_code == 403
    assert (await client.get("/admin/audit?action=user.promote")).status_code == 403


def test_no_route_under_admin_audit_can_write(app):
    methods = {
        method
        for route in app.routes
        if route.path == "/admin/audit" or route.path.startswith("/admin/audit/")
        for method in route.methods
    }
    assert methods and methods <= {"GET", "HEAD", "OPTIONS"}, methods


async def test_a_write_to_the_log_page_is_refused(client, settings, db):
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    token = await csrf_token(client)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = await client.request(method, "/admin/audit", data={"_csrf_token": token}, headers={"x-csrftoken": token})
        assert r.status_code == 405, (method, r.status_code)


async def test_the_database_refuses_to_update_or_delete_an_entry(db):
    entry_id = (await log(db, "product.update", datetime.now(UTC))).id
    for statement in (
        update(AuditEntry).where(AuditEntry.id == entry_id).values(note="rewritten"),
        delete(AuditEntry).where(AuditEntry.id == entry_id),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            await db.execute(statement)
        await db.rollback()
    assert await db.scalar(select(func.count()).where(AuditEntry.id == entry_id)) == 1
    with pytest.raises(DBAPIError, match="append-only"):  # not even by hand in SQL
        await db.execute(text("UPDATE audit_entries SET note = '' WHERE id = :id"), {"id": entry_id})
    await db.rollback()


async def test_newest_first_with_actor_target_readable_changes_and_note(client, settings, db):
    action = f"product.price.{secrets.token_hex(3)}"
    now = datetime.now(UTC)
    older = await log(db, action, now - timedelta(minutes=5), before={"price": 100_000}, after={"price": 120_000})
    newer = await log(
        db, action, now, actor_email="minh@example.com", target_label="Bánh mì",
        before={"price": 50_000, "active": True}, after={"price": 50_000, "active": False}, note="Sold out for good",
    )  # fmt: skip
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    r = await client.get(f"/admin/audit?action={action}")
    assert r.status_code == 200
    assert shown_ids(r.text) == [newer.id, older.id]
    first = unescape(r.text.split(f'id="audit-{newer.id}"')[1].split("</li>")[0])
    assert "minh@example.com" in first and "Bánh mì" in first and "Note: Sold out for good" in first
    assert '<th scope="row">Account active</th><td><del>yes</del></td><td><ins>no</ins></td>' in first
    assert '<th scope="row">Price</th>' not in first  # unchanged fields are left out
    second = r.text.split(f'id="audit-{older.id}"')[1].split("</li>")[0]
    assert '<th scope="row">Price</th><td><del>100000</del></td><td><ins>120000</ins></td>' in second


async def test_any_action_string_is_shown_an_export_too(client, settings, db):
    tag = secrets.token_hex(3)
    entry = await log(
        db, "orders.export", datetime.now(UTC), target_type="orders", target_id=f"status=SHIPPED-{tag}",
        target_label="", after={"rows": 1523, "filters": {"status": "SHIPPED"}},
    )  # fmt: skip
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    r = await client.get(f"/admin/audit?target_id=status%3DSHIPPED-{tag}")
    assert r.status_code == 200 and shown_ids(r.text) == [entry.id]
    assert "orders.export" in r.text and "1523" in r.text
    assert '<option value="orders.export" >orders.export</option>' in r.text  # offered as a filter
    assert "{&#34;status&#34;: &#34;SHIPPED&#34;}" in r.text  # a nested value, as JSON


async def test_filters_by_actor_target_and_shop_days(client, settings, db):
    action = f"stock.adjust.{secrets.token_hex(3)}"
    target = str(uuid.uuid4())
    # 26/11 17:30 UTC is 27/11 00:30 in Ho Chi Minh City: the shop's 27th, not its 26th.
    early = await log(db, action, datetime(2026, 11, 26, 16, 30, tzinfo=UTC), actor_email="cli")
    late = await log(db, action, datetime(2026, 11, 26, 17, 30, tzinfo=UTC), target_id=target)
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    base = f"/admin/audit?action={action}"
    assert shown_ids((await client.get(f"{base}&since=2026-11-27")).text) == [late.id]
    assert shown_ids((await client.get(f"{base}&until=2026-11-26")).text) == [early.id]
    assert shown_ids((await client.get(f"{base}&since=2026-11-26&until=2026-11-27")).text) == [late.id, early.id]
    assert shown_ids((await client.get(f"{base}&actor=CLI")).text) == [early.id]
    assert shown_ids((await client.get(f"{base}&target_type=product&target_id={target}")).text) == [late.id]
    assert shown_ids((await client.get(f"{base}&actor=%25")).text) == []  # a literal %


async def test_bad_filters_are_a_400_with_the_reason(client, settings, db):
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    r = await client.get("/admin/audit?since=27/11/2026")
    assert r.status_code == 400 and "Give a date as YYYY-MM-DD." in r.text
    r = await client.get("/admin/audit?since=2026-02-30")
    assert r.status_code == 400 and 'id="since-error"' in r.text
    r = await client.get("/admin/audit?since=2026-11-28&until=2026-11-27")
    assert r.status_code == 400 and "The end date is before the start date." in r.text
    r = await client.get("/admin/audit?before=-5")
    assert r.status_code == 400 and "That page link is broken" in r.text
    r = await client.get("/admin/audit?before=99999999999999999999")
    assert r.status_code == 400


async def test_pages_by_keyset_newest_first(client, settings, db):
    action = f"category.rename.{secrets.token_hex(3)}"
    now = datetime.now(UTC)
    made = [(await log(db, action, now + timedelta(seconds=i))).id for i in range(52)]
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    first = await client.get(f"/admin/audit?action={action}")
    assert shown_ids(first.text) == made[::-1][:50]
    older = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert older is not None
    second = await client.get(unescape(older.group(1)))
    assert shown_ids(second.text) == [made[1], made[0]]
    assert 'rel="next"' not in second.text


def test_diff_lists_only_what_changed_in_field_order():
    assert [
        (c.field, c.before, c.after) for c in diff({"b": 1, "a": "x", "same": 2}, {"a": "y", "same": 2, "c": None})
    ] == [
        ("a", "x", "y"),
        ("b", "1", "—"),
    ]
    assert [(c.field, c.before, c.after) for c in diff(None, {"role": "ADMIN"})] == [("role", "—", "ADMIN")]
    assert diff(None, None) == []


async def test_an_orders_status_and_payment_are_shown_in_the_readers_words(client, settings, db):
    """Stored values ("PREPARING", "paid") read as the orders pages say them, in the reader's language."""
    tag = secrets.token_hex(4)
    await log(
        db,
        "order.move",
        datetime.now(UTC),
        target_type="order",
        target_id=f"SD-{tag}",
        target_label=f"SD-{tag}",
        before={"status": "PROCESSING", "payment_status": "pending"},
        after={"status": "PREPARING", "payment_status": "paid"},
    )
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    english = " ".join(unescape((await client.get(f"/admin/audit?target_id=SD-{tag}")).text).split())
    assert "Confirmed" in english and "Being prepared" in english and "PREPARING" not in english
    assert "Awaiting payment" in english and "Paid" in english
    vietnamese = await client.get(f"/admin/audit?target_id=SD-{tag}", headers={"Accept-Language": "vi"})
    assert "Đang làm bánh" in unescape(vietnamese.text) and "PREPARING" not in vietnamese.text
