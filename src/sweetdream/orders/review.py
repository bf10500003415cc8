"""What the shopper reviewed at checkout: a price or a line that changes before they submit is
shown to them and confirmed, never charged silently.

The checkout page carries a digest of what it showed (each line's size, quantity and unit price,
the shipping fee and the total) in the hidden field `reviewed`. Placing the order recomputes the
digest from the lines the order is written from; if they differ, nothing is placed. The page also
carries the same lines in readable form (`reviewed_lines`), used only to show the shopper what
changed: prices are always the database's, never anything the form sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from uuid import UUID

import msgspec

from sweetdream.cart.services import CartView
from sweetdream.platform.i18n import gettext as _
from sweetdream.platform.i18n import gettext_noop

DIGEST = re.compile(r"[0-9a-f]{32}")  # fullmatch: what `Review.digest` writes
PRICES_CHANGED = gettext_noop("Prices changed since you reviewed your order: please check and place it again.")
ORDER_CHANGED = gettext_noop("Your order changed since you reviewed it: please check and place it again.")
UNREADABLE = gettext_noop(
    "We could not tell which prices you reviewed: please check your order below and place it again."
)
MAX_LINES_TEXT = 20_000  # a cart holds a few dozen lines at most; anything longer is not ours


@dataclass(frozen=True)
class SeenLine:
    variant_id: UUID
    quantity: int
    unit_price: int
    name: str  # "Bánh bò (M)": shown if the line has gone since


@dataclass(frozen=True)
class Review:
    """The lines, shipping fee and total as the checkout page showed them."""

    lines: tuple[SeenLine, ...]
    shipping_fee: int
    total: int

    @property
    def digest(self) -> str:
        """A short fingerprint of what is charged: sizes, quantities, prices, fee and total (not names)."""
        parts = [f"{line.variant_id}:{line.quantity}:{line.unit_price}" for line in self._by_variant()]
        text = "|".join([*parts, f"fee:{self.shipping_fee}", f"total:{self.total}"])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def encode(self) -> str:
        """The readable form the page carries in `reviewed_lines`."""
        lines = [
            {"variant": str(line.variant_id), "quantity": line.quantity, "price": line.unit_price, "name": line.name}
            for line in self.lines
        ]
        return msgspec.json.encode({"lines": lines, "shipping_fee": self.shipping_fee, "total": self.total}).decode()

    def _by_variant(self) -> list[SeenLine]:
        return sorted(self.lines, key=lambda line: str(line.variant_id))


def review_of(cart: CartView, shipping_fee: int, total: int) -> Review:
    lines = tuple(
        SeenLine(line.variant_id, line.quantity, line.unit_price, f"{line.product_name} ({line.size_label})")
        for line in cart.lines
    )
    return Review(lines, shipping_fee, total)


def parse_review(text: str) -> Review | None:
    """`reviewed_lines` as the form sent it back, or None if it is not what a page of ours wrote."""
    if not text or len(text) > MAX_LINES_TEXT:
        return None
    try:
        data = json.loads(text)
        lines = tuple(
            SeenLine(UUID(item["variant"]), _count(item["quantity"]), _count(item["price"]), str(item["name"])[:250])
            for item in data["lines"]
        )
        return Review(lines, _count(data["shipping_fee"]), _count(data["total"]))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("not a count")
    return value


@dataclass(frozen=True)
class LineChange:
    old_price: int | None = None  # the unit price the shopper saw, if it has changed
    old_quantity: int | None = None  # the quantity they saw, if it has changed
    added: bool = False  # not on the page they reviewed


@dataclass
class Changes:
    """What differs between the reviewed page and the order as it would be placed now."""

    lines: dict[UUID, LineChange] = field(default_factory=dict)
    removed: list[SeenLine] = field(default_factory=list)
    old_shipping_fee: int | None = None
    old_total: int | None = None

    @property
    def headline(self) -> str:
        prices = any(change.old_price is not None for change in self.lines.values())
        lines = self.removed or any(c.added or c.old_quantity is not None for c in self.lines.values())
        return _(ORDER_CHANGED if lines and not prices else PRICES_CHANGED)


def changes_between(seen: Review | None, now: Review) -> Changes:
    """Line by line, what changed since `seen`; nothing to show if what was seen is unknown."""
    if seen is None:
        return Changes()
    before = {line.variant_id: line for line in seen.lines}
    changes = Changes(
        old_shipping_fee=seen.shipping_fee if seen.shipping_fee != now.shipping_fee else None,
        old_total=seen.total if seen.total != now.total else None,
    )
    for line in now.lines:
        was = before.pop(line.variant_id, None)
        if was is None:
            changes.lines[line.variant_id] = LineChange(added=True)
        elif (was.unit_price, was.quantity) != (line.unit_price, line.quantity):
            changes.lines[line.variant_id] = LineChange(
                old_price=was.unit_price if was.unit_price != line.unit_price else None,
                old_quantity=was.quantity if was.quantity != line.quantity else None,
            )
    changes.removed = list(before.values())
    return changes
