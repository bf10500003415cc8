"""Money is an integer in the currency's minor unit; VND has none (299000 is 299,000 ₫).

One helper shows it everywhere (pages, fragments, emails, cart notices): Babel's currency format
for the reader's language (platform/i18n.py):
- vi: "320.000 ₫" (dot thousands separator, a no-break space, then the sign);
- en: "₫320,000".
"""

from __future__ import annotations

from functools import lru_cache

from babel.numbers import format_currency

from sweetdream.platform.i18n import babel_locale, babel_locale_object


def format_vnd(amount: int, language: str | None = None) -> str:
    """`amount` đồng in `language` (default: the current request's or job's)."""
    return _formatted(amount, babel_locale(language))


# Babel takes ~0.1 ms a call; a shop shows the same few prices again and again.
@lru_cache(maxsize=8192)
def _formatted(amount: int, locale: str) -> str:
    return format_currency(amount, "VND", locale=babel_locale_object(locale))
