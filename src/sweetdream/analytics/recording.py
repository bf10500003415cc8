"""Recording shopper events on the server: no tracking script, cached pages included.

Who: a random first-party cookie (`sd_vid`, 32 hex characters, nothing personal in it) names the
browser, and the signed-in user's id is added when there is one. A browser that sends `DNT: 1` or
`Sec-GPC: 1` is not tracked at all: nothing is recorded and no cookie is set.

How: the one ASGI middleware here (`events_middleware`) wraps the page cache too (see app.py), so a
catalog page served from the cache is recorded like a rendered one. It puts a `Tracker` in the
request's scope; whoever knows what the page showed (the catalog pages, the cart, the checkout)
notes an event on it with `note_event`, and once the response is sent the middleware hands the
request's events to the buffer in one Redis round trip.

Why a Redis stream and not an in-process batch: the web runs several processes, each of which can
be replaced at any moment (a deploy, autoscaling); a batch held in a process dies with it, while
the stream survives them and is shared, so one worker drains it (analytics.services.drain_events:
batches, COPY, idempotent). Redis is already on every request's path (sessions, the catalog
version), so one more call costs well under a millisecond. The stream is bounded
(ANALYTICS_BUFFER_MAX): when it is full, or Redis does not answer, the events are dropped, never
the request, and counted in `sweetdream_analytics_events_dropped_total` (by reason).

`order_completed` is the exception: it is written in the order's own transaction
(`order_completed_event`), so there is one exactly when there is an order.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from litestar.datastructures import Cookie
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.asyncio import Redis
from sqlalchemy import inspect

from sweetdream.analytics.models import AnalyticsEvent, EventName
from sweetdream.platform.metrics import ANALYTICS_DROPPED

log = logging.getLogger("sweetdream.analytics")

STREAM = "analytics:events"
VISITOR_COOKIE = "sd_vid"
VISITOR_MAX_AGE = 365 * 24 * 3600
_VISITOR = re.compile(r"[0-9a-f]{32}")
_STATE_KEY = "analytics"
# Requests that never describe a shopper action: nothing to look at.
_UNTRACKED_PREFIXES = ("/static/", "/health", "/ready", "/metrics", "/admin")
# The order's event id comes from the order's id: the same order can never make two events.
ORDER_EVENT_NAMESPACE = uuid.UUID("5e1ec7ed-0a11-4c0d-9e5a-0d0e7e47a11b")

# KEYS[1]: the stream; ARGV[1]: its bound; ARGV[2..]: one JSON event each. All or none are added.
_ADD_EVENTS = """
if redis.call('XLEN', KEYS[1]) + #ARGV - 1 > tonumber(ARGV[1]) then
  return 0
end
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
end
return 1
"""


@dataclass
class Tracker:
    """The events one request noted, and who made them."""

    visitor_id: str
    new_visitor: bool
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def not_tracked(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """The browser asked not to be tracked (Do Not Track, or Global Privacy Control)."""
    return any(name in (b"dnt", b"sec-gpc") and value.strip() == b"1" for name, value in headers)


def tracker_of(scope: Scope) -> Tracker | None:
    """The request's tracker; None when it is not tracked (DNT, GPC, analytics off)."""
    tracker: Tracker | None = scope.get("state", {}).get(_STATE_KEY)
    return tracker


def note_event(scope: Scope, name: EventName, properties: dict[str, Any]) -> None:
    """Record `name` for this request's shopper, if they are tracked (a no-op otherwise)."""
    tracker = tracker_of(scope)
    if tracker is not None:
        tracker.events.append((name.value, properties))


def _visitor_from(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, _, raw = part.strip().partition("=")
            if key == VISITOR_COOKIE and _VISITOR.fullmatch(raw):
                return raw
    return None


def _user_id(scope: Scope) -> str | None:
    """The signed-in user's id. Read from the row's identity: a handler that committed has expired
    the user object and its session is closed by now, so `user.id` would try to load it again."""
    user = scope.get("state", {}).get("user")
    if user is None:
        return None
    mapped = inspect(user, raiseerr=False)
    if mapped is None:  # a cached page's `Shopper` (accounts/web.py): a plain value, not a row
        return str(user.id)
    identity = mapped.identity
    return str(identity[0]) if identity else None


def stream_entry(name: str, properties: dict[str, Any], user_id: str | None, visitor_id: str | None) -> str:
    """One event as the stream holds it (and the drain reads it back)."""
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat(),
            "name": name,
            "user_id": user_id,
            "visitor_id": visitor_id,
            "properties": properties,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


class EventBuffer:
    """The bounded Redis stream the web writes events to and the worker drains."""

    def __init__(self, redis: Redis, max_len: int) -> None:
        self.max_len = max_len
        self._add = redis.register_script(_ADD_EVENTS)

    async def add(self, entries: list[str]) -> bool:
        """Add the events, or drop and count them: a shopper's request never fails for analytics."""
        try:
            added = await self._add(keys=[STREAM], args=[self.max_len, *entries])
        except Exception:  # Redis down or slow: the page went out already, only the events are lost
            ANALYTICS_DROPPED.labels("unavailable").inc(len(entries))
            log.warning("analytics: %d event(s) dropped, Redis did not take them", len(entries))
            return False
        if not added:
            ANALYTICS_DROPPED.labels("full").inc(len(entries))
            log.warning("analytics: %d event(s) dropped, the buffer is full", len(entries))
            return False
        return True


def events_middleware(app: ASGIApp, buffer: EventBuffer, secure_cookie: bool) -> ASGIApp:
    """Track every shopper request (cached pages included) and buffer what it noted."""
    cookie_header = Cookie(
        key=VISITOR_COOKIE,
        value="-",
        max_age=VISITOR_MAX_AGE,
        path="/",
        secure=secure_cookie,
        httponly=True,
        samesite="lax",
    ).to_header(header="")

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["type"] != "http" or path.startswith(_UNTRACKED_PREFIXES) or not_tracked(scope["headers"]):
            await app(scope, receive, send)
            return
        known = _visitor_from(scope["headers"])
        tracker = Tracker(known or uuid.uuid4().hex, new_visitor=known is None)
        scope.setdefault("state", {})[_STATE_KEY] = tracker

        succeeded = False

        async def send_with_cookie(message: Message) -> None:
            nonlocal succeeded
            if message["type"] == "http.response.start":
                # A request that failed after its handler noted something (a session that could not
                # be saved: the 503 page) did not happen for the shopper: nothing is recorded.
                succeeded = message["status"] < 400
                # The cookie is set only with a first recorded event: a visitor who does nothing gets none.
                if succeeded and tracker.new_visitor and tracker.events:
                    cookie = cookie_header.replace(f"{VISITOR_COOKIE}=-", f"{VISITOR_COOKIE}={tracker.visitor_id}")
                    message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]
            await send(message)

        await app(scope, receive, send_with_cookie)
        if tracker.events and succeeded:
            user_id = _user_id(scope)
            await buffer.add([stream_entry(n, p, user_id, tracker.visitor_id) for n, p in tracker.events])

    return middleware


# --- what each event says -----------------------------------------------------------------------


def product_viewed(product_id: UUID, name: str, price: int, category: str) -> dict[str, Any]:
    return {"product_id": str(product_id), "product_name": name, "price": price, "category": category}


def product_searched(query: str, result_count: int) -> dict[str, Any]:
    return {"query": query[:200], "result_count": result_count}


def cart_item_added(
    product_id: UUID | None, variant_id: UUID, name: str, size: str, quantity: int, price: int
) -> dict[str, Any]:
    return {
        "product_id": str(product_id) if product_id else None,
        "variant_id": str(variant_id),
        "product_name": name,
        "size": size,
        "quantity": quantity,
        "price": price,
    }


def checkout_started(cart_total: int, item_count: int) -> dict[str, Any]:
    return {"cart_total": cart_total, "item_count": item_count}


@dataclass(frozen=True)
class OrderedItem:
    product_id: UUID
    product_name: str
    size: str
    quantity: int
    price: int
    category: str | None = None


def order_completed_event(
    tracker: Tracker, order_id: UUID, number: str, user_id: UUID, total: int, items: list[OrderedItem]
) -> AnalyticsEvent:
    """The order's event, for the caller to add in the order's own transaction."""
    return AnalyticsEvent(
        occurred_at=datetime.now(UTC),
        event_id=uuid.uuid5(ORDER_EVENT_NAMESPACE, str(order_id)),
        name=EventName.ORDER_COMPLETED.value,
        user_id=user_id,
        visitor_id=tracker.visitor_id,
        properties={
            "order_id": str(order_id),
            "order_number": number,
            "user_id": str(user_id),
            "total": total,
            "items": [
                {
                    "product_id": str(item.product_id),
                    "product_name": item.product_name,
                    "size": item.size,
                    "quantity": item.quantity,
                    "price": item.price,
                    "category": item.category,
                }
                for item in items
            ],
        },
    )
