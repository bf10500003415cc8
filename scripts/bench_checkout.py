"""The checkout bench: shoppers buy through the real HTML forms, and the database is checked after.

    BENCH_SECONDS=5 .venv/bin/python scripts/bench.py checkout     # BENCH_SHOPPERS: 300 by default

wrk cannot drive a stateful checkout, so this is an asyncio load generator (aiohttp). Each shopper
has their own cookies (session and CSRF; the server marks them Secure in production, so they are
kept by hand) and signs in through the sign-in form before any timing starts, each from their own
X-Forwarded-For address as behind the load balancer (the bench server trusts the proxy). A cycle
is what a browser with JavaScript does: POST the product page's add-to-cart form (HTMX), GET
/checkout (a fresh idempotency key, the review digest, the prefilled address), POST it. A refused
checkout (sold out) removes the line from the cart, as a shopper would.

Runs, each at 16 and 64 concurrent shoppers:
  uncontested: every shopper buys their own size, with plenty of stock (no shared row).
  contested:   every shopper buys the same size, whose stock is three quarters of what the
               uncontested run just sold at that concurrency; the run stops once it sells out,
               so the last units are fought over.
After every run the database is checked: units in orders == stock taken (initial - final) for
each size, no stock below zero, no more units sold than there were, one order per success seen.

The shop allows 10 checkouts a minute per shopper; the pool hands out only shoppers with room
left (fewer than 10 in the last 62 s), and counts the waits if it runs dry. Before each run it
waits until its shoppers may post 250 checkouts a second for the whole run (300 shoppers allow
3,000 a minute), so a run measures the shop rather than the limit. 429s are counted.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import statistics
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from html import unescape
from http.cookies import SimpleCookie

import aiohttp
from bench import Bench, Report, Result, Verdict, child_pids, cpu_seconds

# BENCH_CONCURRENCIES="64" runs only the goal's concurrency (a quicker comparison of two versions).
CONCURRENCIES = tuple(int(c) for c in os.environ.get("BENCH_CONCURRENCIES", "16,64").split(","))
SHOPPERS = int(os.environ.get("BENCH_SHOPPERS", "300"))
PASSWORD = "bench-shopper-" + secrets.token_hex(8)  # throwaway accounts, a throwaway password
CHECKOUTS_PER_MINUTE = 10  # the shop's limit per shopper (orders/web.py CHECKOUT_PER_USER)
LIMIT_WINDOW = 62.0  # seconds: a little over the shop's 60 s window
UNCONTESTED_STOCK = 1_000_000
CONTESTED_SHARE = 0.75
SIGN_IN_CONCURRENCY = 8
TIMEOUT = 30.0

ORDER_LOCATION = re.compile(r"^/orders/(SD-\d+)$")


# --- shoppers and their cookies -------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    status_code: int
    text: str
    set_cookies: list[str]
    location: str


class Browser:
    """One shopper's keep-alive connection, as a browser has: no cookie jar (the shopper keeps their
    cookies by hand), no redirects followed. aiohttp, not httpx: the generator shares the machine it
    measures, and httpx spent 1.4 ms of CPU per request against aiohttp's 0.19 (0.45 of the 2 cores at
    100 checkouts a second)."""

    def __init__(self, base_url: str) -> None:
        self.session = aiohttp.ClientSession(
            base_url,
            connector=aiohttp.TCPConnector(limit=1),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        )

    async def get(self, path: str, headers: dict[str, str]) -> Page:
        return await self._send("GET", path, None, headers)

    async def post(self, path: str, data: dict[str, str], headers: dict[str, str]) -> Page:
        return await self._send("POST", path, data, headers)

    async def _send(self, method: str, path: str, data: dict[str, str] | None, headers: dict[str, str]) -> Page:
        async with self.session.request(method, path, data=data, headers=headers, allow_redirects=False) as response:
            return Page(
                response.status,
                await response.text(),
                response.headers.getall("set-cookie", []),
                response.headers.get("location", ""),
            )

    async def close(self) -> None:
        await self.session.close()


# What a failed request raises: the connection reset or refused, or the timeout.
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)


@dataclass
class Shopper:
    number: int
    email: str
    variant_id: str = ""  # their own size for uncontested runs
    product_path: str = ""
    cookies: dict[str, str] = field(default_factory=dict)
    checkouts: deque[float] = field(default_factory=deque)  # when their recent checkouts were posted
    broken: bool = False
    # Their own keep-alive connection, as a browser has: with one shared pool of connections the
    # server's two workers got very unequal shares (one worker did 83 % of the work at c=64).
    browser: Browser | None = None

    @property
    def online(self) -> Browser:
        assert self.browser is not None, "a shopper is given their browser before they sign in"
        return self.browser

    @property
    def address(self) -> str:
        return f"10.{self.number // 65536 % 256}.{self.number // 256 % 256}.{self.number % 256}"

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), **extra}
        if "sd_csrf" in self.cookies:
            headers["x-csrftoken"] = self.cookies["sd_csrf"]
        return headers

    def keep_cookies(self, response: Page) -> None:
        for raw in response.set_cookies:
            jar: SimpleCookie = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or morsel.value in {"", "null"}:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def ready_at(self) -> float:
        """When this shopper may post a checkout again without passing the shop's rate limit."""
        now = time.monotonic()
        while self.checkouts and self.checkouts[0] < now - LIMIT_WINDOW:
            self.checkouts.popleft()
        if len(self.checkouts) < CHECKOUTS_PER_MINUTE:
            return 0.0
        return self.checkouts[-CHECKOUTS_PER_MINUTE] + LIMIT_WINDOW


class Pool:
    """Least recently used first; a shopper with no checkout left this minute waits their turn."""

    def __init__(self, shoppers: list[Shopper]) -> None:
        self.idle = deque(shoppers)
        self.waits = 0

    async def take(self, deadline: float) -> Shopper | None:
        """A shopper who may check out now, or None once `deadline` passes with none: a run must
        not go on waiting for the limit after its time is up (its checkouts a second would then
        count that wait)."""
        while True:
            for _ in range(len(self.idle)):
                shopper = self.idle.popleft()
                if shopper.broken:
                    continue
                if shopper.ready_at() <= time.monotonic():
                    return shopper
                self.idle.append(shopper)
            if time.monotonic() >= deadline:
                return None
            self.waits += 1
            await asyncio.sleep(0.05)

    def give_back(self, shopper: Shopper) -> None:
        self.idle.append(shopper)

    def seconds_until(self, checkouts: int) -> float:
        """How long until the shoppers may post `checkouts` (or all they ever can at once) without
        passing the shop's rate limit: each checkout of the last window frees a place as it ages out."""
        now = time.monotonic()
        active = [s for s in self.idle if not s.broken]
        recent = sorted(at for s in active for at in s.checkouts if at >= now - LIMIT_WINDOW)
        short = min(checkouts, CHECKOUTS_PER_MINUTE * len(active)) - (CHECKOUTS_PER_MINUTE * len(active) - len(recent))
        return 0.0 if short <= 0 else recent[short - 1] + LIMIT_WINDOW - now

    async def ready_for(self, checkouts: int) -> float:
        """Wait until the shoppers may post `checkouts`, so a run measures the shop, not a pool
        whose shoppers all hit the rate limit; the seconds waited."""
        wait = self.seconds_until(checkouts)
        await asyncio.sleep(wait)
        return wait


# --- one run --------------------------------------------------------------------------------------


@dataclass
class Tally:
    add_ms: list[float] = field(default_factory=list)
    place_ms: list[float] = field(default_factory=list)
    placed: int = 0
    add_refused: int = 0  # 409: sold out
    place_refused: int = 0  # 409: sold out while checking out
    rate_limited: int = 0  # 429 anywhere
    server_errors: int = 0  # 5xx anywhere
    unexpected: int = 0  # any other status, or a page without the expected form
    transport_errors: int = 0  # timeouts, resets
    sold_out_at: float | None = None
    examples: list[str] = field(default_factory=list)
    order_numbers: set[str] = field(default_factory=set)

    def note(self, what: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(what)

    def status(self, response: Page, step: str) -> None:
        if response.status_code == 429:
            self.rate_limited += 1
        elif response.status_code >= 500:
            self.server_errors += 1
        else:
            self.unexpected += 1
        self.note(f"{step}: {response.status_code} {response.text[:160]!r}")


def _field(html: str, name: str) -> str | None:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'<textarea[^>]*name="{name}"[^>]*>([^<]*)</textarea>', html
    )
    return unescape(match.group(1)) if match else None


async def cycle(shopper: Shopper, variant_id: str, product_path: str, tally: Tally) -> bool:
    """Add one to the cart, open checkout, place the order. False once the size is sold out."""
    client = shopper.online
    hx = {"hx-request": "true", "hx-current-url": product_path}
    started = time.perf_counter()
    added = await client.post(
        "/cart/items", {"variant_id": variant_id, "quantity": "1", "back": product_path}, shopper.headers(**hx)
    )
    tally.add_ms.append((time.perf_counter() - started) * 1000)
    shopper.keep_cookies(added)
    if added.status_code == 409:
        tally.add_refused += 1
        return False
    if added.status_code != 200:
        tally.status(added, "add to cart")
        return True

    page = await client.get("/checkout", shopper.headers())
    shopper.keep_cookies(page)
    fields = ("idempotency_key", "reviewed", "reviewed_lines", "name", "phone", "address")
    form = {name: _field(page.text, name) for name in fields}
    if page.status_code != 200 or None in form.values():
        tally.status(page, "checkout page")
        shopper.broken = True  # its cart is in an unknown state: leave it out of later cycles
        return True
    data = {**{k: v or "" for k, v in form.items()}, "note": "", "payment_method": "COD"}

    shopper.checkouts.append(time.monotonic())
    started = time.perf_counter()
    placed = await client.post("/checkout", data, shopper.headers())
    tally.place_ms.append((time.perf_counter() - started) * 1000)
    shopper.keep_cookies(placed)
    number = ORDER_LOCATION.match(placed.location)
    if placed.status_code == 303 and number:
        tally.placed += 1
        tally.order_numbers.add(number.group(1))
        return True
    if placed.status_code == 409:
        tally.place_refused += 1
    else:
        tally.status(placed, "place order")
    # Refused: empty the cart, as the shopper would, so the next cycle starts clean.
    removed = await client.post(f"/cart/items/{variant_id}", {"action": "remove"}, shopper.headers(**hx))
    shopper.keep_cookies(removed)
    if removed.status_code != 200:
        tally.status(removed, "remove from cart")
        shopper.broken = True
    return placed.status_code != 409


async def load(
    pool: Pool,
    concurrency: int,
    seconds: float,
    contested: tuple[str, str] | None,
) -> tuple[Tally, float]:
    """`concurrency` shoppers cycling for `seconds` (or, contested, until the size sells out)."""
    tally = Tally()
    start = time.monotonic()
    deadline = start + seconds
    stop = asyncio.Event()

    async def one_shopper_at_a_time() -> None:
        while time.monotonic() < deadline and not stop.is_set():
            shopper = await pool.take(deadline)
            if shopper is None:
                break
            variant_id, path = contested or (shopper.variant_id, shopper.product_path)
            try:
                more = await cycle(shopper, variant_id, path, tally)
            except TRANSPORT_ERRORS as exc:
                tally.transport_errors += 1
                tally.note(f"{type(exc).__name__}: {exc}")
                shopper.broken = True
                more = True
            finally:
                pool.give_back(shopper)
            if not more and contested:
                if tally.sold_out_at is None:
                    tally.sold_out_at = time.monotonic() - start
                stop.set()

    await asyncio.gather(*(one_shopper_at_a_time() for _ in range(concurrency)))
    return tally, time.monotonic() - start


# --- the database: arrange before, check after -----------------------------------------------------


class Shop:
    """Direct database access for arranging the bench and checking the books after each run."""

    def __init__(self, env: dict[str, str]) -> None:
        from redis.asyncio import Redis
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

        self.engine = create_async_engine(env["DATABASE_URL"], hide_parameters=True)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.redis = Redis.from_url(env["REDIS_URL"])

    async def close(self) -> None:
        await self.engine.dispose()
        await self.redis.aclose()

    async def create_shoppers(self, count: int) -> list[Shopper]:
        from sweetdream.accounts.models import Role, User
        from sweetdream.accounts.passwords import hash_password

        password_hash = await hash_password(PASSWORD)  # one hash for all: sign-in still verifies it
        tag = uuid.uuid4().hex[:6]
        shoppers = [Shopper(number=i + 1, email=f"bench-{tag}-{i + 1}@example.com") for i in range(count)]
        async with self.sessions() as db, db.begin():
            db.add_all(
                User(
                    email=s.email,
                    password_hash=password_hash,
                    name=f"Bench Shopper {s.number}",
                    phone="0901234567",
                    address=f"{s.number} Nguyễn Huệ, Quận 1, TP.HCM",
                    role=Role.CUSTOMER,
                )
                for s in shoppers
            )
        return shoppers

    async def create_product(self, name: str, stocks: list[int], labels: list[str]) -> tuple[str, list[str]]:
        """A product with one size per stock figure: (its page path, the sizes' ids)."""
        from sqlalchemy import select

        from sweetdream.catalog import stock
        from sweetdream.catalog.models import Category, Product, StockReason, Variant
        from sweetdream.catalog.services import search_text_for

        tag = secrets.token_hex(4)
        async with self.sessions() as db, db.begin():
            category = await db.scalar(select(Category).order_by(Category.position).limit(1))
            assert category is not None
            product = Product(
                slug=f"bench-{tag}",
                name=f"{name} {tag}",
                description="Baked for the checkout bench",
                category_id=category.id,
                price=120_000,
                images=[],
                search_text=search_text_for(f"{name} {tag}", "", category.name),
            )
            product.variants = [
                Variant(label=label, sku=f"BENCH-{tag}-{i}", stock=stock, position=i)
                for i, (label, stock) in enumerate(zip(labels, stocks, strict=True))
            ]
            db.add(product)
            await db.flush()
            await stock.open_missing_balances(db, StockReason.IMPORT)  # level == sum of the ledger
        return f"/products/{product.slug}", [str(v.id) for v in product.variants]

    async def set_stock(self, variant_id: str, stock: int) -> None:
        from sweetdream.catalog import stock as stock_levels
        from sweetdream.catalog.models import StockReason

        # A count correction through the ledger; its commit moves the catalog version (catalog/writes.py).
        async with self.sessions() as db, db.begin():
            await stock_levels.adjust(
                db,
                uuid.UUID(variant_id),
                StockReason.COUNT,
                stock_levels.Mover("bench"),
                counted=stock,
                redis=self.redis,
            )

    async def books(self, variant_ids: list[str]) -> dict[str, tuple[int, int, int]]:
        """Per size: (stock now, units in orders, orders with a line for it)."""
        from sqlalchemy import func, select

        from sweetdream.catalog.models import Variant
        from sweetdream.orders.models import OrderLine

        ids = [uuid.UUID(v) for v in variant_ids]
        async with self.sessions() as db:
            rows = await db.execute(select(Variant.id, Variant.stock).where(Variant.id.in_(ids)))
            stock = {variant_id: int(n) for variant_id, n in rows.all()}
            rows = await db.execute(
                select(OrderLine.variant_id, func.sum(OrderLine.quantity), func.count(OrderLine.order_id.distinct()))
                .where(OrderLine.variant_id.in_(ids))
                .group_by(OrderLine.variant_id)
            )
            sold = {variant_id: (int(units), int(orders)) for variant_id, units, orders in rows.all()}
        return {str(v): (stock[v], *sold.get(v, (0, 0))) for v in ids}

    async def orders_numbered(self, numbers: set[str]) -> int:
        from sqlalchemy import func, select

        from sweetdream.orders.models import Order

        if not numbers:
            return 0
        async with self.sessions() as db:
            return int(await db.scalar(select(func.count()).where(Order.number.in_(list(numbers)))) or 0)


@dataclass
class Books:
    sizes: int
    initial_stock: int
    final_stock: int
    units_sold: int
    orders_in_db: int
    oversold_units: int  # units sold beyond the stock there was
    mismatched_sizes: int  # sizes where units sold != stock taken
    negative_sizes: int  # sizes whose stock went below zero
    unseen_orders: int  # successes the shoppers saw that the database does not have

    @property
    def oversell(self) -> int:
        return self.oversold_units + self.mismatched_sizes + self.negative_sizes + self.unseen_orders


def audit(before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]) -> Books:
    sold = {v: after[v][1] - before[v][1] for v in before}
    return Books(
        sizes=len(before),
        initial_stock=sum(b[0] for b in before.values()),
        final_stock=sum(a[0] for a in after.values()),
        units_sold=sum(sold.values()),
        orders_in_db=sum(after[v][2] - before[v][2] for v in before),
        oversold_units=sum(max(0, sold[v] - before[v][0]) for v in before),
        mismatched_sizes=sum(1 for v in before if sold[v] != before[v][0] - after[v][0]),
        negative_sizes=sum(1 for a in after.values() if a[0] < 0),
        unseen_orders=0,
    )


# --- the scenario ---------------------------------------------------------------------------------


@dataclass
class Run:
    stock: str
    concurrency: int
    seconds: float
    checkouts_per_second: float
    placed: int
    refused: int
    add_p50_ms: float
    add_p99_ms: float
    place_p50_ms: float
    place_p99_ms: float
    server_errors: int
    rate_limited: int
    other_errors: int
    shopper_waits: int
    client_cores: float  # this load generator's CPU, in cores: it shares the machine with the shop
    web_cores: float  # the web workers' CPU, in cores
    sold_out_at: float | None
    books: Books
    examples: list[str]


def percentile(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def sign_in(shopper: Shopper) -> None:
    """The real sign-in form, from the shopper's own address (TRUST_PROXY is on for the bench)."""
    forwarded = {"x-forwarded-for": shopper.address}
    page = await shopper.online.get("/account/login", shopper.headers(**forwarded))
    shopper.keep_cookies(page)
    if page.status_code != 200 or "sd_csrf" not in shopper.cookies or 'action="/account/login"' not in page.text:
        raise RuntimeError(f"sign-in page for {shopper.email}: {page.status_code}")
    form = {"email": shopper.email, "password": PASSWORD, "next": "/account"}
    response = await shopper.online.post("/account/login", form, shopper.headers(**forwarded))
    shopper.keep_cookies(response)
    if response.status_code != 303 or "sd_session" not in shopper.cookies:
        raise RuntimeError(f"sign-in for {shopper.email}: {response.status_code} {response.text[:200]!r}")


async def check_add_form(shopper: Shopper, path: str, variant_id: str) -> None:
    """The product page's add-to-cart form has the fields the cycles post."""
    page = await shopper.online.get(path, shopper.headers())
    shopper.keep_cookies(page)
    form = re.search(r'<form class="add-to-cart.*?</form>', page.text, re.S)
    wanted = ('action="/cart/items"', 'name="variant_id"', f'value="{variant_id}"', 'name="quantity"', 'name="back"')
    if page.status_code != 200 or form is None or not all(w in form.group(0) for w in wanted):
        raise RuntimeError(f"{path}: no add-to-cart form offering {variant_id} ({page.status_code})")


@dataclass
class CpuUse:
    """The CPU this process and the web workers use during a run, in cores."""

    workers: list[int]
    client: float
    web: float

    @classmethod
    def start(cls, server_pid: int) -> CpuUse:
        workers = child_pids(server_pid) if server_pid else []
        return cls(workers, time.process_time(), sum(cpu_seconds(p) for p in workers))

    def cores(self, elapsed: float) -> tuple[float, float]:
        web = sum(cpu_seconds(p) for p in self.workers) - self.web
        return (time.process_time() - self.client) / elapsed, web / elapsed


def summarise(
    kind: str, concurrency: int, tally: Tally, elapsed: float, books: Books, waits: int, cores: tuple[float, float]
) -> Run:
    return Run(
        stock=kind,
        concurrency=concurrency,
        seconds=round(elapsed, 2),
        checkouts_per_second=tally.placed / elapsed if elapsed else 0.0,
        placed=tally.placed,
        refused=tally.add_refused + tally.place_refused,
        add_p50_ms=percentile(tally.add_ms, 50),
        add_p99_ms=percentile(tally.add_ms, 99),
        place_p50_ms=percentile(tally.place_ms, 50),
        place_p99_ms=percentile(tally.place_ms, 99),
        server_errors=tally.server_errors,
        rate_limited=tally.rate_limited,
        other_errors=tally.unexpected + tally.transport_errors,
        shopper_waits=waits,
        client_cores=round(cores[0], 2),
        web_cores=round(cores[1], 2),
        sold_out_at=round(tally.sold_out_at, 2) if tally.sold_out_at is not None else None,
        books=books,
        examples=tally.examples,
    )


# Checkouts per second a run's shoppers must be able to post: more than the shop places (210-220
# uncontested at 64 shoppers on 2026-11-29; at 150 the pool ran dry mid-run), within the 300
# shoppers' 3,000 a minute.
RUN_HEADROOM_PER_SECOND = 250


async def rested(pool: Pool, seconds: float) -> None:
    waited = await pool.ready_for(int(RUN_HEADROOM_PER_SECOND * seconds))
    if waited >= 1:
        print(f"  waited {waited:.0f} s for the shoppers' checkout limits to allow a full run", flush=True)


async def run_all(bench: Bench) -> list[Run]:
    shop = Shop(bench.env)
    shoppers: list[Shopper] = []
    try:
        print(f"  arranging {SHOPPERS} shoppers, their sizes and the contested cake", flush=True)
        shoppers = await shop.create_shoppers(SHOPPERS)
        labels = ["S", "M", "L", "XL"]
        for first in range(0, len(shoppers), len(labels)):
            group = shoppers[first : first + len(labels)]
            path, ids = await shop.create_product(
                "Bench sponge", [UNCONTESTED_STOCK] * len(group), labels[: len(group)]
            )
            for shopper, variant_id in zip(group, ids, strict=True):
                shopper.variant_id, shopper.product_path = variant_id, path
        contested_path, contested_ids = await shop.create_product(
            "Bench last-cake", [0] * len(CONCURRENCIES), [f"c{c}" for c in CONCURRENCIES]
        )
        await shop.set_stock(contested_ids[0], 0)  # also bumps the catalog version for the new products

        started = time.monotonic()
        semaphore = asyncio.Semaphore(SIGN_IN_CONCURRENCY)

        async def signed_in(shopper: Shopper) -> None:
            shopper.browser = Browser(bench.base_url)
            async with semaphore:
                await sign_in(shopper)

        await asyncio.gather(*(signed_in(s) for s in shoppers))
        print(
            f"  {len(shoppers)} shoppers signed in through the form in {time.monotonic() - started:.0f} s", flush=True
        )
        await check_add_form(shoppers[0], shoppers[0].product_path, shoppers[0].variant_id)

        pool = Pool(shoppers)
        if bench.warmup_seconds:
            # At the highest concurrency: every pooled connection has then prepared its statements,
            # as on a server that has been up a while.
            warm = max(CONCURRENCIES)
            print(f"  warming up: {bench.warmup_seconds} s of uncontested checkouts at c={warm}", flush=True)
            await load(pool, warm, bench.warmup_seconds, None)

        runs: list[Run] = []
        for concurrency, contested_id in zip(CONCURRENCIES, contested_ids, strict=True):
            # Uncontested: each shopper their own size.
            own = [s.variant_id for s in shoppers]
            before = await shop.books(own)
            await rested(pool, bench.seconds)
            waits = pool.waits
            print(f"  c={concurrency:<3} uncontested", flush=True)
            cpu = CpuUse.start(bench.server_pid)
            tally, elapsed = await load(pool, concurrency, bench.seconds, None)
            cores = cpu.cores(elapsed)
            books = audit(before, await shop.books(own))
            books.unseen_orders = tally.placed - await shop.orders_numbered(tally.order_numbers)
            runs.append(summarise("uncontested", concurrency, tally, elapsed, books, pool.waits - waits, cores))

            # Contested: one size for everyone, three quarters of what the uncontested run sold.
            stock = max(20, int(tally.placed * CONTESTED_SHARE))
            await shop.set_stock(contested_id, stock)
            await check_add_form(shoppers[0], contested_path, contested_id)
            before = await shop.books([contested_id])
            await rested(pool, bench.seconds)
            waits = pool.waits
            print(f"  c={concurrency:<3} contested ({stock} units of one size)", flush=True)
            cpu = CpuUse.start(bench.server_pid)
            tally, elapsed = await load(pool, concurrency, bench.seconds, (contested_id, contested_path))
            cores = cpu.cores(elapsed)
            books = audit(before, await shop.books([contested_id]))
            books.unseen_orders = tally.placed - await shop.orders_numbered(tally.order_numbers)
            runs.append(summarise("contested", concurrency, tally, elapsed, books, pool.waits - waits, cores))
        return runs
    finally:
        for shopper in shoppers:
            if shopper.browser is not None:
                await shopper.browser.close()
        await shop.close()


def table(runs: list[Run]) -> str:
    row = "{:<12} {:>3} {:>7} {:>6} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>4} {:>4} {:>5} {:>9} {:>6} {:>6}"
    header = row.format(
        "stock", "c", "chk/s", "orders", "refused", "oversell",
        "add p50", "add p99", "ord p50", "ord p99", "5xx", "429", "other", "left", "client", "web",
    )  # fmt: skip
    lines = [header, "-" * len(header)]
    for r in runs:
        cells = [r.stock, r.concurrency, f"{r.checkouts_per_second:.1f}", r.placed, r.refused, r.books.oversell]
        cells += [f"{ms:.1f}" for ms in (r.add_p50_ms, r.add_p99_ms, r.place_p50_ms, r.place_p99_ms)]
        cells += [r.server_errors, r.rate_limited, r.other_errors]
        left = r.books.final_stock if r.stock == "contested" else "-"
        lines.append(row.format(*cells, left, f"{r.client_cores:.2f}", f"{r.web_cores:.2f}"))
    lines += [
        "(chk/s = orders placed per second of the run, each a full cycle: add to cart, checkout page, place;",
        " contested runs stop when the size sells out (left = its stock after); latencies in ms;",
        " refused = sold-out answers (409): the add refused, or the order refused and the line removed;",
        " oversell = units sold beyond stock + sizes whose orders != stock taken + negative stock + orders",
        " seen by shoppers but missing from the database, checked in the database after each run;",
        " client, web = CPU cores used by this load generator and by the web workers, of the machine's",
        f" {os.cpu_count()}: the generator runs on the machine it measures)",
    ]
    waits = sum(r.shopper_waits for r in runs)
    if waits:
        lines.append(f"NOTE: the shopper pool ran dry {waits} times (raise BENCH_SHOPPERS)")
    for r in runs:
        for example in r.examples:
            lines.append(f"  {r.stock} c={r.concurrency}: {example}")
    return "\n".join(lines)


# Issue #13's goals at 64 shoppers: orders a second by stock, and the place-order p99 for both.
GOAL_CONCURRENCY = 64
GOAL_ORDERS_PER_SECOND = {"uncontested": 100.0, "contested": 60.0}
GOAL_PLACE_P99_MS = 500.0


def goal_verdicts(runs: list[Run]) -> list[Verdict]:
    verdicts = []
    for r in runs:
        if r.concurrency != GOAL_CONCURRENCY:
            continue
        floor = GOAL_ORDERS_PER_SECOND[r.stock]
        verdicts += [
            Verdict(
                f"{r.stock} c={r.concurrency}: >= {floor:.0f} orders/s",
                r.checkouts_per_second >= floor,
                f"{r.checkouts_per_second:.1f}",
            ),
            Verdict(
                f"{r.stock} c={r.concurrency}: place-order p99 <= {GOAL_PLACE_P99_MS:.0f} ms",
                r.place_p99_ms <= GOAL_PLACE_P99_MS,
                f"{r.place_p99_ms:.0f} ms",
            ),
        ]
    return verdicts


def checkout_scenario(bench: Bench) -> Report:
    runs = asyncio.run(run_all(bench))
    oversell = sum(r.books.oversell for r in runs)
    server_errors = sum(r.server_errors for r in runs)
    rate_limited = sum(r.rate_limited for r in runs)
    other = sum(r.other_errors for r in runs)
    detail = "; ".join(
        f"{r.stock} c={r.concurrency}: {r.books.units_sold} sold of {r.books.initial_stock}, "
        f"stock {r.books.initial_stock}->{r.books.final_stock}"
        for r in runs
        if r.stock == "contested"
    )
    verdicts = [
        Verdict("oversell == 0 (checked in the database after every run)", oversell == 0, f"{oversell}; {detail}"),
        Verdict("no 5xx", server_errors == 0, f"{server_errors} 5xx"),
        Verdict("no 429 and no other errors", rate_limited + other == 0, f"{rate_limited} 429s, {other} other"),
        *goal_verdicts(runs),
    ]
    results = [
        Result(
            name=f"{step} {r.stock}",
            path=path,
            concurrency=r.concurrency,
            requests_per_second=r.checkouts_per_second,
            p50_ms=p50,
            p99_ms=p99,
            non_2xx=r.server_errors + r.rate_limited + r.other_errors,
            socket_errors=0,
        )
        for r in runs
        for step, path, p50, p99 in (
            ("add-to-cart", "POST /cart/items", r.add_p50_ms, r.add_p99_ms),
            ("place-order", "POST /checkout", r.place_p50_ms, r.place_p99_ms),
        )
    ]
    return Report(
        "checkout",
        results,
        verdicts,
        notes={"shoppers": SHOPPERS, "runs": [asdict(r) for r in runs]},
        table=table(runs),
    )


async def _shopper_cookie(bench: Bench, product_path: str) -> str:
    """A shopper signed in through the form with one item in their cart: their Cookie header."""
    shop = Shop(bench.env)
    (shopper,) = await shop.create_shoppers(1)
    shopper.browser = Browser(bench.base_url)
    try:
        await sign_in(shopper)
        page = await shopper.online.get(product_path, shopper.headers())
        variant = re.search(r'<option value="([0-9a-f-]{36})"(?![^>]*disabled)', page.text)
        if variant is None:
            raise RuntimeError(f"{product_path}: no size to buy")
        added = await shopper.online.post(
            "/cart/items",
            {"variant_id": variant.group(1), "quantity": "1", "back": product_path},
            shopper.headers(**{"hx-request": "true"}),
        )
        shopper.keep_cookies(added)
        if added.status_code != 200:
            raise RuntimeError(f"add to cart: {added.status_code}")
        return shopper.headers()["cookie"]
    finally:
        await shopper.online.close()
        await shop.close()


def shopper_cookie(bench: Bench, product_path: str) -> str:
    """For wrk (`-H "Cookie: ..."`): the catalog scenario's signed-in pages."""
    return asyncio.run(_shopper_cookie(bench, product_path))
