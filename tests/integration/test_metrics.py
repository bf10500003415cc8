"""/metrics: request counters by route template and status (cached pages too), in-flight requests,
refusal through the load balancer, and the worker's job, queue and outbox figures against the real
Redis and PostgreSQL with a real ARQ worker."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from arq.connections import ArqRedis
from arq.worker import Retry, Worker, func
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from sweetdream.orders.models import OutboxEvent
from sweetdream.platform.http import http_middleware
from sweetdream.platform.metrics import IN_FLIGHT, RequestMetrics, exposition
from sweetdream.platform.queue import queue_stats, redis_settings
from tests.integration.factories import make_product
from workers import metrics as worker_metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: AsyncTestClient[Litestar]) -> tuple[str, Samples]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text, parse(response.text)


def requests(samples: Samples, route: str, status: str, method: str = "GET") -> float:
    return value(samples, "sweetdream_http_requests_total", method=method, route=route, status=status)


async def test_requests_are_counted_by_route_template_and_status_never_by_raw_path(client, db) -> None:
    product, _ = await make_product(db)
    await db.commit()
    _, before = await scrape(client)

    assert (await client.get(f"/products/{product.slug}")).status_code == 200
    assert (await client.get(f"/products/{product.slug}")).status_code == 200
    assert (await client.get("/products/no-such-cake-anywhere")).status_code == 404
    assert (await client.get("/nothing-here/at-all-9f3c")).status_code == 404
    assert (await client.post("/health")).status_code == 405

    text, after = await scrape(client)
    template = "/products/{slug}"
    assert requests(after, template, "200") - requests(before, template, "200") == 2
    assert requests(after, template, "404") - requests(before, template, "404") == 1
    assert requests(after, "unmatched", "404") - requests(before, "unmatched", "404") == 1
    assert requests(after, "unmatched", "405", "POST") - requests(before, "unmatched", "405", "POST") == 1
    count = "sweetdream_http_request_duration_seconds_count"
    assert value(after, count, method="GET", route=template) - value(before, count, method="GET", route=template) == 3
    # No series carries a slug or a path nobody routes: one series per route, whatever is asked.
    assert product.slug not in text
    assert "no-such-cake-anywhere" not in text
    assert "nothing-here" not in text


async def test_pages_served_from_the_page_cache_are_counted_under_their_route(client) -> None:
    await client.get("/products")  # renders and caches the page for plain visitors
    _, before = await scrape(client)
    for _ in range(3):  # no session cookie: served by the cache before Litestar routes anything
        client.cookies.clear()
        response = await client.get("/products")
        assert response.status_code == 200
    _, after = await scrape(client)
    assert requests(after, "/products", "200") - requests(before, "/products", "200") == 3


async def test_metrics_are_refused_to_a_request_that_came_through_the_load_balancer(client) -> None:
    response = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.status_code == 404
    assert "sweetdream_" not in response.text
    # From inside the VPC (the agent beside the app, an operator's curl) there is no such header.
    assert (await client.get("/metrics")).status_code == 200


async def test_in_flight_counts_requests_being_answered() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_app(scope, receive, send) -> None:
        started.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = http_middleware(slow_app, metrics=RequestMetrics(Litestar(route_handlers=[])))
    sent: list[dict] = []

    async def send(message) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/slow", "headers": [], "query_string": b""}
    idle = value(parse(exposition().decode()), "sweetdream_http_requests_in_flight")
    task = asyncio.create_task(app(scope, receive, send))
    await started.wait()
    assert value(parse(exposition().decode()), "sweetdream_http_requests_in_flight") == idle + 1
    release.set()
    await task
    assert value(parse(exposition().decode()), "sweetdream_http_requests_in_flight") == idle
    assert IN_FLIGHT._value.get() == idle  # type: ignore[attr-defined]


async def test_queue_stats_count_due_and_deferred_jobs_and_the_oldest_age(settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        arq = ArqRedis(connection_pool=redis.connection_pool)
        await arq.enqueue_job("nothing", _job_id=f"a-{uuid4()}")
        await arq.enqueue_job("nothing", _job_id=f"b-{uuid4()}")
        await arq.enqueue_job("nothing", _job_id=f"c-{uuid4()}", _defer_by=600)
        stats = await queue_stats(redis, now=time.time() + 30)
        assert stats.depth == 2
        assert stats.deferred == 1
        assert 29.5 <= stats.oldest_age <= 31
    finally:
        await redis.aclose()


async def test_queue_stats_of_an_empty_queue(settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        stats = await queue_stats(redis)
    finally:
        await redis.aclose()
    assert (stats.depth, stats.deferred, stats.oldest_age) == (0, 0, 0.0)


def quiet_database(redis_url: str) -> str:
    """The same Redis server, another database: no worker of another test takes these jobs."""
    quiet = re.sub(r"(db=|/)\d+$", r"\g<1>9", redis_url)
    assert quiet != redis_url, redis_url
    return quiet


async def test_worker_publishes_queue_depth_outbox_lag_and_failed_events(settings) -> None:
    engine = create_async_engine(settings.database_url)
    session = async_sessionmaker(engine, expire_on_commit=False)
    redis = Redis.from_url(quiet_database(settings.redis_url))
    await redis.flushdb()
    ids = [uuid4(), uuid4()]
    try:
        await worker_metrics.refresh(session, redis)
        failed_before = value(parse(exposition().decode()), "sweetdream_outbox_failed_events")
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        async with session() as db:
            db.add(OutboxEvent(id=ids[0], topic="test.metrics", payload={}, created_at=hour_ago))
            db.add(OutboxEvent(id=ids[1], topic="test.metrics", payload={}, created_at=hour_ago, failed_at=hour_ago))
            await db.commit()
        arq = ArqRedis(connection_pool=redis.connection_pool)
        for _ in range(3):
            await arq.enqueue_job("nothing", _job_id=f"m-{uuid4()}")

        await worker_metrics.refresh(session, redis)

        samples = parse(exposition().decode())
        assert value(samples, "sweetdream_queue_depth") == 3
        assert value(samples, "sweetdream_queue_deferred") == 0
        assert 0 <= value(samples, "sweetdream_queue_oldest_job_age_seconds") < 60
        assert value(samples, "sweetdream_outbox_lag_seconds") >= 3600
        assert value(samples, "sweetdream_outbox_failed_events") == failed_before + 1
        assert time.time() - value(samples, "sweetdream_worker_metrics_refreshed_timestamp_seconds") < 60
        # The export does not exist yet: its counter is there, at zero, for the alarm to read.
        assert value(samples, "sweetdream_export_runs_total", outcome="failed") == 0
    finally:
        async with session() as db:
            await db.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids)))
            await db.commit()
        await redis.flushdb()
        await redis.aclose()
        await engine.dispose()


@worker_metrics.observed
async def flaky_job(ctx: dict) -> str:
    if ctx["job_try"] == 1:
        raise Retry(defer=0.01)
    return "done"


@worker_metrics.observed
async def broken_job(ctx: dict) -> str:
    raise ValueError("this job always fails")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_jobs_are_counted_by_function_and_outcome_in_a_real_worker(settings) -> None:
    def jobs(samples: Samples, function: str, outcome: str) -> float:
        return value(samples, "sweetdream_jobs_total", function=function, outcome=outcome)

    before = parse(exposition().decode())
    redis = Redis.from_url(settings.redis_url)
    arq = ArqRedis(connection_pool=redis.connection_pool)
    await arq.enqueue_job("flaky_job", _job_id=f"f-{uuid4()}")
    await arq.enqueue_job("broken_job", _job_id=f"b-{uuid4()}")
    worker = Worker(
        functions=[func(flaky_job), func(broken_job, max_tries=1)],
        redis_settings=redis_settings(settings.redis_url),
        burst=True,
        poll_delay=0.05,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
        await redis.aclose()

    after = parse(exposition().decode())
    assert jobs(after, "flaky_job", "retried") - jobs(before, "flaky_job", "retried") == 1
    assert jobs(after, "flaky_job", "succeeded") - jobs(before, "flaky_job", "succeeded") == 1
    assert jobs(after, "broken_job", "failed") - jobs(before, "broken_job", "failed") == 1
    assert jobs(after, "broken_job", "succeeded") - jobs(before, "broken_job", "succeeded") == 0


async def test_the_worker_serves_its_metrics_over_http_on_localhost(settings) -> None:
    engine = create_async_engine(settings.database_url)
    redis = Redis.from_url(settings.redis_url)
    port = worker_metrics.serve(0)
    try:
        await worker_metrics.refresh(async_sessionmaker(engine), redis)
        url = f"http://127.0.0.1:{port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    finally:
        worker_metrics.stop_serving()
        await redis.aclose()
        await engine.dispose()
    samples = parse(text)
    assert value(samples, "sweetdream_queue_depth") == 0
    assert ("sweetdream_outbox_lag_seconds", frozenset()) in samples


async def test_a_job_enqueued_this_very_millisecond_is_due(settings) -> None:
    """arq rounds a job's score to the nearest millisecond: it may lie just after "now"."""
    redis = Redis.from_url(quiet_database(settings.redis_url))
    await redis.flushdb()
    try:
        now = time.time()
        await redis.zadd("arq:queue", {"just-now": int(now * 1000) + 1, "in-a-minute": int(now * 1000) + 60_000})
        stats = await queue_stats(redis, now=now)
    finally:
        await redis.flushdb()
        await redis.aclose()
    assert (stats.depth, stats.deferred, stats.oldest_age) == (1, 1, 0.0)
