"""Fail when a string a person reads is not translated into Vietnamese (`make lint`).

Extracts the messages from the code and templates afresh (the same `pybabel extract` as
`make messages`, babel.cfg), then checks `locales/vi/LC_MESSAGES/messages.po`: every message must be
there, translated (every plural form), not fuzzy, and with the same %(name)s placeholders as its
source. Prints each problem and exits 1 if there is any. To fix: `make messages`, translate what it
lists in the vi catalog, run `make lint` again.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
VI = ROOT / "locales" / "vi" / "LC_MESSAGES" / "messages.po"
# The same options as the Makefile's `messages` target.
EXTRACT = ["extract", "-F", "babel.cfg", "-k", "gettext_noop", "--no-location", "--sort-output"]


def extracted() -> Catalog:
    with tempfile.TemporaryDirectory() as tmp:
        pot = Path(tmp) / "messages.pot"
        pybabel = Path(sys.executable).with_name("pybabel")
        subprocess.run([str(pybabel), *EXTRACT, "-o", str(pot), "."], cwd=ROOT, check=True, capture_output=True)
        with pot.open("rb") as f:
            return read_po(f)


def problems(source: Catalog, vietnamese: Catalog) -> list[str]:
    found: list[str] = []
    for message in source:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        translated = vietnamese.get(key)
        if translated is None:
            found.append(f"missing: {key!r}")
            continue
        strings = translated.string if isinstance(translated.string, tuple) else (translated.string,)
        if not all(strings):
            found.append(f"untranslated: {key!r}")
        elif translated.fuzzy:
            found.append(f"fuzzy (check it, then remove the fuzzy flag): {key!r}")
    for message, errors in vietnamese.check():
        for error in errors:
            found.append(f"{error}: {message.id!r}")
    return found


def main() -> int:
    with VI.open("rb") as f:
        vietnamese = read_po(f, locale="vi")
    found = problems(extracted(), vietnamese)
    for problem in found:
        print(f"{VI.relative_to(ROOT)}: {problem}")
    if found:
        print(f"{len(found)} message(s) to translate: run `make messages`, fill them in, run `make lint` again.")
        return 1
    print(f"messages: all {len(vietnamese)} translated into Vietnamese")
    return 0


if __name__ == "__main__":
    sys.exit(main())
