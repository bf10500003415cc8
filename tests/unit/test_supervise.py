"""Backoff rules: a dev-runner child that keeps dying, a worker that cannot reach Redis."""

import subprocess
import sys

from sweetdream.platform.supervise import Child, restart_delay


def test_restart_delay_doubles_from_one_second_up_to_thirty():
    assert [restart_delay(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def dead_child(started_at: float, quick_deaths: int) -> Child:
    child = Child("worker", [sys.executable, "-c", "pass"], env={})
    child.process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    child.process.wait()
    child.started_at = started_at
    child.quick_deaths = quick_deaths
    return child


def test_a_child_that_dies_quickly_again_waits_longer_and_one_that_ran_a_while_starts_over():
    said: list[str] = []
    quick = dead_child(started_at=100.0, quick_deaths=2)
    quick.check(now=105.0, say=said.append)
    assert quick.restart_at == 109.0  # third quick death: 4 s
    settled = dead_child(started_at=100.0, quick_deaths=5)
    settled.check(now=400.0, say=said.append)
    assert settled.restart_at == 401.0  # ran 300 s: back to 1 s
    assert said == [
        "worker exited with code 3 after 5 s; restarting in 4 s",
        "worker exited with code 3 after 300 s; restarting in 1 s",
    ]


def test_a_child_is_started_again_when_its_pause_is_over():
    child = dead_child(started_at=100.0, quick_deaths=0)
    child.check(now=101.0, say=lambda _: None)
    first = child.process
    child.check(now=101.5, say=lambda _: None)
    assert child.process is first  # still pausing
    child.check(now=102.0, say=lambda _: None)
    assert child.process is not first and child.started_at == 102.0 and child.restart_at is None
    child.process.wait()


def test_the_worker_tries_redis_again_after_one_second_doubling_up_to_thirty():
    from sweetdream.platform.queue import reconnect_delay

    assert [reconnect_delay(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
