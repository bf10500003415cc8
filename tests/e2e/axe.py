"""axe-core in a Playwright page: the accessibility rules a screen-reader or keyboard user depends on.

The shop's CSP (`script-src 'self'`) refuses injected scripts, so pages checked here must come from
a context opened with ``bypass_csp=True``; axe itself is vendored (tests/e2e/vendor/axe-core).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_SCRIPT = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"

# Every rule axe runs by default: WCAG 2.0-2.2 A and AA plus its best practices.
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(" ") + " | " + (n.failureSummary || "").replace(/\\s+/g, " ")),
  }));
}"""


def axe_violations(page: Page) -> list[str]:
    """What axe finds wrong on the page as it is now, one readable entry per rule and element."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_SCRIPT))
    found: list[dict[str, Any]] = page.evaluate(RUN_AXE)
    path = page.url.split("://", 1)[-1].split("/", 1)[-1]
    return [f"/{path}: {v['id']} ({v['impact']}): {v['help']}\n      " + "\n      ".join(v["nodes"]) for v in found]
