"""Order rules that need no database: who may move an order where, what people read, and the
test gateway's memory of money (a repeated refund answers as the first did)."""

import pytest

from sweetdream.orders.models import OrderStatus
from sweetdream.orders.services import CUSTOMER_CANCELLABLE, admin_moves
from sweetdream.payments import APPROVE_CARD, TestGateway


@pytest.mark.parametrize(
    ("status", "moves"),
    [
        ("PENDING", ["CANCELLED"]),
        ("PROCESSING", ["PREPARING", "CANCELLED"]),
        ("PREPARING", ["SHIPPED", "CANCELLED"]),
        ("SHIPPED", ["DELIVERED"]),
        ("DELIVERED", []),
        ("CANCELLED", []),
    ],
)
def test_admin_moves_leave_confirming_to_the_payment_and_put_cancel_last(status, moves):
    assert [m.value for m in admin_moves(OrderStatus(status))] == moves


def test_the_shopper_may_cancel_until_preparing_starts():
    assert sorted(s.value for s in CUSTOMER_CANCELLABLE) == ["PENDING", "PROCESSING"]


def test_people_read_status_labels():
    assert [s.label for s in OrderStatus] == [
        "Pending",
        "Confirmed",
        "Being prepared",
        "Shipped",
        "Delivered",
        "Cancelled",
    ]


async def test_the_test_gateway_refunds_a_charge_once_per_idempotency_key():
    gateway = TestGateway()
    token = gateway.tokenize(APPROVE_CARD)
    charge = await gateway.charge(token.token, 120_000, "VND", idempotency_key="SD-UNIT-1", attempt=1)
    assert charge.approved and charge.reference == "ch_test_SD-UNIT-1"
    assert TestGateway.charged["SD-UNIT-1"] == "ch_test_SD-UNIT-1"
    first = await gateway.refund(charge.reference, 120_000, idempotency_key="SD-UNIT-1-refund")
    again = await gateway.refund(charge.reference, 120_000, idempotency_key="SD-UNIT-1-refund")
    assert first == again and first.reference == "re_test_SD-UNIT-1-refund" and first.amount == 120_000
    assert [r for r in TestGateway.refunded.values() if r.charge_reference == "ch_test_SD-UNIT-1"] == [first]
    with pytest.raises(ValueError, match="its own charges"):
        await gateway.refund("ch_live_123", 1, idempotency_key="other")
