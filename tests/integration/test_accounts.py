"""Accounts, sessions and roles through real HTTP, real PostgreSQL and real Redis."""

import re
from html import unescape

from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.orm import undefer

from sweetdream.accounts.models import Role, User
from tests.integration.factories import make_user
from tests.integration.helpers import cli, csrf_token, post_form, register, sign_in, unique_email


async def fetch_user(db, email):
    db.expire_all()
    return await db.scalar(select(User).where(User.email == email).options(undefer(User.password_hash)))


async def test_register_signs_in_and_lands_on_next(client, db):
    email = unique_email()
    r = await register(client, email=f"  {email.upper()} ")
    assert r.status_code == 303, r.text[:500]
    user = await fetch_user(db, email)
    assert user is not None and user.role == Role.CUSTOMER
    assert user.password_hash.startswith("$argon2id$")
    page = await client.get("/account")
    assert page.status_code == 200 and email in page.text


async def test_registration_errors_are_beside_the_field_and_keep_what_was_typed(client, db):
    email = unique_email()
    r = await register(client, email=email, password=email)  # password = email
    assert r.status_code == 400
    assert 'id="password-error"' in r.text and "can't be your email" in unescape(r.text)
    assert f'value="{email}"' in r.text and "Lan Nguyen" in r.text
    assert email not in r.text.split('name="password"')[1].split(">")[0]  # password not echoed
    r = await register(client, email="not-an-email", password="short")
    assert 'id="email-error"' in r.text and 'id="password-error"' in r.text and "10 characters" in r.text
    assert await fetch_user(db, email) is None


async def test_duplicate_email_in_another_case_is_refused(client, app):
    email = unique_email()
    assert (await register(client, email=email)).status_code == 303
    await post_form(client, "/account/logout", {})
    r = await register(client, email=email.upper())
    assert r.status_code == 400
    assert "already exists" in r.text


async def test_sign_out_then_sign_in_then_edit_profile(client, db):
    email = unique_email()
    await register(client, email=email)
    assert (await post_form(client, "/account/logout", {})).status_code == 303
    assert (await client.get("/account")).status_code == 303
    r = await sign_in(client, email.upper())
    assert r.status_code == 303
    r = await post_form(client, "/account/", {"name": "Lan Trần", "phone": "0909 000 111", "address": "5 Hai Bà Trưng"})
    assert r.status_code == 303
    user = await fetch_user(db, email)
    assert (user.name, user.phone, user.address) == ("Lan Trần", "0909 000 111", "5 Hai Bà Trưng")
    r = await post_form(client, "/account/", {"name": "", "phone": "abc"})
    assert r.status_code == 400 and 'id="name-error"' in r.text and 'id="phone-error"' in r.text


async def test_wrong_password_and_unknown_email_get_the_same_message(client):
    email = unique_email()
    await register(client, email=email)
    await post_form(client, "/account/logout", {})
    wrong = await sign_in(client, email, "wrong password!!")
    unknown = await sign_in(client, unique_email(), "wrong password!!")
    for r in (wrong, unknown):
        assert r.status_code == 400
        assert "Email or password is incorrect." in r.text
    assert (await client.get("/account")).status_code == 303


async def test_session_id_is_rotated_at_sign_in_and_cleared_at_sign_out(client):
    email = unique_email()
    await register(client, email=email)
    await post_form(client, "/account/logout", {})
    await client.get("/products")
    await post_form(client, "/account/login", {"email": "x@example.com", "password": "y" * 12})
    await csrf_token(client)
    client.cookies.delete("sd_session")
    client.cookies.set("sd_session", "attacker-chosen-session-id-0123456789", domain="127.0.0.1")
    await sign_in(client, email)
    after = client.cookies.get("sd_session")
    assert after and after != "attacker-chosen-session-id-0123456789"
    r = await post_form(client, "/account/logout", {})
    assert 'sd_session="null"' in r.headers.get("set-cookie", "") or "sd_session=null" in r.headers.get(
        "set-cookie", ""
    )


async def test_session_cookie_flags(client):
    r = await register(client)
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("sd_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Max-Age=2592000" in cookie


async def test_post_without_csrf_token_is_refused_and_changes_nothing(client, db):
    email = unique_email()
    await client.get("/products")
    r = await client.post("/account/register", data={"email": email, "password": "correct horse battery", "name": "X"})
    assert r.status_code == 403
    assert await fetch_user(db, email) is None


async def test_next_parameter_refuses_outside_urls(client):
    email = unique_email()
    await register(client, email=email)
    await post_form(client, "/account/logout", {})
    for evil in ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"]:
        r = await sign_in(client, email, next_url=evil)
        assert r.headers["location"] == "/", evil
        await post_form(client, "/account/logout", {})
    r = await sign_in(client, email, next_url="/products?category=banh-kem")
    assert r.headers["location"] == "/products?category=banh-kem"


async def test_visitor_is_sent_to_sign_in_and_customer_gets_403_from_admin(client):
    r = await client.get("/admin")
    assert r.status_code == 303 and r.headers["location"].startswith("/account/login?next_url=%2Fadmin")
    await register(client)
    r = await client.get("/admin")
    assert r.status_code == 403 and "staff only" in r.text


async def test_promotion_and_demotion_by_cli_apply_on_the_next_request(client, app, db):
    await make_user(db, Role.ADMIN)  # the shop has another admin: the last one can't be demoted
    email = unique_email()
    await register(client, email=email)
    assert (await client.get("/admin")).status_code == 403
    result = await cli(app, "set-role", email.upper(), "admin")
    assert result.exit_code == 0, result.output
    assert (await client.get("/admin")).status_code == 200  # no re-login
    result = await cli(app, "set-role", email, "CUSTOMER")
    assert result.exit_code == 0, result.output
    assert (await client.get("/admin")).status_code == 403


async def test_cli_reports_unknown_email_and_role(app):
    result = await cli(app, "set-role", "nobody@example.com", "ADMIN")
    assert result.exit_code != 0 and "No account has the email" in result.output
    result = await cli(app, "set-role", "nobody@example.com", "KING")
    assert result.exit_code != 0 and "Unknown role" in result.output
    email = unique_email("boss")
    result = await cli(app, "create-admin", "--email", email, input="short\nshort\n")
    assert result.exit_code != 0 and "10 characters" in result.output
    result = await cli(
        app, "create-admin", "--email", email, env={"SWEETDREAM_ADMIN_PASSWORD": "a long admin password"}
    )
    assert result.exit_code == 0 and "is an admin" in result.output


async def test_login_is_rate_limited_per_email_with_retry_after(client):
    email = unique_email()
    await register(client, email=email)
    await post_form(client, "/account/logout", {})
    statuses = [(await sign_in(client, email, "wrong password!!")).status_code for _ in range(11)]
    assert statuses[:10] == [400] * 10
    assert statuses[10] == 429
    r = await sign_in(client, email)  # even the right password waits now
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert "Too many attempts" in r.text and 'class="brand"' in r.text


async def test_registration_is_rate_limited_per_client(client):
    statuses = [(await register(client)).status_code for _ in range(6)]
    assert statuses[:5] == [303] * 5 and statuses[5] == 429


async def test_old_hash_parameters_are_upgraded_at_sign_in(client, db):
    email = unique_email()
    await register(client, email=email)
    await post_form(client, "/account/logout", {})
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("correct horse battery")
    await db.execute(update(User).where(User.email == email).values(password_hash=weak))
    await db.commit()
    assert (await sign_in(client, email)).status_code == 303
    upgraded = (await fetch_user(db, email)).password_hash
    assert upgraded != weak and "m=65536" in upgraded


async def test_change_password_needs_the_current_one(client):
    email = unique_email()
    await register(client, email=email)
    r = await post_form(
        client,
        "/account/password",
        {
            "current_password": "nope nope nope",
            "new_password": "another long pass",
            "confirm_password": "another long pass",
        },
    )
    assert r.status_code == 400 and "isn't your current password" in unescape(r.text)
    r = await post_form(
        client,
        "/account/password",
        {
            "current_password": "correct horse battery",
            "new_password": "another long pass",
            "confirm_password": "another long pass",
        },
    )
    assert r.status_code == 303
    await post_form(client, "/account/logout", {})
    assert (await sign_in(client, email)).status_code == 400
    assert (await sign_in(client, email, "another long pass")).status_code == 303


async def test_nothing_secret_reaches_the_logs(client, caplog):
    email = unique_email()
    with caplog.at_level("DEBUG"):
        await register(client, email=email, password="super secret words")
        await sign_in(client, email, "super secret words")
    text = caplog.text
    assert "super secret words" not in text and "$argon2" not in text
    assert client.cookies.get("sd_session") not in text


async def test_a_visitor_with_an_empty_session_costs_no_session_write(client, settings):
    import redis

    r = await client.get("/products")
    assert "sd_session" not in r.headers.get("set-cookie", "")
    keys = redis.Redis.from_url(settings.redis_url).keys("session:*")
    assert keys == []


async def test_changing_the_password_signs_every_other_session_out(client, db):
    from tests.integration.test_sign_in_limits import another_browser

    email = unique_email()
    await register(client, email=email)
    async with another_browser(client) as phone:
        assert (await sign_in(phone, email)).status_code == 303
        assert (await phone.get("/account")).status_code == 200
        before = client.cookies.get("sd_session")
        r = await post_form(
            client,
            "/account/password",
            {
                "current_password": "correct horse battery",
                "new_password": "another long pass",
                "confirm_password": "another long pass",
            },
        )
        assert r.status_code == 303
        after = client.cookies.get("sd_session")
        assert after and after != before  # this session goes on, under a new id
        assert (await client.get("/account")).status_code == 200
        r = await phone.get("/account")  # the other one ends on its next request
        assert r.status_code == 303 and r.headers["location"].startswith("/account/login")
        page = await phone.get("/products")
        assert "Sign in" in page.text and "/account/logout" not in page.text
        assert "password was changed" in page.text
        # The old session id is no more: presenting it again is a visitor, not the shopper.
        client.cookies.delete("sd_session")
        client.cookies.set("sd_session", before, domain="127.0.0.1")
        assert (await client.get("/account")).status_code == 303


async def test_a_password_set_by_create_admin_ends_the_accounts_sessions(client, app):
    email = unique_email()
    await register(client, email=email)
    assert (await client.get("/account")).status_code == 200
    result = await cli(app, "create-admin", "--email", email, env={"SWEETDREAM_ADMIN_PASSWORD": "a new admin password"})
    assert result.exit_code == 0, result.output
    assert (await client.get("/account")).status_code == 303
    assert (await sign_in(client, email, "a new admin password")).status_code == 303
    assert (await client.get("/admin")).status_code == 200


async def test_no_process_keeps_the_forms_or_cookies_it_parsed(client):
    """Litestar memoised each parsed form body and cookie header (1,024 per process: passwords, card
    numbers, session ids kept in memory as plain text; the soak bench found it). The app parses them
    without that memo, in every place Litestar reads a form or a cookie."""
    import litestar._kwargs.extractors as extractors
    import litestar.connection.base as connection_base
    import litestar.connection.request as connection_request
    import litestar.data_extractors as data_extractors

    assert (await register(client)).status_code == 303  # a form with a password, cookies set
    assert (await client.get("/account")).status_code == 200
    parsers = (
        connection_request.parse_url_encoded_form_data,
        extractors.parse_url_encoded_form_data,
        connection_base.parse_cookie_string,
        data_extractors.parse_cookie_string,
    )
    assert [hasattr(parse, "cache_info") for parse in parsers] == [False, False, False, False]


async def test_the_form_fields_are_the_same_whether_templates_reload_or_not(settings):
    """`field` is every template's global (platform.web.template_macro): looked up on each call
    where templates reload (development, tests), taken once in production."""
    from dataclasses import replace

    from litestar.testing import AsyncTestClient

    from sweetdream.app import create_app

    pages = []
    for environment in ("test", "production"):
        app = create_app(replace(settings, environment=environment))
        assert app.template_engine.engine.auto_reload == (environment == "test")
        async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
            page = await client.get("/account/register")
        assert page.status_code == 200
        pages.append(re.sub(r"[0-9a-f]{128}", "token", page.text))  # each client's CSRF token
    assert pages[0] == pages[1]
    assert '<input id="email" name="email" type="email" value="" required' in pages[1]
