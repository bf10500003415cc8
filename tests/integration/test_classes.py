"""Capacity-limited classes with a date (issue #10): a size with `starts_at` is a seat in the session
that starts then. The admin sets it on the shop's clock; shoppers read it in shop time; a session
that has started is never sold (the cart, the checkout and the stock's own UPDATE refuse it), and
cached pages stop offering it the moment it starts."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, date, datetime, timedelta
from html import unescape

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from sweetdream.app import create_app
from sweetdream.audit.models import AuditEntry
from sweetdream.catalog import demo, stock
from sweetdream.catalog.models import Product, Variant
from sweetdream.catalog.seed import load_demo_catalog
from sweetdream.orders.models import Order, OrderLine
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in, stock_of
from tests.integration.helpers import post_form
from tests.integration.test_admin_catalog import admin_client, audit_rows, create
from tests.integration.test_checkout import NUMBER, checkout, orders_of, review
from tests.integration.test_languages import english_in, vietnamese
from tests.integration.test_workers import body, mails_to
from tests.support import drain_queue

# Far ahead, so no test depends on today's date. 09:00 in Ho Chi Minh City is 02:00 UTC.
STARTS_TYPED = "2099-03-06T09:00"
STARTS_UTC = datetime(2099, 3, 6, 2, 0, tzinfo=UTC)
EN_WHEN = "6 Mar 2099, 09:00"
VI_WHEN = "06/03/2099 09:00"


async def make_class(db, stock_left: int = 5, starts_at: datetime = STARTS_UTC) -> tuple[Product, Variant]:
    product, (seat,) = await make_product(db, stock=stock_left, max_per_customer=3)
    await db.execute(update(Variant).where(Variant.id == seat.id).values(starts_at=starts_at))
    await db.commit()
    return product, seat


async def start_now(db, seat: Variant) -> None:
    """The session began a minute ago (what time does to a class; no catalog write is involved)."""
    await db.execute(
        update(Variant).where(Variant.id == seat.id).values(starts_at=datetime.now(UTC) - timedelta(minutes=1))
    )
    await db.commit()


def class_form(tag: str, starts: str, **overrides: str) -> dict[str, str]:
    return {
        "slug": f"test-cake-class-{tag}",  # test-cake-*: withdrawn after the test (conftest)
        "max_per_customer": "2",
        "size-0-starts": starts,
        "size-1-label": "",
        "size-1-price": "",
        "size-1-sku": "",
        **overrides,
    }


# --- the editor ------------------------------------------------------------------------------------


async def test_the_editor_saves_a_class_start_typed_in_shop_time_as_utc_and_shows_it_back(client, settings, db):
    await admin_client(client, settings, db)
    tag = secrets.token_hex(3)
    answer = await create(client, db, tag, **class_form(tag, STARTS_TYPED))
    assert answer.status_code == 303, unescape(answer.text)
    product = await db.scalar(select(Product).where(Product.slug == f"test-cake-class-{tag}"))
    seat = await db.scalar(select(Variant).where(Variant.product_id == product.id))
    assert seat.starts_at == STARTS_UTC
    (created,) = await audit_rows(db, "product.create", product.id)
    assert created.after["sizes"][0]["starts_at"] == "2099-03-06T02:00+00:00"
    form = (await client.get(f"/admin/products/{product.id}")).text
    assert f'name="size-0-starts" type="datetime-local" value="{STARTS_TYPED}"' in form

    moved = {
        "name": product.name,
        "slug": product.slug,
        "category": str(product.category_id),
        "description": "",
        "max_per_customer": "2",
        "size-0-id": str(seat.id),
        "size-0-label": seat.label,
        "size-0-price": "120000",
        "size-0-threshold": "2",
        "size-0-sku": seat.sku,
        "size-0-starts": "2099-03-07T14:30",
    }
    answer = await post_form(client, f"/admin/products/{product.id}", moved)
    assert answer.status_code == 303, unescape(answer.text)
    assert await db.scalar(
        select(Variant.starts_at).where(Variant.id == seat.id).execution_options(populate_existing=True)
    ) == datetime(2099, 3, 7, 7, 30, tzinfo=UTC)
    (change,) = await audit_rows(db, "variant.starts", seat.id)
    assert (change.before, change.after) == (
        {"starts_at": "2099-03-06T02:00+00:00"},
        {"starts_at": "2099-03-07T07:30+00:00"},
    )
    assert change.actor_email.startswith("u") and change.target_label == f"{product.name} ({seat.label})"
    # Cleared: the size is ordinary goods again (and that is audited too).
    answer = await post_form(client, f"/admin/products/{product.id}", {**moved, "size-0-starts": ""})
    assert answer.status_code == 303
    assert [(c.before, c.after) for c in await audit_rows(db, "variant.starts", seat.id)][1] == (
        {"starts_at": "2099-03-07T07:30+00:00"},
        {"starts_at": None},
    )


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("next saturday", "A date and time, for example 2027-03-06 09:00, or leave it empty."),
        ("2099-02-30T09:00", "A date and time, for example 2027-03-06 09:00, or leave it empty."),
        ("2099-03-06T25:00", "A date and time, for example 2027-03-06 09:00, or leave it empty."),
        ("2099-03-06T09:00" + "0" * 5000, "A date and time, for example 2027-03-06 09:00, or leave it empty."),
        ("2020-01-04T09:00", "A class can't start in the past: choose a later time."),
    ],
)
async def test_a_bad_class_start_shows_its_error_beside_it_and_saves_nothing(client, settings, db, typed, message):
    await admin_client(client, settings, db)
    products = await db.scalar(select(func.count()).select_from(Product))
    audits = await db.scalar(select(func.count()).select_from(AuditEntry))
    tag = secrets.token_hex(3)
    answer = await create(client, db, tag, **class_form(tag, typed))
    assert answer.status_code == 400
    text = unescape(answer.text)
    assert f'<p class="error" id="size-0-starts-error">{message}</p>' in text
    assert 'id="size-0-starts" name="size-0-starts" type="datetime-local"' in text
    assert await db.scalar(select(func.count()).select_from(Product)) == products
    assert await db.scalar(select(func.count()).select_from(AuditEntry)) == audits


async def test_a_session_under_way_keeps_its_start_but_cannot_be_moved_into_the_past(client, settings, db):
    product, seat = await make_class(db, starts_at=datetime.now(UTC) - timedelta(hours=1))
    await admin_client(client, settings, db)
    started = (await client.get(f"/admin/products/{product.id}")).text
    kept = started.split('name="size-0-starts" type="datetime-local" value="')[1].split('"')[0]
    form = {
        "name": product.name + " renamed",
        "slug": product.slug,
        "category": str(product.category_id),
        "description": "",
        "max_per_customer": "3",
        "size-0-id": str(seat.id),
        "size-0-label": seat.label,
        "size-0-price": "100000",
        "size-0-threshold": "2",
        "size-0-sku": seat.sku,
        "size-0-starts": kept,
    }
    assert (await post_form(client, f"/admin/products/{product.id}", form)).status_code == 303
    refused = await post_form(client, f"/admin/products/{product.id}", {**form, "size-0-starts": "2020-01-04T09:00"})
    assert refused.status_code == 400
    assert "A class can't start in the past: choose a later time." in unescape(refused.text)
    assert await audit_rows(db, "variant.starts", seat.id) == []


# --- the shop ---------------------------------------------------------------------------------------


async def test_the_product_page_shows_the_session_in_shop_time_in_vietnamese_and_english(client, db):
    product, _ = await make_class(db)
    english = unescape((await client.get(f"/products/{product.slug}")).text)
    assert f"Class starts {EN_WHEN}" in english and "Add to cart" in english
    vietnamese = unescape((await client.get(f"/products/{product.slug}", headers={"accept-language": "vi"})).text)
    assert f"Lớp bắt đầu lúc {VI_WHEN}" in vietnamese
    listing = unescape((await client.get(f"/products?q={product.name}")).text)
    assert f"Next class {EN_WHEN}" in listing


async def test_a_started_session_is_shown_as_such_and_cannot_be_added_to_the_cart(client, db):
    product, seat = await make_class(db)
    await start_now(db, seat)
    page = unescape((await client.get(f"/products/{product.slug}")).text)
    assert "Already started" in page and "This class has already started" in page
    assert '<button type="submit">Add to cart</button>' not in page
    card = unescape((await client.get(f"/products?q={product.name}")).text)
    assert "Already started" in card and "Next class" not in card
    in_stock_only = unescape((await client.get(f"/products?q={product.name}&in_stock=1")).text)
    assert f'href="/products/{product.slug}"' not in in_stock_only

    refused = await post_form(
        client, "/cart/items", {"variant_id": str(seat.id), "quantity": "1"}, headers={"HX-Request": "true"}
    )
    assert refused.status_code == 409
    assert "This class has already started: its seats can no longer be booked." in unescape(refused.text)
    plain = await post_form(client, "/cart/items", {"variant_id": str(seat.id), "quantity": "1"})  # no JavaScript
    assert plain.status_code == 303  # back to the cart, with the message shown there
    cart = unescape((await client.get(plain.headers["location"])).text)
    assert "This class has already started" in cart and "Your cart is empty." in cart
    assert await stock_of(db, seat) == 5


async def test_a_cart_filled_before_the_start_and_submitted_after_is_refused_and_takes_nothing(client, settings, db):
    _, seat = await make_class(db)
    user = await make_user(db)
    await put_in_cart(db, user, seat, 1)
    await signed_in(client, settings, user)
    seen = unescape((await client.get("/checkout/")).text)
    assert f"Class starts {EN_WHEN}" in seen
    cart = unescape((await client.get("/cart")).text)
    assert f"Class starts {EN_WHEN}" in cart
    reviewed = await review(client)
    await start_now(db, seat)
    refused = await checkout(client, seen=reviewed)
    assert refused.status_code == 409
    assert "This class has already started and can no longer be booked." in unescape(refused.text)
    assert await orders_of(db, user) == []
    assert await stock_of(db, seat) == 5
    assert "already started" in (await client.get("/cart")).text


async def test_the_stock_update_itself_takes_no_seat_of_a_started_session(db):
    """The second line: a checkout that read the cart a moment before the start still takes nothing."""
    _, seat = await make_class(db)
    await start_now(db, seat)
    seat_id = seat.id
    assert await stock.take(db, seat_id, 1) is None
    assert await stock.has_started(db, seat_id)
    assert await stock.left(db, seat_id) == 5
    await db.rollback()


async def test_the_order_page_and_the_confirmation_email_show_the_session(client, settings, db):
    _, seat = await make_class(db)
    user = await make_user(db)
    await put_in_cart(db, user, seat, 2)
    await signed_in(client, settings, user)
    placed = await checkout(client)
    assert placed.status_code == 303, placed.text
    number = NUMBER.search(placed.headers["location"]).group(1)
    order = await db.scalar(select(Order).where(Order.number == number))
    assert await db.scalar(select(OrderLine.starts_at).where(OrderLine.order_id == order.id)) == STARTS_UTC
    page = unescape((await client.get(f"/orders/{number}")).text)
    assert f"Class starts {EN_WHEN}" in page
    await drain_queue(settings.redis_url)
    (mail,) = mails_to(settings, user.email)
    assert f"Class starts {EN_WHEN}" in body(mail)
    assert f"Class starts {EN_WHEN}" in mail.get_body(preferencelist=("html",)).get_content()
    assert await stock_of(db, seat) == 3


async def test_cached_pages_stop_offering_a_session_the_moment_it_starts(settings, db):
    """No write happens when a class starts: the cached page and grid are fresh only until then."""
    product, _ = await make_class(db, starts_at=datetime.now(UTC) + timedelta(seconds=3))
    shopper = AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1")
    async with shopper:
        for _ in range(2):
            page = await shopper.get(f"/products/{product.slug}")
            assert "Add to cart" in page.text
            assert "Next class" in (await shopper.get(f"/products?q={product.name}")).text
        assert page.headers["x-cache"] == "hit"
        await asyncio.sleep(3.5)
        page = await shopper.get(f"/products/{product.slug}")
        assert page.headers["x-cache"] == "miss" and "Already started" in page.text
        assert '<button type="submit">Add to cart</button>' not in page.text
        assert "Already started" in (await shopper.get(f"/products?q={product.name}")).text


# --- demo data --------------------------------------------------------------------------------------


def test_demo_sessions_are_the_next_weekend_mornings_after_the_seeding_day():
    saturday = demo.DemoVariant("Sáng thứ Bảy", 10, weekday=demo.SATURDAY)
    sunday_next_week = demo.DemoVariant("Sáng Chủ Nhật", 9, weekday=demo.SUNDAY, weeks_ahead=1)
    zone = "Asia/Ho_Chi_Minh"
    # Seeded on a Saturday: the next Saturday, never the same day.
    assert demo.session_start(saturday, date(2026, 11, 28), zone) == datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
    assert demo.session_start(saturday, date(2026, 11, 27), zone) == datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    assert demo.session_start(sunday_next_week, date(2026, 11, 28), zone) == datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    assert demo.session_start(demo.DemoVariant("16cm", 3), date(2026, 11, 28), zone) is None


async def test_the_seed_dates_its_classes_ahead_and_a_reseed_moves_only_a_past_session(db):
    classes = [p for p in demo.PRODUCTS if p.category_slug == "lop-hoc"]
    rows = await db.execute(
        select(Product.slug, Variant)
        .join(Variant, Variant.product_id == Product.id)
        .where(Product.slug.in_([p.slug for p in classes]))
    )
    seats = {row.slug: row.Variant for row in rows}
    assert len(seats) == 4
    now = datetime.now(UTC)
    for seat in seats.values():
        assert seat.starts_at is not None and seat.starts_at > now
        assert seat.label in ("Sáng thứ Bảy", "Sáng Chủ Nhật")
    past, ahead = seats[classes[0].slug], seats[classes[1].slug]
    past_before, ahead_before = past.starts_at, ahead.starts_at
    await db.execute(update(Variant).where(Variant.id == past.id).values(starts_at=now - timedelta(days=30)))
    await db.commit()
    assert await load_demo_catalog(db, today=date(2099, 3, 6)) == 0  # a Friday: the next Saturday is the 7th
    await db.commit()
    moved = await db.scalar(
        select(Variant.starts_at).where(Variant.id == past.id).execution_options(populate_existing=True)
    )
    assert moved == datetime(2099, 3, 7, 2, 0, tzinfo=UTC)
    assert (
        await db.scalar(
            select(Variant.starts_at).where(Variant.id == ahead.id).execution_options(populate_existing=True)
        )
        == ahead_before
    )
    # Back to a date near the seeding day, as `make run` would leave it.
    await db.execute(update(Variant).where(Variant.id == past.id).values(starts_at=past_before))
    await db.commit()


async def test_class_pages_in_vietnamese_have_no_english_left(client, settings, db):
    ahead, seat = await make_class(db)
    started, started_seat = await make_class(db)
    await start_now(db, started_seat)
    user = await make_user(db)
    await put_in_cart(db, user, seat, 1)
    await put_in_cart(db, user, started_seat, 1)  # flagged in the cart and the checkout
    await signed_in(client, settings, user)
    vietnamese(client)
    for url in [
        f"/products/{ahead.slug}",
        f"/products/{started.slug}",
        "/products?category=lop-hoc",
        f"/products?q={ahead.name}",
        f"/products?q={started.name}",
        "/cart",
        "/checkout/",
    ]:
        page = (await client.get(url)).text
        assert '<html lang="vi">' in page, url
        assert english_in(page) == [], url
    assert f"Lớp bắt đầu lúc {VI_WHEN}" in unescape((await client.get("/cart")).text)
    await admin_client(client, settings, db)
    editor = (await client.get(f"/admin/products/{ahead.id}")).text
    assert english_in(editor) == [] and "Lớp bắt đầu" in editor
