"""The shop's languages: gettext with Babel catalogs under ``locales/``; Vietnamese by default.

The language of the current request (or job) lives in a context variable, so ``gettext`` in Python and
``{{ _("...") }}`` / ``{% trans %}`` in templates both read it without passing it around. Code that
renders for someone else (an email to a shopper) sets it with ``use_language``.

Which language a request gets (`choose_language`): the shopper's choice in the ``sd_lang`` cookie (the
switch in the header sets it), else the signed-in user's saved language (``users.language``), else the
browser's ``Accept-Language`` (Babel's ``negotiate_locale``), else Vietnamese. `language_middleware`
sets it from the cookie and the header for every request (cached pages, 404s and errors included);
`accounts.web.current_user_middleware` refines it with the user's saved language once the user is
loaded. Catalogs are compiled by ``make install`` (``pybabel compile``); without them the source
(English) strings show.
"""

from __future__ import annotations

import gettext as _gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, negotiate_locale
from jinja2 import pass_context
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.runtime import Context
from litestar.types import ASGIApp, Receive, Scope, Send
from markupsafe import Markup

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
# The names the switch shows: each in its own language, so a reader finds theirs whatever the page's.
LANGUAGE_NAMES = {"vi": "Tiếng Việt", "en": "English"}
# Babel locales for numbers, money and dates.
BABEL_LOCALES = {"vi": "vi_VN", "en": "en"}
LOCALES_DIR = Path(__file__).resolve().parents[3] / "locales"
DOMAIN = "messages"
COOKIE = "sd_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
MAX_ACCEPT_LANGUAGE = 500  # longer headers are read up to here: nobody prefers 50 languages

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


@pass_context
def template_gettext(context: Context, message: str, **variables: Any) -> str:
    """`{{ _(...) }}` and `{% trans %}` in templates, as jinja2's "newstyle" gettext does them: the
    translation marked safe when autoescaping, then always formatted with the variables (escaped).
    Without jinja2's two indirections per call (`_` looks `gettext` up in the context, which calls
    the translation through the context): a page calls it dozens of times, and those calls were a
    quarter of rendering the checkout page (issue #13). `_("text")` itself compiles to the filter
    `translate` (`GettextAsFilter`); this is for `_(a_variable)`."""
    return translate(context, message, **variables)


# (language, message) -> the translation marked safe: the same few hundred strings on every page.
_MARKED: dict[tuple[str, str], Markup] = {}
_MARKED_MAX = 10_000


@pass_context  # not pass_eval_context: jinja2 would run the filter on a literal once, when compiling
def translate(context: Context, message: str, **variables: Any) -> str:
    """The filter `_("text", ...)` compiles to (`GettextAsFilter`): `template_gettext`'s result."""
    if not context.eval_ctx.autoescape:
        return gettext(message) % variables
    key = (current_language.get(), message)
    marked = _MARKED.get(key)
    if marked is None:
        # The catalogs are our own text, as jinja2 marks them. A message in a variable (a status
        # label) is one of ours too, so the memo stays as small as the catalog.
        if len(_MARKED) >= _MARKED_MAX:  # a template passing text that is not ours: never grow without end
            _MARKED.clear()
        marked = _MARKED[key] = Markup(gettext(message))  # noqa: S704
    if not variables and "%" not in marked:  # most calls: nothing to format (and `%` would copy it)
        return marked
    return marked % variables  # the variables are escaped by `%`


_CALL = ["lparen", "string", "rparen"]
_CALL_WITH_VALUES = ["lparen", "string", "comma"]


class GettextAsFilter(Extension):
    """Compiles `_("text")` and `_("text", name=value, ...)` as `("text" | translate(name=value))`.

    jinja2 sends every function call in a template through `Context.call`, which inspects the
    function each time; a filter is called directly. The order page calls `_` twenty times, and
    those calls were a fifth of its render (issue #13). The source keeps `_("...")`, so pybabel
    still extracts the messages; `_` with anything but a string first (`_(label)`) stays a call."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        tokens = list(stream)
        depth = 0  # how many parens are open
        closes: list[int] = []  # the depths at which `translate(` was opened: its `)` needs a second one
        i = 0
        while i < len(tokens):
            token = tokens[i]
            after = [t.type for t in tokens[i + 1 : i + 4]]
            if token.type == "name" and token.value == "_" and after in (_CALL, _CALL_WITH_VALUES):
                line = token.lineno
                yield from (Token(line, "lparen", "("), tokens[i + 2], Token(line, "pipe", "|"))
                yield Token(line, "name", "translate")
                if after == _CALL:  # _("text") -> ("text" | translate)
                    yield Token(line, "rparen", ")")
                else:  # _("text", a=b) -> ("text" | translate(a=b))
                    yield Token(line, "lparen", "(")
                    depth += 2
                    closes.append(depth)
                i += 4
                continue
            yield token
            if token.type == "lparen":
                depth += 1
            elif token.type == "rparen":
                if closes and closes[-1] == depth:  # it closed `translate(`: close the paren around it too
                    closes.pop()
                    yield Token(token.lineno, "rparen", ")")
                    depth -= 1
                depth -= 1
            i += 1


def gettext_noop(message: str) -> str:
    """Marks a string for extraction where it is defined; it is translated where it is shown."""
    return message


def babel_locale(language: str | None = None) -> str:
    return BABEL_LOCALES.get(language or current_language.get(), BABEL_LOCALES[DEFAULT_LANGUAGE])


@lru_cache(maxsize=8)
def babel_locale_object(name: str) -> Locale:
    """Babel's `Locale` for a `babel_locale` name, parsed once (Babel parses a name on every call)."""
    return Locale.parse(name)


@contextmanager
def use_language(language: str | None) -> Iterator[None]:
    token = current_language.set(supported(language) or DEFAULT_LANGUAGE)
    try:
        yield
    finally:
        current_language.reset(token)


def supported(language: str | None) -> str | None:
    """`language` if the shop speaks it, else None."""
    return language if language in LANGUAGES else None


def preferred_languages(header: str | None) -> list[str]:
    """The language tags of an Accept-Language header, most wanted first ("q=0" means not wanted)."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "")[:MAX_ACCEPT_LANGUAGE].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag.strip().lower()))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(header: str | None) -> str | None:
    """The shop's language the browser prefers most ("en-US,en;q=0.9" -> "en"), or None."""
    return _negotiate((header or "")[:MAX_ACCEPT_LANGUAGE])


@lru_cache(maxsize=1024)  # browsers send a handful of distinct headers; ~40 µs saved a request
def _negotiate(header: str) -> str | None:
    found = negotiate_locale(preferred_languages(header), list(LANGUAGES), sep="-")
    return supported(found)


def choose_language(cookie: str | None, saved: str | None, accept_language: str | None) -> str:
    """The shopper's choice, else their saved language, else their browser's, else Vietnamese."""
    return supported(cookie) or supported(saved) or negotiate(accept_language) or DEFAULT_LANGUAGE


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cookie_choice(scope: Scope) -> str | None:
    """The language in the switch's cookie, if any (read without parsing every cookie)."""
    raw = _header(scope, b"cookie")
    if not raw or COOKIE not in raw:
        return None
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return supported(value.strip())
    return None


def language_middleware(app: ASGIApp) -> ASGIApp:
    """Every request speaks the language of its cookie or Accept-Language (the user's saved language
    is added later, by the current-user middleware). Outermost, so cached pages and 404s follow it."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        language = choose_language(cookie_choice(scope), None, _header(scope, b"accept-language"))
        token = current_language.set(language)
        try:
            await app(scope, receive, send)
        finally:
            current_language.reset(token)

    return middleware


def translate_known(text: str) -> str:
    """Stored text the shop itself wrote from a fixed list (an order event's title, a gateway's
    decline reason: marked with `gettext_noop` where written) in the reader's language; anything
    else (a note an admin typed) as it is."""
    return gettext(text) if text else text
