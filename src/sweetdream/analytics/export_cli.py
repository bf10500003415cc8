"""`sweetdream export --date YYYY-MM-DD [--to YYYY-MM-DD]`: export shop days by hand, with a progress
bar (events written, rate, time left) and a summary. Today is allowed (a partial day, exported
again in full by the night's run); a day after today, or a range of more than MAX_DAYS, is refused."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from sweetdream.platform.i18n import gettext as _

if TYPE_CHECKING:
    from litestar import Litestar

MAX_DAYS = 366


class EventRateColumn(ProgressColumn):
    """Events written per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(_("%(rate)s events/s") % {"rate": f"{speed:,.0f}"} if speed else "", style="progress.data.speed")


class EventCountColumn(ProgressColumn):
    """Events written, of the day's events when the run began."""

    def render(self, task: Task) -> Text:
        total = f"{task.total:,.0f}" if task.total is not None else "?"
        return Text(_("%(done)s/%(total)s events") % {"done": f"{task.completed:,.0f}", "total": total})


def parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            _("%(value)r is not a date: write it as YYYY-MM-DD, e.g. 2026-11-27.") % {"value": value},
            param_hint=option,
        ) from exc


def days_to_export(first: date, last: date, today: date) -> list[date]:
    if last < first:
        raise click.BadParameter(_("--to must be on or after --date."), param_hint="--to")
    if last > today:
        raise click.BadParameter(
            _("%(day)s has not begun in the shop yet (today there is %(today)s).")
            % {"day": last.isoformat(), "today": today.isoformat()},
            param_hint="--to" if last != first else "--date",
        )
    count = (last - first).days + 1
    if count > MAX_DAYS:
        raise click.BadParameter(_("At most %(max)d days at a time.") % {"max": MAX_DAYS}, param_hint="--to")
    return [first + timedelta(days=n) for n in range(count)]


@click.command(name="export", help="Export shop days (Asia/Ho_Chi_Minh) of shopper events to S3 or var/exports/.")
@click.option("--date", "first", required=True, help="The shop day, YYYY-MM-DD (today: the day so far).")
@click.option("--to", "last", default="", help="The last day of a range, YYYY-MM-DD (default: --date).")
def export_command(app: Litestar, first: str, last: str) -> None:
    from sweetdream.analytics.export import shop_today
    from sweetdream.platform.i18n import use_language

    with use_language("en"):  # the operator's tool speaks English, as the other commands do
        start = parse_day(first, "--date")
        end = parse_day(last, "--to") if last else start
        days = days_to_export(start, end, shop_today())
        failed = asyncio.run(export_days(app.state.settings, days))
    if failed:
        raise click.exceptions.Exit(1)


async def export_days(settings: Any, days: list[date]) -> int:
    """Export each day in turn; returns how many failed (or were busy)."""

    from sweetdream.analytics.export_runs import ExportBusy, exporter_for
    from sweetdream.db import engine_outside_request
    from sweetdream.fulfillment.notifications import Notifier

    console = Console()
    engine = engine_outside_request(settings.database_url, pool_size=5)  # the cursor, the lock, the run rows
    notifier = Notifier.from_settings(settings)
    exporter = exporter_for(settings, engine, notifier)
    failed = 0
    total = 0
    try:
        for day in days:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                EventCountColumn(),
                EventRateColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task(day.isoformat(), total=None)

                def show(written: int, expected: int, task_id: Any = task, bar: Progress = bar) -> None:
                    bar.update(task_id, completed=written, total=max(expected, written))

                try:
                    run = await exporter.run(day, "cli", on_progress=show)
                except ExportBusy as exc:
                    failed += 1
                    console.print(f"{day}: {exc}")
                    continue
            if run.outcome == "succeeded":
                total += run.count
                seconds = _duration(run)
                console.print(
                    _("%(day)s: %(count)s events in %(parts)d part(s) to %(target)s (%(seconds).1f s)")
                    % {
                        "day": day.isoformat(),
                        "count": f"{run.count:,}",
                        "parts": run.parts,
                        "target": exporter.store.description,
                        "seconds": seconds,
                    },
                    highlight=False,
                )
            else:
                failed += 1
                console.print(
                    _("%(day)s: FAILED after %(tries)d tries: %(error)s")
                    % {"day": day.isoformat(), "tries": run.attempts, "error": run.error},
                    style="bold red",
                    highlight=False,
                )
    finally:
        await engine.dispose()
    console.print(
        _("Exported %(done)d of %(days)d day(s), %(count)s events; %(failed)d failed.")
        % {"done": len(days) - failed, "days": len(days), "count": f"{total:,}", "failed": failed},
        highlight=False,
    )
    return failed


def _duration(run: Any) -> float:
    if run.started_at is None or run.finished_at is None:
        return 0.0
    return float((run.finished_at - run.started_at).total_seconds())
