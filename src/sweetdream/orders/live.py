"""Live order status: after a status change commits, a note goes out on Redis pub/sub; every web
process holding that order's page open (Server-Sent Events) hears it and re-reads the order.

The note carries no data, only "look again", so a missed note costs nothing: a page that
(re)connects is sent the current state first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from redis.asyncio import Redis
from redis.asyncio.client import PubSub


def channel(order_id: UUID) -> str:
    return f"order-status:{order_id}"


def status_note(order_id: UUID) -> tuple[str, bytes]:
    """The note for an order's open pages: (channel, message), sent by the outbox relay in the same
    round trip as the order's jobs (orders/outbox.relay); a lost note only delays a page until its
    next (re)connect."""
    return channel(order_id), b"changed"


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
    """The note for the admin's list and dashboard (`placed` or `moved`), sent like `status_note`; a
    lost one: the admin's list shows the order on its next load."""
    return ADMIN_CHANNEL, f"{kind}:{order_id}".encode()


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
