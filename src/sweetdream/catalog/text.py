"""Accent-free search text for Vietnamese.

The embedded PostgreSQL has no `unaccent` extension (and RDS would need it enabled), so the
application folds text itself: the same function builds the stored search column and the query.
"""

from __future__ import annotations

import re
import unicodedata

# NFKD does not decompose the Vietnamese letter đ/Đ (it is a distinct letter, not d + mark).
_SPECIAL = str.maketrans({"đ": "d", "Đ": "D"})
_WORD = re.compile(r"[0-9a-z]+")


def fold(text: str) -> str:
    """Lowercase, strip diacritics: 'Bánh kem Đà Lạt' -> 'banh kem da lat'."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.lower()


def search_words(query: str, limit: int = 8) -> list[str]:
    """The folded words of a shopper's query, safe to place in a tsquery (letters and digits only)."""
    return _WORD.findall(fold(query))[:limit]


def prefix_tsquery(query: str) -> str:
    """'banh ke' -> 'banh:* & ke:*' so results appear as the shopper types."""
    return " & ".join(f"{word}:*" for word in search_words(query))


def slugify(text: str) -> str:
    return "-".join(_WORD.findall(fold(text)))
