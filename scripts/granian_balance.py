"""How granian's workers share keep-alive connections: wrk at c=64 on a page, CPU seconds per worker.

    .venv/bin/python scripts/granian_balance.py [extra granian options...]

Starts the test stack and granian as production does (2 workers) plus the given options, loads
/products with wrk for 10 s, and prints each worker's share of the CPU time the workers used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "src")]

import bench  # noqa: E402


def workers_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def main(extra: list[str]) -> None:
    stack = bench.start_test_stack()
    server = None
    try:
        env = bench.production_env(dict(os.environ))
        port = bench.free_port()
        base_url = f"http://127.0.0.1:{port}"
        command = [*bench.granian_command("127.0.0.1", port, bench.WEB_WORKERS), *extra]
        log_path = ROOT / "var" / "granian_balance.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        bench.wait_for_health(base_url, server, log_path)
        bench.run_wrk(base_url + "/products", 64, 2)  # warm both workers' caches
        time.sleep(1)
        pids = workers_of(server.pid)
        before = {p: bench.cpu_seconds(p) for p in pids}
        connections = int(os.environ.get("WRK_CONNECTIONS", "64"))
        run = bench.run_wrk(base_url + "/products", connections, 10)
        used = {p: bench.cpu_seconds(p) - before[p] for p in pids}
        total = sum(used.values()) or 1.0
        shares = ", ".join(f"{used[p] / total:.0%}" for p in pids)
        print(
            f"options {extra or '(none)'} c={connections}: {run.requests_per_second:.0f} req/s, "
            f"p99 {run.p99_ms:.1f} ms, {run.socket_errors} socket errors, {run.non_2xx} non-2xx; "
            f"worker CPU shares: {shares}"
        )
    finally:
        if server is not None:
            bench.stop_process(server)
        stack.close()


if __name__ == "__main__":
    main(sys.argv[1:])
