"""The blue/green hook (deploy/hooks/smoke.py) against a real local HTTP server standing in for
the replacement task set on the test listener; CodeDeploy is a recorder of the status it is sent."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

HOOK = Path(__file__).resolve().parents[2] / "deploy" / "hooks" / "smoke.py"
EVENT = {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "hook-1"}

HEALTHY: dict[str, tuple[int, str, bytes]] = {
    "/ready": (200, "application/json", b'{"database": "ok", "redis": "ok"}'),
    "/products": (200, "text/html; charset=utf-8", b'<a href="/products/banh-cuon-que">Banh cuon que</a>'),
    "/products/banh-cuon-que": (200, "text/html; charset=utf-8", b"<h1>Banh cuon que</h1>"),
    "/static/css/app.css": (200, "text/css", b"body { margin: 0 }"),
}


def load_hook():
    spec = importlib.util.spec_from_file_location("smoke_hook", HOOK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class CodeDeployRecorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def put_lifecycle_event_hook_execution_status(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@pytest.fixture
def site() -> Iterator[tuple[str, dict[str, tuple[int, str, bytes]]]]:
    """A server answering from a dict the test may change: path -> (status, content type, body)."""
    pages = dict(HEALTHY)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content_type, body = pages.get(self.path, (404, "text/html", b"not found"))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", pages
    finally:
        server.shutdown()
        server.server_close()


def run(base: str) -> tuple[str, CodeDeployRecorder]:
    recorder = CodeDeployRecorder()
    status = load_hook().handle(EVENT, recorder, {"TEST_BASE_URL": base + "/", "TIMEOUT_SECONDS": "2"})
    return status, recorder


def test_healthy_task_set_lets_the_deployment_go_on(site):
    base, _ = site
    status, recorder = run(base)
    assert status == "Succeeded"
    assert recorder.calls == [
        {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "hook-1", "status": "Succeeded"}
    ]


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        ("/ready", (503, "application/json", b'{"database": "unavailable: OSError", "redis": "ok"}')),
        ("/ready", (200, "application/json", b'{"database": "ok", "redis": "unavailable: TimeoutError"}')),
        ("/ready", (200, "text/html", b"<html>maintenance</html>")),
        ("/products", (500, "text/html", b"Internal Server Error")),
        ("/products", (200, "text/html", b"<p>No products</p>")),
        ("/products/banh-cuon-que", (404, "text/html", b"not found")),
        ("/products/banh-cuon-que", (200, "application/json", b"{}")),
        ("/static/css/app.css", (404, "text/html", b"not found")),
        ("/static/css/app.css", (200, "text/css", b"")),
    ],
    ids=[
        "db-down",
        "redis-down",
        "ready-not-json",
        "listing-500",
        "listing-without-products",
        "product-404",
        "product-not-html",
        "asset-missing",
        "asset-empty",
    ],
)
def test_any_wrong_answer_fails_the_deployment(site, path, answer):
    base, pages = site
    pages[path] = answer
    status, recorder = run(base)
    assert status == "Failed"
    assert [call["status"] for call in recorder.calls] == ["Failed"]
    assert recorder.calls[0]["deploymentId"] == "d-ABC123"


def test_nothing_listening_fails_the_deployment():
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_port
    status, recorder = run(f"http://127.0.0.1:{port}")
    assert status == "Failed"
    assert recorder.calls[0]["status"] == "Failed"


def test_problems_name_what_is_wrong(site):
    base, pages = site
    pages["/ready"] = (503, "application/json", b'{"database": "unavailable: OSError", "redis": "ok"}')
    pages["/static/css/app.css"] = (404, "text/html", b"")
    problems = load_hook().run_checks(base, "/products", "/static/css/app.css", 2)
    assert len(problems) == 2
    assert problems[0].startswith("/ready answered 503")
    assert problems[1] == "/static/css/app.css answered 404 with 0 bytes"
