"""The admin catalog's pure rules: prices as people type them, addresses and SKUs made from names,
the low-stock rule the alert and the admin's filter share, image keys."""

from datetime import UTC, datetime
from uuid import UUID

import pytest

from sweetdream.admin.catalog import local_time_value, parse_local_time, parse_product_form, parse_vnd
from sweetdream.catalog.images import is_key_for, thumbnail_key
from sweetdream.catalog.stock import crossed_low, is_low

PRODUCT = UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("typed", "price"),
    [
        ("299000", 299000),
        ("299.000", 299000),
        ("299 000 đ", 299000),
        ("299,000đ", 299000),
        ("1.250.000", 1250000),
        ("", None),
        ("-5", None),
        ("12abc", None),
        ("١٢٣", None),  # another script's digits
        ("9" * 10, None),
    ],
)
def test_a_price_is_read_as_people_write_vnd(typed, price):
    assert parse_vnd(typed) == price


def test_the_address_and_skus_are_made_from_the_name_without_diacritics():
    form = parse_product_form(
        {
            "name": "  Bánh  Đậu Xanh Đà Lạt ",
            "category": str(PRODUCT),
            "size-0-label": "Hộp 6",
            "size-0-price": "120.000",
        }
    )
    assert form.errors == {}
    assert form.parsed.name == "Bánh Đậu Xanh Đà Lạt"
    assert form.parsed.slug == "banh-dau-xanh-da-lat"
    (size,) = form.parsed.sizes
    assert (size.label, size.price, size.stock, size.threshold, size.sku) == (
        "Hộp 6",
        120000,
        0,
        3,
        "BANH-DAU-XANH-DA-LAT-HOP-6",
    )


def test_blank_size_rows_are_ignored_and_a_product_needs_one_size():
    form = parse_product_form({"name": "Cake", "category": str(PRODUCT), "size-0-label": "", "size-0-price": ""})
    assert form.errors == {"sizes": "A product needs at least one size."}


@pytest.mark.parametrize(
    ("level", "threshold", "low"), [(0, 0, True), (3, 3, True), (4, 3, False), (2, 3, True), (1, 0, False)]
)
def test_low_stock_is_at_or_below_the_threshold(level, threshold, low):
    assert is_low(level, threshold) is low


def test_an_alert_is_for_the_take_that_crosses_the_threshold_only():
    assert crossed_low(3, 3, 1) is True  # 4 -> 3
    assert crossed_low(2, 3, 1) is False  # 3 -> 2: already low
    assert crossed_low(1, 3, 5) is True  # 6 -> 1
    assert crossed_low(5, 3, 2) is False  # 7 -> 5


def test_image_keys_are_ours_and_for_this_product():
    key = f"media/products/{PRODUCT}/{'a' * 32}.png"
    assert is_key_for(key, PRODUCT)
    assert not is_key_for(key, UUID(int=1))
    assert not is_key_for(f"media/products/{PRODUCT}/../../x.png", PRODUCT)
    assert not is_key_for(f"media/products/{PRODUCT}/{'a' * 32}.svg", PRODUCT)
    assert thumbnail_key(key) == f"media/products/{PRODUCT}/{'a' * 32}-400.webp"


def test_a_class_start_is_typed_on_the_shops_clock_and_stored_in_utc():
    zone = "Asia/Ho_Chi_Minh"
    assert parse_local_time("2027-03-06T09:00", zone) == datetime(2027, 3, 6, 2, 0, tzinfo=UTC)
    assert parse_local_time("2027-03-06T09:00:30", zone) == datetime(2027, 3, 6, 2, 0, 30, tzinfo=UTC)
    assert parse_local_time("2027-03-06T06:30", zone) == datetime(2027, 3, 5, 23, 30, tzinfo=UTC)  # the day before
    for bad in ["", "2027-03-06", "06/03/2027 09:00", "2027-02-29T09:00", "1999-12-31T09:00", "2027-03-06T09:00Z"]:
        assert parse_local_time(bad, zone) is None, bad
    assert local_time_value(datetime(2027, 3, 5, 23, 30, tzinfo=UTC), zone) == "2027-03-06T06:30"
    assert local_time_value(None, zone) == ""


def test_a_bad_class_start_is_the_sizes_own_error():
    form = parse_product_form(
        {
            "name": "Class",
            "category": str(PRODUCT),
            "size-0-label": "Sáng thứ Bảy",
            "size-0-price": "850000",
            "size-0-starts": "saturday",
        }
    )
    assert form.errors == {"size-0-starts": "A date and time, for example 2027-03-06 09:00, or leave it empty."}
