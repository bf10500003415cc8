"""A message's Message-ID is made from what it announces, the same on every attempt."""

from sweetdream.platform.mail import message_id

SHOP = "SweetDream <shop@sweetdream.example>"


def test_an_order_email_is_named_after_its_order_and_kind_in_the_senders_domain():
    key = "order:0c16478b-b276-44ca-bf0b-5b4a21ca1d36:confirmation"
    assert message_id(key, SHOP) == "<order-0c16478b-b276-44ca-bf0b-5b4a21ca1d36-confirmation@sweetdream.example>"
    assert message_id(key, SHOP) == message_id(key, SHOP)


def test_a_key_holding_an_address_gets_a_hash_so_ids_stay_distinct_and_valid():
    first = message_id("stock-low:e1:lan@example.com", SHOP)
    second = message_id("stock-low:e1:lan-example.com", SHOP)
    # 1cc876b8e6c1: the first 12 hex digits of sha256("stock-low:e1:lan@example.com") (sha256sum)
    assert first == "<stock-low-e1-lan-example.com.1cc876b8e6c1@sweetdream.example>"
    assert second == "<stock-low-e1-lan-example.com@sweetdream.example>"


def test_a_sender_without_a_domain_still_gives_a_valid_id():
    assert message_id("order:1:shipped", "SweetDream") == "<order-1-shipped@sweetdream>"
