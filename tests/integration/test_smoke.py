import re


async def test_health_and_ready(client):
    assert (await client.get("/health")).text == "ok"
    r = await client.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"database": "ok", "redis": "ok"}


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
