"""Sign-in limits count failures, per (account, client address), so a stranger's guesses never
lock the owner out; many addresses guessing one account are still slowed down together.

The app runs behind one trusted proxy (TRUST_PROXY_HOPS=1) and each request says which address
that proxy saw in X-Forwarded-For: that is how two test clients are two places on the internet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from sweetdream.accounts import devices
from sweetdream.app import create_app
from sweetdream.platform import ratelimit
from sweetdream.platform.ratelimit import Limit
from tests.integration.helpers import post_form, unique_email

PASSWORD = "correct horse battery"
WRONG = "not my password!!"
OWNER_ADDRESS = "198.51.100.7"
ATTACKER_ADDRESS = "203.0.113.66"


@pytest.fixture
def proxied_app(settings) -> Litestar:
    return create_app(replace(settings, trust_proxy_hops=1))


@pytest.fixture
async def owner(proxied_app) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=proxied_app, base_url="http://127.0.0.1") as c:
        c.follow_redirects = False
        yield c


@pytest.fixture
async def attacker(owner) -> AsyncIterator[httpx.AsyncClient]:
    async with another_browser(owner) as c:
        yield c


def another_browser(client: AsyncTestClient[Litestar]) -> httpx.AsyncClient:
    """A second browser (its own cookies) on the same running app.

    It shares the first client's transport, so the app runs on one event loop: two test clients
    would each start the app on a loop of their own, and its Redis pool belongs to one loop.
    """
    return httpx.AsyncClient(
        transport=_Shared(client._transport),
        base_url=client.base_url,
        follow_redirects=False,
        headers={"accept-language": "en"},  # as every test client (tests/integration/conftest.py)
    )


class _Shared(httpx.AsyncBaseTransport):
    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transport.handle_async_request(request)


def via(address: str) -> dict[str, str]:
    """The header the load balancer adds: the address it saw, after anything the client sent."""
    return {"X-Forwarded-For": address}


async def attempt(client, email: str, password: str, address: str) -> int:
    r = await post_form(client, "/account/login", {"email": email, "password": password}, headers=via(address))
    return r.status_code


async def sign_out(client, address: str) -> None:
    r = await post_form(client, "/account/logout", {}, headers=via(address))
    assert r.status_code == 303


async def register_from(client, headers: dict[str, str], email: str = "") -> int:
    form = {"email": email or unique_email("owner"), "password": PASSWORD, "name": "Lan", "phone": "0901234567"}
    r = await post_form(client, "/account/register", {**form, "address": "12 Lê Lợi, Quận 1"}, headers=headers)
    return r.status_code


async def new_account(client, address: str) -> str:
    email = unique_email("owner")
    assert await register_from(client, via(address), email) == 303
    await sign_out(client, address)
    return email


async def test_a_strangers_wrong_guesses_do_not_lock_the_owner_out(owner, attacker):
    email = await new_account(owner, OWNER_ADDRESS)
    statuses = [await attempt(attacker, email, WRONG, ATTACKER_ADDRESS) for _ in range(12)]
    assert statuses == [400] * 10 + [429] * 2
    assert await attempt(owner, email, PASSWORD, OWNER_ADDRESS) == 303  # the owner, elsewhere, signs in
    assert await attempt(attacker, email, PASSWORD, ATTACKER_ADDRESS) == 429  # the guesser still waits


async def test_the_throttled_client_is_told_when_to_come_back(owner):
    email = await new_account(owner, OWNER_ADDRESS)
    for _ in range(10):
        assert await attempt(owner, email, WRONG, OWNER_ADDRESS) == 400
    r = await post_form(owner, "/account/login", {"email": email, "password": PASSWORD}, headers=via(OWNER_ADDRESS))
    assert r.status_code == 429
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60
    assert "Too many attempts" in r.text and 'class="brand"' in r.text


async def test_successful_sign_ins_are_not_counted(owner):
    email = await new_account(owner, OWNER_ADDRESS)
    for _ in range(12):
        assert await attempt(owner, email, PASSWORD, OWNER_ADDRESS) == 303
        await sign_out(owner, OWNER_ADDRESS)


async def test_a_successful_sign_in_starts_the_clients_count_again(owner):
    email = await new_account(owner, OWNER_ADDRESS)
    for _ in range(9):
        assert await attempt(owner, email, WRONG, OWNER_ADDRESS) == 400
    assert await attempt(owner, email, PASSWORD, OWNER_ADDRESS) == 303
    await sign_out(owner, OWNER_ADDRESS)
    statuses = [await attempt(owner, email, WRONG, OWNER_ADDRESS) for _ in range(11)]
    assert statuses == [400] * 10 + [429]


async def test_concurrent_guesses_get_no_more_than_the_limit(owner, attacker):
    email = await new_account(owner, OWNER_ADDRESS)
    await attempt(attacker, email, WRONG, ATTACKER_ADDRESS)  # the CSRF cookie, and one failure
    statuses = await asyncio.gather(*(attempt(attacker, email, WRONG, ATTACKER_ADDRESS) for _ in range(20)))
    assert sorted(statuses) == [400] * 9 + [429] * 11


async def test_many_addresses_guessing_one_account_are_slowed_down_together(owner, attacker):
    email = await new_account(owner, OWNER_ADDRESS)  # the browser that registered is known to the account
    for n in range(5):  # 5 addresses x 10 guesses: the account's hourly allowance of failures
        for _ in range(10):
            assert await attempt(attacker, email, WRONG, f"203.0.113.{n + 1}") == 400
    assert await attempt(attacker, email, WRONG, "203.0.113.99") == 429  # a fresh address waits too
    assert await attempt(attacker, email, PASSWORD, "203.0.113.98") == 429  # even with the password
    # The owner's own browser is not held back by strangers, from wherever it is now.
    assert await attempt(owner, email, PASSWORD, "192.0.2.200") == 303


async def test_signing_in_makes_the_browser_known_to_that_account_only(owner, attacker):
    email = await new_account(owner, OWNER_ADDRESS)
    r = await post_form(attacker, "/account/login", {"email": email, "password": PASSWORD}, headers=via("192.0.2.9"))
    assert r.status_code == 303
    cookie = next(c for c in attacker.cookies.jar if c.name == "sd_device")
    assert cookie.path == "/account/login" and email.split("@")[0] not in cookie.value
    assert devices.is_known(owner.app.state.settings.secret_key, cookie.value, email)
    assert not devices.is_known(owner.app.state.settings.secret_key, cookie.value, unique_email())


async def test_the_registration_limit_is_per_real_address_not_per_claimed_one(proxied_app):
    async with AsyncTestClient(app=proxied_app, base_url="http://127.0.0.1") as c:
        c.follow_redirects = False
        statuses = []
        for n in range(6):
            # A client claims a new address each time; the proxy appends the one it really saw.
            headers = {"X-Forwarded-For": f"10.0.0.{n}, {ATTACKER_ADDRESS}"}
            statuses.append(await register_from(c, headers))
            c.cookies.delete("sd_session")
        assert statuses == [303] * 5 + [429]
        # Another real address has its own allowance.
        assert await register_from(c, {"X-Forwarded-For": f"10.0.0.1, {OWNER_ADDRESS}"}) == 303


async def test_a_count_given_back_after_its_window_ended_leaves_nothing_behind(settings):
    redis = Redis.from_url(settings.redis_url)
    limit = Limit("test-window", attempts=2, window_seconds=60)
    try:
        await ratelimit.take(redis, limit, "k")
        await redis.delete(*await redis.keys("rl:test-window:*"))  # the window ends
        await ratelimit.give_back(redis, limit, "k")
        assert await redis.keys("rl:test-window:*") == []  # no count below zero, with no expiry
        await ratelimit.take(redis, limit, "k")
        await ratelimit.take(redis, limit, "k")
        with pytest.raises(ratelimit.TooManyRequests):
            await ratelimit.take(redis, limit, "k")
        (key,) = await redis.keys("rl:test-window:*")
        assert await redis.get(key) == b"2" and 0 < await redis.ttl(key) <= 60
    finally:
        await redis.aclose()
