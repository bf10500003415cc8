"""The shop's languages: gettext with Babel catalogs under ``locales/``; Vietnamese by default.

The language of the current request (or job) lives in a context variable, so ``gettext`` in Python and
``{{ _("...") }}`` / ``{% trans %}`` in templates both read it without passing it around. Code that
renders for someone else (an email to a shopper) sets it with ``use_language``.

Scaffold: catalogs are loaded when compiled ``.mo`` files exist; otherwise the source (English)
strings are shown. The language negotiation, the switch and the catalogs come with #14.
"""

from __future__ import annotations

import gettext as _gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
LOCALES_DIR = Path(__file__).resolve().parents[3] / "locales"
DOMAIN = "messages"

current_language: ContextVar[str] = ContextVar("current_language", default=DEFAULT_LANGUAGE)


@cache
def translations(language: str) -> _gettext.NullTranslations:
    return _gettext.translation(DOMAIN, localedir=LOCALES_DIR, languages=[language], fallback=True)


def gettext(message: str) -> str:
    return translations(current_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language.get()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    return translations(current_language.get()).pgettext(context, message)


def npgettext(context: str, singular: str, plural: str, n: int) -> str:
    return translations(current_language.get()).npgettext(context, singular, plural, n)


_ = gettext


def gettext_noop(message: str) -> str:
    """Marks a string for extraction where it is defined; it is translated where it is shown."""
    return message


@contextmanager
def use_language(language: str) -> Iterator[None]:
    token = current_language.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)
    try:
        yield
    finally:
        current_language.reset(token)
