"""The `sweetdream` command: Litestar's CLI preset to our app, plus the shop's own commands.

`sweetdream run` and `sweetdream database upgrade` come from Litestar and advanced-alchemy;
`dev`, `seed` and later commands are registered by the CLI plugin below.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from litestar import Litestar
from litestar.plugins import CLIPluginProtocol

T = TypeVar("T")


def main() -> None:
    os.environ.setdefault("LITESTAR_APP", "sweetdream.app:create_app")
    from litestar.cli.main import litestar_group

    litestar_group()


def run_with_session(app: Litestar, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(session)` in one committed transaction, outside any request."""
    from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin

    config = app.plugins.get(SQLAlchemyPlugin).config[0]
    assert isinstance(config, SQLAlchemyAsyncConfig)

    async def runner() -> T:
        try:
            async with config.get_session() as session, session.begin():
                return await work(session)
        finally:
            await config.get_engine().dispose()

    return asyncio.run(runner())


def upgrade_database(app: Litestar) -> None:
    from advanced_alchemy.alembic.commands import AlembicCommands
    from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin

    config = app.plugins.get(SQLAlchemyPlugin).config[0]
    AlembicCommands(sqlalchemy_config=config).upgrade("head")


def seed_demo(app: Litestar) -> int:
    from sweetdream.catalog.seed import load_demo_catalog

    added = run_with_session(app, load_demo_catalog)
    _bump_catalog(app)
    return added


def _bump_catalog(app: Litestar) -> None:
    from redis.asyncio import Redis

    from sweetdream.catalog.cache import invalidate_catalog

    async def bump() -> None:
        redis = Redis.from_url(app.state.settings.redis_url)
        try:
            await invalidate_catalog(redis)
        finally:
            await redis.aclose()

    asyncio.run(bump())


@click.command(name="seed", help="Load the demo catalog (idempotent).")
@click.option("--bench-products", type=int, default=0, help="Also top the catalog up to N products (benchmarks).")
def seed_command(app: Litestar, bench_products: int) -> None:
    added = seed_demo(app)
    click.echo(f"Demo catalog: {added} product(s) added.")
    if bench_products:
        from sweetdream.catalog.seed import load_bench_catalog

        extra = run_with_session(app, lambda s: load_bench_catalog(s, bench_products))
        _bump_catalog(app)
        click.echo(f"Bench catalog: {extra} product(s) added.")


@click.command(
    name="dev", help="Start everything for development: database, Redis, migrations, demo data, web, worker."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
def dev_command(app: Litestar, host: str, port: int) -> None:
    # Loading the app started embedded PostgreSQL/Redis if their URLs were unset, and exported the URLs.
    upgrade_database(app)
    click.echo(f"Demo catalog: {seed_demo(app)} product(s) added.")
    for hook in DEV_HOOKS:
        hook(app)
    env = {**os.environ, "SWEETDREAM_ENV": app.state.settings.environment}
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "granian",
                "--interface",
                "asgi",
                "--factory",
                "sweetdream.app:create_app",
                "--host",
                host,
                "--port",
                str(port),
                "--workers",
                "1",
                "--no-ws",
            ],
            env=env,
        ),
        *[subprocess.Popen(cmd, env=env) for cmd in DEV_PROCESSES],
    ]
    click.echo(f"SweetDream is running on http://{host}:{port}  (Ctrl-C stops everything)")
    _wait_for_children(children)


# Later domains add setup steps (e.g. a dev admin) and processes (e.g. the worker) here.
DEV_HOOKS: list[Callable[[Litestar], None]] = []
DEV_PROCESSES: list[list[str]] = []


def _wait_for_children(children: list[subprocess.Popen[bytes]]) -> None:
    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    # A shell starting us in the background ignores SIGINT; Ctrl-C must still stop everything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while all(child.poll() is None for child in children):
            try:
                children[0].wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()


class SweetDreamCLI(CLIPluginProtocol):
    """Registers our commands on Litestar's CLI group."""

    def on_cli_init(self, cli: click.Group) -> None:
        for command in COMMANDS:
            cli.add_command(command)


COMMANDS: list[click.Command] = [seed_command, dev_command]
