"""The `sweetdream` command: Litestar's CLI preset to our app, plus the shop's own commands.

`sweetdream run` and `sweetdream database upgrade` come from Litestar and advanced-alchemy;
`dev`, `seed` and later commands are registered by the CLI plugin below.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from litestar import Litestar
from litestar.cli._utils import LitestarGroup
from litestar.plugins import CLIPluginProtocol

from sweetdream.analytics.export_cli import export_command

T = TypeVar("T")


def granian_command(host: str, port: int, workers: int) -> list[str]:
    """The web server as the Procfile runs it; the dev runner, e2e tests and bench all start this."""
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "sweetdream.app:create_app",
        "--host", host, "--port", str(port), "--workers", str(workers), "--no-ws",
    ]  # fmt: skip


def main() -> None:
    os.environ.setdefault("LITESTAR_APP", "sweetdream.app:create_app")
    from litestar.cli.main import litestar_group

    litestar_group()


def run_with_session(app: Litestar, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(session)` in one committed transaction, outside any request: the command owns the
    unit of work (sweetdream.db.unit_of_work)."""
    from sweetdream.db import unit_of_work
    from sweetdream.platform.redis_pool import connect_redis

    async def runner() -> T:
        settings = app.state.settings
        # Its own Redis (the app's belongs to no loop yet, and each command runs in a new one): a
        # change to a user or a cart drops what the pages keep of them (accounts/shopper_cache.py).
        redis = connect_redis(settings.redis_url) if settings.redis_url else None
        try:
            async with unit_of_work(settings.database_url, redis) as session:
                return await work(session)
        finally:
            if redis is not None:
                await redis.aclose()

    return asyncio.run(runner())


def upgrade_database(app: Litestar) -> None:
    from advanced_alchemy.alembic.commands import AlembicCommands
    from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin

    config = app.plugins.get(SQLAlchemyPlugin).config[0]
    AlembicCommands(sqlalchemy_config=config).upgrade("head")


def seed_demo(app: Litestar) -> int:
    from sweetdream.catalog.seed import load_demo_catalog

    zone = app.state.settings.shop_timezone
    added = run_with_session(app, lambda session: load_demo_catalog(session, zone))
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
    from sweetdream.platform.supervise import Child, supervise

    env = {**os.environ, "SWEETDREAM_ENV": app.state.settings.environment}
    children = [
        Child("web", granian_command(host, port, workers=1), env),
        *[Child(name, command, env) for name, command in DEV_PROCESSES],
    ]
    click.echo(f"SweetDream is running on http://{host}:{port}  (Ctrl-C stops everything)")
    # A child that dies (a crash, `kill -9`) is restarted with backoff; Ctrl-C/SIGTERM stops all.
    supervise(children, say=lambda line: click.secho(line, fg="yellow"))


# Later domains add setup steps (e.g. a dev admin) and processes (e.g. the worker) here.
DEV_HOOKS: list[Callable[[Litestar], None]] = []
DEV_PROCESSES: list[tuple[str, list[str]]] = []


def _users(app: Litestar, work: Callable[[Any], Awaitable[T]]) -> T:
    from sweetdream.accounts.services import UserService
    from sweetdream.platform.i18n import use_language

    with use_language("en"):  # the operator's tool speaks English, as its own messages do
        return run_with_session(app, lambda session: work(UserService(session=session)))


@click.command(name="create-admin", help="Create an admin (or make an existing account admin with a new password).")
@click.option("--email", required=True)
@click.option("--name", default="Admin", show_default=True)
def create_admin_command(app: Litestar, email: str, name: str) -> None:
    from sweetdream.accounts.services import AccountError

    # Never a built-in default: from the environment (for scripts) or typed at a hidden prompt.
    password = os.environ.get("SWEETDREAM_ADMIN_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    try:
        user = _users(app, lambda users: users.create_admin(email, password, name))
    except AccountError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{user.email} is an admin.")


@click.command(name="set-role", help="Set an account's role: CUSTOMER or ADMIN. Takes effect on the next request.")
@click.argument("email")
@click.argument("role")
@click.option("--reason", default="", help="Why (kept in the audit log, actor 'cli').")
def set_role_command(app: Litestar, email: str, role: str, reason: str) -> None:
    from sweetdream.accounts.services import AccountError

    try:
        user = _users(app, lambda users: users.set_role(email, role, reason))
    except AccountError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{user.email} is now {user.role.value}.")


def ensure_dev_admin(app: Litestar) -> None:
    """Development only: an admin with a random password, printed once when it is created."""
    import secrets

    email = "admin@sweetdream.local"

    async def create(session: Any) -> str | None:
        from sweetdream.accounts.services import UserService

        users = UserService(session=session)
        if await users.by_email(email):
            return None
        password = secrets.token_urlsafe(12)
        await users.create_admin(email, password, "Dev Admin")
        return password

    password = run_with_session(app, create)
    if password:
        click.secho(
            f"Dev admin created: {email} / {password}  (shown once; reset with sweetdream create-admin)", fg="yellow"
        )
    else:
        click.echo(f"Dev admin: {email} (reset its password with: sweetdream create-admin --email {email})")


DEV_HOOKS.append(ensure_dev_admin)


def worker_process() -> list[str]:
    """The worker as the Procfile runs it (the dev runner starts one beside the web server)."""
    return [str(Path(sys.executable).parent / "sweetdream"), "worker"]


DEV_PROCESSES.append(("worker", worker_process()))


@click.command(name="worker", help="Run the ARQ worker: order fulfilment, emails, the outbox sweep.")
def worker_command(app: Litestar) -> None:
    from sweetdream.platform.queue import run_worker
    from workers.settings import WorkerSettings

    run_worker(WorkerSettings)


def _with_redis(app: Litestar, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    from redis.asyncio import Redis

    async def with_redis(session: Any) -> T:
        redis = Redis.from_url(app.state.settings.redis_url)
        try:
            return await work(session, redis)
        finally:
            await redis.aclose()

    return run_with_session(app, with_redis)


# LitestarGroup hands `app` to the subcommands too.
@click.group(
    name="outbox", cls=LitestarGroup, invoke_without_command=True, help="Undelivered and failed events; retry them."
)
def outbox_group(app: Litestar) -> None:
    if click.get_current_context().invoked_subcommand is None:
        _print_outbox(app)


@outbox_group.command(name="list", help="Show how many events wait for delivery and every failed one.")
def outbox_list(app: Litestar) -> None:
    _print_outbox(app)


def _print_outbox(app: Litestar) -> None:
    from sweetdream.fulfillment.notifications import UnconfirmedSend, unconfirmed_sends
    from sweetdream.orders import outbox

    async def report(session: Any) -> tuple[int, list[outbox.FailedEvent], list[UnconfirmedSend]]:
        return await outbox.undelivered_count(session), await outbox.failed(session), await unconfirmed_sends(session)

    waiting, failed, unconfirmed = run_with_session(app, report)
    click.echo(f"Waiting for delivery: {waiting}. Failed: {len(failed)}.")
    for row in failed:
        number = row.payload.get("number", "")
        click.echo(f"{row.id}  {row.topic:<22} {number!s:<10} tries={row.attempts}  {row.failed_at:%Y-%m-%d %H:%M}Z")
        click.echo(f"    {row.last_error}")
    if unconfirmed:
        # At most once: a worker died while sending these; they are not sent again by themselves.
        click.echo(f"Emails that may not have gone out: {len(unconfirmed)} (search the mail log for the Message-ID).")
        for send in unconfirmed:
            click.echo(f"{send.claimed_at:%Y-%m-%d %H:%M}Z  {send.key}  {send.message_id}")


@outbox_group.command(name="retry", help="Queue failed events again: the IDs given, or --all.")
@click.argument("event_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Every failed event.")
def outbox_retry(app: Litestar, event_ids: tuple[str, ...], retry_all: bool) -> None:
    from uuid import UUID

    from sweetdream.orders import outbox

    if not event_ids and not retry_all:
        raise click.UsageError("Give the IDs of failed events (see `sweetdream outbox`), or --all.")
    try:
        ids = None if retry_all else [UUID(value) for value in event_ids]
    except ValueError as exc:
        raise click.BadParameter(f"not an event id: {exc}") from exc
    count = _with_redis(app, lambda session, redis: outbox.retry_failed(session, redis, ids))
    click.echo(f"Queued {count} failed event(s) again.")


@outbox_group.command(name="sweep", help="Queue every undelivered event now (the worker does this each minute).")
def outbox_sweep(app: Litestar) -> None:
    from datetime import timedelta

    from sweetdream.orders import outbox

    count = _with_redis(app, lambda session, redis: outbox.sweep(session, redis, grace=timedelta(0)))
    click.echo(f"Queued {count} undelivered event(s).")


@click.group(name="synonyms", cls=LitestarGroup, help="Search synonyms: a query with TERM also finds EXPANSION.")
def synonyms_group(app: Litestar) -> None:
    pass


@synonyms_group.command(name="list", help="Every synonym, one `term -> expansion` a line.")
def synonyms_list(app: Litestar) -> None:
    from sweetdream.catalog.services import list_synonyms

    async def rows(session: Any) -> list[tuple[str, str]]:
        return [(s.term, s.expansion) for s in await list_synonyms(session)]

    for term, expansion in run_with_session(app, rows):
        click.echo(f"{term} -> {expansion}")


@synonyms_group.command(
    name="add", help="A search for TERM also finds EXPANSION, from the next search on. For 'A = B' add both ways."
)
@click.argument("term")
@click.argument("expansion")
def synonyms_add(app: Litestar, term: str, expansion: str) -> None:
    from sweetdream.catalog.services import SynonymError, add_synonym

    async def add(session: Any) -> str:
        synonym = await add_synonym(session, term, expansion)
        return f"{synonym.term} -> {synonym.expansion}"

    try:
        added = run_with_session(app, add)
    except SynonymError as exc:
        raise click.BadParameter(str(exc)) from exc
    _bump_catalog(app)  # cached search results were rendered without it
    click.echo(f"Synonym: {added}")


@synonyms_group.command(name="remove", help="Remove TERM's EXPANSION, or every expansion of TERM.")
@click.argument("term")
@click.argument("expansion", required=False)
def synonyms_remove(app: Litestar, term: str, expansion: str | None) -> None:
    from sweetdream.catalog.services import remove_synonym

    removed = run_with_session(app, lambda session: remove_synonym(session, term, expansion))
    if not removed:
        raise click.ClickException(f"No synonym for {term!r}" + (f" -> {expansion!r}." if expansion else "."))
    _bump_catalog(app)
    click.echo(f"Removed {removed} synonym(s).")


class SweetDreamCLI(CLIPluginProtocol):
    """Registers our commands on Litestar's CLI group."""

    def on_cli_init(self, cli: click.Group) -> None:
        for command in COMMANDS:
            cli.add_command(command)


COMMANDS: list[click.Command] = [
    seed_command,
    dev_command,
    create_admin_command,
    set_role_command,
    worker_command,
    outbox_group,
    synonyms_group,
    export_command,
]
