"""Browser journeys against the real server, started as production starts it (granian, one worker).

The stack (embedded PostgreSQL + Redis, a fresh migrated and seeded database) comes from
tests.support; the server runs in a subprocess with the environment start_test_stack set.
Every test that uses ``page`` fails if the page logs a console error (a CSP violation included:
our policy forbids inline scripts and styles), throws an uncaught exception, or gets a 5xx.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from sweetdream.cli import granian_command
from sweetdream.platform.i18n import use_language
from sweetdream.settings import PROJECT_ROOT
from tests.e2e.browser import BrowserProblems
from tests.support import TEST_VAR, start_test_stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SERVER_LOG = TEST_VAR / "e2e-server.log"  # the server's own log of the last run (var/ is not committed)
STARTUP_TIMEOUT = float(os.environ.get("SWEETDREAM_E2E_STARTUP_TIMEOUT", "30"))
# Playwright's 5 s default is tight on a busy 2-core machine; a passing assertion never waits for it.
EXPECT_TIMEOUT_MS = 10_000


def pytest_configure(config: pytest.Config) -> None:
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    config.addinivalue_line(
        "markers",
        "allow_console_errors(*patterns): console errors matching one of these regexes do not fail the test",
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer /health within {STARTUP_TIMEOUT:.0f}s:\n{_tail(log_path)}")


def _tail(log_path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


@pytest.fixture(scope="session")
def live_server() -> Iterator[str]:
    """The base URL of a granian server on a fresh, seeded database."""
    stack = start_test_stack()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = SERVER_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = granian_command("127.0.0.1", port, workers=1)
    try:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT
            )
        try:
            _wait_until_healthy(url, process, log_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
    finally:
        stack.close()


@pytest.fixture(scope="module", autouse=True)
def _fresh_rate_limits(live_server: str) -> None:
    """Each journey file starts with the shop's rate limits cleared: every browser here comes from
    127.0.0.1, and the journeys together register more accounts than one address may in an hour
    (5; platform/ratelimit.py). Within a file the limits hold, as for a real shopper."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        keys = list(client.scan_iter("rl:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def base_url(live_server: str) -> str:
    """pytest-playwright resolves page.goto("/products") against this."""
    return live_server


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """Browsers ask for English (the shop's default is Vietnamese): the journeys assert English text.
    tests/e2e/test_language.py asks for Vietnamese itself."""
    return {**browser_context_args, "locale": "en-US"}


@pytest.fixture(scope="session", autouse=True)
def _english_in_the_test_process() -> Iterator[None]:
    """What a test computes to compare with the page (`format_vnd(price)`) is in the page's language."""
    with use_language("en"):
        yield


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {**browser_type_launch_args, "args": CHROMIUM_ARGS}
    if CHROMIUM.exists():
        args["executable_path"] = str(CHROMIUM)
    return args


@pytest.fixture
def console_errors(request: pytest.FixtureRequest) -> Iterator[BrowserProblems]:
    """Collects browser problems; the test fails at teardown if any were seen.

    Pages of the ``page`` fixture are watched automatically; call ``console_errors.watch_context``
    for contexts a test creates itself.
    """
    allowed = [
        re.compile(pattern) for marker in request.node.iter_markers("allow_console_errors") for pattern in marker.args
    ]
    problems = BrowserProblems(allowed=allowed)
    yield problems
    if problems.problems:
        pytest.fail("The browser reported problems:\n" + "\n".join(problems.problems), pytrace=False)


@pytest.fixture(autouse=True)
def _watch_page(request: pytest.FixtureRequest) -> None:
    if "page" in request.fixturenames:
        problems: BrowserProblems = request.getfixturevalue("console_errors")
        problems.watch_context(request.getfixturevalue("context"))
