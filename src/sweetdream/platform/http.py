"""One ASGI middleware for what every response needs: a request id, security headers and one
log line per request (JSON in production). Kept as raw ASGI because it runs on every request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from sweetdream.platform.metrics import RequestMetrics

log = logging.getLogger("sweetdream.http")


def content_security_policy(media_origin: str = "") -> bytes:
    """The policy; `media_origin` (product images in S3 or a CDN, space-separated) may be shown and
    uploaded to, by script or by the admin's plain image form."""
    media = f" {media_origin}" if media_origin else ""
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:{media}; "
        f"connect-src 'self'{media}; form-action 'self'{media}; base-uri 'self'; object-src 'none'; "
        "frame-ancestors 'none'"
    ).encode()


SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", content_security_policy()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
# Production is served over HTTPS only (the ALB redirects port 80): browsers are told to never try
# plain HTTP for a year, on subdomains too. Not in development, where http://127.0.0.1 is the shop.
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
# A request id offered by a proxy is kept only if it looks like one (no header injection, bounded).
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")


def request_id_from(scope: Scope) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and _SAFE_ID.match(value):
            return bytes(value)
    return uuid.uuid4().hex.encode()


def http_middleware(
    app: ASGIApp, hsts: bool = False, metrics: RequestMetrics | None = None, media_origin: str = ""
) -> ASGIApp:
    security_headers = [*SECURITY_HEADERS, HSTS] if hsts else SECURITY_HEADERS
    if media_origin:
        security_headers = [(b"content-security-policy", content_security_policy(media_origin)), *security_headers[1:]]

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        method = scope.get("method", "")
        request_id = request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id.decode()
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id))
                # A response with a CSP of its own keeps it (the analytics charts: SVG images styled
                # by an inline <style>, with no script); every other response gets the strict one.
                own = {name for name, _ in headers}
                headers.extend(h for h in security_headers if h[0] not in own)
                message["headers"] = headers
            await send(message)

        if metrics:
            metrics.started()
        try:
            await app(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            if metrics:
                metrics.finished(scope, status, seconds)
            log.info(
                "%s %s %s",
                method,
                scope["path"],
                status,
                extra={
                    "request_id": request_id.decode(),
                    "method": method,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )

    return middleware
