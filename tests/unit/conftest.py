"""Unit tests read the English source strings (the shop's default language is Vietnamese): each runs
in English unless it asks for a language itself (`use_language`, or a function's `language`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sweetdream.platform.i18n import use_language


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with use_language("en"):
        yield
