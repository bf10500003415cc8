"""Times as people read them: the database stores UTC, a person reads shop time (Asia/Ho_Chi_Minh).

Registered as the Jinja filters ``shop_time`` ("27/11/2026 22:54") and ``shop_date`` ("27/11/2026")
for the pages (app.py) and the emails (fulfillment/notifications.py). The formats live here, in one
place, for the day they follow the reader's language.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo

DATE_AND_TIME = "%d/%m/%Y %H:%M"
DATE = "%d/%m/%Y"


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)  # raises ZoneInfoNotFoundError at start-up for a zone the system lacks


def in_shop_time(moment: datetime, zone: str) -> datetime:
    """The same instant on the shop's clock. A naive value is read as UTC, the way it is stored."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_zone(zone))


def shop_time(moment: datetime, zone: str) -> str:
    return in_shop_time(moment, zone).strftime(DATE_AND_TIME)


def shop_date(moment: datetime, zone: str) -> str:
    return in_shop_time(moment, zone).strftime(DATE)


def time_filters(zone: str) -> dict[str, Callable[[datetime], str]]:
    """The Jinja filters for one shop time zone; resolving the zone now fails fast on a bad name."""
    _zone(zone)
    return {"shop_time": lambda moment: shop_time(moment, zone), "shop_date": lambda moment: shop_date(moment, zone)}
