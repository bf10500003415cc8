"""A/B: the working tree against a commit, served side by side on one stack, wrk alternating.

    .venv/bin/python scripts/bench_ab.py REF [PAGE ...]    # e.g. HEAD~1 checkout cart
    BENCH_AB_ROUNDS=4 BENCH_AB_SECONDS=5 (the defaults)

Pages: health, products, search, product, cart, checkout, order (signed in but `health`; all by
default). This machine's speed drifts by 10 % and more between runs a few minutes apart, so a
change worth a few percent does not show in two `make bench` runs. Here both versions serve the
same seeded database and Redis (granian, production settings, two workers each), and each page is
loaded from both in turn, ABBA, so a drift hits both alike. `REF` is checked out (detached) in
var/bench/ab-worktree and served from there with this checkout's virtualenv (so it must use the
same dependencies and database schema as the working tree). Prints each page's
mean req/s at c=64 and the ratio new/old; `health` is the same code in both, so its ratio shows
how much two identical servers differ on the day.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT), str(ROOT / "src")]

import bench  # noqa: E402
from bench_checkout import shopper_cookie  # noqa: E402
from bench_pages import shopper_order_path  # noqa: E402

WORKTREE = bench.BENCH_DIR / "ab-worktree"
PAGES = ("health", "products", "search", "product", "cart", "checkout", "order")


def checkout_ref(ref: str) -> None:
    """`ref`'s files in WORKTREE (a git worktree, made once and moved to `ref` each run). `ref` is
    resolved here, in this checkout: in the worktree `HEAD` would name the worktree's own commit."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    if not WORKTREE.exists():
        bench.BENCH_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(WORKTREE), commit], cwd=ROOT, check=True)
    subprocess.run(["git", "checkout", "--detach", "--quiet", commit], cwd=WORKTREE, check=True)


def page_paths(b: bench.Bench, cookie: str, product: str) -> dict[str, str]:
    return {
        "health": "/health",
        "products": "/products",
        "search": "/products?q=banh+kem",
        "product": product,
        "cart": "/cart/",
        "checkout": "/checkout/",
        "order": shopper_order_path(b, cookie, product),
    }


def compare(servers: dict[str, str], path: str, cookie: str, rounds: int, seconds: int) -> dict[str, list[float]]:
    """req/s of each server at c=64, ABBA: A B, B A, A B ..."""
    for url in servers.values():
        bench.run_wrk(url + path, 64, 2, cookie)  # warm both
    runs: dict[str, list[float]] = {name: [] for name in servers}
    for turn in range(rounds):
        order = list(servers.items()) if turn % 2 == 0 else list(reversed(servers.items()))
        for name, url in order:
            run = bench.run_wrk(url + path, 64, seconds, cookie)
            if run.non_2xx or run.socket_errors:
                raise RuntimeError(f"{name} {path}: {run.non_2xx} non-2xx, {run.socket_errors} socket errors")
            runs[name].append(run.requests_per_second)
    return runs


def main(ref: str, pages: list[str]) -> None:
    unknown = set(pages) - set(PAGES)
    if unknown:
        raise SystemExit(f"unknown pages {sorted(unknown)}: choose from {', '.join(PAGES)}")
    rounds = int(os.environ.get("BENCH_AB_ROUNDS", "4"))
    seconds = int(os.environ.get("BENCH_AB_SECONDS", "5"))
    checkout_ref(ref)
    with bench.running_app(seconds, 0) as b:
        port = bench.free_port()
        log_path = bench.BENCH_DIR / "ab-granian.log"
        env = {**b.env, "PYTHONPATH": str(WORKTREE / "src")}  # before the editable install's path
        with log_path.open("wb") as log:
            command = bench.granian_command("127.0.0.1", port, bench.WEB_WORKERS)
            old = subprocess.Popen(command, env=env, cwd=WORKTREE, stdout=log, stderr=subprocess.STDOUT)
        try:
            old_url = f"http://127.0.0.1:{port}"
            bench.wait_for_health(old_url, old, log_path)
            product = bench.first_product_path(b.base_url)
            cookie = shopper_cookie(b, product)
            paths = page_paths(b, cookie, product)
            servers = {"old": old_url, "new": b.base_url}
            print(f"old: {ref} ({old_url}), new: the working tree ({b.base_url}); c=64, {rounds} x {seconds} s each")
            for page in pages:
                runs = compare(servers, paths[page], cookie, rounds, seconds)
                before, after = statistics.mean(runs["old"]), statistics.mean(runs["new"])
                print(
                    f"{page:9s} old {before:7.0f}  new {after:7.0f}  new/old {after / before:.3f}"
                    f"   (old {[round(r) for r in runs['old']]}, new {[round(r) for r in runs['new']]})",
                    flush=True,
                )
        finally:
            bench.stop_process(old)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2:] or list(PAGES))
