"""When Redis (sessions, rate limits, catalog cache) is down, shoppers get a friendly 503 page in
the shop's layout, not a bare 500, and the log gets one warning line per request, not a traceback.
Also: HSTS in production only."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from sweetdream.app import create_app
from sweetdream.catalog.models import Product, Variant
from sweetdream.platform import devstack

HSTS = "max-age=31536000; includeSubDomains"


@pytest.fixture
def stopped_redis_url(tmp_path) -> str:
    """The address of a real Redis that was running and has been stopped."""
    url, server = devstack.start_redis(tmp_path / "redis")
    assert server.ping()
    server.shutdown()
    return url


@pytest.fixture
async def outage_client(settings, stopped_redis_url) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = create_app(replace(settings, redis_url=stopped_redis_url))
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        client.follow_redirects = False
        yield client


def assert_right_back_page(r) -> None:
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert "text/html" in r.headers["content-type"]
    assert "right back" in r.text and 'class="brand"' in r.text  # the shop's layout
    assert 0 < int(r.headers["retry-after"]) <= 120


async def test_pages_say_we_will_be_right_back_when_redis_is_down(outage_client, db, caplog):
    slug, variant_id = (await db.execute(select(Product.slug, Variant.id).join(Product.variants).limit(1))).one()
    variant_id = str(variant_id)
    with caplog.at_level(logging.INFO):
        for url in ("/", "/products", "/products?q=banh", f"/products/{slug}"):
            assert_right_back_page(await outage_client.get(url))
        # Putting a cake in a visitor's cart writes their session.
        form = {"variant_id": variant_id, "quantity": "1", "_csrf_token": outage_client.cookies.get("sd_csrf")}
        r = await outage_client.post("/cart/items", data=form)
        assert_right_back_page(r)
        outage_client.cookies.set("sd_session", "a-signed-in-shoppers-session-id", domain="127.0.0.1")
        assert_right_back_page(await outage_client.get("/account"))
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == []
    warnings = [r for r in caplog.records if r.name.startswith("sweetdream") and r.levelno == logging.WARNING]
    assert len(warnings) == 6 and all("Redis" in r.getMessage() for r in warnings)


async def test_sign_in_is_right_back_too(outage_client):
    await outage_client.get("/products")  # the CSRF cookie still comes with the 503 page
    token = outage_client.cookies.get("sd_csrf")
    assert token
    r = await outage_client.post(
        "/account/login", data={"email": "lan@example.com", "password": "correct horse battery", "_csrf_token": token}
    )
    assert_right_back_page(r)


async def test_a_redis_that_answers_nothing_gets_the_same_page_within_seconds(settings):
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:  # connects, never answers
        port = silent.getsockname()[1]
        app = create_app(replace(settings, redis_url=f"redis://127.0.0.1:{port}/0"))
        async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
            started = time.monotonic()
            assert_right_back_page(await client.get("/products"))
            assert time.monotonic() - started < 10


async def test_json_clients_get_a_json_503(outage_client):
    r = await outage_client.get("/products", headers={"Accept": "application/json"})
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    assert r.json()["status_code"] == 503 and "right back" in r.json()["detail"]


async def test_health_stays_up_and_ready_names_redis(outage_client):
    assert (await outage_client.get("/health")).status_code == 200
    r = await outage_client.get("/ready")
    assert r.status_code == 503 and r.json()["database"] == "ok" and r.json()["redis"].startswith("unavailable")


async def test_a_database_outage_gets_the_same_page(settings, tmp_path):
    stopped = f"postgresql+asyncpg://postgres@/sweetdream?host={tmp_path}"  # no server listens there
    app = create_app(replace(settings, database_url=stopped))
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        assert_right_back_page(await client.get("/products/anything"))


async def test_production_answers_with_strict_transport_security(settings):
    app = create_app(replace(settings, environment="production"))
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        for url in ("/health", "/products", "/no-such-page"):
            assert (await client.get(url)).headers.get("strict-transport-security") == HSTS


async def test_development_sends_no_strict_transport_security(client):
    r = await client.get("/health")
    assert "strict-transport-security" not in r.headers
