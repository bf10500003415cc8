"""`/admin/analytics`: the seven insights for a range of shop days, each as a chart (an SVG image), a
table and a CSV download. ADMIN only, read only."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from sweetdream.accounts.guards import requires_admin
from sweetdream.analytics import services
from sweetdream.analytics.charts import CHART_CSP, chart_svg
from sweetdream.analytics.export_web import export_panel
from sweetdream.analytics.services import INSIGHTS, Span
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop as N_
from sweetdream.platform.web import BadRequest, render

# The longest custom range: a bit more than a year (the retention default is 400 days).
MAX_DAYS = 400
RANGES = {"today": 1, "7d": 7, "30d": 30}
TITLES = {
    "views": N_("Most viewed products"),
    "viewers": N_("Top viewers (signed in)"),
    "cart": N_("Cart additions"),
    "purchases": N_("Purchases and revenue per day"),
    "customers": N_("Customer frequency"),
    "best-sellers": N_("Best sellers"),
    "categories": N_("Category performance"),
    "funnel": N_("Funnel: view, cart, checkout, order"),
}


@dataclass(frozen=True)
class Chosen:
    """The range as asked for (to fill the form and build links) and the days it covers."""

    name: str
    span: Span
    raw_from: str = ""
    raw_to: str = ""

    def query(self) -> str:
        if self.name == "custom":
            return f"range=custom&from={self.span.first.isoformat()}&to={self.span.last.isoformat()}"
        return f"range={self.name}"


def _day(raw: str, what: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(_("Enter the %(what)s date as YYYY-MM-DD.") % {"what": what}) from None


def parse_range(params: dict[str, str], today: date) -> Chosen:
    """`range=today|7d|30d` (the last N shop days, today included) or `range=custom&from=&to=`."""
    name = params.get("range", "7d") or "7d"
    if name in RANGES:
        return Chosen(name, Span(today - timedelta(days=RANGES[name] - 1), today))
    if name != "custom":
        raise BadRequest(_("Choose today, 7 days, 30 days or a custom range."))
    raw_from, raw_to = params.get("from", "").strip(), params.get("to", "").strip()
    first, last = _day(raw_from, _("from")), _day(raw_to, _("to"))
    if first > last:
        raise BadRequest(_("The range must start on or before the day it ends."))
    if (last - first).days + 1 > MAX_DAYS:
        raise BadRequest(_("Choose at most %(days)d days.") % {"days": MAX_DAYS})
    return Chosen(name, Span(first, last), raw_from, raw_to)


def _chosen(request: Request) -> Chosen:
    zone = request.app.state.settings.shop_timezone
    params = {key: request.query_params.get(key, "") for key in ("range", "from", "to")}
    return parse_range(params, services.shop_day(datetime.now(UTC), zone))


def _insight_key(raw: str, suffix: str) -> str:
    key = raw.removesuffix(suffix)
    if not raw.endswith(suffix) or key not in INSIGHTS:
        raise NotFoundException(_("No such insight."))
    return key


def insight_csv(answer: services.Insight) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_(column) for column in answer.columns])
    for row in answer.rows:
        # A label is data (a product, an email): a spreadsheet must never read it as a formula.
        label = "'" + row.label if row.label[:1] in ("=", "+", "-", "@") else row.label
        writer.writerow([_(label) if answer.key in ("customers", "funnel") else label, *row.values])
    return out.getvalue()


class AnalyticsController(Controller):
    path = "/admin/analytics"
    guards = [requires_admin]

    @get("/", name="admin-analytics")
    async def page(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        chosen = _chosen(request)
        answers = await services.all_insights(db_session, chosen.span)
        return render(
            request,
            "analytics/index.html",
            chosen=chosen,
            answers=answers,
            titles=TITLES,
            ranges=[("today", _("Today")), ("7d", _("7 days")), ("30d", _("30 days")), ("custom", _("Custom"))],
            **await export_panel(db_session),  # "Export this day" and the recent runs
        )

    @get("/chart/{name:str}", name="admin-analytics-chart")
    async def chart(
        self, request: Request, name: FromPath[str], db_session: NamedDependency[AsyncSession]
    ) -> Response[bytes]:
        key = _insight_key(name, ".svg")
        answer = await services.insight(db_session, key, _chosen(request).span)
        return Response(
            chart_svg(answer, _(TITLES[key])),
            media_type="image/svg+xml",
            headers={"content-security-policy": CHART_CSP, "cache-control": "private, max-age=60"},
        )

    @get("/{name:str}", name="admin-analytics-csv")
    async def csv(
        self, request: Request, name: FromPath[str], db_session: NamedDependency[AsyncSession]
    ) -> Response[str]:
        key = _insight_key(name, ".csv")
        chosen = _chosen(request)
        answer = await services.insight(db_session, key, chosen.span)
        filename = f"{key}_{chosen.span.first.isoformat()}_{chosen.span.last.isoformat()}.csv"
        return Response(
            insight_csv(answer),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )
