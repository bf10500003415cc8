"""Load-test the app as production serves it: granian, 2 workers, SWEETDREAM_ENV=production.

    make bench                                   # every scenario, 10 s per wrk run
    BENCH_SECONDS=5 .venv/bin/python scripts/bench.py catalog    # BENCH_WARMUP_SECONDS: 2 by default

Starts a fresh embedded stack (tests.support), tops the catalog up to 10,000 products, starts
granian on a free port and runs each scenario with wrk. Each scenario prints a table and its
verdicts and writes var/bench/<scenario>.json. wrk shares the machine's cores with the server:
compare the ratios measured in one run, not the absolute figures.

To add a scenario, write a function `(Bench) -> Report` and append it to SCENARIOS.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from statistics import mean
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from sweetdream.cli import granian_command  # noqa: E402
from tests.support import start_test_stack  # noqa: E402

sys.modules.setdefault("bench", sys.modules[__name__])  # scenario modules import from here as `bench`

BENCH_DIR = ROOT / "var" / "bench"
BENCH_PRODUCTS = 10_000
WEB_WORKERS = 2
CONCURRENCIES = (64, 8)


# --- the app under test ---------------------------------------------------------------------------


@dataclass
class Bench:
    """What a scenario gets: the running app's base URL and the wrk run lengths."""

    base_url: str
    seconds: int
    warmup_seconds: int
    env: dict[str, str]
    server_pid: int = 0  # the granian master: its children are the web workers


def seed_bench_catalog(env: dict[str, str], products: int) -> None:
    sweetdream = Path(sys.executable).parent / "sweetdream"
    subprocess.run([str(sweetdream), "seed", "--bench-products", str(products)], env=env, check=True)


def analyze_database(database_url: str) -> None:
    """Vacuum and analyse after the bulk insert: realistic plans, and no autovacuum during the runs."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()

    asyncio.run(run())


def production_env(env: dict[str, str]) -> dict[str, str]:
    # TRUST_PROXY: the checkout bench's shoppers sign in from their own X-Forwarded-For, as behind the ALB.
    return {
        **env,
        "SWEETDREAM_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "LOG_LEVEL": "WARNING",
        "TRUST_PROXY": "1",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_granian(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    command = granian_command("127.0.0.1", port, WEB_WORKERS)
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def fetch(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_for_health(base_url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"granian exited with {process.returncode}; see {log_path}")
        try:
            if fetch(base_url + "/health", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"granian did not answer /health within {timeout:.0f} s; see {log_path}")


@contextmanager
def running_app(seconds: int, warmup_seconds: int) -> Iterator[Bench]:
    """A fresh seeded stack and granian serving it; everything stopped on the way out."""
    stack = start_test_stack()
    server: subprocess.Popen[bytes] | None = None
    try:
        env = dict(os.environ)
        print(f"Seeding the catalog up to {BENCH_PRODUCTS:,} products...", flush=True)
        seed_bench_catalog(env, BENCH_PRODUCTS)
        analyze_database(env["DATABASE_URL"])
        env = production_env(env)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log_path = BENCH_DIR / "granian.log"
        server = start_granian(env, port, log_path)
        wait_for_health(base_url, server, log_path)
        print(f"granian ({WEB_WORKERS} workers) is up on {base_url}; log in {log_path}", flush=True)
        yield Bench(base_url=base_url, seconds=seconds, warmup_seconds=warmup_seconds, env=env, server_pid=server.pid)
    finally:
        if server is not None:
            stop_process(server)
        stack.close()


# --- wrk ------------------------------------------------------------------------------------------


@dataclass
class WrkRun:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(output: str) -> WrkRun:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if rps is None:
        raise ValueError(f"no Requests/sec in wrk output:\n{output}")
    percentiles = {
        p: _to_ms(value, unit) for p, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkRun(
        requests_per_second=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def wrk_command(
    url: str,
    concurrency: int,
    seconds: int,
    cookie: str = "",
    threads: int = 2,
    script: Path | None = None,
    script_args: list[str] | None = None,
) -> list[str]:
    """wrk's command line; `script` (a Lua file) gets `script_args` in its init(args)."""
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    if script is not None:
        command += ["-s", str(script)]
    return [*command, url, *(["--", *script_args] if script_args else [])]


def run_wrk(url: str, concurrency: int, seconds: int, cookie: str = "") -> WrkRun:
    output = subprocess.run(wrk_command(url, concurrency, seconds, cookie), capture_output=True, text=True, check=True)
    return parse_wrk(output.stdout)


# --- processes ------------------------------------------------------------------------------------


def _status_field(pid: int, name: str) -> str | None:
    """A field of /proc/<pid>/status (None once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(f"{name}:")), None)


def rss_mib(pid: int) -> float:
    """The process's resident memory now (VmRSS), in MiB; 0 once it is gone."""
    rss = _status_field(pid, "VmRSS")  # "123456 kB"
    return int(rss.split()[0]) / 1024 if rss else 0.0


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is `parent` (granian's web workers are its master's children)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _status_field(int(entry.name), "PPid") == str(parent):
            children.append(int(entry.name))
    return sorted(children)


# --- HTTP clients ---------------------------------------------------------------------------------


class NoCookies(DefaultCookiePolicy):
    """httpx's shared jar must never mix shoppers' cookies: each shopper keeps their own."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


# --- results --------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    path: str
    concurrency: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    runs: list[WrkRun] = field(default_factory=list)
    ratio_to_baseline: float | None = None


@dataclass
class Verdict:
    target: str
    passed: bool
    detail: str


@dataclass
class Report:
    scenario: str
    results: list[Result]
    verdicts: list[Verdict]
    notes: dict[str, object] = field(default_factory=dict)
    table: str = ""  # a scenario not driven by wrk prints its own table


def combine(name: str, path: str, concurrency: int, runs: list[WrkRun]) -> Result:
    """The mean of the runs' rates and latencies; the errors of all runs added up."""
    return Result(
        name=name,
        path=path,
        concurrency=concurrency,
        requests_per_second=mean(r.requests_per_second for r in runs),
        p50_ms=mean(r.p50_ms for r in runs),
        p99_ms=mean(r.p99_ms for r in runs),
        non_2xx=sum(r.non_2xx for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
        runs=runs,
    )


def load_alternating(
    bench: Bench, targets: dict[str, str], concurrency: int, cookies: dict[str, str] | None = None
) -> list[Result]:
    """Each target once in order, then once in reverse, so drift over the run hits all alike.
    `cookies`: the Cookie header of the targets requested as a signed-in shopper."""
    order = list(targets)
    runs: dict[str, list[WrkRun]] = {name: [] for name in order}
    for name in [*order, *reversed(order)]:
        print(f"  c={concurrency:<3} {name:<12} {targets[name]}", flush=True)
        cookie = (cookies or {}).get(name, "")
        runs[name].append(run_wrk(bench.base_url + targets[name], concurrency, bench.seconds, cookie))
    return [combine(name, targets[name], concurrency, runs[name]) for name in order]


def set_ratios(results: list[Result], baseline: str) -> None:
    """Each result's req/s as a fraction of the baseline's at the same concurrency."""
    base = {r.concurrency: r.requests_per_second for r in results if r.name == baseline}
    for r in results:
        if base.get(r.concurrency):
            r.ratio_to_baseline = r.requests_per_second / base[r.concurrency]


def print_report(report: Report) -> None:
    if report.table:
        print(f"\n== {report.scenario} ==\n{report.table}")
        for v in report.verdicts:
            print(f"{'PASS' if v.passed else 'FAIL'}: {v.target} ({v.detail})")
        return
    row = "{:<50} {:>3} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8}"
    header = row.format("URL", "c", "req/s", "p50 ms", "p99 ms", "ratio", "non-2xx", "sock err")
    print(f"\n== {report.scenario} ==\n{header}\n{'-' * len(header)}")
    for r in report.results:
        ratio = f"{r.ratio_to_baseline:.2f}" if r.ratio_to_baseline is not None else "-"
        rps, p50, p99 = f"{r.requests_per_second:.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}"
        print(row.format(r.path, r.concurrency, rps, p50, p99, ratio, r.non_2xx, r.socket_errors))
    print("(means of two wrk runs; ratio = req/s over the baseline's at the same c; socket errors include")
    print(" wrk's 2 s timeouts, which its latency percentiles leave out)")
    for v in report.verdicts:
        print(f"{'PASS' if v.passed else 'FAIL'}: {v.target} ({v.detail})")


def write_report(report: Report, bench: Bench) -> Path:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"{report.scenario}.json"
    payload = {
        "scenario": report.scenario,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds_per_run": bench.seconds,
        "warmup_seconds_per_url": bench.warmup_seconds,
        "web_workers": WEB_WORKERS,
        "cpu_count": os.cpu_count(),
        **report.notes,
        "results": [asdict(r) for r in report.results],
        "verdicts": [asdict(v) for v in report.verdicts],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


# --- scenarios ------------------------------------------------------------------------------------


def first_product_path(base_url: str) -> str:
    status, html = fetch(base_url + "/products")
    match = re.search(r'href="(/products/[^"?#/]+)"', html)
    if status != 200 or match is None:
        raise RuntimeError(f"/products answered {status} with no product link")
    return match.group(1)


def warm(bench: Bench, targets: dict[str, str], cookies: dict[str, str] | None = None) -> None:
    """Check each target answers 200, then load it briefly: both workers' caches and DB pools fill."""
    for name, path in targets.items():
        if name in (cookies or {}):
            continue  # urllib would not send the shopper's (Secure) cookies: wrk's warm-up checks them
        status, _ = fetch(bench.base_url + path)
        if status != 200:
            raise RuntimeError(f"warming {name} ({path}) answered {status}")
    if bench.warmup_seconds:
        print(f"  warming up: {bench.warmup_seconds} s of wrk per URL", flush=True)
        for name, path in targets.items():
            cookie = (cookies or {}).get(name, "")
            run = run_wrk(bench.base_url + path, max(CONCURRENCIES), bench.warmup_seconds, cookie)
            if run.non_2xx:
                raise RuntimeError(f"warming {name} ({path}): {run.non_2xx} answers were not 2xx")


# Pages a signed-in shopper (with one item in their cart) asks for, and the share of /health's
# req/s each must reach at c=64 (issue #13).
SIGNED_IN_TARGETS = {
    "in:products": ("/products", 0.25),
    "in:search": ("/products?q=banh+kem", 0.25),
    "in:product": ("", 0.25),  # the first product's page
    "in:cart": ("/cart/", 0.15),
    "in:checkout": ("/checkout/", 0.15),
    "in:order": ("", 0.15),  # their own order's page (scripts/bench_pages.py places it)
}


def catalog_scenario(bench: Bench) -> Report:
    product = first_product_path(bench.base_url)
    targets = {
        "health": "/health",
        "products": "/products",
        "search": "/products?q=banh+kem",
        "filtered": "/products?category=banh-kem&size=M&sort=price_asc",
        "product": product,
    }
    from bench_checkout import shopper_cookie
    from bench_pages import shopper_order_path

    cookie = shopper_cookie(bench, product)
    order = shopper_order_path(bench, cookie, product)
    cookies = dict.fromkeys(SIGNED_IN_TARGETS, cookie)
    targets.update({name: path or product for name, (path, _) in SIGNED_IN_TARGETS.items()})
    targets["in:order"] = order
    warm(bench, targets, cookies)
    results = [r for c in CONCURRENCIES for r in load_alternating(bench, targets, c, cookies)]
    set_ratios(results, baseline="health")
    at_64 = {r.name: r for r in results if r.concurrency == 64}
    products = at_64["products"]
    ratio = products.ratio_to_baseline or 0.0
    errors = products.non_2xx + products.socket_errors
    verdicts = [
        Verdict(
            target="/products >= 20% of /health req/s and p99 < 100 ms at c=64 (and no errors)",
            passed=ratio >= 0.20 and products.p99_ms < 100 and errors == 0,
            detail=f"{ratio:.0%} of /health, p99 {products.p99_ms:.1f} ms, {errors} errors",
        )
    ]
    for name, (_, share) in SIGNED_IN_TARGETS.items():
        r = at_64[name]
        r_ratio, r_errors = r.ratio_to_baseline or 0.0, r.non_2xx + r.socket_errors
        p99_ok = r.p99_ms <= 100 or share < 0.25  # the p99 goal is the catalog pages'
        verdicts.append(
            Verdict(
                target=f"signed in {r.path} >= {share:.0%} of /health at c=64"
                + (", p99 <= 100 ms" if share >= 0.25 else ""),
                passed=r_ratio >= share and p99_ok and r_errors == 0,
                detail=f"{r_ratio:.0%} of /health, p99 {r.p99_ms:.1f} ms, {r_errors} errors",
            )
        )
    return Report("catalog", results, verdicts, notes={"products_in_catalog": BENCH_PRODUCTS})


from bench_admin import admin_scenario  # noqa: E402 (it imports Bench, Report... from this module too)
from bench_analytics import analytics_scenario  # noqa: E402 (the same)
from bench_checkout import checkout_scenario  # noqa: E402 (the same)
from bench_export import export_scenario  # noqa: E402 (the same)
from bench_pipeline import pipeline_scenario  # noqa: E402 (the same)
from bench_scale import scale_scenario  # noqa: E402 (the same)
from bench_soak import soak_scenario  # noqa: E402 (the same)

SCENARIOS: list[Callable[[Bench], Report]] = [
    catalog_scenario,
    checkout_scenario,
    pipeline_scenario,
    admin_scenario,
    analytics_scenario,
    export_scenario,
    scale_scenario,
    soak_scenario,
]


def scenario_name(scenario: Callable[[Bench], Report]) -> str:
    return scenario.__name__.removesuffix("_scenario")


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    chosen = [s for s in SCENARIOS if not argv or scenario_name(s) in argv]
    if not chosen:
        print(f"unknown scenario; choose from: {', '.join(scenario_name(s) for s in SCENARIOS)}", file=sys.stderr)
        return 2
    seconds = int(os.environ.get("BENCH_SECONDS", "10"))
    warmup_seconds = int(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    # Ctrl-C and `kill` must both unwind through the clean-up (a shell starting us in the
    # background ignores SIGINT, so set its handler explicitly).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with running_app(seconds, warmup_seconds) as bench:
            for scenario in chosen:
                print(f"\nScenario {scenario_name(scenario)}: wrk runs of {seconds} s", flush=True)
                report = scenario(bench)
                print_report(report)
                print(f"Written to {write_report(report, bench).relative_to(ROOT)}")
    except KeyboardInterrupt:
        print("\nInterrupted; stopped the server and dropped the database.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
