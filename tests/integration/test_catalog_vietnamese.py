"""Vietnamese search through real HTTP: exact diacritics rank first, synonyms widen a query."""

import pytest
from sqlalchemy import delete, select

from sweetdream.catalog.models import Product, SearchSynonym
from tests.integration.factories import make_product
from tests.integration.helpers import cli
from tests.integration.test_catalog import count_queries, names, total

STRAWBERRY = {"Bánh kem dâu tây", "Bánh quy mứt dâu", "Macaron Pháp nhiều vị"}  # "dâu" in name or description
BEAN = "Bánh bao nhân đậu đỏ"
SOCOLA = {
    "Bánh kem socola Bỉ",
    "Bánh mì socola xoắn",
    "Bánh donut phủ socola",
    "Cookie socola chip",
    "Bánh trung thu socola",
    "Socola nóng",
}


async def test_a_query_with_diacritics_ranks_exact_words_first(client):
    r = await client.get("/products", params={"q": "dâu"})
    found = names(r.text)
    assert set(found[:3]) == STRAWBERRY, found
    assert BEAN in found[3:]


async def test_a_query_without_diacritics_still_finds_both(client):
    found = names((await client.get("/products", params={"q": "dau"})).text)
    assert "Bánh kem dâu tây" in found and BEAN in found


@pytest.mark.parametrize("query", ["chocolate", "sô cô la", "so co la", "socola"])
async def test_chocolate_socola_and_so_co_la_find_the_same_products(client, query):
    found = set(names((await client.get("/products", params={"q": query})).text))
    assert found >= SOCOLA, SOCOLA - found


async def test_a_synonym_added_by_the_cli_takes_effect_on_the_next_search(client, app, db):
    before = await client.get("/products", params={"q": "gato"})
    assert names(before.text) == []
    try:
        added = await cli(app, "synonyms", "add", "gato", "Bánh kem")
        assert added.exit_code == 0, added.output
        assert "gato -> Bánh kem" in added.output
        listed = await cli(app, "synonyms", "list")
        assert "gato -> Bánh kem" in listed.output and "cake -> bánh kem" in listed.output
        after = await client.get("/products", params={"q": "gato"})
        assert "Bánh kem dâu tây" in names(after.text)
        assert "Cà phê sữa đá" not in names(after.text)

        removed = await cli(app, "synonyms", "remove", "GATO")
        assert removed.exit_code == 0 and "Removed 1 synonym(s)." in removed.output
        assert names((await client.get("/products", params={"q": "gato"})).text) == []
    finally:
        await db.execute(delete(SearchSynonym).where(SearchSynonym.term_key == "gato"))
        await db.commit()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["synonyms", "add", "!!!", "bánh"], "letters or digits on both sides"),
        (["synonyms", "add", "Bánh", "banh"], "the same words"),
        (["synonyms", "remove", "no-such-term"], "No synonym for 'no-such-term'"),
    ],
)
async def test_a_bad_synonym_command_says_why_and_changes_nothing(client, app, args, message):
    before = (await cli(app, "synonyms", "list")).output
    result = await cli(app, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert (await cli(app, "synonyms", "list")).output == before


async def test_a_term_of_several_words_expands_as_a_phrase(client, app, db):
    try:
        assert (await cli(app, "synonyms", "add", "boba", "trân châu")).exit_code == 0
        found = names((await client.get("/products", params={"q": "boba"})).text)
        assert found == ["Trà sữa trân châu đường đen"]
    finally:
        await db.execute(delete(SearchSynonym).where(SearchSynonym.term_key == "boba"))
        await db.commit()


@pytest.mark.parametrize(
    "url", ["/products?q=dâu", "/products?q=chocolate&sort=name", "/products?q=tra+sua&category=do-uong"]
)
async def test_a_search_page_stays_within_three_queries(client, app, url):
    with count_queries(app) as statements:
        r = await client.get(url)
    assert r.status_code == 200 and total(r.text) >= 0
    assert len(statements) <= 3, statements


async def test_a_demo_product_reads_in_vietnamese_then_english(client):
    page = (await client.get("/products/banh-kem-dau-tay")).text
    assert (
        '<p class="description">Cốt bông lan vani mềm ẩm, kem tươi ít ngọt và dâu tây Đà Lạt tươi mỗi ngày.</p>'
        '<p class="description">Soft vanilla sponge, light fresh cream and Da Lat strawberries picked daily.</p>'
    ) in page


async def test_writing_a_name_writes_its_sort_key(db):
    product, _ = await make_product(db, active=False)
    product.name = "Ăn vặt"  # as the admin product editor will
    await db.commit()
    stored = await db.scalar(select(Product.name_sort_key).where(Product.id == product.id))
    assert stored == "BR!]BZ 00050"  # ă n | v ặ t, then the tones: only ặ has one (nặng)
