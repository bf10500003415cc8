"""What a client can put in a request: look-alike digits, control characters, odd CSRF tokens.
Each gets a clear 4xx (or the form with an error, or page 1) and changes nothing; none is a 500.
Also: database errors carry no values into the logs, and text responses are compressed."""

import gzip
import logging
import secrets

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from sweetdream.accounts.models import Role, User
from sweetdream.app import create_app
from sweetdream.cart.models import CartItem
from sweetdream.orders.models import Order, OrderEvent, OrderStatus
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in
from tests.integration.helpers import post_form, register, reviewed, unique_email

CONTROL = "control characters"
NUL_PATHS = ["/orders/a%00b", "/orders/a%00b/events", "/products/a%00b", "/static/a%00b.css"]


def checkout_form(**overrides: str) -> dict[str, str]:
    return {
        "idempotency_key": secrets.token_urlsafe(24),
        "name": "Minh Anh",
        "phone": "0901234567",
        "address": "99 Nguyễn Huệ, Quận 1, TP.HCM",
        "note": "Ít đường",
        "payment_method": "COD",
        **overrides,
    }


async def place_order(client, settings, db) -> tuple[User, str]:
    """A shopper (signed in on `client`) with a PENDING order placed through the checkout form."""
    user = await make_user(db)
    _, (variant,) = await make_product(db, stock=5)
    await put_in_cart(db, user, variant, 1)
    await signed_in(client, settings, user)
    response = await post_form(client, "/checkout/", {**checkout_form(), **await reviewed(client)})
    assert response.status_code == 303
    return user, response.headers["location"].removeprefix("/orders/")


# --- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["²", "١٢", "1_000", " 2", "-1"])
async def test_a_catalog_page_number_that_is_not_one_shows_the_first_page(client, page):
    response = await client.get("/products", params={"page": page})
    assert response.status_code == 200
    assert "Page 1 of" in response.text


async def test_a_page_number_of_five_thousand_digits_is_past_the_last_page(client):
    response = await client.get("/products", params={"page": "9" * 5000})
    assert response.status_code == 200
    assert "There is no page 10000" in response.text


@pytest.mark.parametrize("price", ["²", "١٢", "9" * 5000])
async def test_a_price_filter_that_is_not_a_number_is_a_400_beside_the_field(client, price):
    response = await client.get("/products", params={"min_price": price})
    assert response.status_code == 400
    assert 'id="min_price-error"' in response.text


async def test_order_history_and_admin_orders_read_any_page_number(client, settings, db):
    admin = await make_user(db, role=Role.ADMIN)
    await signed_in(client, settings, admin)
    for url in ["/account/orders?page=%C2%B2", "/admin/orders?page=%C2%B2", "/admin/orders?page=" + "9" * 5000]:
        response = await client.get(url)
        assert response.status_code == 200, url


@pytest.mark.parametrize("quantity", ["²", "١٢", "1_000", "9" * 5000])
async def test_a_cart_quantity_in_look_alike_digits_is_refused_with_the_carts_message(client, db, quantity):
    _, (variant,) = await make_product(db, stock=5)
    response = await post_form(
        client, "/cart/items", {"variant_id": str(variant.id), "quantity": quantity}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 409
    assert "Choose a quantity from 1 to" in response.text
    assert await db.scalar(select(func.count()).select_from(CartItem).where(CartItem.variant_id == variant.id)) == 0


# --- control characters --------------------------------------------------------------------------


async def test_a_nul_in_the_sign_in_email_is_a_400(client):
    response = await post_form(client, "/account/login", {"email": "a\x00b@example.com", "password": "whatever123"})
    assert response.status_code == 400
    assert CONTROL in response.text


@pytest.mark.parametrize("field", ["email", "name", "phone", "address", "password"])
async def test_a_control_character_in_registration_is_a_400_and_makes_no_account(client, db, field):
    email = unique_email()
    form = {"email": email, field: f"x\x00{email}" if field == "email" else "Lan\x01 Nguyen"}
    response = await register(client, **form)
    assert response.status_code == 400
    assert CONTROL in response.text
    assert await db.scalar(select(func.count()).select_from(User).where(User.email.contains(email))) == 0


@pytest.mark.parametrize("field", ["name", "address", "note", "phone", "idempotency_key"])
async def test_a_control_character_at_checkout_is_a_400_and_places_no_order(client, settings, db, field):
    user = await make_user(db)
    _, (variant,) = await make_product(db, stock=5)
    await put_in_cart(db, user, variant, 1)
    await signed_in(client, settings, user)
    form = checkout_form()
    form[field] = form[field][:3] + "\x00" + form[field][3:]
    response = await post_form(client, "/checkout/", form)
    assert response.status_code == 400
    assert CONTROL in response.text
    assert await db.scalar(select(func.count()).select_from(Order).where(Order.user_id == user.id)) == 0


async def test_multi_line_fields_keep_their_line_breaks_and_tabs(client, settings, db):
    user = await make_user(db)
    _, (variant,) = await make_product(db, stock=5)
    await put_in_cart(db, user, variant, 1)
    await signed_in(client, settings, user)
    form = checkout_form(address="99 Nguyễn Huệ\r\nQuận 1, TP.HCM", note="Giao buổi sáng\n\tKhông hành")
    response = await post_form(client, "/checkout/", {**form, **await reviewed(client)})
    assert response.status_code == 303


async def test_a_control_character_in_the_profile_is_a_400_and_changes_nothing(client, settings, db):
    user = await make_user(db)
    await signed_in(client, settings, user)
    response = await post_form(client, "/account/", {"name": "New\x00Name", "phone": "", "address": ""})
    assert response.status_code == 400
    assert await db.scalar(select(User.name).where(User.id == user.id)) == "Minh Anh"


async def test_a_control_character_in_an_admin_status_note_is_a_400_and_moves_nothing(client, settings, db):
    _, number = await place_order(client, settings, db)
    await signed_in(client, settings, await make_user(db, role=Role.ADMIN))
    response = await post_form(client, f"/admin/orders/{number}/status", {"status": "PROCESSING", "note": "ok\x00"})
    assert response.status_code == 400
    assert await db.scalar(select(Order.status).where(Order.number == number)) == OrderStatus.PENDING


@pytest.mark.parametrize("path", NUL_PATHS)
async def test_a_nul_in_a_path_parameter_is_a_400(client, settings, db, path):
    await signed_in(client, settings, await make_user(db, role=Role.ADMIN))
    response = await client.get(path)
    assert response.status_code == 400
    assert CONTROL in response.text


async def test_a_nul_in_an_order_number_posted_to_is_a_400_and_moves_nothing(client, settings, db):
    admin = await make_user(db, role=Role.ADMIN)
    await signed_in(client, settings, admin)
    events = await db.scalar(select(func.count()).select_from(OrderEvent))
    for path in ["/admin/orders/a%00b/status", "/orders/a%00b/cancel", "/cart/items/a%00b"]:
        response = await post_form(client, path, {"status": "CANCELLED", "quantity": "1"})
        assert response.status_code == 400, path
    assert await db.scalar(select(func.count()).select_from(OrderEvent)) == events


async def test_a_control_character_in_a_visitors_path_is_a_400_before_sign_in(client):
    response = await client.get("/orders/%01")
    assert response.status_code == 400


# --- CSRF tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["é" * 40, "😀", "tokén"])
async def test_a_csrf_token_that_is_not_ascii_is_refused_like_any_wrong_token(client, db, token):
    await client.get("/products")
    email = unique_email()
    form = {"email": email, "password": "correct horse battery", "name": "Lan", "_csrf_token": token}
    response = await client.post("/account/register", data=form)
    assert response.status_code == 403
    response = await client.post("/account/register", data=form, headers={"x-csrftoken": token.encode()})
    assert response.status_code == 403
    assert await db.scalar(select(func.count()).select_from(User).where(User.email == email)) == 0


async def test_a_csrf_cookie_that_is_not_ascii_is_refused(client):
    client.cookies.clear()
    cookie = ("sd_csrf=" + "é" * 80).encode()
    response = await client.post("/account/logout", data={"_csrf_token": "é" * 80}, headers={"cookie": cookie})
    assert response.status_code == 403


# --- database errors keep their values out of the logs ------------------------------------------


async def test_a_database_error_through_the_apps_engine_carries_no_parameter_values(app, db, caplog):
    """A duplicate email: the error names the constraint; the row's values stay out of it."""
    taken = await make_user(db)
    phone, address = "0909 " + secrets.token_hex(3), "Hẻm bí mật " + secrets.token_hex(4)
    config = app.state.sqlalchemy_config
    caplog.set_level(logging.DEBUG)
    async with config.get_session() as session:
        session.add(User(email=taken.email, password_hash="x", name="Lan", phone=phone, address=address))
        with pytest.raises(DBAPIError) as raised:
            await session.flush()
        logging.getLogger("sweetdream.errors").error("unhandled error", exc_info=raised.value)
    await config.get_engine().dispose()
    assert "duplicate key value violates unique constraint" in str(raised.value)
    for value in (phone, address):
        assert value not in str(raised.value)
        assert value not in caplog.text


def test_every_engine_the_code_builds_hides_parameters(stack):
    from sweetdream.cli import run_with_session
    from sweetdream.db import make_sqlalchemy_config

    assert make_sqlalchemy_config(stack.settings).get_engine().sync_engine.hide_parameters is True

    async def engine_of(session):
        return session.bind.sync_engine.hide_parameters

    assert run_with_session(create_app(stack.settings), engine_of) is True


async def test_the_workers_engine_hides_parameters(settings):
    from redis.asyncio import Redis

    from workers import jobs

    ctx = {"redis": Redis.from_url(settings.redis_url)}
    await jobs.startup(ctx)
    try:
        assert jobs.state(ctx).engine.sync_engine.hide_parameters is True
    finally:
        await jobs.shutdown(ctx)
        await ctx["redis"].aclose()


# --- compression ---------------------------------------------------------------------------------

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


async def test_a_page_is_gzipped_when_the_browser_accepts_it_and_not_otherwise(client, settings, db):
    await signed_in(client, settings, await make_user(db))  # a signed-in page: rendered by Litestar
    compressed = await client.get("/account", headers=GZIP)
    assert compressed.status_code == 200
    assert compressed.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in compressed.headers["vary"]
    assert "<html" in compressed.text
    plain = await client.get("/account", headers=IDENTITY)
    assert "content-encoding" not in plain.headers


async def test_a_cached_catalog_page_for_a_visitor_is_gzipped_too(client):
    first = await client.get("/products?sort=newest", headers=GZIP)  # renders and caches the page
    second = await client.get("/products?sort=newest", headers=GZIP)  # served from the cache
    assert first.status_code == second.status_code == 200
    assert second.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in second.headers["vary"]
    assert int(second.headers["content-length"]) < len(second.content) / 2
    assert gzip.decompress(gzip.compress(second.content)) == second.content
    assert client.cookies["sd_csrf"] in second.text  # this visitor's token in the cached page
    plain = await client.get("/products?sort=newest", headers=IDENTITY)
    assert "content-encoding" not in plain.headers
    assert plain.text == second.text


@pytest.mark.parametrize("path", ["/static/css/app.css", "/static/vendor/htmx-2.0.11.min.js"])
async def test_stylesheets_and_scripts_are_gzipped(client, path):
    compressed = await client.get(path, headers=GZIP)
    assert compressed.status_code == 200
    assert compressed.headers["content-encoding"] == "gzip"
    plain = await client.get(path, headers=IDENTITY)
    assert "content-encoding" not in plain.headers
    assert plain.content == compressed.content


async def test_the_live_order_stream_is_not_compressed(client, settings, db, monkeypatch):
    from sweetdream.orders import web as orders_web

    monkeypatch.setattr(orders_web, "LIVE_STREAM_SECONDS", 0)  # the first message, then the stream ends
    _, number = await place_order(client, settings, db)
    response = await client.get(f"/orders/{number}/events", headers=GZIP)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in response.headers
    assert "event: status" in response.text
