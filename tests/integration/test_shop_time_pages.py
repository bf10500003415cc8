"""Every time a person reads is shop time (Asia/Ho_Chi_Minh, UTC+7), never UTC.

An order placed at 23:30 UTC on 27 November was placed at 06:30 on 28 November in the shop.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from litestar.testing import AsyncTestClient
from sqlalchemy import update

from sweetdream.accounts.models import Role
from sweetdream.app import create_app
from sweetdream.orders.models import Order, OrderEvent
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in
from tests.integration.helpers import post_form, reviewed

LATE_EVENING_UTC = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
NUMBER = re.compile(r"/orders/(SD-\d{6})$")


async def place_order_at(client, settings, db, moment: datetime):
    _, (variant,) = await make_product(db, stock=5)
    owner = await make_user(db)
    await put_in_cart(db, owner, variant, 1)
    await signed_in(client, settings, owner)
    form = {
        "idempotency_key": secrets.token_urlsafe(24),
        "name": "Minh Anh",
        "phone": "0901234567",
        "address": "99 Nguyễn Huệ, Quận 1, TP.HCM",
        "note": "",
        "payment_method": "COD",
        **await reviewed(client),
    }
    number = NUMBER.search((await post_form(client, "/checkout/", form)).headers["location"]).group(1)
    order_id = (
        await db.execute(update(Order).where(Order.number == number).values(created_at=moment).returning(Order.id))
    ).scalar_one()
    await db.execute(update(OrderEvent).where(OrderEvent.order_id == order_id).values(created_at=moment))
    await db.commit()
    return number


async def test_the_order_page_shows_when_it_was_placed_in_shop_time(client, settings, db):
    number = await place_order_at(client, settings, db, LATE_EVENING_UTC)
    page = (await client.get(f"/orders/{number}")).text
    assert "Placed 28 Nov 2026, 06:30" in page
    assert re.search(r"<strong>Pending</strong> · 28 Nov 2026, 06:30", page)  # the timeline
    assert "27 Nov 2026" not in page and "UTC" not in page
    # In Vietnamese: the day first, numbers only.
    page = (await client.get(f"/orders/{number}", headers={"accept-language": "vi"})).text
    assert "Đặt lúc 28/11/2026 06:30" in page
    assert re.search(r"<strong>Chờ xử lý</strong> · 28/11/2026 06:30", page)
    assert "27/11/2026" not in page


async def test_order_history_shows_the_shop_day(client, settings, db):
    number = await place_order_at(client, settings, db, LATE_EVENING_UTC)
    page = (await client.get("/account/orders")).text
    assert re.search(rf">{number}</a></td><td>28 Nov 2026</td>", page)
    page = (await client.get("/account/orders", headers={"accept-language": "vi"})).text
    assert re.search(rf">{number}</a></td><td>28/11/2026</td>", page)


async def test_admin_orders_show_shop_time(app, client, settings, db):
    number = await place_order_at(client, settings, db, LATE_EVENING_UTC)
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as admin:
        await signed_in(admin, settings, await make_user(db, Role.ADMIN))
        # Searched by its number: the list is newest first, and orders the suite placed since may be newer.
        page = (await admin.get(f"/admin/orders?q={number}")).text
    row = next(r for r in page.split("<tr>") if f">{number}</a>" in r)
    assert "<td>28 Nov 2026, 06:30</td>" in row
    assert "UTC" not in page
