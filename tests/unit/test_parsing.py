"""Numbers and text read from requests: what a shopper can send, and what we make of it."""

import pytest

from sweetdream.cart.web import _quantity
from sweetdream.catalog.filters import parse_filter
from sweetdream.payments import luhn_valid
from sweetdream.platform.parsing import has_control_characters, parse_int, parse_page


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0", 0), ("7", 7), ("007", 7), ("12345", 12345), ("99999", 99999)],
)
def test_ascii_digits_are_a_number(raw, expected):
    assert parse_int(raw, max_digits=5) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "²",  # SUPERSCRIPT TWO: "²".isdigit() is True, int("²") raises
        "١٢",  # Arabic-Indic twelve: int("١٢") == 12
        "٣",
        "1_000",  # int("1_000") == 1000
        " 12 ",  # int(" 12 ") == 12
        "12 ",
        "-1",
        "+1",
        "1.5",
        "1e3",
        "0x10",
        "１２",  # full-width digits
        "123456",  # one digit more than allowed
        "9" * 5000,  # int() refuses more than 4,300 digits with a ValueError
    ],
)
def test_anything_else_is_not_a_number(raw):
    assert parse_int(raw, max_digits=5) is None


@pytest.mark.parametrize(
    ("raw", "page"),
    [
        ("1", 1),
        ("3", 3),
        ("10000", 10_000),
        ("0", 1),
        ("10001", 10_000),
        ("99999999", 10_000),
        ("9" * 5000, 10_000),
        ("²", 1),
        ("١٢", 1),
        ("1_000", 1),
        (" 12 ", 1),
        ("-1", 1),
        ("+1", 1),
        ("", 1),
        (None, 1),
    ],
)
def test_a_page_number_is_clamped_and_anything_unreadable_is_the_first_page(raw, page):
    assert parse_page(raw) == page


@pytest.mark.parametrize("raw", ["²", "١٢", "1_000", "9" * 5000, "-1", "+1"])
def test_the_catalog_reads_any_page_number_without_failing(raw):
    view, errors = parse_filter({"page": raw})
    assert not errors
    assert view.page in {1, 10_000}


@pytest.mark.parametrize("raw", ["²", "١٢", "1_000", "-1", "+1", "1e5"])
def test_a_price_that_is_not_ascii_digits_is_an_error_beside_its_field(raw):
    view, errors = parse_filter({"min_price": raw})
    assert errors.errors == {"min_price": "Enter a whole number of đồng, for example 150000."}
    assert view.min_price is None


def test_a_price_of_five_thousand_digits_is_too_large():
    _, errors = parse_filter({"max_price": "9" * 5000})
    assert errors.errors == {"max_price": "That price is too large."}


def test_prices_keep_their_thousands_separators_and_spaces():
    view, errors = parse_filter({"min_price": " 150.000 ", "max_price": "1,000,000"})
    assert not errors
    assert (view.min_price, view.max_price) == (150_000, 1_000_000)


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("12", 12), (" 3 ", 3), ("999", 999)])
def test_a_cart_quantity_is_up_to_three_ascii_digits(raw, expected):
    assert _quantity(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "²", "١٢", "1_000", "1000", "9" * 5000, "-1", "+1"])
def test_any_other_cart_quantity_is_refused(raw):
    assert _quantity(raw) is None


@pytest.mark.parametrize("number", ["4242424242424242", "4000000000000002"])
def test_card_numbers_pass_the_luhn_check(number):
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["424242424242424²", "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢", "4242424242424241", ""])
def test_look_alike_digits_are_not_a_card_number(number):
    assert not luhn_valid(number)


@pytest.mark.parametrize("text", ["\x00", "a\x00b", "\x01", "\x08", "\x0b", "\x0c", "\x1b[31m", "\x1f", "\x7f"])
def test_control_characters_are_found(text):
    assert has_control_characters(text)


@pytest.mark.parametrize("text", ["", "Lan Nguyễn", "line one\nline two\r\n", "a\tb", "😀", "\u202e", "²"])
def test_text_and_whitespace_are_not_control_characters(text):
    assert not has_control_characters(text)
