"""The ARQ worker: `sweetdream worker` (or `arq workers.settings.WorkerSettings`) runs this.

Graceful shutdown: on SIGTERM arq stops taking jobs and waits up to job_completion_wait for the
running ones (ECS gives the task 120 s before SIGKILL); a job still running then is cancelled and
queued again, and runs later with the same result (every job is idempotent).

A worker that is killed (SIGKILL, the host lost) leaves its running jobs marked in progress; arq
gives them to another worker when the mark expires, after the longest timeout of any function +
10 s. Every function here gets the same short timeout (jobs.arq_timeout: 61 s) but the export's
(jobs.export_timeout: 301 s). arq would make the mark 311 s for all: platform.queue.make_worker
keeps it at 71 s and the export renews its own mark while it runs.
"""

from __future__ import annotations

from arq import cron

from sweetdream.platform.queue import KEEP_RESULT_SECONDS, redis_settings
from sweetdream.settings import Settings
from workers import jobs

_settings = Settings.from_env()


class WorkerSettings:
    functions = [
        jobs.deliver_event_function(_settings),
        jobs.thumbnail_function(_settings),
        jobs.export_day_function(_settings),
    ]
    cron_jobs = [
        cron(jobs.sweep_outbox, second=0, run_at_startup=True),  # every minute
        cron(jobs.cancel_unpaid_orders, second=30),  # every minute
        cron(jobs.purge_carts, hour=20, minute=0, second=30),  # 03:00 in Asia/Ho_Chi_Minh
        cron(jobs.drain_analytics, second={5, 15, 25, 35, 45, 55}),  # every 10 s
        cron(jobs.analytics_partitions, minute=7, second=40, run_at_startup=True),  # hourly, and at start
        # 00:00 in the shop: the day that just ended, with the export's own (longer) time limit.
        cron(jobs.nightly_export, hour=17, minute=0, second=0, timeout=jobs.export_timeout(_settings)),
    ]
    on_startup = jobs.startup
    on_shutdown = jobs.shutdown
    redis_settings = redis_settings(_settings.redis_url or "redis://localhost:6379/0")
    max_tries = jobs.MAX_TRIES
    job_timeout = jobs.arq_timeout(_settings)  # the cron jobs' limit (they take well under a second)
    in_progress_timeout = jobs.in_progress_mark(_settings)  # 71 s, not the export's 301 + 10: see make_worker
    keep_result = KEEP_RESULT_SECONDS
    job_completion_wait = _settings.worker_shutdown_grace
    # arq polls the queue every poll_delay and takes up to max_jobs per poll: with its defaults
    # (0.5 s, 10) one worker can start at most 20 jobs a second, which capped the pipeline bench.
    poll_delay = 0.05
    max_jobs = 20
