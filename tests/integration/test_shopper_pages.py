"""A signed-in shopper's cart, checkout and order pages answered before Litestar (issue #13,
platform/pages.py `ShopperPage`): one Redis call for the session, one asyncpg statement for the
user and what the page shows, the page's own template; anything unusual goes to Litestar.

Whether a page came that way is read from the ORM's statements (the early path runs none, the
Litestar handlers always do), never from timings. That the two paths give the same page is checked
byte for byte against the same app with the early path switched off.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, update

from sweetdream.accounts.models import Role, User
from sweetdream.app import create_app
from sweetdream.cart import web as cart_web
from sweetdream.catalog.models import Product
from sweetdream.orders import web as orders_web
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in
from tests.integration.helpers import post_form, register
from tests.integration.test_checkout import checkout, checkout_form, hidden_fields

ORDER_NUMBER = re.compile(r"/orders/(SD-\d{6})$")
PLACE_HOLDERS = re.compile(r'name="idempotency_key" value="[^"]*"')


class OrmStatements:
    """The SQL the app's ORM sends while the block runs (the early path sends none through it)."""

    def __init__(self, app: Litestar) -> None:
        self.engine = app.state.sqlalchemy_config.get_engine().sync_engine
        self.seen: list[str] = []

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(statement)

    def __enter__(self) -> list[str]:
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


async def early(client: AsyncTestClient[Litestar], path: str) -> Any:
    """GET `path`, asserting the early path answered it (no ORM statement)."""
    with OrmStatements(client.app) as statements:
        page = await client.get(path)
    assert page.status_code == 200, (page.status_code, page.text[:300])
    assert statements == [], f"{path} went through Litestar: {statements[:2]}"
    return page


async def through_litestar(client: AsyncTestClient[Litestar], path: str) -> Any:
    with OrmStatements(client.app) as statements:
        page = await client.get(path)
    assert statements, f"{path} was answered before Litestar"
    return page


@pytest.fixture
async def litestar_only(settings: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The same app with no page answered before Litestar but the catalog's: today's handlers."""
    monkeypatch.setattr(cart_web, "shopper_page", lambda path: None)
    monkeypatch.setattr(orders_web, "shopper_page", lambda path: None)
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as other:
        other.follow_redirects = False
        yield other


async def shopper_with_order(client: AsyncTestClient[Litestar], settings: Any, db: Any) -> tuple[User, Any, str]:
    """A signed-in shopper with an order placed and 2 of a size in their cart again."""
    _product, (size,) = await make_product(db, stock=10, price=120_000)
    user = await make_user(db)
    await signed_in(client, settings, user)
    await put_in_cart(db, user, size, 1, price_seen=120_000)
    placed = await checkout(client)
    assert placed.status_code == 303, placed.text
    await put_in_cart(db, user, size, 2, price_seen=120_000)
    return user, size, placed.headers["location"]


# --- each page is answered early, and is the page Litestar renders ------------------------------


@pytest.mark.parametrize("path", ["/cart/", "/cart", "/checkout/", "/checkout", "order", "cancelled order"])
async def test_a_shoppers_own_page_is_answered_before_litestar_and_is_the_same_page(
    client, settings, db, litestar_only, path
):
    _user, _size, order_path = await shopper_with_order(client, settings, db)
    if path == "cancelled order":  # a timeline of two events, the status and payment lines changed
        assert (await post_form(client, f"{order_path}/cancel", {})).status_code == 303
        await client.get(order_path)  # its flash message, shown once
    path = order_path if "order" in path else path
    litestar_only.cookies = client.cookies  # the same shopper: the same session and CSRF cookies

    fast = await early(client, path)
    slow = await through_litestar(litestar_only, path)

    assert slow.status_code == 200
    # The checkout form's idempotency key is new on every page; everything else is the same bytes.
    assert PLACE_HOLDERS.sub("", fast.text) == PLACE_HOLDERS.sub("", slow.text)
    for header in ("content-type", "vary", "content-security-policy", "x-frame-options", "content-encoding"):
        assert fast.headers.get(header) == slow.headers.get(header), header
    assert "cache-control" not in fast.headers and "x-cache" not in fast.headers  # as Litestar's answer
    assert fast.headers["content-encoding"] == "gzip"
    assert "sd_session=" in fast.headers["set-cookie"]  # renewed, as on every page
    # In Vietnamese too (the shopper saved no language: the browser's applies).
    vietnamese = {"accept-language": "vi"}
    fast_vi, slow_vi = await client.get(path, headers=vietnamese), await litestar_only.get(path, headers=vietnamese)
    assert 'lang="vi"' in fast_vi.text
    assert PLACE_HOLDERS.sub("", fast_vi.text) == PLACE_HOLDERS.sub("", slow_vi.text)


async def test_the_cart_page_shows_the_shoppers_own_lines_at_the_current_price(client, settings, db):
    product, (size,) = await make_product(db, stock=4, price=100_000)
    other_product, (other_size,) = await make_product(db, stock=4, price=55_000)
    user, someone_else = await make_user(db), await make_user(db)
    await put_in_cart(db, user, size, 3, price_seen=100_000)
    await put_in_cart(db, someone_else, other_size, 1, price_seen=55_000)
    await signed_in(client, settings, user)
    # The price changes after the shopper added it (as the admin's editor writes it).
    await db.execute(update(Product).where(Product.id == product.id).values(price=120_000))
    await db.commit()

    page = (await early(client, "/cart/")).text

    assert product.name in page and other_product.name not in page
    assert "₫120,000" in page and "₫360,000" in page  # the price now, not the one seen or a cached one
    assert "The price has gone up since you added it (was ₫100,000)" in page
    assert '<span class="count">3</span>' in page
    assert "Minh Anh" in page  # their name in the header


async def test_the_cart_page_flags_a_line_with_too_little_stock_left(client, settings, db):
    _product, (size,) = await make_product(db, stock=2)
    user = await make_user(db)
    await put_in_cart(db, user, size, 3)
    await signed_in(client, settings, user)
    page = (await early(client, "/cart/")).text
    assert "Only 2 left: please lower the quantity." in page
    assert "Please fix the items marked above before checking out." in page


async def test_the_checkout_page_prices_the_cart_from_the_database_at_that_moment(client, settings, db):
    product, (size,) = await make_product(db, stock=5, price=100_000)
    user = await make_user(db)
    await put_in_cart(db, user, size, 2, price_seen=100_000)
    await signed_in(client, settings, user)
    assert "₫200,000" in (await early(client, "/checkout/")).text

    await db.execute(update(Product).where(Product.id == product.id).values(price=90_000))
    await db.commit()
    page = (await early(client, "/checkout/")).text

    total = re.search(r'<dd id="subtotal">([^<]*)</dd>', page)
    assert total is not None and "₫180,000" in total.group(1)
    assert 'value="Minh Anh"' in page and 'value="0901234567"' in page  # their details, prefilled


async def test_the_checkout_page_an_early_answer_shows_places_the_order(client, settings, db):
    _product, (size,) = await make_product(db, stock=5)
    user = await make_user(db)
    await put_in_cart(db, user, size, 1)
    await signed_in(client, settings, user)
    page = (await early(client, "/checkout/")).text
    form = hidden_fields(page)  # the CSRF token, the idempotency key and the review, as a browser sends them
    placed = await client.post(
        "/checkout/", data={**checkout_form(), **form, "idempotency_key": form["idempotency_key"]}
    )
    assert placed.status_code == 303, placed.text
    assert ORDER_NUMBER.search(placed.headers["location"])


async def test_an_empty_checkout_still_goes_back_to_the_cart_with_its_message(client, settings, db):
    user = await make_user(db)
    await signed_in(client, settings, user)
    answer = await through_litestar(client, "/checkout/")
    assert answer.status_code == 303 and answer.headers["location"] == "/cart"
    assert "Your cart is empty: add something first." in (await client.get("/cart/")).text


async def test_the_order_page_is_the_owners_alone(client, settings, db, litestar_only):
    _user, _size, order_path = await shopper_with_order(client, settings, db)
    page = (await early(client, order_path)).text
    assert "We have received your order and are confirming it" in page  # the owner's headline
    assert "Order placed" in page and "₫120,000" in page

    stranger = await make_user(db)
    await signed_in(litestar_only, settings, stranger)
    assert (await through_litestar(litestar_only, order_path)).status_code == 404
    assert (await through_litestar(client, "/orders/SD-999999")).status_code == 404  # no such order

    admin = await make_user(db, role=Role.ADMIN)
    litestar_only.cookies.clear()
    await signed_in(litestar_only, settings, admin)
    assert (await through_litestar(litestar_only, order_path)).status_code == 200  # staff see it, as today


async def test_the_order_pages_cancel_form_submits(client, settings, db):
    _user, _size, order_path = await shopper_with_order(client, settings, db)
    page = (await early(client, order_path)).text
    token = re.search(
        r'action="/orders/SD-\d+/cancel">\s*<input type="hidden" name="_csrf_token" value="([^"]+)"', page
    )
    assert token is not None, page
    cancelled = await client.post(f"{order_path}/cancel", data={"_csrf_token": unescape(token.group(1))})
    assert cancelled.status_code == 303
    assert "was cancelled" in (await client.get(order_path)).text  # the flash: Litestar shows it once
    assert 'Status: <span class="status status-cancelled"' in (await early(client, order_path)).text


# --- what goes to Litestar --------------------------------------------------------------------------


async def test_a_signed_out_visitor_gets_what_they_got_before(client, db):
    _product, (size,) = await make_product(db, stock=5)
    assert "Your cart is empty." in (await client.get("/cart/")).text
    await post_form(client, "/cart/items", {"variant_id": str(size.id), "quantity": "1"})
    cart = await through_litestar(client, "/cart/")  # a visitor's cart lives in their session
    assert "Test cake" in cart.text
    for path in ("/checkout/", "/orders/SD-000001"):
        answer = await client.get(path)
        assert answer.status_code in (302, 303) and answer.headers["location"].startswith("/account/login")


async def test_a_session_a_password_change_ended_is_not_served(client, settings, db):
    _product, (size,) = await make_product(db, stock=5)
    user = await make_user(db)
    await put_in_cart(db, user, size, 1)
    await signed_in(client, settings, user)
    await early(client, "/cart/")
    await db.execute(update(User).where(User.id == user.id).values(session_epoch=User.session_epoch + 1))
    await db.commit()

    page = (await through_litestar(client, "/cart/")).text
    assert "Your password was changed, so you were signed out here." in page
    assert "Sign in" in page and "Test cake" not in page
    assert (await client.get("/checkout/")).status_code in (302, 303)


async def test_a_flash_message_is_shown_once_then_the_page_is_answered_early(client, settings, db):
    _product, (size,) = await make_product(db, stock=5)
    assert (await register(client, name="Mai Tran")).status_code == 303
    await client.get("/products")  # the welcome message
    added = await post_form(client, "/cart/items", {"variant_id": str(size.id), "quantity": "2"})
    assert added.status_code == 303 and added.headers["location"] == "/cart"
    first = (await through_litestar(client, "/cart/")).text
    assert "to your cart." in first
    second = (await early(client, "/cart/")).text
    assert "to your cart." not in second and "Mai Tran" in second


async def test_a_form_on_an_early_page_submits_with_the_token_it_carries(settings, db):
    """A browser with no CSRF cookie yet: the early page sets one, and its forms carry the same."""
    _product, (size,) = await make_product(db, stock=5)
    user = await make_user(db)
    await put_in_cart(db, user, size, 1)
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as client:
        client.follow_redirects = False
        await signed_in(client, settings, user)
        client.cookies.delete("sd_csrf")
        page = await early(client, "/cart/")
        assert "sd_csrf=" in page.headers["set-cookie"]
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token is not None and token.group(1) == client.cookies["sd_csrf"]
        updated = await client.post(f"/cart/items/{size.id}", data={"quantity": "3", "_csrf_token": token.group(1)})
        assert updated.status_code == 303
        assert 'value="3"' in (await early(client, "/cart/")).text
        refused = await client.post(f"/cart/items/{size.id}", data={"quantity": "4", "_csrf_token": "x" * 64})
        assert refused.status_code == 403


async def test_an_htmx_request_or_a_query_string_goes_to_litestar(client, settings, db):
    _product, (size,) = await make_product(db, stock=5)
    user = await make_user(db)
    await put_in_cart(db, user, size, 1)
    await signed_in(client, settings, user)
    with OrmStatements(client.app) as statements:
        fragment = await client.get("/cart/", headers={"hx-request": "true"})
    assert statements and "<html" not in fragment.text and "Test cake" in fragment.text
    assert "Test cake" in (await through_litestar(client, "/cart/?from=mail")).text


async def test_a_new_name_or_cart_count_shows_on_the_next_page(client, settings, db):
    """The header's parts are reused between requests by what they show (platform/pages.py
    `shopper_parts`): a change of name or count is a different part, never the old one."""
    _product, (size,) = await make_product(db, stock=9)
    user = await make_user(db)
    await put_in_cart(db, user, size, 1)
    await signed_in(client, settings, user)
    page = (await early(client, "/cart/")).text
    assert "Minh Anh" in page and '<span class="count">1</span>' in page
    await db.execute(update(User).where(User.id == user.id).values(name="Minh Anh Tran"))
    await db.commit()
    await post_form(client, f"/cart/items/{size.id}", {"quantity": "4"})
    page = (await early(client, "/cart/")).text
    assert ">Minh Anh Tran</a>" in page and '<span class="count">4</span>' in page


async def test_the_checkouts_fixed_part_follows_the_language_and_gives_way_to_what_was_typed(client, settings, db):
    """The note and the payment choice, as a GET shows them, are rendered once per language
    (platform.pages.once_per_language): each language gets its own, and a form sent back with an
    error shows what the shopper chose and typed instead."""
    _product, (size,) = await make_product(db, stock=5)
    user = await make_user(db)
    await put_in_cart(db, user, size, 1)
    await signed_in(client, settings, user)
    for language, cash in (("en", "Cash on delivery"), ("vi", "Trả tiền khi nhận hàng"), ("en", "Cash on delivery")):
        await post_form(client, "/language", {"language": language, "next": "/checkout"})
        page = await client.get("/checkout/")
        assert f'value="COD" checked> {cash}</label>' in page.text

    sent = await checkout(
        client, payment_method="CARD", card_number="4242 4242 4242 4241", card_expiry="12/39", card_cvc="123",
        note="Ring <twice>",
    )  # fmt: skip
    assert sent.status_code == 400
    assert 'value="CARD" id="pay-by-card" checked' in sent.text
    assert 'aria-describedby="card_number-error"' in sent.text
    assert ">Ring &lt;twice&gt;</textarea>" in sent.text


@pytest.mark.parametrize("language", ["vi", "en"])
def test_a_part_rendered_once_shows_each_shoppers_own_values_escaped(app, language):
    """`once_per_language` (the checkout's delivery form) gives what including the partial gives,
    for one shopper and then for the next: their own values, escaped, none of the previous one's."""
    from sweetdream.platform.i18n import use_language

    env = app.template_engine.engine
    included = env.from_string('{% include "orders/_delivery.html" %}')
    once = env.from_string('{{ once_per_language("orders/_delivery.html", name=name, phone=phone, address=address) }}')
    shoppers = [
        {"name": 'Ann "<i>" & Co', "phone": "0901 234 567", "address": "12 Lê Lợi\n<script>x</script>"},
        {"name": "Minh Anh", "phone": "0912345678", "address": "99 Nguyễn Huệ"},
    ]
    with use_language(language):
        pages = [once.render(**shopper) for shopper in shoppers]
        assert pages == [included.render(**shopper) for shopper in shoppers]
    first, second = pages
    assert 'value="Ann &#34;&lt;i&gt;&#34; &amp; Co"' in first and "&lt;script&gt;x&lt;/script&gt;</textarea>" in first
    assert 'value="Minh Anh"' in second and "Ann" not in second and "script" not in second
