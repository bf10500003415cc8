"""Money is an integer in the currency's minor unit; VND has none (299000 is 299,000 đ)."""

from __future__ import annotations

NBSP = "\u00a0"  # keeps "đ" on the line of its number, in a narrow table cell as in an email


def format_vnd(amount: int) -> str:
    """Vietnamese style: dot as thousands separator, đ after the number: 299.000 đ."""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount):,}".replace(",", ".") + NBSP + "đ"
