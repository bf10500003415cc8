"""The export bench: one shop day of 1,000,000 events exported by `sweetdream export` to moto's S3.

    .venv/bin/python scripts/bench.py export          # BENCH_EXPORT_EVENTS: 1,000,000 by default

Fills one shop day of the bench database with BENCH_EXPORT_EVENTS events (a realistic mix of the
five names and their properties, inserted by SQL), starts moto's S3 server in this process, then
exports the day in a subprocess and takes its peak RSS from the kernel (os.wait4's rusage of that
one child, so no other process is counted). The child runs what `sweetdream export --date
2026-01-15` runs (export_cli.export_days: the exporter, its progress and summary) without loading
the web app, as the worker does not either (loading the Litestar app alone takes ~175 MB). Its CPU
seconds are printed beside the wall time, with the load average: on a shared machine the wall time
says more about the neighbours than about the export. The goal: 1,000,000 events in <= 60 s and
<= 200 MB. Then checks the manifest: every event counted, each part's sha256 right.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench import Bench, Report

EVENTS = int(os.environ.get("BENCH_EXPORT_EVENTS", "1000000"))
DAY = "2026-01-15"  # shop day: 2026-01-14 17:00 UTC to 2026-01-15 17:00 UTC
FIRST_EVENT = "2026-01-14 17:00:00+00"
BUCKET = "sweetdream-bench-exports"
SECONDS_GOAL = 60.0
RSS_GOAL_MB = 200.0

FILL = """
INSERT INTO analytics_events (occurred_at, event_id, name, user_id, visitor_id, properties)
SELECT CAST($1 AS timestamptz) + make_interval(secs => i * (86399.0 / $2)),
       gen_random_uuid(),
       (ARRAY['product_viewed', 'product_viewed', 'product_viewed', 'product_searched',
              'cart_item_added', 'checkout_started', 'order_completed'])[1 + i % 7],
       CASE WHEN i % 3 = 0 THEN md5('user' || (i % 5000))::uuid END,
       substr(md5('visitor' || (i % 40000)), 1, 22),
       CASE i % 7
         WHEN 3 THEN jsonb_build_object('query', 'bánh kem ' || (i % 90), 'result_count', i % 40)
         WHEN 5 THEN jsonb_build_object('cart_total', 250000 + (i % 60) * 10000, 'item_count', 1 + i % 4)
         WHEN 6 THEN jsonb_build_object('order_id', md5('order' || i)::uuid, 'total', 420000 + (i % 30) * 5000,
                       'items', jsonb_build_array(jsonb_build_object('product_id', i % 500, 'name',
                       'Bánh kem dâu tây ' || (i % 500), 'size', 'M', 'quantity', 1 + i % 3, 'price', 250000)))
         ELSE jsonb_build_object('product_id', i % 500, 'name', 'Bánh kem dâu tây ' || (i % 500),
                'price', 250000 + (i % 50) * 1000, 'category', 'banh-kem', 'size', 'M', 'quantity', 1 + i % 3)
       END
FROM generate_series(0, $2 - 1) AS i
"""


def fill_day(database_url: str) -> float:
    """Insert the day's events in one statement, then VACUUM ANALYZE; returns the seconds it took."""
    from datetime import datetime

    import asyncpg

    async def run() -> float:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            started = time.monotonic()
            await conn.execute(FILL, datetime.fromisoformat(FIRST_EVENT), EVENTS)
            await conn.execute("VACUUM ANALYZE analytics_events")
            return time.monotonic() - started
        finally:
            await conn.close()

    return asyncio.run(run())


def peak_rss_of(command: list[str], env: dict[str, str]) -> tuple[float, float, float, int, str]:
    """Run `command`; (seconds, its CPU seconds, its peak RSS in MB, exit code, output). CPU time
    says what the exporter costs whatever else shares the machine (wall time does not)."""
    started = time.monotonic()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert child.stdout is not None
    output = child.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return time.monotonic() - started, cpu, usage.ru_maxrss / 1024, child.returncode, output  # maxrss: KiB


def export_in_child(env: dict[str, str]) -> tuple[float, float, float, int, str]:
    return peak_rss_of([sys.executable, __file__, "--child", DAY], env)


def child(day: str) -> int:
    """The subprocess: `sweetdream export --date DAY`'s work, without the web app."""
    from datetime import date

    from sweetdream.analytics.export_cli import export_days
    from sweetdream.settings import Settings

    return asyncio.run(export_days(Settings.from_env(), [date.fromisoformat(day)]))


def check_manifest(client: object) -> tuple[int, int, bool]:
    """(events in the manifest, compressed bytes, every part's sha256 right)."""
    prefix = f"user-actions/year={DAY[:4]}/month={DAY[5:7]}/day={DAY[8:]}/"
    manifest = json.loads(client.get_object(Bucket=BUCKET, Key=prefix + "_manifest.json")["Body"].read())  # type: ignore[attr-defined]
    good = True
    for part in manifest["parts"]:
        digest = hashlib.sha256()
        body = client.get_object(Bucket=BUCKET, Key=part["key"])["Body"]  # type: ignore[attr-defined]
        for chunk in iter(lambda body=body: body.read(1 << 20), b""):
            digest.update(chunk)
        good = good and digest.hexdigest() == part["sha256"]
    return int(manifest["count"]), sum(int(p["bytes"]) for p in manifest["parts"]), good


def export_scenario(bench: Bench) -> Report:
    import boto3
    from bench import Report, Result, Verdict
    from moto.server import ThreadedMotoServer

    print(f"Filling shop day {DAY} with {EVENTS:,} events...", flush=True)
    fill_seconds = fill_day(bench.env["DATABASE_URL"])
    print(f"  inserted in {fill_seconds:.1f} s", flush=True)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        credentials = {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "ap-southeast-1",
        }
        client = boto3.client(
            "s3",
            region_name="ap-southeast-1",
            endpoint_url=endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-1"})
        env = {**bench.env, **credentials, "S3_BUCKET": BUCKET, "S3_ENDPOINT_URL": endpoint, "LOG_LEVEL": "WARNING"}
        print(f"Exporting {DAY} with `sweetdream export` to moto's S3 at {endpoint}...", flush=True)
        load_before = os.getloadavg()[0]
        seconds, cpu_seconds, rss_mb, code, output = export_in_child(env)
        load_after = os.getloadavg()[0]
        print(output.strip().splitlines()[-1] if output.strip() else "(no output)", flush=True)
        count, compressed, checksums_ok = check_manifest(client) if code == 0 else (0, 0, False)
    finally:
        server.stop()
    rate = count / seconds if seconds else 0.0
    table = (
        f"{'events':>12} {'seconds':>8} {'CPU s':>7} {'events/s':>10} {'peak RSS MB':>12} {'gzip MB':>8}\n"
        f"{count:>12,} {seconds:>8.1f} {cpu_seconds:>7.1f} {rate:>10,.0f} {rss_mb:>12.1f} {compressed / 1e6:>8.1f}\n"
        f"(load average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} cores;"
        " the database server shares them)"
    )
    verdicts = [
        Verdict(
            f"the export exits 0 and its manifest counts all {EVENTS:,} events",
            code == 0 and count == EVENTS,
            f"exit {code}, {count:,} counted",
        ),
        Verdict(
            "every part's sha256 in the manifest matches its object",
            checksums_ok,
            "checked" if checksums_ok else "mismatch",
        ),
        Verdict(f"<= {SECONDS_GOAL:.0f} s", seconds <= SECONDS_GOAL, f"{seconds:.1f} s ({rate:,.0f} events/s)"),
        Verdict(f"<= {RSS_GOAL_MB:.0f} MB peak RSS", rss_mb <= RSS_GOAL_MB, f"{rss_mb:.1f} MB"),
    ]
    result = Result(
        name="export",
        path=f"sweetdream export --date {DAY}",
        concurrency=1,
        requests_per_second=rate,
        p50_ms=seconds * 1000,
        p99_ms=seconds * 1000,
        non_2xx=0 if code == 0 else 1,
        socket_errors=0,
    )
    return Report(
        "export",
        [result],
        verdicts,
        notes={
            "events": count,
            "seconds": seconds,
            "peak_rss_mb": rss_mb,
            "gzip_bytes": compressed,
            "fill_seconds": fill_seconds,
        },
        table=table,
    )


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "src")]
    sys.exit(child(sys.argv[2]))
