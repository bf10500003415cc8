"""Accent-free search text for Vietnamese.

The embedded PostgreSQL has no `unaccent` extension (and RDS would need it enabled), so the
application folds text itself: the same function builds the stored search column and the query.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

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


def search_tsquery_text(
    query: str, synonyms: Mapping[str, Sequence[str]] | None = None, last_word_prefix: bool = True
) -> str:
    """The shopper's query as a folded tsquery, synonyms expanded ('' when it has no words).

    'banh ke' -> '(banh) & (ke:*)': only the last word may be half typed, so it alone matches as a
    prefix; the words before it match whole words (a prefix makes the index collect every word that
    starts so: seconds at a million products). With the synonym 'trà sữa' -> 'milk tea',
    'tra sua ngon' -> '(tra | (milk <-> tea)) & (sua | (milk <-> tea)) & (ngon:*)': per word, the OR
    of the expansions of every term covering it, which equals ((tra & sua) | milk tea) & ngon.
    Only letters and digits reach the text (`search_words`, `synonym_key`). With
    `last_word_prefix=False` the last word too matches only whole ('banh ke' -> '(banh) & (ke)')."""
    words = search_words(query)
    synonyms = synonyms or {}
    parts = []
    for i, (word, spans) in enumerate(zip(words, spans_covering(words), strict=True)):
        term = f"{word}:*" if last_word_prefix and i == len(words) - 1 else word
        expansions = dict.fromkeys(e for span in spans for e in synonyms.get(span, ()))
        parts.append("(" + term + "".join(f" | ({e.replace(' ', ' <-> ')})" for e in expansions) + ")")
    return " & ".join(parts)


def slugify(text: str) -> str:
    return "-".join(_WORD.findall(fold(text)))


# --- Vietnamese name order ------------------------------------------------------------------------
# The embedded PostgreSQL has no ICU collations (and RDS databases differ in their default one), so
# the application computes a sort key that orders correctly byte by byte (the column is COLLATE "C").
# Alphabet: a ă â b c d đ e ê (f) g h i (j) k l m n o ô ơ p q r s t u ư v (w) x y (z); the letters in
# brackets are not Vietnamese but occur in borrowed names (Red Velvet, New York, Hokkaido).
_ALPHABET = [
    "a",
    "ă",
    "â",
    "b",
    "c",
    "d",
    "đ",
    "e",
    "ê",
    "f",
    "g",
    "h",
    "i",
    "j",
    "k",
    "l",
    "m",
    "n",
    "o",
    "ô",
    "ơ",
    "p",
    "q",
    "r",
    "s",
    "t",
    "u",
    "ư",
    "v",
    "w",
    "x",
    "y",
    "z",
]
_LETTER_CODE = {letter: chr(ord("A") + i) for i, letter in enumerate(_ALPHABET)}
_UNKNOWN = "~"  # any other letter (another script) sorts after z
_WORD_BREAK = "!"  # spaces and punctuation between words: before every digit and letter
_KEY_SEPARATOR = " "  # ends the letters: below the word break, so "Bánh" comes before "Bánh bao"
# Vowel marks that make a distinct letter (ă â ê ô ơ ư) and the five tones, as NFD combining marks.
_LETTER_MARKS = {"\u0306", "\u0302", "\u031b"}
_TONES = {"\u0300": "1", "\u0309": "2", "\u0303": "3", "\u0301": "4", "\u0323": "5"}  # huyền hỏi ngã sắc nặng


def _letters(text: str) -> list[tuple[str, str]]:
    """(base letter with its vowel marks, tone digit) per character; tone '0' when it has none."""
    out: list[tuple[str, str]] = []
    for ch in unicodedata.normalize("NFC", text).lower():
        decomposed = unicodedata.normalize("NFD", ch)
        base = decomposed[0] + "".join(m for m in decomposed[1:] if m in _LETTER_MARKS)
        tone = next((_TONES[m] for m in decomposed[1:] if m in _TONES), "0")
        out.append((unicodedata.normalize("NFC", base), tone))
    return out


def name_sort_key(name: str) -> str:
    """A key whose byte order is Vietnamese alphabetical order, case-insensitive.

    First the letters without tones (a < ă < â ... d < đ ...), then the tones in order (none,
    huyền, hỏi, ngã, sắc, nặng) as a tie-breaker: 'Bánh bao' < 'Bánh Tiramisu', 'Dừa' < 'Đào',
    'ma' < 'mà' < 'mả' < 'mã' < 'má' < 'mạ' < 'mai'.
    """
    primary: list[str] = []
    tones: list[str] = []
    for base, tone in _letters(name):
        if base in _LETTER_CODE:
            primary.append(_LETTER_CODE[base])
        elif base.isdigit() and base.isascii():
            primary.append(base)
        elif base.isalnum():
            primary.append(_UNKNOWN)
        else:
            if primary and primary[-1] != _WORD_BREAK:
                primary.append(_WORD_BREAK)
            continue
        tones.append(tone)
    return "".join(primary).rstrip(_WORD_BREAK) + _KEY_SEPARATOR + "".join(tones)


# --- Exact (diacritic) words and synonyms ------------------------------------------------------
_EXACT_WORD = re.compile(r"[^\W_]+")


def exact_text(text: str) -> str:
    """Lowercased words with their diacritics kept (NFC): the text behind the exact-match ranking."""
    return " ".join(_EXACT_WORD.findall(unicodedata.normalize("NFC", text).lower()))


def has_diacritics(query: str) -> bool:
    """Whether the shopper typed Vietnamese marks (or đ): then matches with those marks rank first."""
    exact = exact_text(query)
    return fold(exact) != exact


def exact_prefix_tsquery(query: str, limit: int = 8) -> str:
    """'dâu tây' -> 'dâu:* | tây:*': each exactly-spelled word a document has raises its rank."""
    return " | ".join(f"{word}:*" for word in exact_text(query).split()[:limit])


def synonym_key(text: str) -> str:
    """The folded words of a synonym term or expansion: 'Sô cô la' -> 'so co la'."""
    return " ".join(_WORD.findall(fold(text)))


def spans_covering(words: list[str]) -> list[list[str]]:
    """For each query word, every run of consecutive words that contains it, as a synonym key.

    A term may be several words ('tra sua'): word k's part of the query becomes
    (word:* | expansions of any term covering k), which for a term covering words i..j is the same
    as ((wi & ... & wj) | expansion)."""
    n = len(words)
    return [[" ".join(words[i : j + 1]) for i in range(k + 1) for j in range(k, n)] for k in range(n)]
