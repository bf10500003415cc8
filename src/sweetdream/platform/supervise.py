"""The dev runner's children (web server, worker): started together, each restarted when it dies,
all stopped together.

A child that dies on its own (a crash, `kill -9`) is started again after a pause that doubles
with each quick death (1 s, 2 s, 4 s ... at most MAX_DELAY), so a child that cannot start does not
spin; one that ran for STABLE_AFTER seconds before dying starts again from 1 s. Ctrl-C or SIGTERM
stops every child (SIGTERM, then SIGKILL after STOP_TIMEOUT) and nothing is restarted.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0
STOP_TIMEOUT = 20.0
TICK = 0.5


def restart_delay(quick_deaths: int) -> float:
    """Seconds before restarting a child that died `quick_deaths` times in a row without
    running STABLE_AFTER seconds in between (1 for the first death)."""
    return min(FIRST_DELAY * 2 ** (quick_deaths - 1), MAX_DELAY)


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None
    spawn: Callable[..., subprocess.Popen[bytes]] = field(default=subprocess.Popen, repr=False)

    def start(self, now: float) -> None:
        self.process = self.spawn(self.command, env=self.env)
        self.started_at = now
        self.restart_at = None

    def check(self, now: float, say: Callable[[str], None]) -> None:
        """Notice a death and schedule the restart; restart when its time has come."""
        if self.process is not None and self.restart_at is None and self.process.poll() is not None:
            ran = now - self.started_at
            self.quick_deaths = 1 if ran >= STABLE_AFTER else self.quick_deaths + 1
            delay = restart_delay(self.quick_deaths)
            self.restart_at = now + delay
            code = self.process.returncode
            say(f"{self.name} exited with code {code} after {ran:.0f} s; restarting in {delay:.0f} s")
        if self.restart_at is not None and now >= self.restart_at:
            self.start(now)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def reap(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def supervise(children: list[Child], say: Callable[[str], None]) -> None:
    """Start the children and keep them running until Ctrl-C or SIGTERM; then stop them all."""
    stop_requested: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop_requested.append(signum))
    # A shell starting us in the background ignores SIGINT; Ctrl-C must still stop everything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for child in children:
            child.start(time.monotonic())
        while not stop_requested:
            time.sleep(TICK)
            for child in children:
                child.check(time.monotonic(), say)
    except KeyboardInterrupt:
        pass
    finally:
        # Ctrl-C reaches us twice (from the terminal and forwarded by `uv run`), and SIGTERM may
        # follow: none of them may interrupt the clean-up, or a child could be left running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in children:
            child.stop()
        for child in children:
            child.reap()
