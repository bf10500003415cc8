"""Money is an integer in the currency's minor unit; VND has none (299000 is 299,000 ₫).

One helper shows it everywhere (pages, fragments, emails, cart notices): Babel's currency format
for the reader's language (platform/i18n.py):
- vi: "320.000 ₫" (dot thousands separator, a no-break space, then the sign);
- en: "₫320,000".
"""

from __future__ import annotations

from babel.numbers import format_currency

from sweetdream.platform.i18n import babel_locale


def format_vnd(amount: int, language: str | None = None) -> str:
    """`amount` đồng in `language` (default: the current request's or job's)."""
    return format_currency(amount, "VND", locale=babel_locale(language))
