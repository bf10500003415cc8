"""The nightly export against moto's S3 server: a shop day's events -> gzipped JSON Lines parts and a
manifest, byte-identical on every run, one run per day at a time, nothing partial after a failure."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sweetdream.accounts.models import Role
from sweetdream.analytics.export import LocalStore, S3Store, write_day
from sweetdream.analytics.export_models import ExportRun
from sweetdream.analytics.export_runs import ExportBusy, Exporter, ExportSettings, failure_notifier
from sweetdream.fulfillment.models import SentMessage
from sweetdream.fulfillment.notifications import Notifier
from sweetdream.platform.mail import FileMailer
from tests.integration.factories import make_user, signed_in
from tests.integration.helpers import cli, csrf_token, post_form
from tests.support import drain_queue

BUCKET = "sweetdream-exports-test"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "ap-southeast-1",
    }.items():
        monkeypatch.setenv(name, value)
    httpx.post(f"{moto_endpoint}/moto-api/reset")
    client = boto3.client("s3", region_name="ap-southeast-1", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-1"})
    return client


@pytest.fixture
async def engine(settings: Any) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.database_url)
    yield engine
    await engine.dispose()


def engine_of(settings: Any) -> AsyncEngine:
    """An engine for arranging data from a test that has no `engine` fixture at hand (NullPool: it
    leaves no connection behind in a loop that ends)."""
    from sqlalchemy.pool import NullPool

    return create_async_engine(settings.database_url, poolclass=NullPool)


def exporter(engine: AsyncEngine, s3: Any, per_part: int = 3000, **options: Any) -> Exporter:
    return Exporter(engine, S3Store(s3, BUCKET), ExportSettings(events_per_part=per_part, retry_delay=0.01, **options))


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def add_events(
    engine: AsyncEngine, first: str, count: int, step_seconds: float, name: str = "product_viewed"
) -> None:
    """`count` events from `first` (UTC), one every `step_seconds`, inserted in one statement."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO analytics_events (occurred_at, event_id, name, user_id, visitor_id, properties)
                SELECT CAST(:first AS timestamptz) + make_interval(secs => i * :step), gen_random_uuid(), :name,
                       NULL, 'visitor-' || (i % 97),
                       jsonb_build_object('product', i % 50, 'name', 'Bánh kem ' || i, 'price', 250000 + i)
                FROM generate_series(0, :count - 1) AS i
                """
            ),
            {"first": moment(first), "count": count, "step": step_seconds, "name": name},
        )


async def ids_in_window(engine: AsyncEngine, start: str, end: str) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id FROM analytics_events WHERE occurred_at >= :s AND occurred_at < :e ORDER BY id"),
            {"s": moment(start), "e": moment(end)},
        )
        return [row[0] for row in rows]


def objects(s3: Any, prefix: str) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"]: s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() for item in listing}


def lines(blob: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(blob).splitlines()]


PREFIX_MAR_10 = "user-actions/year=2026/month=03/day=10/"


async def test_a_day_of_10000_events_becomes_parts_and_a_manifest_matching_the_database(engine, s3):
    # Shop day 2026-03-10 is 2026-03-09 17:00 to 2026-03-10 17:00 UTC; 10,000 events 8 s apart fill it.
    await add_events(engine, "2026-03-09 17:00:00+00", 10_000, 8)
    run = await exporter(engine, s3).run(date(2026, 3, 10), "cli")

    assert (run.outcome, run.count, run.parts, run.attempts, run.error) == ("succeeded", 10_000, 4, 1, "")
    stored = objects(s3, PREFIX_MAR_10)
    assert sorted(stored) == [
        PREFIX_MAR_10 + "_manifest.json",
        PREFIX_MAR_10 + "part-00000.jsonl.gz",
        PREFIX_MAR_10 + "part-00001.jsonl.gz",
        PREFIX_MAR_10 + "part-00002.jsonl.gz",
        PREFIX_MAR_10 + "part-00003.jsonl.gz",
    ]
    manifest = json.loads(stored[PREFIX_MAR_10 + "_manifest.json"])
    assert manifest["count"] == 10_000
    assert manifest["schema_version"] == 1
    assert manifest["day"] == "2026-03-10"
    assert manifest["first_event_at"] == "2026-03-09T17:00:00.000000Z"
    assert manifest["last_event_at"] == "2026-03-10T15:13:12.000000Z"  # 9,999 x 8 s after the first
    assert manifest["window"] == {"start": "2026-03-09T17:00:00.000000Z", "end": "2026-03-10T17:00:00.000000Z"}
    assert [p["count"] for p in manifest["parts"]] == [3000, 3000, 3000, 1000]
    for part in manifest["parts"]:
        blob = stored[part["key"]]
        assert part["bytes"] == len(blob)
        assert part["sha256"] == hashlib.sha256(blob).hexdigest()
        assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"  # gzip, no name, mtime 0
    exported = [event for key in sorted(stored) if key.endswith(".gz") for event in lines(stored[key])]
    expected_ids = await ids_in_window(engine, "2026-03-09 17:00:00+00", "2026-03-10 17:00:00+00")
    assert len(expected_ids) == 10_000
    assert [event["id"] for event in exported] == expected_ids
    assert exported[0]["occurred_at"] == "2026-03-09T17:00:00.000000Z"
    assert exported[0]["name"] == "product_viewed"
    assert exported[0]["properties"] == {"name": "Bánh kem 0", "price": 250000, "product": 0}
    assert exported[0]["user_id"] is None and exported[0]["visitor_id"] == "visitor-0"
    assert sorted(exported[0]) == ["event_id", "id", "name", "occurred_at", "properties", "user_id", "visitor_id"]
    assert len({event["event_id"] for event in exported}) == 10_000

    # Run again: the same keys, the same bytes (the manifest included), and the run is recorded.
    again = await exporter(engine, s3).run(date(2026, 3, 10), "cli")
    assert again.outcome == "succeeded" and again.id != run.id
    assert objects(s3, PREFIX_MAR_10) == stored


async def test_events_of_the_day_before_and_after_stay_out(engine, s3):
    # Shop day 2026-04-02: from 2026-04-01 17:00:00 UTC (00:00 in Vietnam) to 17:00:00 the next day.
    edges = [
        ("2026-04-01 16:59:59.999999+00", False),  # 23:59:59.999999 on 1 April in the shop
        ("2026-04-01 17:00:00+00", True),
        ("2026-04-02 16:59:59+00", True),
        ("2026-04-02 17:00:00+00", False),  # 00:00 on 3 April in the shop
    ]
    for moment, _inside in edges:
        await add_events(engine, moment, 1, 1, name="cart_item_added")
    run = await exporter(engine, s3).run(date(2026, 4, 2), "cli")

    assert (run.outcome, run.count, run.parts) == ("succeeded", 2, 1)
    stored = objects(s3, "user-actions/year=2026/month=04/day=02/")
    exported = lines(stored["user-actions/year=2026/month=04/day=02/part-00000.jsonl.gz"])
    assert [event["occurred_at"] for event in exported] == [
        "2026-04-01T17:00:00.000000Z",
        "2026-04-02T16:59:59.000000Z",
    ]


async def test_a_day_without_events_has_a_manifest_and_no_parts(engine, s3):
    run = await exporter(engine, s3).run(date(2026, 5, 20), "cli")
    assert (run.outcome, run.count, run.parts) == ("succeeded", 0, 0)
    stored = objects(s3, "user-actions/year=2026/month=05/day=20/")
    assert list(stored) == ["user-actions/year=2026/month=05/day=20/_manifest.json"]
    manifest = json.loads(stored["user-actions/year=2026/month=05/day=20/_manifest.json"])
    assert (manifest["count"], manifest["parts"], manifest["first_event_at"]) == (0, [], None)


async def test_two_runs_of_one_day_at_once_make_one_export(engine, s3, db):
    await add_events(engine, "2026-03-14 17:00:00+00", 10_000, 8)
    day = date(2026, 3, 15)
    results = await asyncio.gather(
        exporter(engine, s3).run(day, "cli"), exporter(engine, s3).run(day, "cli"), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, ExportBusy)]
    done = [r for r in results if isinstance(r, ExportRun)]
    assert len(refused) == 1 and len(done) == 1, results
    assert str(refused[0]) == "An export of 2026-03-15 is running already."
    assert done[0].count == 10_000
    runs = (await db.scalars(select(ExportRun).where(ExportRun.day == day))).all()
    assert [(r.outcome, r.count) for r in runs] == [("succeeded", 10_000)]


async def test_a_run_that_may_wait_runs_after_the_other_never_beside_it(engine, s3, db):
    await add_events(engine, "2026-03-15 17:00:00+00", 10_000, 8)
    day = date(2026, 3, 16)
    first, second = await asyncio.gather(
        exporter(engine, s3, lock_wait=60).run(day, "cron"), exporter(engine, s3, lock_wait=60).run(day, "admin")
    )
    assert (first.outcome, second.outcome) == ("succeeded", "succeeded")
    runs = (await db.scalars(select(ExportRun).where(ExportRun.day == day).order_by(ExportRun.started_at))).all()
    assert len(runs) == 2
    assert runs[0].finished_at <= runs[1].started_at  # one after the other
    assert (
        json.loads(
            objects(s3, "user-actions/year=2026/month=03/day=16/")[
                "user-actions/year=2026/month=03/day=16/_manifest.json"
            ]
        )["count"]
        == 10_000
    )


class FailingUploads:
    """A botocore hook: the upload of the part numbered `fail_at` (counting every UploadPart call)
    fails, `times` times in a row."""

    def __init__(self, fail_at: int, times: int) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self.times = times
        self.failed = 0

    def __call__(self, **_: Any) -> None:
        self.calls += 1
        if self.calls >= self.fail_at and self.failed < self.times:
            self.failed += 1
            raise ConnectionError("S3 went away (injected)")


def pending_uploads(s3: Any) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


async def test_a_failed_day_ends_its_cursor_before_the_connection_is_reused(engine, s3):
    """The day's rows come from a cursor in a read-only transaction. A failure mid-day must end that
    transaction at once: the connection goes back to the pool and the retry may get it (it once
    failed with "cannot use Connection.transaction() in a manually started transaction")."""
    await add_events(engine, "2026-04-09 17:00:00+00", 3_000, 6)
    hook = FailingUploads(fail_at=1, times=1)
    s3.meta.events.register("before-call.s3.UploadPart", hook)
    try:
        async with engine.connect() as conn:
            with pytest.raises(ConnectionError):
                await write_day(conn, S3Store(s3, BUCKET), date(2026, 4, 10), 1000)
            driver = (await conn.get_raw_connection()).driver_connection
            assert not driver.is_in_transaction()
            manifest = await write_day(conn, S3Store(s3, BUCKET), date(2026, 4, 10), 1000)
    finally:
        s3.meta.events.unregister("before-call.s3.UploadPart", hook)
    assert manifest.count == 3_000 and len(manifest.parts) == 3


async def test_an_upload_failing_half_way_leaves_nothing_visible_and_the_retry_completes(engine, s3, db, settings):
    await add_events(engine, "2026-03-19 17:00:00+00", 10_000, 8)
    day = date(2026, 3, 20)
    prefix = "user-actions/year=2026/month=03/day=20/"
    # The third part's upload fails on every try: the day fails, and nothing of it is left behind.
    hook = FailingUploads(fail_at=3, times=1000)
    s3.meta.events.register("before-call.s3.UploadPart", hook)
    try:
        admin = await make_user(db, Role.ADMIN)
        admin.language = "en"  # the alert goes out in the admin's language (Vietnamese if never chosen)
        await db.commit()
        mail_dir = settings.var_dir / "mail-export-test"
        notifier = Notifier(
            FileMailer(mail_dir), settings.mail_from, settings.templates_dir, "SweetDream", "http://shop.test"
        )
        failing = Exporter(
            engine, S3Store(s3, BUCKET), ExportSettings(3000, retry_delay=0.01, tries=2), failure_notifier(notifier)
        )
        run = await failing.run(day, "cron")
    finally:
        s3.meta.events.unregister("before-call.s3.UploadPart", hook)
    assert (run.outcome, run.attempts) == ("failed", 2)
    assert run.error == "ConnectionError: S3 went away (injected)"
    assert objects(s3, prefix) == {}
    assert pending_uploads(s3) == []

    # The admins were told once each: the claim keeps a second notice (a rerun of the job) from going out.
    keys = [f"export:{run.id}:failed:{admin.email}"]
    notify = failure_notifier(notifier)
    await notify(db, run)
    sent = (await db.scalars(select(SentMessage).where(SentMessage.key.like(f"export:{run.id}:failed:%")))).all()
    assert keys[0] in [m.key for m in sent]
    assert all(m.status == "sent" for m in sent)
    mine = [p for p in mail_dir.glob("*.eml") if admin.email in p.read_text()]
    assert len(mine) == 1
    message = mine[0].read_text()
    assert "The export of shop day 2026-03-20 failed" in message
    assert "sweetdream export --date 2026-03-20" in message

    # A failure that passes: the second try completes the day, as a clean run would have written it.
    hook = FailingUploads(fail_at=3, times=1)
    s3.meta.events.register("before-call.s3.UploadPart", hook)
    try:
        retried = await exporter(engine, s3).run(day, "cron")
    finally:
        s3.meta.events.unregister("before-call.s3.UploadPart", hook)
    assert (retried.outcome, retried.attempts, retried.count, retried.error) == ("succeeded", 2, 10_000, "")
    assert hook.failed == 1
    assert pending_uploads(s3) == []
    written = objects(s3, prefix)
    assert len(written) == 5
    clean = await exporter(engine, s3).run(day, "cli")
    assert clean.attempts == 1
    assert objects(s3, prefix) == written
    outcomes = (await db.scalars(select(ExportRun.outcome).where(ExportRun.day == day).order_by(ExportRun.id))).all()
    assert outcomes == ["failed", "succeeded", "succeeded"]


async def test_a_rerun_with_fewer_parts_leaves_no_stale_part(engine, s3):
    await add_events(engine, "2026-03-21 17:00:00+00", 2_500, 30)
    day = date(2026, 3, 22)
    prefix = "user-actions/year=2026/month=03/day=22/"
    await exporter(engine, s3, per_part=1000).run(day, "cli")
    assert len(objects(s3, prefix)) == 4
    await exporter(engine, s3, per_part=5000).run(day, "cli")
    assert sorted(objects(s3, prefix)) == [prefix + "_manifest.json", prefix + "part-00000.jsonl.gz"]


async def test_without_a_bucket_the_same_layout_goes_under_var_exports(engine, tmp_path):
    await add_events(engine, "2026-03-22 17:00:00+00", 1_200, 60)
    local = Exporter(engine, LocalStore(tmp_path / "exports"), ExportSettings(events_per_part=1000, retry_delay=0.01))
    run = await local.run(date(2026, 3, 23), "cli")
    assert (run.outcome, run.count, run.parts) == ("succeeded", 1_200, 2)
    folder = tmp_path / "exports" / "user-actions" / "year=2026" / "month=03" / "day=23"
    assert sorted(p.name for p in folder.iterdir()) == ["_manifest.json", "part-00000.jsonl.gz", "part-00001.jsonl.gz"]
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["count"] == 1_200
    first = (folder / "part-00000.jsonl.gz").read_bytes()
    assert manifest["parts"][0]["sha256"] == hashlib.sha256(first).hexdigest()
    assert len(lines(first)) == 1000


async def test_a_run_interrupted_by_its_process_ending_is_marked_by_the_next(engine, s3, db):
    day = date(2026, 5, 1)
    dead = ExportRun(day=day, trigger="cron", outcome="running", requested_at=func.now(), started_at=func.now())
    db.add(dead)
    await db.commit()
    await exporter(engine, s3).run(day, "cli")
    await db.refresh(dead)
    assert dead.outcome == "failed"
    assert re.match("interrupted", dead.error)


# --- The admin's panel: /admin/exports ----------------------------------------------------------------


async def test_the_exports_page_is_for_admins_only(client, db):
    visitor = await client.get("/admin/exports")
    assert visitor.status_code == 303 and visitor.headers["location"].startswith("/account/login?next_url=")
    token = await csrf_token(client)
    posted = await client.post("/admin/exports", data={"day": "2026-03-10", "_csrf_token": token})
    assert posted.status_code == 303 and posted.headers["location"].startswith("/account/login")

    settings_ = client.app.state.settings
    await signed_in(client, settings_, await make_user(db))
    assert (await client.get("/admin/exports")).status_code == 403
    assert (await client.get("/admin/exports/runs/1")).status_code == 403
    before = await db.scalar(select(func.count()).select_from(ExportRun))
    refused = await post_form(client, "/admin/exports", {"day": "2026-03-10"})
    assert refused.status_code == 403
    assert await db.scalar(select(func.count()).select_from(ExportRun)) == before


async def test_export_this_day_needs_the_csrf_token_and_a_real_past_day(client, db):
    await signed_in(client, client.app.state.settings, await make_user(db, Role.ADMIN))
    before = await db.scalar(select(func.count()).select_from(ExportRun))

    no_token = await client.post("/admin/exports", data={"day": "2026-03-10"})
    assert no_token.status_code == 403
    for day, message in [
        ("", "Choose a day to export (YYYY-MM-DD)."),
        ("2026-02-30", "Choose a day to export (YYYY-MM-DD)."),
        ("yesterday", "Choose a day to export (YYYY-MM-DD)."),
        ("2999-01-01", "That day has not begun in the shop yet."),
        ("1999-12-31", "Choose a day from 2020 on."),
    ]:
        answer = await post_form(client, "/admin/exports", {"day": day})
        assert answer.status_code == 400, day
        assert message in answer.text
    assert await db.scalar(select(func.count()).select_from(ExportRun)) == before


async def test_export_this_day_queues_the_job_which_runs_and_shows_its_outcome(
    client, db, settings, s3, moto_endpoint, monkeypatch
):
    monkeypatch.setenv("S3_BUCKET", BUCKET)
    monkeypatch.setenv("S3_ENDPOINT_URL", moto_endpoint)
    await add_events(engine_of(settings), "2026-03-24 17:00:00+00", 3_000, 20)
    admin = await make_user(db, Role.ADMIN)
    await signed_in(client, settings, admin)

    page = await client.get("/admin/exports")
    assert page.status_code == 200
    assert "Export this day" in page.text and 'name="_csrf_token"' in page.text

    pressed = await post_form(client, "/admin/exports", {"day": "2026-03-25"})
    assert pressed.status_code == 303 and pressed.headers["location"] == "/admin/exports"
    run = await db.scalar(select(ExportRun).where(ExportRun.day == date(2026, 3, 25)))
    assert (run.trigger, run.outcome, run.requested_by) == ("admin", "queued", admin.id)
    audit = (
        await db.execute(
            text(
                "SELECT actor_email, action, target_type, target_id, target_label FROM audit_entries"
                " WHERE action = 'analytics.export' ORDER BY id DESC LIMIT 1"
            )
        )
    ).one()
    assert tuple(audit) == (admin.email, "analytics.export", "export_run", str(run.id), "2026-03-25")

    listed = await client.get("/admin/exports")
    assert "Export of 2026-03-25 queued." in listed.text
    assert f'hx-get="/admin/exports/runs/{run.id}" hx-trigger="every 1s"' in listed.text
    assert "Queued" in listed.text

    succeeded_before = exports_counted("succeeded")
    await drain_queue(settings.redis_url)

    assert exports_counted("succeeded") == succeeded_before + 1  # /metrics: sweetdream_export_runs_total
    await db.refresh(run)
    assert (run.outcome, run.count, run.parts) == ("succeeded", 3_000, 1)
    row = await client.get(f"/admin/exports/runs/{run.id}", headers={"HX-Request": "true"})
    assert row.status_code == 200
    assert "Succeeded" in row.text and "3,000" in row.text and "hx-trigger" not in row.text
    assert sorted(objects(s3, "user-actions/year=2026/month=03/day=25/")) == [
        "user-actions/year=2026/month=03/day=25/_manifest.json",
        "user-actions/year=2026/month=03/day=25/part-00000.jsonl.gz",
    ]
    assert (await client.get("/admin/exports/runs/999999999")).status_code == 404
    # Past a bigint (the fuzzer found it a 500): no such run either.
    assert (await client.get("/admin/exports/runs/99999999999999999999")).status_code == 404


def exports_counted(outcome: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("sweetdream_export_runs_total", {"outcome": outcome}) or 0.0


async def test_the_nightly_cron_exports_the_shop_day_that_just_ended(settings, s3, moto_endpoint, monkeypatch, db):
    from arq.connections import ArqRedis

    from sweetdream.analytics.export import shop_day_window, shop_today
    from workers import jobs
    from workers.settings import WorkerSettings

    nightly = [job for job in WorkerSettings.cron_jobs if job.name == "cron:nightly_export"]
    assert len(nightly) == 1
    assert (nightly[0].hour, nightly[0].minute, nightly[0].second) == (17, 0, 0)  # 00:00 in the shop
    assert nightly[0].timeout_s == 301  # EXPORT_TIMEOUT_SECONDS + 1, not the deliveries' 61

    monkeypatch.setenv("S3_BUCKET", BUCKET)
    monkeypatch.setenv("S3_ENDPOINT_URL", moto_endpoint)
    yesterday = shop_today() - timedelta(days=1)
    start, end = shop_day_window(yesterday)
    engine = engine_of(settings)
    await add_events(engine, start.isoformat(), 2, 60)
    await add_events(engine, (end - timedelta(seconds=1)).isoformat(), 1, 1)
    ctx: dict[str, Any] = {"redis": ArqRedis.from_url(settings.redis_url), "job_id": "cron:nightly_export:test"}
    counted = exports_counted("succeeded")
    await jobs.startup(ctx)
    try:
        said = await jobs.nightly_export(ctx)
    finally:
        await jobs.shutdown(ctx)
        await ctx["redis"].aclose()
        await engine.dispose()
    run = await db.scalar(select(ExportRun).where(ExportRun.day == yesterday).order_by(ExportRun.id.desc()))
    assert (run.trigger, run.outcome) == ("cron", "succeeded")
    assert run.count >= 3
    assert said == f"{yesterday}: {run.count} events in 1 part(s)"
    assert exports_counted("succeeded") == counted + 1
    prefix = f"user-actions/year={yesterday:%Y}/month={yesterday:%m}/day={yesterday:%d}/"
    assert prefix + "_manifest.json" in objects(s3, prefix)


# --- By hand: sweetdream export ------------------------------------------------------------------------


def plain(output: str) -> str:
    """The CLI's output as words: without rich-click's error box, and lines joined."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", output).split())


async def test_the_cli_refuses_bad_dates_with_exit_code_2(app):
    for args, message in [
        (["--date", "2026-13-01"], "'2026-13-01' is not a date: write it as YYYY-MM-DD"),
        (["--date", "27/11/2026"], "'27/11/2026' is not a date"),
        (["--date", "2026-03-10", "--to", "2026-03-01"], "--to must be on or after --date."),
        (["--date", "2999-01-01"], "2999-01-01 has not begun in the shop yet"),
        (["--date", "2020-01-01", "--to", "2022-01-01"], "At most 366 days at a time."),
    ]:
        result = await cli(app, "export", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in plain(result.output), result.output


async def test_the_cli_exports_a_range_and_prints_a_summary(app, settings, s3, moto_endpoint, monkeypatch):
    await add_events(engine_of(settings), "2026-03-26 17:00:00+00", 1_500, 30)
    monkeypatch.setenv("S3_BUCKET", BUCKET)
    monkeypatch.setenv("S3_ENDPOINT_URL", moto_endpoint)
    from sweetdream.app import create_app
    from sweetdream.settings import Settings

    result = await cli(create_app(Settings.from_env()), "export", "--date", "2026-03-27", "--to", "2026-03-28")
    assert result.exit_code == 0, result.output
    output = plain(result.output)
    assert f"2026-03-27: 1,500 events in 1 part(s) to s3://{BUCKET}/" in output
    assert f"2026-03-28: 0 events in 0 part(s) to s3://{BUCKET}/" in output
    assert "Exported 2 of 2 day(s), 1,500 events; 0 failed." in output
    assert len(objects(s3, "user-actions/year=2026/month=03/day=27/")) == 2


async def test_the_cli_exports_today_so_far(app, settings, tmp_path, monkeypatch):
    from sweetdream.analytics.export import shop_today

    monkeypatch.delenv("S3_BUCKET", raising=False)
    today = shop_today()
    result = await cli(app, "export", "--date", today.isoformat())
    assert result.exit_code == 0, result.output
    assert f"{today.isoformat()}: " in plain(result.output)
    assert "Exported 1 of 1 day(s)" in plain(result.output)
