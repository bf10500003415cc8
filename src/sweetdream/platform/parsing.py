"""Reading numbers and text out of a request, once and strictly.

Python's own checks accept far more than a shopper types: `"²".isdigit()` is true and `int("²")`
raises; `int()` takes `"١٢"` (Arabic-Indic digits), `"1_000"`, `" 12 "` and `"+1"`, and refuses
more than 4,300 digits with a ValueError. A number in a URL or a form is therefore read here:
ASCII 0-9 only, with a bound on its length, or nothing.

Control characters (NUL and the rest of C0, and DEL) are never typed into a form or a URL, and
PostgreSQL refuses NUL in text: a request carrying one is answered 400 before any work is done.
TAB, LF and CR are ordinary whitespace in a textarea and pass.
"""

from __future__ import annotations

import re

MAX_PAGE = 10_000
_PAGE_DIGITS = len(str(MAX_PAGE))
# C0 controls and DEL, except TAB (09), LF (0A) and CR (0D).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def is_ascii_digits(raw: str) -> bool:
    """Only the characters 0-9, at least one."""
    return raw.isascii() and raw.isdigit()


def parse_int(raw: str | None, *, max_digits: int) -> int | None:
    """A whole number written with 1 to `max_digits` ASCII digits; None for anything else
    (a sign, a space, an underscore, another script's digits, a longer string)."""
    if raw is None or not 0 < len(raw) <= max_digits or not is_ascii_digits(raw):
        return None
    return int(raw)


def parse_page(raw: str | None) -> int:
    """A page number from a URL, between 1 and MAX_PAGE.

    A page number is navigation, not data entry: our links carry valid ones, so anything else
    is a broken or hand-edited link, and the shopper is better served by the first page than by
    an error. Past the end is the last page we serve (`page=99999999` is MAX_PAGE).
    """
    if raw is not None and is_ascii_digits(raw) and len(raw) > _PAGE_DIGITS:
        return MAX_PAGE
    number = parse_int(raw, max_digits=_PAGE_DIGITS)
    return 1 if number is None else min(max(number, 1), MAX_PAGE)


def clean_text(value: str | None, limit: int) -> str:
    """What a person typed into a search box or filter: control characters dropped (PostgreSQL
    refuses a NUL, and none can match anything), spaces collapsed, at most `limit` characters."""
    if not value:
        return ""
    cleaned = "".join(ch for ch in value if ch.isprintable())
    return " ".join(cleaned.split())[:limit]


def has_control_characters(text: str) -> bool:
    """NUL, another C0 control character (TAB, LF and CR excepted) or DEL."""
    return _CONTROL.search(text) is not None


def forget_parsed_secrets() -> None:
    """Make Litestar parse forms and cookies without its memo.

    Litestar memoises `parse_url_encoded_form_data` and `parse_cookie_string` (an `lru_cache` of
    1,024 entries, keyed by the raw text), so each web process kept the last 1,024 form bodies
    (passwords, card numbers) and cookie headers (session ids) in memory as plain text: found by the
    soak bench, where every checkout's form stayed. A form is parsed once per request anyway, so the
    memo saves nothing here; the modules that imported the functions get the undecorated ones.
    """
    import litestar._kwargs.extractors as extractors
    import litestar._parsers as parsers
    import litestar.connection.base as connection_base
    import litestar.connection.request as connection_request
    import litestar.data_extractors as data_extractors

    form = parsers.parse_url_encoded_form_data
    cookies = parsers.parse_cookie_string
    for module in (parsers, extractors, connection_request):
        if hasattr(module, "parse_url_encoded_form_data"):
            module.parse_url_encoded_form_data = getattr(form, "__wrapped__", form)  # type: ignore[attr-defined]
    for module in (parsers, connection_base, data_extractors):
        if hasattr(module, "parse_cookie_string"):
            module.parse_cookie_string = getattr(cookies, "__wrapped__", cookies)  # type: ignore[attr-defined]
    for memo in (form, cookies):
        if hasattr(memo, "cache_clear"):
            memo.cache_clear()
