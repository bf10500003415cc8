"""Times as people read them: the database stores UTC, a person reads shop time (Asia/Ho_Chi_Minh).

Registered as the Jinja filters ``shop_time``, ``shop_date`` and ``time_ago`` for the pages (app.py)
and the emails (fulfillment/notifications.py), in the reader's language (platform/i18n.py), through
Babel:
- vi: "27/11/2026 22:54", "27/11/2026", "5 phút trước";
- en: "27 Nov 2026, 22:54", "27 Nov 2026", "5 minutes ago".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_timedelta

from sweetdream.platform.i18n import babel_locale, babel_locale_object, current_language

# Babel (CLDR) patterns per language: a 24-hour clock in both, the day first.
DATE_AND_TIME = {"vi": "dd/MM/yyyy HH:mm", "en": "d MMM yyyy, HH:mm"}
DATE = {"vi": "dd/MM/yyyy", "en": "d MMM yyyy"}


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)  # raises ZoneInfoNotFoundError at start-up for a zone the system lacks


def in_shop_time(moment: datetime, zone: str) -> datetime:
    """The same instant on the shop's clock. A naive value is read as UTC, the way it is stored."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_zone(zone))


def _pattern(patterns: dict[str, str], language: str | None) -> str:
    return patterns.get(language or current_language.get(), patterns["vi"])


def shop_time(moment: datetime, zone: str, language: str | None = None) -> str:
    return _formatted(moment, zone, _pattern(DATE_AND_TIME, language), babel_locale(language))


def shop_date(moment: datetime, zone: str, language: str | None = None) -> str:
    return _formatted(moment, zone, _pattern(DATE, language), babel_locale(language))


# Babel parses its locale and pattern on every call (~30 µs); an order page shows the same few moments
# on every load.
@lru_cache(maxsize=4096)
def _formatted(moment: datetime, zone: str, pattern: str, locale: str) -> str:
    return format_datetime(in_shop_time(moment, zone), pattern, locale=babel_locale_object(locale))


def time_ago(moment: datetime, now: datetime | None = None, language: str | None = None) -> str:
    """How long ago, as a person says it: "5 phút trước", "5 minutes ago"."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - (now or datetime.now(UTC))
    return format_timedelta(delta, add_direction=True, locale=babel_locale_object(babel_locale(language)))


def time_filters(zone: str) -> dict[str, Callable[[datetime], str]]:
    """The Jinja filters for one shop time zone; resolving the zone now fails fast on a bad name."""
    _zone(zone)
    return {
        "shop_time": lambda moment: shop_time(moment, zone),
        "shop_date": lambda moment: shop_date(moment, zone),
        "time_ago": lambda moment: time_ago(moment),
    }
