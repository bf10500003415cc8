"""Recording shopper events on the server: no tracking script, cached pages included.

Who: a random first-party cookie (`sd_vid`, 32 hex characters, nothing personal in it) names the
browser, and the signed-in user's id is added when there is one. A browser that sends `DNT: 1` or
`Sec-GPC: 1` is not tracked at all: nothing is recorded and no cookie is set.

How: the one ASGI middleware here (`events_middleware`) wraps the page cache too (see app.py), so a
catalog page served from the cache is recorded like a rendered one. It puts a `Tracker` in the
request's scope; whoever knows what the page showed (the catalog pages, the cart, the checkout)
notes an event on it with `note_event`, and once the response is sent the middleware hands the
request's events to the process's `EventRecorder`: an append to a list, no await and no I/O.

Where they go: each web process batches its events and one background task per process sends the
batch to a bounded Redis stream every `FLUSH_SECONDS` (0.1 s), or sooner when `BATCH_MAX` (500)
are waiting, in one round trip (a Lua script: XLEN + the XADDs). One worker drains the stream for
every process (analytics.services.drain_events: batches, COPY, idempotent). Why both: the stream is
shared and outlives the web processes (deploys, autoscaling), so a worker that is behind or down
loses nothing; the batch in front of it is there because a cached catalog page costs ~0.2 ms of CPU
and one redis-py call per request was a third of the page's req/s (scripts/bench_analytics.py);
one call per 100 ms per process costs nothing measurable.

What can be lost, and is counted in `sweetdream_analytics_events_dropped_total` (by reason),
never the request: `full`, the stream holds `ANALYTICS_BUFFER_MAX` events (the worker is behind);
`unavailable`, Redis did not take the batch; `process_full`, `PROCESS_MAX` events wait in the
process (Redis has been slow for a while). A process that stops normally (a deploy: the ASGI
lifespan's shutdown, `EventRecorder.stop`) sends what it holds first; a process that crashes
loses at most its last interval's events (~0.1 s of its traffic). That is the trade-off taken for
catalog speed.

`order_completed` is the exception: it is written in the order's own transaction
(`order_completed_event`, or `order_completed_insert` inside the checkout's one statement), so there
is one exactly when there is an order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar.datastructures import Cookie
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.asyncio import Redis
from sqlalchemy import ColumnElement, Insert, Table, bindparam, func, inspect, literal, select
from sqlalchemy.dialects.postgresql import JSONB

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

# KEYS[1]: the stream; ARGV[1]: its bound; ARGV[2..]: one JSON event each. Adds as many as fit
# under the bound, in order, and returns how many; the caller counts the rest as dropped.
_ADD_EVENTS = """
local room = tonumber(ARGV[1]) - redis.call('XLEN', KEYS[1])
local added = 0
for i = 2, #ARGV do
  if added >= room then break end
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  added = added + 1
end
return added
"""
# A process sends its batch every FLUSH_SECONDS, or as soon as BATCH_MAX events wait; past
# PROCESS_MAX waiting events (Redis slow or down for a while) new ones are dropped.
FLUSH_SECONDS = 0.1
BATCH_MAX = 500
PROCESS_MAX = 20_000
_ENCODE = msgspec.json.Encoder().encode


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


def stream_entry(name: str, properties: dict[str, Any], user_id: str | None, visitor_id: str | None) -> bytes:
    """One event as the stream holds it (and the drain reads it back): compact JSON, UTF-8.
    msgspec (Litestar's own encoder) because this runs for every view: a third of json.dumps's time."""
    return _ENCODE(
        {
            "event_id": uuid.uuid4(),
            "occurred_at": datetime.now(UTC),  # ISO 8601 with "Z"
            "name": name,
            "user_id": user_id,
            "visitor_id": visitor_id,
            "properties": properties,
        }
    )


class EventRecorder:
    """One web process's batch of events, sent to the bounded Redis stream by a background task.

    `note` is what a request does (synchronous, no I/O); `start` and `stop` belong to the app's
    lifespan; `flush` sends what waits now (the background task calls it, and so can a test)."""

    def __init__(
        self,
        redis: Redis,
        max_len: int,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        batch_max: int = BATCH_MAX,
        process_max: int = PROCESS_MAX,
    ) -> None:
        self.max_len = max_len
        self.flush_seconds = flush_seconds
        self.batch_max = batch_max
        self.process_max = process_max
        self._add = redis.register_script(_ADD_EVENTS)
        self._waiting: list[bytes] = []
        self._sending = asyncio.Lock()  # flushes one at a time: a flush returns after all before it
        self._due: asyncio.Event | None = None  # made in start(), on the loop that serves the app
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def note(self, entries: list[bytes]) -> None:
        """Queue a request's events for the next flush, or drop and count what does not fit."""
        room = self.process_max - len(self._waiting)
        if room < len(entries):
            dropped = len(entries) - max(room, 0)
            ANALYTICS_DROPPED.labels("process_full").inc(dropped)
            log.warning("analytics: %d event(s) dropped, this process holds %d unsent", dropped, self.process_max)
            entries = entries[: max(room, 0)]
        self._waiting.extend(entries)
        if len(self._waiting) >= self.batch_max and self._due is not None:
            self._due.set()

    async def flush(self) -> int:
        """Send every waiting event, BATCH_MAX to a round trip; returns how many the stream took."""
        async with self._sending:
            entries, self._waiting = self._waiting, []
            added = 0
            for first in range(0, len(entries), self.batch_max):
                batch = entries[first : first + self.batch_max]
                try:
                    taken = int(await self._add(keys=[STREAM], args=[self.max_len, *batch]))
                except Exception:  # Redis down or slow: the pages went out already, only the events are lost
                    lost = len(entries) - first
                    ANALYTICS_DROPPED.labels("unavailable").inc(lost)
                    log.warning("analytics: %d event(s) dropped, Redis did not take them", lost)
                    return added
                if taken < len(batch):
                    ANALYTICS_DROPPED.labels("full").inc(len(batch) - taken)
                    log.warning("analytics: %d event(s) dropped, the buffer is full", len(batch) - taken)
                added += taken
            return added

    def start(self) -> None:
        """Begin sending batches (the app's startup, on the loop that serves requests)."""
        self._stopping = False
        # Made on the serving loop: an app served again (a second test client) gets another loop.
        self._sending = asyncio.Lock()
        self._due = asyncio.Event()
        self._task = asyncio.create_task(self._send_batches(), name="analytics-events-flush")

    async def stop(self) -> None:
        """Send what is left and stop (the app's shutdown: a deploy loses nothing)."""
        self._stopping = True
        if self._due is not None:
            self._due.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()

    async def _send_batches(self) -> None:
        due = self._due
        assert due is not None  # start() made it
        while not self._stopping:
            with contextlib.suppress(TimeoutError):  # the interval is up: send what waits
                await asyncio.wait_for(due.wait(), self.flush_seconds)
            due.clear()
            try:
                await self.flush()
            except Exception:  # flush counts its own failures; this keeps the task alive whatever happens
                log.exception("analytics: sending a batch failed")


def events_middleware(app: ASGIApp, recorder: EventRecorder, secure_cookie: bool) -> ASGIApp:
    """Track every shopper request (cached pages included) and hand what it noted to the recorder."""
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
        tracker = Tracker(known or os.urandom(16).hex(), new_visitor=known is None)
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
            recorder.note([stream_entry(n, p, user_id, tracker.visitor_id) for n, p in tracker.events])

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


def _order_properties(order_id: UUID, user_id: UUID, total: int, items: list[OrderedItem]) -> dict[str, Any]:
    return {
        "order_id": str(order_id),
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
    }


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
        properties={**_order_properties(order_id, user_id, total, items), "order_number": number},
    )


_EVENTS: Table = AnalyticsEvent.__table__  # type: ignore[assignment]


def order_completed_insert(number: ColumnElement[str], placed: ColumnElement[bool]) -> Insert:
    """`order_completed_event` as an INSERT inside a statement that writes the order itself, built
    once: the order number is the statement's (`number`), the row is written only if `placed` (the
    order was), and the rest are the bind parameters `order_completed_params` gives."""
    properties = bindparam("oc_properties", type_=JSONB).op("||", return_type=JSONB)(
        func.jsonb_build_object(literal("order_number"), number)
    )
    row = select(
        bindparam("oc_occurred_at", type_=_EVENTS.c.occurred_at.type),
        bindparam("oc_event_id", type_=_EVENTS.c.event_id.type),
        literal(EventName.ORDER_COMPLETED.value),
        bindparam("oc_user_id", type_=_EVENTS.c.user_id.type),
        bindparam("oc_visitor_id", type_=_EVENTS.c.visitor_id.type),
        properties,
    ).where(placed)
    columns = ["occurred_at", "event_id", "name", "user_id", "visitor_id", "properties"]
    return _EVENTS.insert().from_select(columns, row)


def order_completed_params(
    tracker: Tracker, order_id: UUID, user_id: UUID, total: int, items: list[OrderedItem]
) -> dict[str, Any]:
    """The values of `order_completed_insert`'s row (all but the order number)."""
    return {
        "oc_occurred_at": datetime.now(UTC),
        "oc_event_id": uuid.uuid5(ORDER_EVENT_NAMESPACE, str(order_id)),
        "oc_user_id": user_id,
        "oc_visitor_id": tracker.visitor_id,
        "oc_properties": _order_properties(order_id, user_id, total, items),
    }
