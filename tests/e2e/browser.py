"""Watching a browser page for what a shopper would see as breakage (used by conftest and tests)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Response


@dataclass
class BrowserProblems:
    """Console errors, uncaught exceptions and 5xx responses seen by the pages of one test."""

    allowed: list[re.Pattern[str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self._add(f"uncaught exception: {exc}"))
        page.on("response", self._on_response)
        return page

    def watch_context(self, context: BrowserContext) -> BrowserContext:
        for page in context.pages:
            self.watch(page)
        context.on("page", self.watch)
        return context

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self._add(f"console error: {message.text} (at {message.location.get('url', '?')})")

    def _on_response(self, response: Response) -> None:
        if response.status >= 500:
            self._add(f"{response.status} from {response.request.method} {response.url} (see var/test/e2e-server.log)")

    def _add(self, problem: str) -> None:
        if not any(pattern.search(problem) for pattern in self.allowed):
            self.problems.append(problem)
