"""A live order stream re-checks who is watching: a demoted admin, a removed account or a session
signed out elsewhere stops receiving the order's updates within the check interval."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import update

from sweetdream.accounts.models import Role, User
from sweetdream.orders import live
from sweetdream.orders import web as orders_web
from tests.integration.factories import make_user, signed_in
from tests.integration.helpers import cli
from tests.integration.test_workers import place_by_http

CHECK_SECONDS = 0.3


@pytest.fixture(autouse=True)
def quick_access_checks(monkeypatch):
    monkeypatch.setattr(orders_web, "ACCESS_CHECK_SECONDS", CHECK_SECONDS, raising=False)
    monkeypatch.setattr(orders_web, "LIVE_STREAM_SECONDS", 8)  # a stream that is never cut ends here


def follow(client, url: str) -> asyncio.Future[httpx.Response]:
    """Open a live stream on a thread of its own (the test client blocks until a response is
    complete) and give back its whole response once the stream ends."""
    request = client.build_request("GET", url)
    return asyncio.ensure_future(asyncio.to_thread(client._transport.handle_request, request))


async def wait_until_listening(settings, order_id) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        for _ in range(200):
            ((_, listeners),) = await redis.pubsub_numsub(live.channel(order_id))
            if listeners:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the stream never subscribed")
    finally:
        await redis.aclose()


async def test_a_demoted_admin_loses_the_live_stream_within_the_interval(app, client, settings, db):
    _, _, order = await place_by_http(client, settings, db)  # someone's order
    await make_user(db, role=Role.ADMIN)  # another admin: the last one can't be demoted
    admin = await make_user(db, role=Role.ADMIN)
    await signed_in(client, settings, admin)
    stream = follow(client, f"/orders/{order.number}/events")
    await wait_until_listening(settings, order.id)
    result = await cli(app, "set-role", admin.email, "CUSTOMER")
    assert result.exit_code == 0, result.output
    demoted_at = time.monotonic()
    r = await stream
    assert time.monotonic() - demoted_at < CHECK_SECONDS + 2
    r.read()
    assert r.status_code == 200 and "event: status" in r.text  # it had the state, then it ended


async def test_a_session_signed_out_by_a_password_change_loses_the_live_stream(client, settings, db):
    user, _, order = await place_by_http(client, settings, db)  # the owner, watching their order
    stream = follow(client, f"/orders/{order.number}/events")
    await wait_until_listening(settings, order.id)
    # The password was changed in another browser: every other session of the user ends.
    await db.execute(update(User).where(User.id == user.id).values(session_epoch=User.session_epoch + 1))
    await db.commit()
    changed_at = time.monotonic()
    r = await stream
    assert time.monotonic() - changed_at < CHECK_SECONDS + 2
    assert r.status_code == 200


async def test_the_owners_stream_goes_on_while_they_may_watch(client, settings, db, monkeypatch):
    monkeypatch.setattr(orders_web, "LIVE_STREAM_SECONDS", 1.5)
    _, _, order = await place_by_http(client, settings, db)
    started = time.monotonic()
    r = await client.get(f"/orders/{order.number}/events")
    assert time.monotonic() - started >= 1.4  # several checks passed; it ran to its normal end
    assert r.text.count("event: status") == 1
