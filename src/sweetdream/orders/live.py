"""Live order status: after a status change commits, a note goes out on Redis pub/sub; every web
process holding that order's page open (Server-Sent Events) hears it and re-reads the order.

The note carries no data, only "look again", so a missed note costs nothing: a page that
(re)connects is sent the current state first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

log = logging.getLogger("sweetdream.live")


def channel(order_id: UUID) -> str:
    return f"order-status:{order_id}"


def status_note(order_id: UUID) -> tuple[str, bytes]:
    """The note `publish` sends, for a caller that sends it with other commands (orders/outbox.relay)."""
    return channel(order_id), b"changed"


async def publish(redis: Redis, order_id: UUID) -> None:
    try:
        await redis.publish(channel(order_id), b"changed")
    except Exception:  # a lost note only delays the page until its next (re)connect
        log.warning("could not publish a status change for order %s", order_id, exc_info=True)


@asynccontextmanager
async def subscription(redis: Redis, order_id: UUID) -> AsyncIterator[PubSub]:
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel(order_id))
    try:
        yield pubsub
    finally:
        await pubsub.aclose()


# --- the admin's live order list and dashboard ---------------------------------------------------

# One channel for the whole shop: every placed or moved order, as `placed:<id>` or `moved:<id>`.
ADMIN_CHANNEL = "admin-orders"


def admin_note(kind: str, order_id: UUID) -> tuple[str, bytes]:
    """The note `publish_admin` sends, for a caller that sends it with other commands."""
    return ADMIN_CHANNEL, f"{kind}:{order_id}".encode()


async def publish_admin(redis: Redis, kind: str, order_id: UUID) -> None:
    try:
        await redis.publish(ADMIN_CHANNEL, f"{kind}:{order_id}".encode())
    except Exception:  # a lost note: the admin's list shows the order on its next load
        log.warning("could not tell the admin pages about order %s", order_id, exc_info=True)


def read_admin_note(data: object) -> tuple[str, UUID] | None:
    """(kind, order id) from a note on ADMIN_CHANNEL; None for anything else."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
    kind, _, ident = text.partition(":")
    try:
        return kind, UUID(ident)
    except ValueError:
        return None


@asynccontextmanager
async def admin_subscription(redis: Redis) -> AsyncIterator[PubSub]:
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(ADMIN_CHANNEL)
    try:
        yield pubsub
    finally:
        await pubsub.aclose()
