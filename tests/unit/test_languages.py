"""The shop's two languages: which one a request gets, plurals, money and dates in each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sweetdream.catalog.money import format_vnd
from sweetdream.platform.i18n import choose_language, negotiate, ngettext, preferred_languages, use_language
from sweetdream.platform.shop_time import shop_date, shop_time, time_ago

SHOP = "Asia/Ho_Chi_Minh"
MOMENT = datetime(2026, 11, 27, 15, 54, tzinfo=UTC)  # 22:54 in Saigon


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("en-US,en;q=0.9", "en"),
        ("vi-VN,vi;q=0.9,en;q=0.8", "vi"),
        ("fr-FR,en;q=0.5", "en"),  # the first language the shop speaks
        ("en;q=0.3, vi;q=0.8", "vi"),  # by weight, not by order
        ("fr, de", None),
        ("en;q=0", None),  # q=0: "not English"
        ("", None),
        (None, None),
        ("EN-gb", "en"),
        (";;;,,q=x", None),
    ],
)
def test_accept_language_is_negotiated_with_babel(header, expected):
    assert negotiate(header) == expected


def test_preferred_languages_are_most_wanted_first():
    assert preferred_languages("da, en-gb;q=0.8, en;q=0.7, *;q=0.1") == ["da", "en-gb", "en"]


def test_the_shoppers_choice_then_their_profile_then_their_browser_then_vietnamese():
    assert choose_language("en", "vi", "vi") == "en"
    assert choose_language(None, "en", "vi") == "en"
    assert choose_language("klingon", None, "en-US") == "en"  # a forged cookie is ignored
    assert choose_language(None, None, "en-US") == "en"
    assert choose_language(None, None, "fr") == "vi"
    assert choose_language(None, None, None) == "vi"


def test_plurals_in_english_have_two_forms_and_in_vietnamese_one():
    with use_language("en"):
        assert ngettext("%(num)d product", "%(num)d products", 1) % {"num": 1} == "1 product"
        assert ngettext("%(num)d product", "%(num)d products", 2) % {"num": 2} == "2 products"
    with use_language("vi"):
        assert ngettext("%(num)d product", "%(num)d products", 1) % {"num": 1} == "1 sản phẩm"
        assert ngettext("%(num)d product", "%(num)d products", 5) % {"num": 5} == "5 sản phẩm"
        assert ngettext("%(num)d order", "%(num)d orders", 21) % {"num": 21} == "21 đơn hàng"


def test_money_in_each_language():
    assert format_vnd(320_000, "vi") == "320.000\u00a0₫"
    assert format_vnd(320_000, "en") == "₫320,000"
    with use_language("vi"):
        assert format_vnd(1_250_000) == "1.250.000\u00a0₫"


def test_dates_in_shop_time_in_each_language():
    assert shop_time(MOMENT, SHOP, "vi") == "27/11/2026 22:54"
    assert shop_date(MOMENT, SHOP, "vi") == "27/11/2026"
    assert shop_time(MOMENT, SHOP, "en") == "27 Nov 2026, 22:54"
    assert shop_date(MOMENT, SHOP, "en") == "27 Nov 2026"


def test_relative_times_in_each_language():
    assert time_ago(MOMENT - timedelta(minutes=5), now=MOMENT, language="vi") == "5 phút trước"
    assert time_ago(MOMENT - timedelta(minutes=5), now=MOMENT, language="en") == "5 minutes ago"
    assert time_ago(MOMENT - timedelta(hours=2), now=MOMENT, language="vi") == "2 giờ trước"
