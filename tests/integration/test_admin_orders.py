"""The admin order list: every order is counted and reachable, page by page."""

import re
import secrets

from sqlalchemy import func, select, update

from sweetdream.accounts.models import Role
from sweetdream.cart.services import CartService, DbCartStore
from sweetdream.catalog.models import Product
from sweetdream.orders.models import Order, OrderStatus, PaymentMethod
from sweetdream.orders.services import OrderService, Shipping
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in

PAGE_SIZE = 25  # the list's page size, as the admin sees it


async def place_orders(db, count: int) -> list[str]:
    """`count` orders by one shopper, oldest first, placed through the checkout service."""
    product, (variant,) = await make_product(db, stock=count)
    user = await make_user(db)
    numbers = []
    for _ in range(count):
        await put_in_cart(db, user, variant, 1)
        order, _ = await OrderService(db).place(
            user,
            CartService(db, DbCartStore(db, user.id)),
            Shipping("Admin Test", "0901234567", "1 Street, City", "", PaymentMethod.COD),
            secrets.token_urlsafe(24),
            30_000,
            500_000,
        )
        numbers.append(order.number)
    # Off the shelf again: the catalogue tests count the shop's active products.
    await db.execute(update(Product).where(Product.id == product.id).values(is_active=False))
    await db.commit()
    return numbers


def listed(html: str) -> list[str]:
    return re.findall(r'<a href="/orders/(SD-\d{6})">', html)


async def test_all_orders_are_counted_and_the_pager_reaches_every_one(client, settings, db):
    before = await db.scalar(select(func.count()).select_from(Order))  # other tests' orders share the database
    numbers = await place_orders(db, 26)
    total = before + 26
    await signed_in(client, settings, await make_user(db, Role.ADMIN))

    first = await client.get("/admin/orders")
    assert first.status_code == 200
    assert f"<p>{total} orders</p>" in first.text
    pages = -(-total // PAGE_SIZE)
    assert f"Page 1 of {pages}" in first.text
    assert listed(first.text) == numbers[:0:-1]  # the 25 newest, newest first
    older = re.search(r'<a rel="next" href="([^"]+)">Older', first.text)
    assert older is not None

    second = await client.get(older.group(1).replace("&amp;", "&"))
    assert second.status_code == 200 and f"Page 2 of {pages}" in second.text
    assert listed(second.text)[0] == numbers[0]  # the 26th from the top, first on page 2
    assert f"<p>{total} orders</p>" in second.text

    beyond = await client.get("/admin/orders?page=999")
    assert beyond.status_code == 200 and "No orders on this page." in beyond.text
    assert f'<a rel="prev" href="/admin/orders?status=&amp;page={pages}">' in beyond.text


async def test_a_status_filter_counts_only_that_status(client, settings, db):
    numbers = await place_orders(db, 3)
    pending = await db.scalar(select(func.count()).select_from(Order).where(Order.status == OrderStatus.PENDING))
    cancelled = await db.scalar(select(func.count()).select_from(Order).where(Order.status == OrderStatus.CANCELLED))
    await signed_in(client, settings, await make_user(db, Role.ADMIN))
    page = (await client.get("/admin/orders?status=PENDING")).text
    assert f"<p>{pending} order{'' if pending == 1 else 's'}</p>" in page
    assert all(number in page for number in numbers)
    page = (await client.get("/admin/orders?status=CANCELLED")).text
    assert f"<p>{cancelled} order{'' if cancelled == 1 else 's'}</p>" in page
    assert not any(number in page for number in numbers)
