"""Money is an integer in the currency's minor unit; VND has none (299000 is 299,000 đ)."""

from __future__ import annotations


def format_vnd(amount: int) -> str:
    """Vietnamese style: dot as thousands separator, đ after the number: 299.000 đ."""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount):,}".replace(",", ".") + " đ"
