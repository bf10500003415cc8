"""Vietnamese first (issue #14): which language a page speaks, the switch, the page cache by
language, every page with no English left in Vietnamese, and an email in the recipient's language.

"No English left" is checked against the extracted messages themselves (locales/messages.pot): a
text node or a label of a Vietnamese page may not read as one of the English source strings."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from babel.messages.pofile import read_po
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from sweetdream.accounts.models import Role, User
from sweetdream.app import create_app
from sweetdream.audit.services import Actor, record
from tests.integration.factories import make_product, make_user, put_in_cart, signed_in
from tests.integration.helpers import csrf_token, post_form, register, sign_in
from tests.integration.test_checkout import checkout
from tests.integration.test_workers import body, mails_to, place_by_http
from tests.support import drain_queue

LOCALES = Path(__file__).resolve().parents[2] / "locales"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
SHOWN_ATTRIBUTES = {"aria-label", "placeholder", "alt", "title"}


def vi_catalog() -> dict[str, str]:
    """Each English source string (plurals: both forms) and its Vietnamese."""
    with (LOCALES / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f)
    pairs: dict[str, str] = {}
    for message in catalog:
        sources = message.id if isinstance(message.id, tuple) else (message.id,)
        translation = message.string[0] if isinstance(message.string, tuple) else message.string
        pairs.update({source: translation for source in sources if source})
    return pairs


def english_sources() -> list[re.Pattern[str]]:
    """Every English source string whose Vietnamese differs, as a pattern for a whole text node."""
    with (LOCALES / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        vietnamese = read_po(f)
    patterns = []
    for message in vietnamese:
        sources = message.id if isinstance(message.id, tuple) else (message.id,)
        translations = message.string if isinstance(message.string, tuple) else (message.string,)
        for source in sources:
            if not source or "<" in source or source in translations:
                continue
            parts = PLACEHOLDER.split(source)
            patterns.append(re.compile(".+?".join(re.escape(part) for part in parts)))
    return patterns


ENGLISH = english_sources()


class ShownText(HTMLParser):
    """The text nodes and the labels a person reads or hears (not scripts, styles or values)."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        self.shown += [value.strip() for name, value in attrs if name in SHOWN_ATTRIBUTES and value and value.strip()]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if text and not self._skip:
            self.shown.append(text)


def english_in(page: str) -> list[str]:
    parser = ShownText()
    parser.feed(page)
    return [text for text in parser.shown if any(pattern.fullmatch(text) for pattern in ENGLISH)]


def vietnamese(client: AsyncTestClient) -> AsyncTestClient:
    client.headers["accept-language"] = "vi-VN,vi;q=0.9"
    return client


async def test_every_page_in_vietnamese_has_no_english_left(client, settings, db):
    shopper, variant, order = await place_by_http(client, settings, db)
    await put_in_cart(db, shopper, variant, 1)  # a cart again, for the cart and checkout pages
    vietnamese(client)
    first_product = re.search(r'href="(/products/[a-z0-9-]+)"', (await client.get("/products")).text)
    assert first_product is not None
    pages = [
        "/",
        "/products",
        "/products?q=zzqqxx",
        "/products?min_price=abc",
        "/cart",
        "/checkout/",
        f"/orders/{order.number}",
        "/account",
        "/account/orders",
        "/account/orders?page=9",
        "/no-such-page",
        "/products/no-such-cake",
        first_product.group(1),
    ]
    for url in pages:
        page = (await client.get(url)).text
        assert '<html lang="vi">' in page, url
        assert english_in(page) == [], url
    # How long ago the order was placed, as a Vietnamese reader says it.
    assert re.search(r"\((\d+ giây|\d+ phút) trước\)", (await client.get(f"/orders/{order.number}")).text)
    # The same pages for a visitor (cached pages, the sign-in links) and the account forms.
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as visitor:
        vietnamese(visitor)
        for url in ["/", "/products", first_product.group(1), "/account/login", "/account/register", "/cart"]:
            page = (await visitor.get(url)).text
            assert english_in(page) == [], url
        refused = await post_form(visitor, "/account/register", {"email": "nope", "password": "x", "name": ""})
        assert refused.status_code == 400 and english_in(refused.text) == []
        assert "Nhập địa chỉ email dạng ten@example.com." in refused.text


async def test_admin_pages_in_vietnamese_have_no_english_left(client, settings, db):
    shopper, _variant, order = await place_by_http(client, settings, db)
    product, _sizes = await make_product(db, stock=5)
    # The audit log shows a change's fields by name: they are translated too.
    await record(db, Actor(None, "cli"), "order.move", "order", order.id, before={"status": "PENDING"}, after={})
    export_filters = {"q": "SD", "payment": "COD", "payment_status": "paid", "from": "2026-11-01", "to": "2026-11-27"}
    await record(db, Actor(None, "cli"), "orders.export", "orders", "", after=export_filters)
    await db.commit()
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as admin:
        vietnamese(admin)
        await signed_in(admin, settings, await make_user(db, Role.ADMIN))
        pages = [
            "/admin",
            "/admin/orders",
            "/admin/orders?status=CANCELLED",
            f"/admin/orders/{order.number}",
            f"/admin/orders/{order.number}/slip",
            "/admin/products",
            "/admin/products?low=1",
            "/admin/products/new",
            f"/admin/products/{product.id}",
            "/admin/categories",
            "/admin/customers",
            f"/admin/customers/{shopper.id}",
            "/admin/audit",
            "/admin/analytics",
            "/admin/analytics?range=30d",
            "/admin/exports",
        ]
        for url in pages:
            answer = await admin.get(url)
            assert answer.status_code == 200, url
            assert english_in(answer.text) == [], url
        assert "Tổng quan" in (await admin.get("/admin")).text


async def test_the_checker_finds_english_in_a_page():
    assert english_in("<p>Your cart is empty.</p><input placeholder='Search cakes…'>") == [
        "Your cart is empty.",
        "Search cakes…",
    ]
    assert english_in("<p>Page 2 of 7</p>") == ["Page 2 of 7"]
    assert english_in("<p>Giỏ hàng của bạn đang trống.</p>") == []


async def test_vietnamese_is_the_default_and_accept_language_is_followed(client):
    del client.headers["accept-language"]
    page = (await client.get("/cart")).text
    assert '<html lang="vi">' in page and "Giỏ hàng của bạn đang trống." in page
    page = (await client.get("/cart", headers={"accept-language": "en-GB,en;q=0.9"})).text
    assert '<html lang="en">' in page and "Your cart is empty." in page
    page = (await client.get("/cart", headers={"accept-language": "fr-FR, vi;q=0.5, en;q=0.4"})).text
    assert '<html lang="vi">' in page
    page = (await client.get("/cart", headers={"accept-language": "de"})).text
    assert '<html lang="vi">' in page


async def test_the_switch_sets_a_cookie_and_goes_back_to_the_page(client):
    vietnamese(client)
    r = await post_form(client, "/language", {"language": "en", "next": "/products?sort=newest"})
    assert r.status_code == 303 and r.headers["location"] == "/products?sort=newest"
    assert "sd_lang=en" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
    page = (await client.get("/products?sort=newest")).text  # still asks for Vietnamese: the choice wins
    assert '<html lang="en">' in page and "All products" in page
    # The switch offers the other language, named in itself.
    assert 'name="language" value="vi"' in page and "Tiếng Việt" in page
    r = await post_form(client, "/language", {"language": "vi", "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert '<html lang="vi">' in (await client.get("/cart")).text


async def test_the_switch_refuses_an_unknown_language_and_a_missing_token(client):
    r = await post_form(client, "/language", {"language": "fr", "next": "/"})
    assert r.status_code == 400 and "sd_lang" not in r.headers.get("set-cookie", "")
    await csrf_token(client)
    r = await client.post("/language", data={"language": "en", "next": "/"})
    assert r.status_code == 403


async def test_a_signed_in_choice_is_saved_and_follows_the_shopper_to_another_browser(client, settings, db):
    vietnamese(client)
    email = "lang.switch." + settings.secret_key[:6].lower().replace("/", "x") + "@example.com"
    assert (await register(client, email=email)).status_code == 303
    user = await db.scalar(select(User).where(User.email == email))
    assert user.language == "vi"  # registered in Vietnamese: their emails will be
    assert (await post_form(client, "/language", {"language": "en", "next": "/account"})).status_code == 303
    await db.refresh(user)
    assert user.language == "en"
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as other:
        vietnamese(other)  # another browser: no cookie, a Vietnamese browser
        other.follow_redirects = False
        assert '<html lang="vi">' in (await other.get("/cart")).text
        assert (await sign_in(other, email)).status_code == 303
        page = (await other.get("/account")).text
        assert '<html lang="en">' in page and "Your account" in page


async def test_the_page_cache_never_serves_one_language_to_the_other(settings, db):
    product, _ = await make_product(db, stock=5)
    url = f"/products/{product.slug}"
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as visitor:
        visitor.cookies.clear()
        for _ in range(2):  # the second time from the cache
            english = await visitor.get(url, headers={"accept-language": "en"})
            assert '<html lang="en">' in english.text and "Add to cart" in english.text
            viet = await visitor.get(url, headers={"accept-language": "vi"})
            assert '<html lang="vi">' in viet.text and "Thêm vào giỏ" in viet.text
            assert "Add to cart" not in viet.text
            chosen = await visitor.get(url, headers={"accept-language": "vi", "cookie": "sd_lang=en"})
            assert '<html lang="en">' in chosen.text
        for listing in ("/", "/products"):
            assert "Tất cả sản phẩm" in (await visitor.get(listing, headers={"accept-language": "vi"})).text
            assert "Tất cả sản phẩm" not in (await visitor.get(listing, headers={"accept-language": "en"})).text
        assert "Accept-Language" in english.headers["vary"]


async def test_money_and_dates_on_pages_follow_the_language(client, settings, db):
    product, _ = await make_product(db, stock=5, price=320_000)
    page = (await client.get(f"/products/{product.slug}", headers={"accept-language": "vi"})).text
    assert "320.000\u00a0₫" in page
    page = (await client.get(f"/products/{product.slug}", headers={"accept-language": "en"})).text
    assert "₫320,000" in page


async def test_plurals_on_pages_in_both_languages(settings, db):
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as admin:
        await signed_in(admin, settings, await make_user(db, Role.ADMIN))
        english = (await admin.get("/admin/orders?status=CANCELLED", headers={"accept-language": "en"})).text
        viet = (await admin.get("/admin/orders?status=CANCELLED", headers={"accept-language": "vi"})).text
    count = re.search(r'<p id="order-count">(\d+) orders? ·', english)
    assert count is not None
    n = int(count.group(1))
    assert count.group(0) == (f'<p id="order-count">{n} order ·' if n == 1 else f'<p id="order-count">{n} orders ·')
    assert f'<p id="order-count">{n} đơn hàng ·' in viet


async def test_the_confirmation_email_goes_out_in_the_recipients_language(client, settings, db):
    vietnamese(client)
    _, _, order = await place_by_http(client, settings, db)
    assert order.language == "vi"
    await drain_queue(settings.redis_url)
    user = await db.get(User, order.user_id)
    (mail,) = mails_to(settings, user.email)
    assert mail["Subject"] == f"Đơn hàng {order.number} của bạn đã được xác nhận"
    text = body(mail)
    assert "Chào Minh Anh," in text
    assert f"Cảm ơn bạn đã đặt đơn hàng {order.number}. Đơn đã được xác nhận." in text
    assert "Phí giao hàng" in text and "\u00a0₫" in text
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert '<html lang="vi">' in html and "Theo dõi đơn hàng" in html


async def test_a_shopper_who_chose_english_gets_english_emails(client, settings, db):
    vietnamese(client)  # ordering from a Vietnamese browser...
    _, (variant,) = await make_product(db, stock=5)
    user = await make_user(db)
    await db.execute(update(User).where(User.id == user.id).values(language="en"))  # ...but chose English
    await db.commit()
    await put_in_cart(db, user, variant, 1)
    await signed_in(client, settings, user)
    r = await checkout(client)
    assert r.status_code == 303
    await drain_queue(settings.redis_url)
    (mail,) = mails_to(settings, user.email)
    assert mail["Subject"].startswith("Your order SD-") and mail["Subject"].endswith(" is confirmed")
    assert "Hi Minh Anh," in body(mail)


def test_gettext_compiled_as_a_filter_renders_as_jinja2s_own_gettext(app):
    """`_("text", ...)` compiles to the filter `translate` (platform/i18n.GettextAsFilter): each form a
    template uses renders as jinja2's newstyle gettext renders it, in both languages, and only
    `_(a_variable)` is left a call through the context."""
    from jinja2 import Environment

    from sweetdream.platform import i18n

    reference = Environment(autoescape=True, extensions=["jinja2.ext.i18n"])
    reference.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    sources = [
        '{{ _("Edit cart") }}',
        "{{ _('Free') }}",
        '{{ _("Class starts %(when)s", when=when) }}',
        '{{ _("No further steps: this order is %(status)s.", status=_(label) | lower) }}',
        '{{ _("Place order · %(amount)s", amount=(total + (1 * 2)) | string) }}',
        '{% set t = _("Edit cart") %}{{ t }}|{{ _("Edit cart") ~ "!" }}|{{ [_("Edit cart"), _("Free")] | join(", ") }}',
        '{{ _("Your card ending %(last4)s was declined. We are holding your order for %(minutes)d minutes: '
        'pay with another card or switch to cash on delivery below.", last4=when, minutes=(3 + (4 * 2))) }}',
        '{{ _("100%% butter") }}|{{ _(label) }}',
    ]
    values = {"when": "<b>9:00</b>", "label": "Cancelled", "total": 5}
    env = app.template_engine.engine
    with i18n.use_language("en"):  # compiled in one language, as a template is, then shown in each
        compiled_once = [(source, env.from_string(source), reference.from_string(source)) for source in sources]
    for language in ("vi", "en"):
        with i18n.use_language(language):
            for source, ours, theirs in compiled_once:
                assert ours.render(values) == theirs.render(values), (language, source)
    compiled = env.compile("".join(sources), raw=True)
    assert compiled.count("context.call(") == 2  # the two `_(label)`: every `_("text")` is the filter


def test_a_template_translates_marks_safe_and_escapes_what_it_is_given(app):
    """`_()` and `{% trans %}` (platform/i18n.template_gettext) as jinja2's newstyle gettext: the
    translation in the request's language, a value escaped, `%` only where the text says so."""
    from sweetdream.platform.i18n import gettext, use_language

    env = app.template_engine.engine
    source = (
        '{{ _("Edit cart") }}|{{ _("Class starts %(when)s", when="<b>9:00</b>") }}|'
        "{% trans name=who %}Hello {{ name }}, 100% fresh{% endtrans %}|"
        '{{ _("100%% butter") }}'  # no variables, yet formatted: "%%" is one "%", as in jinja2
    )
    with use_language("vi"):
        edit_cart, *_ = env.from_string(source).render(who="x").split("|")
        assert edit_cart == gettext("Edit cart") != "Edit cart"
    with use_language("en"):
        assert env.from_string(source).render(who="<i>Ann</i>").split("|") == [
            "Edit cart",
            "Class starts &lt;b&gt;9:00&lt;/b&gt;",
            "Hello &lt;i&gt;Ann&lt;/i&gt;, 100% fresh",
            "100% butter",
        ]
