"""People read shop time (Asia/Ho_Chi_Minh, UTC+7 all year); the database stores UTC. (Vietnamese
format here; both languages in test_languages.py.)"""

from datetime import UTC, datetime, timedelta, timezone

from sweetdream.platform.shop_time import shop_date, shop_time

SHOP = "Asia/Ho_Chi_Minh"


def test_a_late_evening_in_utc_is_the_next_morning_in_the_shop():
    assert shop_time(datetime(2026, 11, 27, 23, 30, tzinfo=UTC), SHOP, "vi") == "28/11/2026 06:30"
    assert shop_date(datetime(2026, 11, 27, 23, 30, tzinfo=UTC), SHOP, "vi") == "28/11/2026"


def test_an_afternoon_in_utc_is_the_same_evening_in_the_shop():
    assert shop_time(datetime(2026, 11, 27, 15, 54, 59, tzinfo=UTC), SHOP, "vi") == "27/11/2026 22:54"
    assert shop_date(datetime(2026, 11, 27, 16, 59, tzinfo=UTC), SHOP, "vi") == "27/11/2026"
    assert shop_date(datetime(2026, 11, 27, 17, 0, tzinfo=UTC), SHOP, "vi") == "28/11/2026"


def test_a_year_ends_at_17_00_utc():
    assert shop_time(datetime(2026, 12, 31, 17, 0, tzinfo=UTC), SHOP, "vi") == "01/01/2027 00:00"


def test_a_time_given_in_another_zone_is_converted_too():
    paris = timezone(timedelta(hours=1))
    assert shop_time(datetime(2026, 11, 27, 23, 30, tzinfo=paris), SHOP, "vi") == "28/11/2026 05:30"


def test_a_naive_time_is_read_as_utc_as_stored():
    assert shop_time(datetime(2026, 11, 27, 23, 30), SHOP, "vi") == "28/11/2026 06:30"
