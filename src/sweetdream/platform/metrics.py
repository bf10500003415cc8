"""Prometheus metrics for the web process, and `/metrics` to read them.

Requests are counted and timed by route *template* (`/products/{slug}`, never the slug itself: one
series per route, not one per product or order) and status; `in_flight` is what runs now. A path
no route matches is `unmatched`, a method outside the usual verbs `OTHER`, so a scanner cannot
create series.

Production runs granian with several worker processes (WEB_CONCURRENCY) in one task. Each keeps
its own counters, and a scrape reaches one of them at random, so with the in-process registry a
scrape would see one process's share. With `PROMETHEUS_MULTIPROC_DIR` set (the web task definition
does), prometheus-client writes every value to a memory-mapped file per process in that directory
and `/metrics` sums the files of all processes (counters and histograms summed, in-flight summed over
live processes): one scrape gives the task's totals. Tasks are summed by CloudWatch (the agent
sidecar of each task publishes its own; alarms read Sum). Without the variable (development, the
worker) the in-process registry is exact.

`/metrics` is for the metrics agent beside the app and for people inside the VPC, never for the
internet: a request that came through the load balancer carries `X-Forwarded-For` (the ALB adds
it) and is answered 404, as if there were no such page. The ALB's listener does not forward the
path either (see deploy/terraform/modules/service/observability.tf); this is the second lock.
"""

from __future__ import annotations

import os
from pathlib import Path

from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

METRICS_PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds; 2 s is the alarm's p95 threshold, so it is a bucket edge.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


def _multiprocess_directory() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR, created if missing: prometheus-client writes a file there as soon
    as a metric is declared, so it must exist before the first one below."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
    return directory


_multiprocess_directory()

REQUESTS = Counter(
    "sweetdream_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
# Not by status: 11 buckets x every status of every route would be most of the series for little.
LATENCY = Histogram(
    "sweetdream_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "sweetdream_http_requests_in_flight",
    "Requests being answered now.",
    multiprocess_mode="livesum",
)

# Shopper events the web could not buffer (analytics/recording.py): "full" (ANALYTICS_BUFFER_MAX
# reached, the worker is behind), "unavailable" (Redis did not take a batch) or "process_full" (a web
# process holds its most unsent events: Redis slow for a while). The shopper's page is unaffected.
ANALYTICS_DROPPED = Counter(
    "sweetdream_analytics_events_dropped",
    "Shopper events dropped instead of recorded, by reason (full, unavailable, process_full).",
    ["reason"],
)

_NOT_FOUND = b"Not Found"
_REFUSED_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9")]


def exposition() -> bytes:
    """The Prometheus text of this process, or of every process sharing PROMETHEUS_MULTIPROC_DIR."""
    directory = _multiprocess_directory()
    if not directory:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


def came_through_load_balancer(scope: Scope) -> bool:
    """The ALB adds X-Forwarded-For to every request it passes on; nothing inside the VPC does."""
    return any(name == b"x-forwarded-for" for name, _ in scope["headers"])


def route_template(litestar: Litestar, scope: Scope) -> str:
    """The route the request matched, as written in the app (`/orders/{number}`).

    Litestar records it when it routes; a page served from the page cache (before Litestar) is
    routed here instead (Litestar's routing cache makes that a dictionary lookup).
    """
    template = scope.get("path_template")
    if template:
        return str(template)
    try:
        return litestar.asgi_router.handle_routing(scope["path"], scope.get("method"))[4] or UNMATCHED
    except Exception:  # no such route or method: one series for all of them
        return UNMATCHED


async def _send_metrics(scope: Scope, send: Send) -> None:
    if came_through_load_balancer(scope):
        await send({"type": "http.response.start", "status": 404, "headers": _REFUSED_HEADERS})
        await send({"type": "http.response.body", "body": _NOT_FOUND, "more_body": False})
        return
    body = exposition()
    headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def metrics_endpoint(app: ASGIApp) -> ASGIApp:
    """Answer `/metrics`; pass everything else on."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == METRICS_PATH:
            await _send_metrics(scope, send)
            return
        await app(scope, receive, send)

    return middleware


class RequestMetrics:
    """Counts and times every HTTP request, cached pages included. The one request middleware
    (platform.http) calls it around each request, with the status and duration it already has."""

    def __init__(self, litestar: Litestar) -> None:
        self.litestar = litestar

    def started(self) -> None:
        IN_FLIGHT.inc()

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        IN_FLIGHT.dec()
        if scope["path"] == METRICS_PATH:
            return
        method = scope.get("method", "")
        method = method if method in METHODS else "OTHER"
        # A 404 that Litestar did not route (no template) is no route: skip routing it again.
        route = scope.get("path_template") or (UNMATCHED if status == 404 else route_template(self.litestar, scope))
        LATENCY.labels(method, route).observe(seconds)
        REQUESTS.labels(method, route, str(status)).inc()
