"""The soak bench: is the memory of each web worker and of the ARQ worker flat under a mixed load?

    BENCH_SOAK_SECONDS=90 .venv/bin/python scripts/bench.py soak    # 600 s by default

The production command (granian, 2 web workers, as every scenario) and one `sweetdream worker`
(started as the pipeline scenario starts them: it fulfils the orders and drains the analytics
events every 10 s) serve, for BENCH_SOAK_SECONDS, at once:
  - visitors (wrk): catalog pages 1-30, a rotation of searches, 20 product pages;
  - a signed-in shopper with one item in their cart (wrk): catalog pages, their cart, the checkout page;
  - a steady trickle of real checkouts (CHECKOUTS_PER_SECOND through the HTML forms, by the checkout
    scenario's shoppers: add to cart, checkout page, place order), so the worker has jobs.
Each wrk connection pauses WRK_PAUSE_MS between requests: a soak, not a stress test.

Every SAMPLE_SECONDS the RSS (VmRSS in /proc/<pid>/status) of each granian worker (the children of
the granian master) and of the ARQ worker is sampled. For each: the RSS after the warm-up (the first
sample at WARMUP_SECONDS), at the end, the max and the growth; flat = end <= warm-up + 10 %. Also
reported: the 5xx count (wrk's Lua counts them; 0 expected) and the orders placed and fulfilled.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import (
    BENCH_DIR,
    Bench,
    Report,
    Result,
    Verdict,
    child_pids,
    fetch,
    parse_wrk,
    rss_mib,
    stop_process,
    wrk_command,
)
from bench_checkout import (
    TRANSPORT_ERRORS,
    Browser,
    Pool,
    Shop,
    Shopper,
    Tally,
    cycle,
    percentile,
    shopper_cookie,
    sign_in,
)
from bench_pipeline import Pipeline, start_workers

SOAK_SECONDS = int(os.environ.get("BENCH_SOAK_SECONDS", "600"))
SAMPLE_SECONDS = 30
WARMUP_SECONDS = 60
GROWTH_LIMIT = 0.10  # flat: the end within 10 % of the RSS after warm-up
CHECKOUTS_PER_SECOND = 3.0
CHECKOUT_SHOPPERS = 40  # the shop allows 10 checkouts a minute each: room for 6.7 a second
CHECKOUT_CONCURRENCY = 2
WRK_PAUSE_MS = 10  # per connection, between requests
WORKER_START_SECONDS = 5.0

SEARCHES = ["banh+kem", "b%C3%A1nh+kem+d%C3%A2u", "banh+mi", "croissant", "socola", "tiramisu", "b%C3%A1nh+ti"]
CATALOG_PAGES = [f"/products?page={n}" for n in range(1, 31)]

# Rotates through the paths given after `--` (the first argument is the pause in ms), counts 5xx.
LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  pause = tonumber(args[1])
  paths = {}
  for i = 2, #args do paths[#paths + 1] = args[i] end
  counter = 0
  server_errors = 0
end
function request()
  counter = counter + 1
  return wrk.format(nil, paths[counter % #paths + 1])
end
function delay() return pause end
function response(status, headers, body)
  if status >= 500 then server_errors = server_errors + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("server_errors") end
  io.write(string.format("5xx responses: %d\\n", total))
end
"""


@dataclass
class Stream:
    """One wrk process: its connections rotate through `paths`."""

    name: str
    paths: list[str]
    connections: int
    cookie: str = ""


@dataclass
class StreamResult:
    name: str
    paths: int
    connections: int
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    server_errors: int
    socket_errors: int


@dataclass
class Memory:
    name: str
    pid: int
    start_mib: float
    warmup_mib: float
    end_mib: float
    max_mib: float

    @property
    def growth_mib(self) -> float:
        return self.end_mib - self.warmup_mib

    @property
    def growth_share(self) -> float:
        return self.growth_mib / self.warmup_mib if self.warmup_mib else 0.0

    @property
    def flat(self) -> bool:
        return self.end_mib <= self.warmup_mib * (1 + GROWTH_LIMIT)


# --- the load -------------------------------------------------------------------------------------


def product_paths(bench: Bench, count: int) -> list[str]:
    paths: list[str] = []
    for page in (1, 2):
        status, html = fetch(f"{bench.base_url}/products?page={page}")
        if status != 200:
            raise RuntimeError(f"/products?page={page} answered {status}")
        paths += [p for p in dict.fromkeys(re.findall(r'href="(/products/[^"?#/]+)"', html)) if p not in paths]
    if not paths:
        raise RuntimeError("/products has no product link")
    return paths[:count]


def streams(bench: Bench) -> list[Stream]:
    products = product_paths(bench, 20)
    cookie = shopper_cookie(bench, products[0])  # a shopper signed in, one item in their cart
    return [
        Stream("products", CATALOG_PAGES, 4),
        Stream("search", [f"/products?q={q}" for q in SEARCHES], 4),
        Stream("product", products, 4),
        Stream("in:products", CATALOG_PAGES, 2, cookie),
        Stream("in:cart", ["/cart/"], 2, cookie),
        Stream("in:checkout", ["/checkout/"], 2, cookie),
    ]


def start_wrk(bench: Bench, stream: Stream, seconds: int, script: Path) -> subprocess.Popen[str]:
    command = wrk_command(
        bench.base_url + stream.paths[0],
        stream.connections,
        seconds,
        stream.cookie,
        threads=1,
        script=script,
        script_args=[str(WRK_PAUSE_MS), *stream.paths],
    )
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_result(stream: Stream, process: subprocess.Popen[str]) -> StreamResult:
    output, _ = process.communicate()
    if process.returncode:
        raise RuntimeError(f"wrk for {stream.name} exited with {process.returncode}:\n{output}")
    run = parse_wrk(output)
    requests = re.search(r"^\s*(\d+) requests in", output, re.M)
    server_errors = re.search(r"^5xx responses: (\d+)", output, re.M)
    return StreamResult(
        name=stream.name,
        paths=len(stream.paths),
        connections=stream.connections,
        requests=int(requests.group(1)) if requests else 0,
        requests_per_second=run.requests_per_second,
        p50_ms=run.p50_ms,
        p99_ms=run.p99_ms,
        non_2xx=run.non_2xx,
        server_errors=int(server_errors.group(1)) if server_errors else -1,  # -1: wrk's Lua did not report
        socket_errors=run.socket_errors,
    )


async def signed_in_shoppers(bench: Bench, shop: Shop) -> list[Shopper]:
    """CHECKOUT_SHOPPERS signed in through the form, each with their own size of a plentiful cake."""
    shoppers = await shop.create_shoppers(CHECKOUT_SHOPPERS)
    labels = ["S", "M", "L", "XL"]
    path, ids = await shop.create_product("Soak sponge", [1_000_000] * len(labels), labels)
    await shop.set_stock(ids[0], 1_000_000)  # also moves the catalog version: the new cake is on sale
    for n, shopper in enumerate(shoppers):
        shopper.variant_id, shopper.product_path = ids[n % len(ids)], path
        shopper.browser = Browser(bench.base_url)
        await sign_in(shopper)
    return shoppers


async def checkouts(shoppers: list[Shopper], seconds: float) -> Tally:
    """CHECKOUTS_PER_SECOND full checkouts, paced, for `seconds`."""
    tally, pool = Tally(), Pool(shoppers)
    started = time.monotonic()
    slots = itertools.count()

    async def one_at_a_time() -> None:
        while (at := started + next(slots) / CHECKOUTS_PER_SECOND) < started + seconds:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            if all(s.broken for s in shoppers):
                return  # every cart in an unknown state: the errors are reported
            shopper = await pool.take(started + seconds)
            if shopper is None:  # none may check out again before the soak ends
                return
            try:
                await cycle(shopper, shopper.variant_id, shopper.product_path, tally)
            except TRANSPORT_ERRORS as exc:
                tally.transport_errors += 1
                tally.note(f"{type(exc).__name__}: {exc}")
                shopper.broken = True
            finally:
                pool.give_back(shopper)

    await asyncio.gather(*(one_at_a_time() for _ in range(CHECKOUT_CONCURRENCY)))
    return tally


async def sample_rss(processes: dict[str, int], seconds: float) -> list[tuple[float, dict[str, float]]]:
    """Every SAMPLE_SECONDS from now until `seconds` (and once at the end): (time, MiB per process)."""
    started = time.monotonic()
    samples: list[tuple[float, dict[str, float]]] = []
    for at in [*range(0, int(seconds), SAMPLE_SECONDS), seconds]:
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        samples.append((round(time.monotonic() - started, 1), {name: rss_mib(pid) for name, pid in processes.items()}))
        print(f"  {at:>5.0f} s  " + "  ".join(f"{n} {mib:.1f} MiB" for n, mib in samples[-1][1].items()), flush=True)
    return samples


def memory_of(processes: dict[str, int], samples: list[tuple[float, dict[str, float]]]) -> list[Memory]:
    warm = next((s for t, s in samples if t >= WARMUP_SECONDS), samples[0][1])
    return [
        Memory(
            name=name,
            pid=pid,
            start_mib=samples[0][1][name],
            warmup_mib=warm[name],
            end_mib=samples[-1][1][name],
            max_mib=max(s[name] for _, s in samples),
        )
        for name, pid in processes.items()
    ]


async def orders_fulfilled(shop: Shop, numbers: set[str]) -> int:
    """Of these orders, how many the worker moved to PROCESSING (after the outbox drained)."""
    from sqlalchemy import func, select

    from sweetdream.orders.models import Order, OrderStatus

    await Pipeline(shop).wait_drained()
    async with shop.sessions() as db:
        query = select(func.count()).where(Order.number.in_(list(numbers)), Order.status == OrderStatus.PROCESSING)
        return int(await db.scalar(query) or 0) if numbers else 0


@dataclass
class Soak:
    streams: list[StreamResult]
    memory: list[Memory]
    samples: list[tuple[float, dict[str, float]]]
    tally: Tally
    fulfilled: int


async def soak(bench: Bench, load: list[Stream]) -> Soak:
    shop = Shop(bench.env)
    shoppers: list[Shopper] = []
    worker: list[subprocess.Popen[bytes]] = []
    wrks: list[subprocess.Popen[str]] = []
    try:
        print(f"  signing in {CHECKOUT_SHOPPERS} shoppers for the checkouts", flush=True)
        shoppers = await signed_in_shoppers(bench, shop)
        worker = start_workers(bench.env, 1)
        await asyncio.sleep(WORKER_START_SECONDS)
        processes = {f"web worker {n}": pid for n, pid in enumerate(child_pids(bench.server_pid), 1)}
        processes["ARQ worker"] = worker[0].pid
        print(f"  {SOAK_SECONDS} s of mixed load; RSS every {SAMPLE_SECONDS} s ({processes})", flush=True)
        script = BENCH_DIR / "soak.lua"
        script.write_text(LUA)  # once, before any wrk reads it
        wrks = [start_wrk(bench, stream, SOAK_SECONDS, script) for stream in load]
        tally, samples = await asyncio.gather(checkouts(shoppers, SOAK_SECONDS), sample_rss(processes, SOAK_SECONDS))
        results = [wrk_result(stream, process) for stream, process in zip(load, wrks, strict=True)]
        fulfilled = await orders_fulfilled(shop, tally.order_numbers)
        return Soak(results, memory_of(processes, samples), samples, tally, fulfilled)
    finally:
        for process in wrks:
            if process.poll() is None:
                process.kill()
                process.wait()
        for arq in worker:
            stop_process(arq)
        for shopper in shoppers:
            if shopper.browser is not None:
                await shopper.browser.close()
        await shop.close()


# --- the report -----------------------------------------------------------------------------------


def table(result: Soak) -> str:
    row = "{:<14} {:>6} {:>3} {:>9} {:>7} {:>8} {:>8} {:>7} {:>4} {:>8}"
    header = row.format("load", "paths", "c", "requests", "req/s", "p50 ms", "p99 ms", "non-2xx", "5xx", "sock err")
    lines = [header, "-" * len(header)]
    for s in result.streams:
        cells = [s.name, s.paths, s.connections, s.requests, f"{s.requests_per_second:.0f}"]
        cells += [f"{s.p50_ms:.1f}", f"{s.p99_ms:.1f}", s.non_2xx, s.server_errors, s.socket_errors]
        lines.append(row.format(*cells))
    t = result.tally
    lines += [
        f"checkouts: {t.placed} orders placed ({t.placed / SOAK_SECONDS:.1f}/s), {result.fulfilled} fulfilled by the "
        f"worker; place-order p50 {percentile(t.place_ms, 50):.0f} ms, p99 {percentile(t.place_ms, 99):.0f} ms; "
        f"5xx {t.server_errors}, 429 {t.rate_limited}, other {t.unexpected + t.transport_errors}",
        *(f"  {example}" for example in t.examples),
        "",
        f"RSS (MiB; warm-up = the sample at {WARMUP_SECONDS} s, samples every {SAMPLE_SECONDS} s):",
    ]
    row = "{:<14} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6}"
    header = row.format("process", "start", "warm-up", "end", "max", "growth", "growth %", "flat")
    lines += [header, "-" * len(header)]
    for m in result.memory:
        cells = [m.name, f"{m.start_mib:.1f}", f"{m.warmup_mib:.1f}", f"{m.end_mib:.1f}", f"{m.max_mib:.1f}"]
        cells += [f"{m.growth_mib:+.1f}", f"{m.growth_share:+.1%}", "yes" if m.flat else "NO"]
        lines.append(row.format(*cells))
    return "\n".join(lines)


def soak_scenario(bench: Bench) -> Report:
    load = streams(bench)
    result = asyncio.run(soak(bench, load))
    t = result.tally
    server_errors = sum(max(0, s.server_errors) for s in result.streams) + t.server_errors
    unreported = [s.name for s in result.streams if s.server_errors < 0]
    other = sum(s.non_2xx - max(0, s.server_errors) + s.socket_errors for s in result.streams)
    verdicts = [
        Verdict(
            f"{m.name} RSS flat: end <= warm-up + {GROWTH_LIMIT:.0%}",
            m.flat,
            f"{m.warmup_mib:.1f} -> {m.end_mib:.1f} MiB ({m.growth_mib:+.1f} MiB, {m.growth_share:+.1%}), "
            f"max {m.max_mib:.1f}",
        )
        for m in result.memory
    ]
    verdicts += [
        Verdict(
            "no 5xx",
            server_errors == 0 and not unreported,
            f"{server_errors} 5xx" + (f"; wrk did not count them for {', '.join(unreported)}" if unreported else ""),
        ),
        Verdict(
            "orders placed throughout and all fulfilled",
            t.placed > 0 and result.fulfilled == t.placed,
            f"{t.placed} placed, {result.fulfilled} fulfilled; {t.rate_limited} 429s, "
            f"{t.unexpected + t.transport_errors} other checkout errors, {other} other wrk errors",
        ),
    ]
    results = [
        Result(
            s.name,
            f"{s.paths} path(s)",
            s.connections,
            s.requests_per_second,
            s.p50_ms,
            s.p99_ms,
            s.non_2xx,
            s.socket_errors,
        )
        for s in result.streams
    ]
    results.append(
        Result(
            "place-order",
            "POST /checkout",
            CHECKOUT_CONCURRENCY,
            t.placed / SOAK_SECONDS,
            percentile(t.place_ms, 50),
            percentile(t.place_ms, 99),
            t.server_errors + t.rate_limited + t.unexpected + t.transport_errors,
            0,
        )
    )
    notes = {
        "soak_seconds": SOAK_SECONDS,
        "sample_seconds": SAMPLE_SECONDS,
        "warmup_seconds": WARMUP_SECONDS,
        "streams": [asdict(s) for s in result.streams],
        "memory_mib": [
            {**asdict(m), "growth_mib": m.growth_mib, "growth_share": m.growth_share} for m in result.memory
        ],
        "rss_samples_mib": [{"seconds": at, **sample} for at, sample in result.samples],
        "orders_placed": t.placed,
        "orders_fulfilled": result.fulfilled,
        "checkout_errors": {"5xx": t.server_errors, "429": t.rate_limited, "other": t.unexpected + t.transport_errors},
    }
    return Report("soak", results, verdicts, notes=notes, table=table(result))
