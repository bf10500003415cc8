import pytest

from sweetdream.catalog.filters import ProductFilter, parse_filter
from sweetdream.catalog.money import format_vnd
from sweetdream.catalog.text import fold, search_tsquery_text, slugify


@pytest.mark.parametrize(
    ("text", "folded"),
    [("Bánh kem dâu tây", "banh kem dau tay"), ("ĐẬU ĐỎ", "dau do"), ("Phở", "pho"), ("plain", "plain")],
)
def test_fold_removes_vietnamese_diacritics_including_d_bar(text, folded):
    assert fold(text) == folded


def test_a_query_matches_its_finished_words_whole_and_the_last_as_a_prefix_and_drops_operators():
    assert search_tsquery_text("bánh ke") == "(banh) & (ke:*)"
    assert search_tsquery_text("bánh") == "(banh:*)"
    assert search_tsquery_text("a & b | !c:*") == "(a) & (b) & (c:*)"
    assert search_tsquery_text("'; DROP TABLE --") == "(drop) & (table:*)"
    assert search_tsquery_text("!!!") == ""


def test_a_synonym_expands_every_word_of_the_term_it_covers_once():
    synonyms = {"tra sua": ["milk tea"], "sua": ["milk", "milk tea"]}
    assert search_tsquery_text("Trà sữa ngon", synonyms) == (
        "(tra | (milk <-> tea)) & (sua | (milk <-> tea) | (milk)) & (ngon:*)"
    )


def test_slugify():
    assert slugify("Bánh Trung Thu Đặc Biệt!") == "banh-trung-thu-dac-biet"


def test_vnd_has_no_minor_unit_and_uses_dot_grouping():
    # Babel's VND format. Vietnamese: a non-breaking space (U+00A0) keeps "₫" on the line of its
    # number in narrow table cells. English: the sign first.
    assert format_vnd(299000, "vi") == "299.000\u00a0₫"
    assert format_vnd(0, "vi") == "0\u00a0₫"
    assert format_vnd(-1500, "vi") == "-1.500\u00a0₫"
    assert format_vnd(299000, "en") == "₫299,000"
    assert format_vnd(-1500, "en") == "-₫1,500"
    assert format_vnd(320000) == "₫320,000"  # no language given: the current one (English in these tests)
    assert " " not in format_vnd(1_250_000)  # no ordinary space a line could break at


@pytest.mark.parametrize("raw", ["-1", "abc", "0", "", "1e9", "99999999999"])
def test_bad_page_numbers_are_normalised(raw):
    view, errors = parse_filter({"page": raw})
    assert not errors
    assert 1 <= view.page <= 10_000


def test_unknown_sort_falls_back_to_best_match_with_or_without_a_query():
    assert parse_filter({"sort": "anything"})[0].sort == "relevance"
    assert parse_filter({"q": "kem", "sort": "anything"})[0].sort == "relevance"
    assert parse_filter({"sort": "newest"})[0].sort == "newest"
    assert ProductFilter(sort="relevance").url() == "/products"  # the default is left out of the URL
    assert ProductFilter(sort="newest").url() == "/products?sort=newest"


def test_price_that_is_not_a_number_is_an_error_for_that_field():
    view, errors = parse_filter({"min_price": "x", "max_price": "200.000"})
    assert errors.errors.keys() == {"min_price"}
    assert view.max_price == 200000


def test_min_above_max_is_an_error():
    _, errors = parse_filter({"min_price": "500000", "max_price": "100000"})
    assert "max_price" in errors.errors


def test_query_text_is_cleaned_and_bounded():
    view, _ = parse_filter({"q": "  bánh\x00  kem " + "x" * 5000})
    assert view.q.startswith("bánh kem")
    assert "\x00" not in view.q
    assert len(view.q) <= 100


def test_canonical_url_keeps_only_non_defaults_and_changes_page():
    view = ProductFilter(q="kem", category="banh-kem", sort="relevance", page=2)
    assert view.url() == "/products?q=kem&category=banh-kem&page=2"
    assert view.url(page=1) == "/products?q=kem&category=banh-kem"
