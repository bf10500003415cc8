"""`sweetdream worker`, SIGKILLed by its own mail backend the moment a message is written.

The audit saw a confirmation go out twice after a worker was killed between sending and
committing; this is that worker, made exact: `python -m tests.integration.worker_killed_after_sending`
with the environment of a real worker (test_reliability starts it).
"""

from __future__ import annotations

import os
import signal
import sys
from email.message import EmailMessage
from typing import Any

from sweetdream.platform.mail import FileMailer
from workers import jobs
from workers.settings import WorkerSettings


class KilledAfterSending(FileMailer):
    async def send(self, message: EmailMessage) -> None:
        await super().send(message)
        os.kill(os.getpid(), signal.SIGKILL)


async def startup(ctx: dict[str, Any]) -> None:
    await jobs.startup(ctx)
    notifier = jobs.state(ctx).fulfillment.notifier
    notifier.mailer = KilledAfterSending(notifier.mailer.directory)  # type: ignore[attr-defined]


if __name__ == "__main__":
    WorkerSettings.on_startup = startup
    from sweetdream.cli import main

    sys.argv = ["sweetdream", "worker"]
    main()
