"""What happens when parts die: a worker killed mid-email, a Redis that restarts from an older
snapshot or drops for a while, a dev-runner child killed with -9, the end of a test session.

Real processes and real kills: `sweetdream worker` and `sweetdream dev` run as subprocesses,
Redis is a redis-server of the test's own that it SIGKILLs and starts again on the same socket,
and the subprocesses get a database of their own so their sweeps cannot touch other tests' rows.
"""

from __future__ import annotations

import asyncio
import email
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path

import psutil
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from sweetdream.app import create_app
from sweetdream.cart.services import CartService, DbCartStore
from sweetdream.catalog.cache import invalidate_catalog
from sweetdream.catalog.models import Variant
from sweetdream.fulfillment.models import SentMessage
from sweetdream.orders.models import Order, OrderStatus, OutboxEvent, PaymentMethod
from sweetdream.orders.services import OrderService, Shipping
from sweetdream.settings import PROJECT_ROOT, Settings
from tests.integration.factories import make_product, make_user, put_in_cart
from tests.integration.helpers import cli
from tests.support import TEST_VAR, RedisServer, TestStack, drain_queue, drop_database, isolated_database

SWEETDREAM = str(Path(sys.executable).parent / "sweetdream")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(TEST_VAR / f"redis-own-{uuid.uuid4().hex[:6]}").start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def own_database(stack: TestStack) -> Iterator[str]:
    url, name = isolated_database(stack)
    yield url
    drop_database(stack, name)


@pytest.fixture
def isolated(settings: Settings, own_database: str, redis_server: RedisServer) -> Iterator[Settings]:
    """Settings naming the test's own database, Redis and var directory (mail lands in var/mail)."""
    var_dir = TEST_VAR / f"var-{uuid.uuid4().hex[:6]}"
    yield replace(settings, database_url=own_database, redis_url=redis_server.url, var_dir=var_dir)
    import shutil

    shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture
async def own_db(isolated: Settings) -> AsyncIterator[AsyncSession]:
    engine = create_async_engine(isolated.database_url)
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        yield session
    await engine.dispose()


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """What a process started by the Procfile would get: the URLs, nothing embedded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWEETDREAM_", "JOB_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        SWEETDREAM_ENV="test",
        SWEETDREAM_VAR_DIR=str(settings.var_dir),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


async def place_cod_order(db: AsyncSession, redis_url: str) -> tuple[Order, str]:
    """A cash-on-delivery order placed by the real checkout service; its relay enqueues the job."""
    _, (variant,) = await make_product(db, stock=5)
    user = await make_user(db)
    await put_in_cart(db, user, variant, 1)
    redis = Redis.from_url(redis_url)
    try:
        order, _ = await OrderService(db, redis).place(
            user,
            CartService(db, DbCartStore(db, user.id)),
            Shipping("Lan", "0901234567", "1 Lê Lợi, Quận 1", "", PaymentMethod.COD),
            uuid.uuid4().hex,
            30_000,
            500_000,
        )
    finally:
        await redis.aclose()
    return order, user.email


def messages_in(directory: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=default_policy)  # type: ignore[misc]
        for path in sorted(directory.glob("*.eml"))
    ]


async def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


def spawn(command: list[str], settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """Start one of our commands as the Procfile would, its output in log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=environment(settings), stdout=log, stderr=subprocess.STDOUT
        )


# --- emails: at most once ---------------------------------------------------------------------


async def test_a_worker_killed_right_after_sending_never_sends_that_email_again(isolated, own_db, monkeypatch, caplog):
    """The audit's case: the worker died between sending the confirmation and committing. Here it
    is SIGKILLed by its mail backend the moment the .eml is written; the job is picked up again by
    another worker once its in-progress mark expires (job timeout 1 s + arq's 10 s)."""
    order, customer = await place_cod_order(own_db, isolated.redis_url)
    mail = isolated.var_dir / "mail"
    killed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.integration.worker_killed_after_sending"],
        cwd=PROJECT_ROOT,
        env=environment(isolated, JOB_TIMEOUT_SECONDS="1"),
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert len(messages_in(mail)) == 1
    for name, value in environment(isolated).items():  # a second worker, on the same database and Redis
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    await drain_queue(isolated.redis_url)  # waits for the abandoned job's in-progress mark to expire
    waited = time.monotonic() - started
    row = await own_db.get(OutboxEvent, await placed_event_id(own_db, order), populate_existing=True)
    assert row.delivered_at is not None  # the retry finished the job ...
    (message,) = messages_in(mail)  # ... and did not send the confirmation again
    assert waited < 20  # job timeout (1 s here) + arq's 10 s, not 300 s + 10 s
    assert f"email order:{order.id}:confirmation was claimed at" in caplog.text  # the retry says so
    assert message["To"] == customer and message["Subject"] == f"Your order {order.number} is confirmed"
    assert message["Message-ID"].strip() == f"<order-{order.id}-confirmation@sweetdream.example>"
    sent = await own_db.scalar(select(SentMessage).where(SentMessage.key == f"order:{order.id}:confirmation"))
    assert sent.status == "sending"  # never confirmed: the operator is told (below)
    ten_minutes_ago = datetime.now(UTC) - timedelta(minutes=10)
    await own_db.execute(update(SentMessage).where(SentMessage.id == sent.id).values(created_at=ten_minutes_ago))
    await own_db.commit()
    listed = await cli(create_app(isolated), "outbox")
    assert listed.exit_code == 0, listed.output
    assert "Emails that may not have gone out: 1" in listed.output
    assert f"order:{order.id}:confirmation" in listed.output and message["Message-ID"].strip() in listed.output


async def placed_event_id(db: AsyncSession, order: Order) -> uuid.UUID:
    return await db.scalar(
        select(OutboxEvent.id).where(
            OutboxEvent.topic == "order.placed", OutboxEvent.payload["order_id"].astext == str(order.id)
        )
    )


# --- the catalog version survives a Redis rollback ---------------------------------------------


def product_page_stock(html: str) -> str:
    start = html.index('<span class="stock">') + len('<span class="stock">')
    return html[start : html.index("</span>", start)]


async def visit(client, path: str) -> str:
    """A visitor with no cookies at all (a plain visitor: the whole page may come from the cache)."""
    client.cookies.clear()
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.text


async def test_a_redis_restored_from_an_older_snapshot_never_revives_a_stale_page(settings, db, redis_server):
    """The audit's case: Redis restarted from its last save (the version went back from 709 to 706)
    and a product page cached at the old version showed the old stock again."""
    app = create_app(replace(settings, redis_url=redis_server.url))
    product, (variant,) = await make_product(db, stock=2)  # threshold 2: "Only 2 left"
    page = f"/products/{product.slug}"
    redis = Redis.from_url(redis_server.url)
    try:
        async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
            await invalidate_catalog(redis)  # some earlier change: the version exists
            assert product_page_stock(await visit(client, page)) == "Only 2 left"
            redis_server.save()  # the snapshot Redis will come back from
            await db.execute(update(Variant).where(Variant.id == variant.id).values(stock=1))
            await db.commit()
            await invalidate_catalog(redis)  # what every stock change does after its commit
            redis_server.crash()
            redis_server.start()  # from the snapshot: the last version change is lost
            assert product_page_stock(await visit(client, page)) == "Only 1 left"
    finally:
        await redis.aclose()


async def test_a_catalog_version_that_disappears_never_revives_a_stale_page(client, settings, db):
    """A flushed (or evicted) version key starts a new epoch instead of going back to the first."""
    product, (variant,) = await make_product(db, stock=2)
    page = f"/products/{product.slug}"
    redis = Redis.from_url(settings.redis_url)
    try:
        assert product_page_stock(await visit(client, page)) == "Only 2 left"
        await db.execute(update(Variant).where(Variant.id == variant.id).values(stock=1))
        await db.commit()
        await invalidate_catalog(redis)
        await redis.flushdb()
        assert product_page_stock(await visit(client, page)) == "Only 1 left"
    finally:
        await redis.aclose()


# --- the worker carries on when Redis drops ----------------------------------------------------


async def test_the_worker_reconnects_when_redis_comes_back(isolated, own_db, redis_server):
    log_path = isolated.var_dir / "worker.log"
    worker = spawn([SWEETDREAM, "worker"], isolated, log_path)
    try:
        redis = Redis.from_url(redis_server.url)
        try:
            await wait_for(lambda: redis.exists("arq:queue:health-check"), 30, "the worker to start")
        finally:
            await redis.aclose()
        redis_server.crash()
        await asyncio.sleep(2.5)  # the worker notices, and tries again (and fails) at least once
        assert worker.poll() is None, log_path.read_text()[-3000:]
        redis_server.start()
        order, _ = await place_cod_order(own_db, isolated.redis_url)

        async def processed() -> bool:
            assert worker.poll() is None, log_path.read_text()[-3000:]
            status = await own_db.scalar(
                select(Order.status).where(Order.id == order.id).execution_options(populate_existing=True)
            )
            await own_db.commit()
            return status == OrderStatus.PROCESSING

        await wait_for(processed, 40, "the same worker to run a job enqueued after the restart")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    output = log_path.read_text()
    assert output.count("Redis connection lost") == 1, output[-3000:]  # one warning per outage, not per try
    assert "Redis is back" in output


# --- the dev runner (make run) restarts a child that died --------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def health(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
        return response.read().decode()


def wait_until(condition, timeout: float, what: str, runner: subprocess.Popen[bytes], log_path: Path):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if value:
                return value
        except OSError:
            pass
        if runner.poll() is not None:
            raise AssertionError(f"the dev runner exited ({runner.returncode}):\n{log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


def worker_child(runner: subprocess.Popen[bytes]) -> psutil.Process | None:
    """The runner's live worker process, if it has one."""
    for child in psutil.Process(runner.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and child.cmdline()[-1:] == ["worker"]:
                return child
        except psutil.Error:  # it died while we looked
            continue
    return None


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_make_run_restarts_a_killed_worker_and_sigterm_stops_everything(isolated):
    port = free_port()
    log_path = isolated.var_dir / "dev.log"
    runner = spawn([SWEETDREAM, "dev", "--port", str(port)], isolated, log_path)
    try:
        wait_until(lambda: health(port) == "ok", 60, "the web server", runner, log_path)
        first = wait_until(lambda: worker_child(runner), 30, "the worker", runner, log_path)
        first.send_signal(signal.SIGKILL)
        second = wait_until(
            lambda: (w := worker_child(runner)) is not None and w.pid != first.pid and w,
            15,
            "a new worker",
            runner,
            log_path,
        )
        assert health(port) == "ok"  # the web server was left alone
        assert second.is_running()
        family = psutil.Process(runner.pid).children(recursive=True)
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(40) == 0
        time.sleep(0.2)
        assert [p.pid for p in family if alive(p)] == []
    finally:
        if runner.poll() is None:  # the test failed midway: leave nothing running
            leftovers = psutil.Process(runner.pid).children(recursive=True)
            runner.terminate()
            try:
                runner.wait(40)
            except subprocess.TimeoutExpired:
                runner.kill()
            for process in leftovers:
                if alive(process):
                    process.kill()
    output = log_path.read_text()
    assert "worker exited" in output and "restarting in 1 s" in output


# --- a test session ends quietly -------------------------------------------------------------------


def test_a_fresh_test_session_ends_without_logging_errors_or_redis_errors():
    """A newcomer's first `make test` must not end in tracebacks: run a small session the way a
    fresh clone does (no DATABASE_URL/REDIS_URL: embedded servers) and read its whole output."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env = {k: v for k, v in env.items() if not k.startswith(("SWEETDREAM_", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/integration/test_smoke.py", "-q"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, output[-3000:]
    assert "1 passed" in output
    assert "Logging error" not in output and "Traceback" not in output, output[-3000:]
    assert "syntax error" not in output, output[-3000:]
