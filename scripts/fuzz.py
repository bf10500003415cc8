"""Send thousands of hostile requests to every route of the shop and list every 5xx.

    make fuzz                                              # the test stack, in process, 6,000 requests
    .venv/bin/python scripts/fuzz.py --requests 8000 --seed 7
    .venv/bin/python scripts/fuzz.py --base-url http://127.0.0.1:8000 \\
        --admin-email admin@sweetdream.local --admin-password ...   # a running shop (dev server)

Every route comes from `app.routes`, so a new route is fuzzed without touching this file; each of
its methods is sent, plus one method it does not allow. Form fields are the names the templates'
forms use (`name="..."` and the `field("...")` macro), per form action; query parameters are the
handler's own plus the names the templates' GET forms use. A request starts from plausible values
(a real product, variant and order, the identity's own email and password, a fresh idempotency key)
so handlers get past their first check, then 0-3 fields are replaced by a nasty value (NASTY:
look-alike digits, 5,000 digits, control characters, invalid UTF-8, huge strings, SQL, Jinja and
HTML payloads, wrong UUIDs ...), a field is dropped or an unknown one added. The CSRF token is
right most of the time (so handlers are reached), wrong or missing otherwise; a third of the
requests are HTMX requests. Each goes out as a visitor, a signed-in shopper or an admin; a
session lost on the way (sign-out, a fuzzed registration) is signed in again.

With no --base-url the script starts the test stack (tests/support.start_test_stack: embedded
PostgreSQL and Redis unless DATABASE_URL/REDIS_URL are set, a fresh database dropped at the end),
runs the app in process and clears the rate-limit counters as it goes, so requests reach handlers
instead of 429s. In process, an order's live stream (SSE) ends after its first message.

Prints the number of requests, a histogram of status codes and every 5xx with the request that
caused it; exits 1 if there was any.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import re
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "fuzz-" + secrets.token_hex(8)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
EXTRA_METHODS = ("PUT", "DELETE", "PATCH")
# Handler arguments that are never read from the query string.
NOT_QUERY = {"request", "state", "scope", "socket", "headers", "cookies", "query", "body", "data"}
MAX_BODY_SHOWN = 300
MAX_QUERY = 60_000
NOT_SENT = 0  # the status _send reports for a URL httpx refuses to send

Value = str | bytes

# Anything a client can send. Bytes are sent as they are: invalid UTF-8.
NASTY: list[Value] = [
    "",
    " ",
    "²",
    "١٢",
    "٣",
    "1_000",
    " 12 ",
    "+1",
    "-1",
    "0",
    "-0",
    "1e9",
    "0x10",
    "1.5",
    "NaN",
    "9" * 20,
    "9" * 5000,
    "x" * 50_000,
    "\x00",
    "a\x00b",
    "\x01\x02\x1f",
    "\x7f",
    "\x1b[31m",
    "\t\n\r",
    "\u202e",
    "\ufeff",
    "\uffff",
    "😀" * 40,
    "é" * 300,
    "İß",
    "' OR '1'='1",
    "'; DROP TABLE users; --",
    "\\",
    "%",
    "%00",
    "{{ 7*7 }}",
    "{% for x in range(99999999) %}",
    "${7*7}",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "../../../../etc/passwd",
    "//evil.example",
    "https://evil.example/",
    "/\\evil.example",
    "javascript:alert(1)",
    "00000000-0000-0000-0000-000000000000",
    "not-a-uuid",
    "SD-000000",
    "SD-999999999",
    "SD-" + "9" * 5000,
    "null",
    "[]",
    "{}",
    b"\xff\xfe",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"caf\xe9",
]
# Numbers a request carries get these more often: what `str.isdigit` and `int()` get wrong.
NUMERIC_NASTY: list[Value] = [
    "²",
    "١٢",
    "٣",
    "1_000",
    " 12 ",
    "+1",
    "-1",
    "0",
    "1.5",
    "9" * 20,
    "9" * 5000,
    "",
    b"\xff",
]
NUMERIC_FIELDS = {"page", "quantity", "min_price", "max_price"}


def nasty_for(name: str, rng: random.Random) -> Value:
    if name in NUMERIC_FIELDS and rng.random() < 0.6:
        return rng.choice(NUMERIC_NASTY)
    if rng.random() < 0.05:
        return str(uuid.UUID(int=rng.getrandbits(128)))
    return rng.choice(NASTY)


def encode(value: Value, safe: str = "") -> str:
    return quote_from_bytes(value, safe=safe) if isinstance(value, bytes) else quote(value, safe=safe)


def urlencoded(pairs: Iterable[tuple[Value, Value]]) -> bytes:
    return "&".join(f"{encode(k)}={encode(v)}" for k, v in pairs).encode("ascii")


# --- what to send: routes, their parameters and the templates' form fields --------------------------


@dataclass(frozen=True)
class Target:
    method: str
    path: str  # as the route declares it: /orders/{number:str}
    path_params: tuple[str, ...]
    query: tuple[str, ...]
    fields: tuple[str, ...]
    weight: float = 1.0


_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
_ACTION = re.compile(r'\b(?:action|hx-post|hx-get)="([^"]+)"')
_METHOD = re.compile(r'\bmethod="(\w+)"', re.I)
_NAME = re.compile(r'\bname="([A-Za-z_][\w-]*)"')
_MACRO_FIELD = re.compile(r'\bfield\(\s*"([A-Za-z_]\w*)"')
_TEMPLATE_EXPR = re.compile(r"\{\{.*?\}\}")
_INCLUDE = re.compile(r"""\{%-?\s*include\s+["']([^"']+)["'].*?%\}""")
# Query parameters the templates put in links: `href="/admin/orders?status=..."`, `view.url(page=2)`.
_LINK_PARAM = re.compile(r"[?&]([a-z_]+)=|\burl\(([a-z_]+)=")
_ROUTE_PARAM = re.compile(r"\{[^}]+\}")


def _route_key(path: str) -> str:
    """`/orders/{number:str}/cancel` and a form's `/orders/{{ order.number }}/cancel` both -> `/orders/*/cancel`."""
    path = _ROUTE_PARAM.sub("*", _TEMPLATE_EXPR.sub("*", path))
    return path.rstrip("/") or "/"


def _with_includes(templates_dir: Path, text: str, depth: int = 3) -> str:
    """A template's text with the templates it includes written in (a form's fields may be there)."""

    def included(match: re.Match[str]) -> str:
        path = templates_dir / match.group(1)
        return _with_includes(templates_dir, path.read_text(), depth - 1) if path.is_file() else ""

    return _INCLUDE.sub(included, text) if depth else text


def link_parameters(templates_dir: Path) -> set[str]:
    """Every query parameter name a template's links carry."""
    found = set()
    for template in templates_dir.rglob("*.html"):
        for plain, built in _LINK_PARAM.findall(template.read_text()):
            found.add(plain or built)
    return found - {"v"}  # ?v= is the static files' cache buster


def template_forms(templates_dir: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The field names of every form in the templates, by action: (POST forms, GET forms)."""
    posts: dict[str, set[str]] = {}
    gets: dict[str, set[str]] = {}
    for template in templates_dir.rglob("*.html"):
        for attributes, body in _FORM.findall(_with_includes(templates_dir, template.read_text())):
            actions = _ACTION.findall(attributes)
            declared = _METHOD.search(attributes)
            method = declared.group(1) if declared else "get"
            names = set(_NAME.findall(body)) | set(_MACRO_FIELD.findall(body))
            names.discard("_csrf_token")
            forms = posts if method.lower() == "post" or "hx-post" in attributes else gets
            for action in actions:
                forms.setdefault(_route_key(action), set()).update(names)
    return posts, gets


def discover_targets(app: Any, templates_dir: Path) -> list[Target]:
    """One target per (route, method), plus one method each route does not allow. A GET's query
    parameters: the handler's own, its GET form's fields, and every name the templates' links use."""
    posts, gets = template_forms(templates_dir)
    linked = link_parameters(templates_dir)
    targets: list[Target] = []
    for route in app.routes:
        handlers = getattr(route, "route_handlers", None)
        if handlers is None:
            continue
        params = tuple(route.path_parameters)
        key = _route_key(route.path)
        boring = route.path.startswith(("/schema", "/static", "/health", "/ready"))
        for handler in handlers:
            for method in sorted(handler.http_methods):
                names = set(handler.parsed_fn_signature.parameters) - NOT_QUERY - set(params)
                names -= set(handler.resolve_dependencies())
                query = tuple(sorted(names | gets.get(key, set()) | (linked if method == "GET" else set())))
                fields = tuple(sorted(posts.get(key, set()))) if method not in SAFE_METHODS else ()
                weight = 0.15 if method == "OPTIONS" else 0.3 if boring else 1.0
                targets.append(Target(method, route.path, params, query, fields, weight))
        allowed = set(route.methods)
        extra = next(m for m in EXTRA_METHODS if m not in allowed)
        targets.append(Target(extra, route.path, params, (), (), 0.15))
    return targets


# --- who sends it ---------------------------------------------------------------------------------


@dataclass
class Identity:
    name: str  # visitor, shopper, admin
    email: str = ""
    password: str = ""
    cookies: httpx.Cookies = field(default_factory=httpx.Cookies)
    cart_filled: bool = False

    @property
    def signed_in(self) -> bool:
        return bool(self.email)


@dataclass
class Failure:
    status: int
    method: str
    url: str
    identity: str
    form: str
    body: str

    def describe(self) -> str:
        lines = [f"  {self.status} {self.method} {self.url[:300]}  (as {self.identity})"]
        if self.form:
            lines.append(f"      form: {self.form[:MAX_BODY_SHOWN]}")
        if self.body and not self.body.lstrip().lower().startswith("<!doctype"):
            lines.append(f"      answer: {self.body[:MAX_BODY_SHOWN]}")
        return "\n".join(lines)


@dataclass
class Report:
    targets: int = 0
    seed: int = 0
    requests: int = 0
    setup_requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    not_sent: int = 0  # URLs longer than any client sends: httpx refuses them before they leave

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        histogram = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        lines = [
            f"fuzz: {self.requests} requests over {self.targets} targets (route x method), seed {self.seed}, "
            f"in {self.seconds:.0f} s ({self.setup_requests} more to sign in and fill carts); "
            f"5xx: {self.server_errors}",
            f"statuses: {histogram}" + (f"; {self.not_sent} too long to send, not counted" if self.not_sent else ""),
        ]
        if self.failures:
            lines.append("server errors:")
            lines.extend(failure.describe() for failure in self.failures)
        return "\n".join(lines)


# --- the fuzzer -----------------------------------------------------------------------------------

LOGIN = "/account/login"
SESSION_CHANGING = {"/account/login", "/account/logout", "/account/register"}
STATUSES = ("PENDING", "PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED")


class Fuzzer:
    """Drives one httpx client (an AsyncTestClient in process, or a real one for --base-url)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        targets: list[Target],
        seed: int,
        static_files: list[str],
        make_admin: Callable[[str, str], Awaitable[None]] | None = None,
        admin: tuple[str, str] | None = None,
        reset_limits: Callable[[], Awaitable[None]] | None = None,
        errors: LastError | None = None,
    ) -> None:
        self.client = client
        self.errors = errors
        self.targets = targets
        self.weights = [t.weight for t in targets]
        self.rng = random.Random(seed)
        self.static_files = static_files
        self.make_admin = make_admin
        self.admin_login = admin
        self.reset_limits = reset_limits
        self.report = Report(targets=len(targets), seed=seed)
        self.visitor = Identity("visitor")
        self.shopper = Identity("shopper")
        self.admin = Identity("admin")
        self.slugs: list[str] = []
        self.variants: list[str] = []
        self.categories: list[str] = []
        self.orders: list[str] = []

    # The client carries one cookie jar: each identity's is swapped in for its requests.
    async def _send(
        self,
        identity: Identity,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        self.client.cookies = identity.cookies
        try:
            async with self.client.stream(method, url, content=body, headers=headers or {}) as response:
                chunks = b""
                async for chunk in response.aiter_bytes():
                    chunks += chunk
                    if len(chunks) > 65536 or response.headers.get("content-type", "").startswith("text/event-stream"):
                        break
                status, answer = response.status_code, dict(response.headers)
        except httpx.InvalidURL:  # longer than any client sends (httpx refuses over 64 KiB): not sent
            return NOT_SENT, {}, ""
        except httpx.HTTPError as exc:  # a dropped connection is a server failure too
            status, answer, chunks = 599, {}, f"{type(exc).__name__}: {exc}".encode()
        identity.cookies = httpx.Cookies(self.client.cookies)
        return status, answer, chunks.decode("utf-8", "replace")

    async def _setup(self, identity: Identity, method: str, url: str, form: dict[str, str] | None = None) -> Any:
        self.report.setup_requests += 1
        body, headers = None, {}
        if form is not None:
            form = {**form, "_csrf_token": await self._token(identity)}
            body, headers = urlencoded(form.items()), {"content-type": "application/x-www-form-urlencoded"}
        status, answer, text = await self._send(identity, method, url, body, headers)
        if status >= 500:
            self.report.statuses[status] += 1
            self.report.failures.append(Failure(status, method, url, identity.name, str(form or ""), text))
        return status, answer, text

    async def _token(self, identity: Identity) -> str:
        if "sd_csrf" not in identity.cookies:
            await self._setup(identity, "GET", "/cart/badge")
        return identity.cookies.get("sd_csrf") or ""

    async def sign_in(self, identity: Identity) -> None:
        identity.cookies = httpx.Cookies()
        identity.cart_filled = False
        if self.reset_limits:
            await self.reset_limits()
        status, _, _ = await self._setup(
            identity, "POST", LOGIN, {"email": identity.email, "password": identity.password, "next": "/"}
        )
        if status != 303:
            print(f"fuzz: could not sign the {identity.name} in again ({status})", file=sys.stderr)

    async def prepare(self) -> None:
        """Real values to start from (products, sizes, an order) and the signed-in identities."""
        if self.reset_limits:
            await self.reset_limits()
        _, _, page = await self._setup(self.visitor, "GET", "/products")
        self.slugs = sorted(set(re.findall(r'href="/products/([a-z0-9-]+)"', page)))[:12]
        self.categories = sorted(set(re.findall(r'<option value="([a-z0-9-]+)"', page)))
        for slug in self.slugs:
            _, _, product = await self._setup(self.visitor, "GET", f"/products/{slug}")
            self.variants += re.findall(r'<option value="([0-9a-f-]{36})"(?! disabled)', product)
        self.shopper.email, self.shopper.password = f"fuzz.{secrets.token_hex(5)}@example.com", PASSWORD
        status, _, text = await self._setup(
            self.shopper,
            "POST",
            "/account/register",
            {**self._plausible_form(("name", "phone", "address")), "email": self.shopper.email, "password": PASSWORD},
        )
        if status != 303:
            raise SystemExit(f"fuzz: could not register a shopper ({status}): {text[:300]}")
        if self.admin_login:
            self.admin.email, self.admin.password = self.admin_login
        elif self.make_admin:
            self.admin.email, self.admin.password = f"fuzz.admin.{secrets.token_hex(5)}@example.com", PASSWORD
            await self.make_admin(self.admin.email, PASSWORD)
        if self.admin.signed_in:
            await self.sign_in(self.admin)
        else:
            print("fuzz: no admin credentials: /admin is fuzzed as a shopper only", file=sys.stderr)
        await self._fill_cart(self.shopper)
        form = self._plausible_form(("name", "phone", "address", "note", "payment_method", "idempotency_key"))
        status, answer, _ = await self._setup(self.shopper, "POST", "/checkout", {**form, "payment_method": "COD"})
        self._note_order(status, answer, self.shopper)

    async def _fill_cart(self, identity: Identity) -> None:
        if self.variants:
            form = {"variant_id": self.rng.choice(self.variants), "quantity": "1", "back": "/cart"}
            await self._setup(identity, "POST", "/cart/items", form)
        identity.cart_filled = True

    def _note_order(self, status: int, answer: dict[str, str], identity: Identity) -> None:
        match = re.fullmatch(r"/orders/(SD-\d+)", answer.get("location", ""))
        if status == 303 and match:
            self.orders.append(match.group(1))
            identity.cart_filled = False

    # --- values ---

    def _plausible(self, name: str, identity: Identity | None = None, path: str = "") -> str:
        rng = self.rng
        signed_in = identity is not None and identity.signed_in
        values = {
            "email": identity.email
            if signed_in and path != "/account/register"
            else f"fuzz.{rng.random()}@example.com",
            "password": identity.password if signed_in else PASSWORD,
            "current_password": identity.password if signed_in else PASSWORD,
            "new_password": identity.password if signed_in else PASSWORD,
            "confirm_password": identity.password if signed_in else PASSWORD,
            "name": "Lan Nguyễn",
            "phone": "0901 234 567",
            "address": "12 Lê Lợi, Quận 1, TP.HCM",
            "note": "Ít đường, giao buổi sáng",
            "payment_method": rng.choice(["COD", "CARD"]),
            "card_number": "4242 4242 4242 4242",
            "card_expiry": "12/34",
            "card_cvc": "123",
            "idempotency_key": secrets.token_urlsafe(12),
            "quantity": str(rng.randint(1, 3)),
            "variant_id": rng.choice(self.variants) if self.variants else str(uuid.uuid4()),
            "back": f"/products/{rng.choice(self.slugs)}" if self.slugs else "/cart",
            "action": rng.choice(["", "remove"]),
            "status": rng.choice(STATUSES),
            "next": "/cart",
            "next_url": "/cart",
            "q": rng.choice(["bánh", "banh kem", "tra"]),
            "category": rng.choice(self.categories) if self.categories else "",
            "size": rng.choice(["S", "M", "L"]),
            "min_price": "10000",
            "max_price": "500000",
            "sort": rng.choice(["price_asc", "newest", "name"]),
            "in_stock": "1",
            "page": str(rng.randint(1, 3)),
        }
        return values.get(name, "x")

    def _plausible_form(self, names: Iterable[str]) -> dict[str, str]:
        return {name: self._plausible(name) for name in names}

    def _path_value(self, name: str) -> tuple[Value, str]:
        """A real value half of the time (so the handler gets to its work), else a nasty one."""
        real = {
            "slug": self.slugs,
            "variant_id": self.variants,
            "number": self.orders,
            "file_path": self.static_files,
        }.get(name) or []
        if real and self.rng.random() < 0.45:
            return self.rng.choice(real), "/"
        return nasty_for(name, self.rng), ""

    def _mutate(self, pairs: dict[str, Value], names: tuple[str, ...], password: str) -> list[tuple[Value, Value]]:
        rng = self.rng
        for name in rng.sample(names, min(len(names), rng.choice([0, 1, 1, 2, 3]))) if names else ():
            pairs[name] = nasty_for(name, rng)
        # Changing both new passwords to the same nasty value could change the identity's password.
        new, confirm = pairs.get("new_password"), pairs.get("confirm_password")
        if new is not None and new == confirm and new != password:
            pairs["confirm_password"] = f"{confirm!r}-differs"
        items: list[tuple[Value, Value]] = list(pairs.items())
        roll = rng.random()
        if roll < 0.08 and items:
            items.pop(rng.randrange(len(items)))
        elif roll < 0.14:
            items.append((nasty_for("unknown", rng), nasty_for("unknown", rng)))
        elif roll < 0.18 and items:
            items.append((items[0][0], nasty_for(str(items[0][0]), rng)))  # the same field twice
        return items

    # --- one request ---

    def _identity_for(self, target: Target) -> Identity:
        choices = [self.visitor, self.shopper] + ([self.admin] if self.admin.signed_in else [])
        weights = [0.25, 0.45, 0.3][: len(choices)]
        if target.path.startswith("/admin") and self.admin.signed_in:
            weights = [0.15, 0.15, 0.7]
        return self.rng.choices(choices, weights)[0]

    async def one(self) -> None:
        rng = self.rng
        target = rng.choices(self.targets, self.weights)[0]
        identity = self._identity_for(target)
        if target.path == "/checkout" and target.method == "POST" and identity.signed_in and not identity.cart_filled:
            await self._fill_cart(identity)
        path = target.path
        for name in target.path_params:
            value, safe = self._path_value(name)
            path = re.sub(r"\{" + name + r":[^}]+\}", encode(value, safe).replace("\\", "\\\\"), path)
        query: list[tuple[Value, Value]] = []
        for name in target.query:
            if rng.random() < 0.5:
                query.append((name, nasty_for(name, rng) if rng.random() < 0.5 else self._plausible(name, identity)))
        if rng.random() < 0.05:
            query.append((nasty_for("unknown", rng), nasty_for("unknown", rng)))
        while query and len(urlencoded(query)) > MAX_QUERY:  # httpx sends at most 64 KiB of URL
            query.remove(max(query, key=lambda pair: len(pair[1])))
        url = path + ("?" + urlencoded(query).decode() if query else "")
        headers: dict[str, str] = {}
        if rng.random() < 0.33:
            headers["hx-request"] = "true"
            if rng.random() < 0.5:
                headers["hx-target"] = rng.choice(["results", "cart", "add-result"])
        body: bytes | None = None
        form_pairs: list[tuple[Value, Value]] = []
        if target.method not in SAFE_METHODS:
            token = await self._token(identity)
            plausible: dict[str, Value] = {name: self._plausible(name, identity, target.path) for name in target.fields}
            form_pairs = self._mutate(plausible, target.fields, identity.password or PASSWORD)
            roll = rng.random()
            if roll < 0.85:
                form_pairs.append(("_csrf_token", token))
            elif roll < 0.93:
                form_pairs.append(("_csrf_token", nasty_for("_csrf_token", rng)))
            body = urlencoded(form_pairs)
            headers["content-type"] = "application/x-www-form-urlencoded"
            if rng.random() < 0.03:
                body, headers["content-type"] = (
                    b"\x00\xff" * 100,
                    rng.choice(
                        ["multipart/form-data; boundary=x", "application/json", "application/x-www-form-urlencoded"]
                    ),
                )
        status, answer, text = await self._send(identity, target.method, url, body, headers)
        if status == NOT_SENT:
            self.report.not_sent += 1
            return
        self.report.requests += 1
        self.report.statuses[status] += 1
        if status >= 500:
            form = "&".join(f"{k!r}={v!r}" for k, v in form_pairs)
            cause = self.errors.take() if self.errors else ""
            self.report.failures.append(Failure(status, target.method, url, identity.name, form, cause or text))
        await self._after(identity, target, status, answer)

    async def _after(self, identity: Identity, target: Target, status: int, answer: dict[str, str]) -> None:
        """Keep the identities what they are: a visitor signed out, the shopper and admin signed in."""
        if target.path == "/checkout" and target.method == "POST":
            self._note_order(status, answer, identity)
        if target.path.startswith("/cart/items/"):
            identity.cart_filled = False  # the line may have been removed
        lost = answer.get("location", "").startswith(LOGIN) or answer.get("hx-redirect", "").startswith(LOGIN)
        changed = target.method == "POST" and target.path in SESSION_CHANGING
        if identity is self.visitor:
            if changed:
                self.visitor.cookies = httpx.Cookies()
        elif lost or changed:
            await self.sign_in(identity)

    async def run(self, requests: int) -> Report:
        started = time.perf_counter()
        for n in range(requests):
            if self.reset_limits and n % 25 == 0:
                await self.reset_limits()
            await self.one()
        self.report.seconds = time.perf_counter() - started
        return self.report


def static_files(static_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(static_dir)) for p in static_dir.rglob("*") if p.is_file())[:20]


async def clear_rate_limits(redis_url: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter("rl:*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def admin_maker(database_url: str) -> Callable[[str, str], Awaitable[None]]:
    async def make_admin(email: str, password: str) -> None:
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

        from sweetdream.accounts.services import UserService

        engine = create_async_engine(database_url, hide_parameters=True)
        try:
            async with async_sessionmaker(engine)() as session:
                await UserService(session=session).create_admin(email, password, "Fuzz Admin")
                await session.commit()
        finally:
            await engine.dispose()

    return make_admin


# --- the command ----------------------------------------------------------------------------------


def quiet_request_logs() -> None:
    """One line per request from the app and from httpx would drown the report."""
    for name in ("sweetdream.http", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


class LastError(logging.Handler):
    """In process, the exception behind a 500 (the app logs it): shown beside the request."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            self.last = f"{type(error).__module__}.{type(error).__name__}: {str(error).splitlines()[0][:200]}"

    def take(self) -> str:
        last, self.last = self.last, ""
        return last


@contextmanager
def capture_app_errors() -> Iterator[LastError]:
    handler = LastError()
    errors = logging.getLogger("sweetdream.errors")
    errors.addHandler(handler)
    errors.propagate = False  # the traceback would drown the report; the exception is in it
    try:
        yield handler
    finally:
        errors.removeHandler(handler)
        errors.propagate = True


async def fuzz_app(app: Any, settings: Any, requests: int, seed: int) -> Report:
    """In process: `app` through Litestar's test client, the rate limits cleared as it goes.
    An order's live stream (and the admin's live list) sends its first message and ends (it would
    otherwise last minutes)."""
    from litestar.testing import AsyncTestClient

    from sweetdream.admin import orders as admin_orders
    from sweetdream.orders import web as orders_web

    live_seconds, orders_web.LIVE_STREAM_SECONDS = orders_web.LIVE_STREAM_SECONDS, 0
    admin_live_seconds, admin_orders.LIVE_STREAM_SECONDS = admin_orders.LIVE_STREAM_SECONDS, 0
    targets = discover_targets(app, settings.templates_dir)
    try:
        with capture_app_errors() as errors:
            async with AsyncTestClient(app=app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
                client.follow_redirects = False
                fuzzer = Fuzzer(
                    client,
                    targets,
                    seed,
                    static_files(settings.static_dir),
                    make_admin=admin_maker(settings.database_url),
                    reset_limits=lambda: clear_rate_limits(settings.redis_url),
                    errors=errors,
                )
                await fuzzer.prepare()
                return await fuzzer.run(requests)
    finally:
        orders_web.LIVE_STREAM_SECONDS = live_seconds
        admin_orders.LIVE_STREAM_SECONDS = admin_live_seconds


async def fuzz_in_process(requests: int, seed: int) -> Report:
    from sweetdream.app import create_app
    from tests.support import start_test_stack

    stack = await asyncio.to_thread(start_test_stack)
    try:
        app = create_app(stack.settings)
        quiet_request_logs()
        return await fuzz_app(app, stack.settings, requests, seed)
    finally:
        await asyncio.to_thread(stack.close)


async def fuzz_server(base_url: str, requests: int, seed: int, admin: tuple[str, str] | None) -> Report:
    # The routes and templates come from this checkout's app; nothing connects to these URLs.
    os.environ.setdefault("SWEETDREAM_ENV", "test")
    os.environ.setdefault("DATABASE_URL", "postgresql+asyncpg://unused@127.0.0.1/unused")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1/0")
    from sweetdream.app import create_app

    app = create_app()
    quiet_request_logs()
    settings = app.state.settings
    targets = discover_targets(app, settings.templates_dir)
    async with httpx.AsyncClient(base_url=base_url, follow_redirects=False, timeout=30) as client:
        fuzzer = Fuzzer(client, targets, seed, static_files(settings.static_dir), admin=admin)
        await fuzzer.prepare()
        return await fuzzer.run(requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--base-url", help="fuzz a running shop instead of the in-process test stack")
    parser.add_argument("--admin-email", default=os.environ.get("FUZZ_ADMIN_EMAIL"))
    parser.add_argument("--admin-password", default=os.environ.get("SWEETDREAM_ADMIN_PASSWORD"))
    args = parser.parse_args()
    if args.base_url:
        admin = (args.admin_email, args.admin_password) if args.admin_email and args.admin_password else None
        report = asyncio.run(fuzz_server(args.base_url, args.requests, args.seed, admin))
    else:
        report = asyncio.run(fuzz_in_process(args.requests, args.seed))
    print(report.summary())
    sys.exit(1 if report.server_errors else 0)


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]
    main()
