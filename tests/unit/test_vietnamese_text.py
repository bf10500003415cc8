"""Vietnamese name order, exact-diacritic queries and synonym keys: literal lists written by hand."""

import random

import pytest

from sweetdream.catalog.text import (
    exact_prefix_tsquery,
    exact_text,
    has_diacritics,
    name_sort_key,
    spans_covering,
    synonym_key,
)

ALPHABET = [
    "a",
    "ă",
    "â",
    "b",
    "c",
    "d",
    "đ",
    "e",
    "ê",
    "g",
    "h",
    "i",
    "k",
    "l",
    "m",
    "n",
    "o",
    "ô",
    "ơ",
    "p",
    "q",
    "r",
    "s",
    "t",
    "u",
    "ư",
    "v",
    "x",
    "y",
]

# Real demo product names, in the order a Vietnamese shopper expects (written out by hand).
DEMO_NAMES_IN_ORDER = [
    "Bánh bao nhân đậu đỏ",
    "Bánh cuộn quế",
    "Bánh dẻo nhân hạt sen",
    "Bánh donut phủ socola",
    "Bánh đậu xanh Hải Dương",
    "Bánh kem bắp",
    "Bánh kem cà phê sữa đá",
    "Bánh Tiramisu",
    "Biscotti hạt dẻ cười",
    "Cà phê muối",
    "Cà phê sữa đá",
    "Cookie socola chip",
    "Hộp quà trung thu Trăng Vàng",
    "Lớp học làm bánh kem cơ bản",
    "Macaron Pháp nhiều vị",
    "Matcha latte",
    "Nước cam ép tươi",
    "Sinh tố bơ",
    "Socola nóng",
    "Trà đào cam sả",
    "Trà gừng mật ong",
    "Trà sữa trân châu đường đen",
    "Trà vải hoa hồng",
]


def vietnamese_sorted(items: list[str]) -> list[str]:
    shuffled = list(items)
    random.Random(14).shuffle(shuffled)
    return sorted(shuffled, key=name_sort_key)


def test_letters_follow_the_vietnamese_alphabet():
    assert vietnamese_sorted(ALPHABET) == ALPHABET
    assert vietnamese_sorted([letter.upper() for letter in ALPHABET]) == [letter.upper() for letter in ALPHABET]


def test_tones_come_after_the_letters_in_order_none_huyen_hoi_nga_sac_nang():
    assert vietnamese_sorted(["ma", "mà", "mả", "mã", "má", "mạ", "mai"]) == ["ma", "mà", "mả", "mã", "má", "mạ", "mai"]
    assert vietnamese_sorted(["bát", "bạt", "bắt", "bật", "bàn"]) == ["bàn", "bát", "bạt", "bắt", "bật"]


def test_case_does_not_decide_the_order_and_đ_comes_after_d():
    assert vietnamese_sorted(["Bánh Tiramisu", "Bánh bao"]) == ["Bánh bao", "Bánh Tiramisu"]
    assert vietnamese_sorted(["Đào", "Dừa", "dưa hấu", "Dâu"]) == ["Dâu", "Dừa", "dưa hấu", "Đào"]
    assert vietnamese_sorted(["Bánh", "Bánh bao", "Bánhbao"]) == ["Bánh", "Bánh bao", "Bánhbao"]


def test_demo_names_sort_the_vietnamese_way():
    assert vietnamese_sorted(DEMO_NAMES_IN_ORDER) == DEMO_NAMES_IN_ORDER


def test_a_name_typed_with_combining_marks_sorts_like_the_precomposed_one():
    assert name_sort_key("Ba\u0301nh") == name_sort_key("Bánh")


def test_exact_words_keep_diacritics_and_spot_them():
    assert exact_text("Bánh  KEM Dâu-tây!") == "bánh kem dâu tây"
    assert exact_prefix_tsquery("Dâu tây") == "dâu:* | tây:*"
    assert exact_prefix_tsquery("a & b | !c:*'") == "a:* | b:* | c:*"
    assert has_diacritics("dâu") and has_diacritics("Đa") and not has_diacritics("dau tay")


@pytest.mark.parametrize("typed", ["Sô cô la", "so co la", "SÔ  CÔ LA", "sô-cô-la"])
def test_a_synonym_key_ignores_accents_case_and_punctuation(typed):
    assert synonym_key(typed) == "so co la"


def test_each_word_is_covered_by_every_run_of_words_around_it():
    assert spans_covering(["tra", "sua", "ngon"]) == [
        ["tra", "tra sua", "tra sua ngon"],
        ["tra sua", "tra sua ngon", "sua", "sua ngon"],
        ["tra sua ngon", "sua ngon", "ngon"],
    ]
