"""The insights' charts, drawn server-side by pygal as SVG documents with no script.

A chart is served as an image (`<img src="/admin/analytics/chart/<insight>.svg?...">`), not inlined
in the page: pygal styles its SVG with a `<style>` element, which the pages' CSP (`style-src 'self'`)
rightly refuses. The SVG response carries its own CSP instead (`CHART_CSP`: no script, no fetch, its
own inline style only), and an image can run nothing anyway. Each chart has the same numbers as a
table beside it and as a CSV download, so nothing is in the chart alone.
"""

from __future__ import annotations

import re

import pygal
from pygal.style import Style

from sweetdream.analytics.services import Insight
from sweetdream.platform.i18n import gettext as _

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S)
CHART_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#222222",
    foreground_strong="#111111",
    foreground_subtle="#555555",
    colors=("#8a3b12", "#2f6f8f", "#5b7d2a", "#7a4c9a"),
    font_family="system-ui, sans-serif",
)
# Which chart reads best for each insight, and which columns it draws (their index in the rows).
_KINDS: dict[str, tuple[type[pygal.graph.graph.Graph], tuple[int, ...]]] = {
    "views": (pygal.HorizontalBar, (0,)),
    "viewers": (pygal.HorizontalBar, (0,)),
    "cart": (pygal.HorizontalBar, (0,)),
    "purchases": (pygal.Bar, (0, 1)),
    "customers": (pygal.Bar, (0,)),
    "best-sellers": (pygal.HorizontalBar, (0,)),
    "categories": (pygal.Bar, (1,)),
    "funnel": (pygal.Bar, (0,)),
}


def chart_svg(answer: Insight, title: str) -> bytes:
    kind, columns = _KINDS[answer.key]
    chart = kind(
        style=_STYLE,
        width=720,
        height=360,
        title=title,
        show_legend=len(columns) > 1,
        legend_at_bottom=True,
        disable_xml_declaration=True,
        js=[],  # no script: an image runs none, and the CSP allows none
        x_label_rotation=45 if answer.key == "purchases" and len(answer.rows) > 7 else 0,
        print_values=False,
        no_data_text=_("No data for these days"),
        truncate_label=30,
    )
    rows = answer.rows[::-1] if kind is pygal.HorizontalBar else answer.rows  # the top one at the top
    chart.x_labels = [row.label for row in rows]
    for n, column in enumerate(columns):
        # The second series of a two-scale chart (orders and revenue) reads against its own axis.
        chart.add(_(answer.columns[column + 1]), [row.values[column] for row in rows], secondary=n > 0)
    # pygal always writes one <script> of its own configuration (for its tooltips): an image runs
    # none, and the chart needs none, so it goes.
    # (With no XML declaration pygal hands back text.)
    return _SCRIPT.sub("", str(chart.render())).encode()
