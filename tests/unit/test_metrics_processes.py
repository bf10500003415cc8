"""granian runs several web processes per task: with PROMETHEUS_MULTIPROC_DIR set, /metrics from any
one of them gives the task's totals (each process writes its own file; the exposition sums them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COUNT = """
import sys
from sweetdream.platform.metrics import LATENCY, REQUESTS
for _ in range(int(sys.argv[1])):
    REQUESTS.labels("GET", "/products/{slug}", "200").inc()
    LATENCY.labels("GET", "/products/{slug}").observe(0.03)
"""
EXPOSE = "from sweetdream.platform.metrics import exposition; print(exposition().decode())"


def run(code: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def test_metrics_of_all_web_processes_are_summed(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"  # created by the first process that needs it
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    run(COUNT, env, "3")
    run(COUNT, env, "4")
    text = run(EXPOSE, env)
    assert 'sweetdream_http_requests_total{method="GET",route="/products/{slug}",status="200"} 7.0' in text
    assert 'sweetdream_http_request_duration_seconds_count{method="GET",route="/products/{slug}"} 7.0' in text
    assert (
        'sweetdream_http_request_duration_seconds_bucket{le="0.05",method="GET",route="/products/{slug}"} 7.0' in text
    )
    assert "sweetdream_http_requests_in_flight 0.0" in text
