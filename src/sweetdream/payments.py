"""Payments, in one module of their own (checkout, the worker and the app use it; no domain reaches
another's for it): reading the card fields a shopper typed, the gateway interface, and a built-in
test gateway that behaves like public gateways' test modes (one approving card number, one
declining, one that fails transiently).

A card number is handed to the gateway once, at checkout (or when the shopper pays again after
a decline), and exchanged for a token and the last four digits; only those are stored. The worker
later charges the token, and refunds the charge when a paid order is cancelled.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Protocol

from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop
from sweetdream.platform.parsing import is_ascii_digits

# The test gateway's cards (the same numbers Stripe's test mode uses).
APPROVE_CARD = "4242424242424242"
DECLINE_CARD = "4000000000000002"
TRANSIENT_CARD = "4000000000000119"  # fails with a processing error on the first attempt, then approves


CARD_FIELDS = ("card_number", "card_expiry", "card_cvc")
EXPIRY = re.compile(r"^(0[1-9]|1[0-2])\s*/\s*(\d{2})$")


class GatewayUnavailable(RuntimeError):
    """A transient failure (timeout, processing error): the same charge may be retried later."""


@dataclass(frozen=True)
class CardToken:
    token: str
    last4: str


@dataclass(frozen=True)
class ChargeResult:
    approved: bool
    reference: str = ""
    reason: str = ""


@dataclass(frozen=True)
class RefundResult:
    reference: str  # the gateway's id of the refund
    charge_reference: str
    amount: int


class PaymentGateway(Protocol):
    def tokenize(self, number: str) -> CardToken: ...

    async def charge(self, token: str, amount: int, currency: str, idempotency_key: str, attempt: int) -> ChargeResult:
        """Charge `amount` (minor units). The idempotency key makes a repeated charge a no-op
        at the gateway; `attempt` counts from 1. Raises GatewayUnavailable on a transient failure."""
        ...

    async def refund(self, reference: str, amount: int, idempotency_key: str) -> RefundResult:
        """Give back `amount` of the charge `reference`. The idempotency key makes a repeated
        refund a no-op that answers as the first did. Raises GatewayUnavailable on a transient
        failure; any other error is permanent (the job fails and is listed for the staff)."""
        ...


def luhn_valid(number: str) -> bool:
    if not is_ascii_digits(number) or not 12 <= len(number) <= 19:  # "²".isdigit() is true
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def parse_card(data: dict[str, str], today: datetime | None = None) -> tuple[str, dict[str, str]]:
    """The card number, if the card fields are valid. The number is only ever handed to the
    gateway; it is never stored, logged or sent back in a re-rendered form."""
    errors: dict[str, str] = {}
    number = re.sub(r"[\s-]", "", data.get("card_number", ""))
    if not luhn_valid(number):
        errors["card_number"] = _("Enter the 16-digit number on the front of your card.")
    expiry = EXPIRY.match(data.get("card_expiry", "").strip())
    now = today or datetime.now(UTC)
    if expiry is None:
        errors["card_expiry"] = _("Enter the expiry date as MM/YY, for example 08/29.")
    elif (2000 + int(expiry.group(2)), int(expiry.group(1))) < (now.year, now.month):
        errors["card_expiry"] = _("This card has expired.")
    if not re.fullmatch(r"\d{3,4}", data.get("card_cvc", "").strip()):
        errors["card_cvc"] = _("Enter the 3 digits on the back of your card.")
    return number, errors


class TestGateway:
    """Deterministic test mode. The token carries the card's behaviour, as test tokens such as
    Stripe's `tok_chargeDeclined` do. Like a real gateway's dashboard, it remembers the approved
    charges and the refunds by idempotency key (for this process: the worker's, or a test's that
    runs the worker), so a repeated call answers as the first did and tests can read the money."""

    __test__ = False  # not a pytest class

    _BEHAVIOUR = {DECLINE_CARD: "decline", TRANSIENT_CARD: "transient"}
    charged: ClassVar[dict[str, str]] = {}  # idempotency key -> charge reference
    refunded: ClassVar[dict[str, RefundResult]] = {}  # idempotency key -> refund
    _lock: ClassVar[threading.Lock] = threading.Lock()  # workers may run on several threads in tests

    def tokenize(self, number: str) -> CardToken:
        behaviour = self._BEHAVIOUR.get(number, "approve")
        return CardToken(token=f"tok_test_{behaviour}_{secrets.token_hex(8)}", last4=number[-4:])

    async def charge(self, token: str, amount: int, currency: str, idempotency_key: str, attempt: int) -> ChargeResult:
        if not token.startswith("tok_test_"):
            return ChargeResult(approved=False, reason=gettext_noop("The payment details could not be read."))
        behaviour = token.split("_")[2]
        if behaviour == "transient" and attempt < 2:
            raise GatewayUnavailable("processing_error: the card network did not answer in time")
        if behaviour == "decline":
            return ChargeResult(approved=False, reason=gettext_noop("Your card was declined by the bank."))
        reference = f"ch_test_{idempotency_key}"
        with self._lock:
            self.charged[idempotency_key] = reference
        return ChargeResult(approved=True, reference=reference)

    async def refund(self, reference: str, amount: int, idempotency_key: str) -> RefundResult:
        with self._lock:
            done = self.refunded.get(idempotency_key)
            if done is not None:
                return done
            if not reference.startswith("ch_test_"):  # a charge of this mode (kept across restarts or not)
                raise ValueError("the test gateway can only refund its own charges")
            result = RefundResult(reference=f"re_test_{idempotency_key}", charge_reference=reference, amount=amount)
            self.refunded[idempotency_key] = result
            return result


def gateway_for(name: str) -> PaymentGateway:
    if name == "test":
        return TestGateway()
    raise ValueError(f"unknown PAYMENT_GATEWAY {name!r} (available: test)")
