"""CodeDeploy lifecycle hook: check the replacement task set on the test listener before traffic moves.

CodeDeploy invokes this Lambda at `AfterAllowTestTraffic` (and `BeforeAllowTraffic`, see
deploy/codedeploy/appspec.yaml) while the green task set answers only on the ALB's test listener.
It fetches `/ready` (database and Redis reachable), the product list and the first product page it
links to, and a static asset, then reports Succeeded or Failed to CodeDeploy; Failed stops the
deployment and rolls it back before a shopper sees the new code.

Standard library plus boto3 (both in the Lambda Python runtime). Settings, from the environment:
TEST_BASE_URL (https://shop.example:8443), PRODUCTS_PATH (/products), STATIC_PATH
(/static/css/app.css), TIMEOUT_SECONDS (5).
"""

from __future__ import annotations

import json
import logging
import os
import re
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger()
log.setLevel(logging.INFO)

PRODUCT_LINK = re.compile(r'href="(/products/[a-z0-9][a-z0-9-]*)"')


class HookReporter(Protocol):
    def put_lifecycle_event_hook_execution_status(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Page:
    status: int
    content_type: str
    body: bytes


def fetch(url: str, timeout: float) -> Page:
    """GET url; an HTTP error status is a Page, a network failure raises OSError."""
    request = urllib.request.Request(url, headers={"User-Agent": "sweetdream-bluegreen-hook"})  # noqa: S310
    context = ssl.create_default_context()
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            return Page(response.status, response.headers.get("Content-Type", ""), response.read())
    except urllib.error.HTTPError as error:
        return Page(error.code, error.headers.get("Content-Type", ""), error.read())


def check_ready(base: str, timeout: float) -> list[str]:
    page = fetch(base + "/ready", timeout)
    if page.status != 200:
        return [f"/ready answered {page.status}: {page.body[:200].decode(errors='replace')}"]
    try:
        checks = json.loads(page.body)
    except ValueError:
        return ["/ready did not answer JSON"]
    broken = sorted(name for name, state in checks.items() if state != "ok")
    return [f"/ready reports {', '.join(broken)} not ok"] if broken else []


def check_product_page(base: str, products_path: str, timeout: float) -> list[str]:
    listing = fetch(base + products_path, timeout)
    if listing.status != 200 or "text/html" not in listing.content_type:
        return [f"{products_path} answered {listing.status} ({listing.content_type or 'no content type'})"]
    link = PRODUCT_LINK.search(listing.body.decode(errors="replace"))
    if link is None:
        return [f"{products_path} links to no product page"]
    product = fetch(base + link.group(1), timeout)
    if product.status != 200 or "text/html" not in product.content_type:
        return [f"{link.group(1)} answered {product.status}"]
    return []


def check_static(base: str, static_path: str, timeout: float) -> list[str]:
    asset = fetch(base + static_path, timeout)
    if asset.status != 200 or not asset.body:
        return [f"{static_path} answered {asset.status} with {len(asset.body)} bytes"]
    return []


def run_checks(base: str, products_path: str, static_path: str, timeout: float) -> list[str]:
    """Every problem found on the test listener; empty when the new task set is fit for traffic."""
    base = base.rstrip("/")
    problems: list[str] = []
    for check in (
        lambda: check_ready(base, timeout),
        lambda: check_product_page(base, products_path, timeout),
        lambda: check_static(base, static_path, timeout),
    ):
        try:
            problems += check()
        except OSError as error:  # refused, reset, timed out, TLS: the task set is not fit either
            problems.append(f"request failed: {type(error).__name__}: {error}")
    return problems


def handle(event: dict[str, Any], reporter: HookReporter, environ: dict[str, str]) -> str:
    problems = run_checks(
        environ["TEST_BASE_URL"],
        environ.get("PRODUCTS_PATH", "/products"),
        environ.get("STATIC_PATH", "/static/css/app.css"),
        float(environ.get("TIMEOUT_SECONDS", "5")),
    )
    status = "Failed" if problems else "Succeeded"
    for problem in problems:
        log.error("blue/green check failed: %s", problem)
    reporter.put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status,
    )
    log.info("deployment %s: %s", event["DeploymentId"], status)
    return status


def handler(event: dict[str, Any], context: object) -> str:
    import boto3  # in the Lambda runtime; imported here so the checks run without it

    return handle(event, boto3.client("codedeploy"), dict(os.environ))
