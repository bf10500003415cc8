"""What the shopper reviewed at checkout (orders/review.py): the digest, its readable copy, and
the differences shown when the order changed before they placed it."""

from uuid import UUID

from sweetdream.orders.review import (
    ORDER_CHANGED,
    PRICES_CHANGED,
    LineChange,
    Review,
    SeenLine,
    changes_between,
    parse_review,
)

CAKE = UUID("00000000-0000-0000-0000-000000000001")
BUN = UUID("00000000-0000-0000-0000-000000000002")
TART = UUID("00000000-0000-0000-0000-000000000003")


def reviewed(*lines: SeenLine, fee: int = 30_000, total: int | None = None) -> Review:
    subtotal = sum(line.quantity * line.unit_price for line in lines)
    return Review(lines, fee, subtotal + fee if total is None else total)


def cake(quantity: int = 2, price: int = 60_000) -> SeenLine:
    return SeenLine(CAKE, quantity, price, "Bánh bò (M)")


def bun(quantity: int = 1, price: int = 150_000) -> SeenLine:
    return SeenLine(BUN, quantity, price, "Bông lan (S)")


def test_the_digest_is_pinned_so_a_release_does_not_invalidate_open_checkout_pages():
    assert reviewed(cake(), bun()).digest == "d8cf179e8021cd767c05b776b1f7209b"


def test_the_digest_follows_what_is_charged_not_the_order_of_lines_or_their_names():
    base = reviewed(cake(), bun())
    assert reviewed(bun(), cake()).digest == base.digest
    assert reviewed(SeenLine(CAKE, 2, 60_000, "Renamed (M)"), bun()).digest == base.digest
    different = [
        reviewed(cake(price=61_000), bun()),
        reviewed(cake(quantity=3), bun()),
        reviewed(cake()),
        reviewed(cake(), bun(), fee=0),
        reviewed(cake(), bun(), total=1),
    ]
    assert len({r.digest for r in different} | {base.digest}) == 6


def test_the_readable_copy_reads_back_as_written():
    review = reviewed(cake(), bun())
    assert parse_review(review.encode()) == review


def test_a_copy_that_is_not_ours_reads_as_unknown():
    for text in [
        "",
        "{not json",
        "[]",
        '{"lines": [{"variant": 7}]}',
        '{"lines": [], "shipping_fee": -1, "total": 0}',
        '{"lines": [], "shipping_fee": true, "total": 0}',
        '{"lines": [{"variant": "x", "quantity": 1, "price": 1, "name": "a"}], "shipping_fee": 0, "total": 1}',
        '{"lines": [], "shipping_fee": 0, "total": 0, "pad": "' + "x" * 20_000 + '"}',
    ]:
        assert parse_review(text) is None, text


def test_a_raised_price_is_a_price_change_on_its_line_and_the_total():
    changes = changes_between(reviewed(cake(), bun()), reviewed(cake(price=75_000), bun()))
    assert changes.lines == {CAKE: LineChange(old_price=60_000)}
    assert (changes.old_total, changes.old_shipping_fee, changes.removed) == (300_000, None, [])
    assert changes.headline == PRICES_CHANGED


def test_lines_added_removed_or_changed_in_quantity_are_an_order_change():
    seen = reviewed(cake(), bun())
    now = reviewed(cake(quantity=3), SeenLine(TART, 1, 45_000, "Bánh tart (L)"))
    changes = changes_between(seen, now)
    assert changes.lines == {CAKE: LineChange(old_quantity=2), TART: LineChange(added=True)}
    assert changes.removed == [bun()]
    assert changes.headline == ORDER_CHANGED


def test_a_fee_change_alone_is_a_price_change_and_unknown_review_shows_no_detail():
    changes = changes_between(reviewed(cake(), fee=30_000), reviewed(cake(), fee=0))
    assert (changes.lines, changes.old_shipping_fee, changes.old_total) == ({}, 30_000, 150_000)
    assert changes.headline == PRICES_CHANGED
    unknown = changes_between(None, reviewed(cake()))
    assert (unknown.lines, unknown.removed, unknown.old_total, unknown.headline) == ({}, [], None, PRICES_CHANGED)
