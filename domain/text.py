"""Text folding shared by lead scoring and intent detection.

Romanian is often typed without diacritics ("programeaza", "maine", "curatare"),
and with either the comma-below (ș, ț) or the legacy cedilla (ş, ţ) letters. Folding
maps all of these to one plain lowercase form so rules are written once.

``fold`` keeps the text's length: character ``i`` of the folded text comes from
character ``i`` of the input, so a span found in the folded text slices the same
words out of the original (used to keep quoted messages and names verbatim).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    base = "".join(
        c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
    ).lower()
    # Keep a one-to-one mapping so folded offsets equal original offsets.
    return base if len(base) == 1 else char.lower()[:1] or char


def fold(text: str) -> str:
    """Lowercase ``text`` and strip diacritics, one output character per input character.

    >>> fold("Programează o CURĂȚARE mâine, ştiţi?")
    'programeaza o curatare maine, stiti?'
    """
    return "".join(_fold_char(c) for c in unicodedata.normalize("NFC", text))


def normalize(text: str) -> str:
    """The NFC form of ``text``: the string ``fold`` is aligned with."""
    return unicodedata.normalize("NFC", text)


def words(folded: str) -> list[str]:
    """The alphanumeric words of an already folded text."""
    return _WORD.findall(folded)


def within_one_edit(word: str, target: str) -> bool:
    """True when ``word`` is ``target`` with at most one typo.

    A typo is one inserted, deleted or substituted letter, or two swapped neighbours
    (the optimal-string-alignment distance is at most one).
    """
    if word == target:
        return True
    if abs(len(word) - len(target)) > 1:
        return False
    if len(word) == len(target):
        diffs = [i for i, (a, b) in enumerate(zip(word, target, strict=True)) if a != b]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and word[diffs[0]] == target[diffs[1]]
            and word[diffs[1]] == target[diffs[0]]
        )
    shorter, longer = sorted((word, target), key=len)
    for i, char in enumerate(shorter):
        if char != longer[i]:
            return shorter[i:] == longer[i + 1 :]
    return True


def nul_path(value: object, path: str = "") -> str | None:
    """The JSON path of the first string holding a NUL character, or None.

    PostgreSQL text and jsonb cannot hold U+0000; refusing it at validation keeps one
    caller's input from failing a projection that serves every clinic.
    """
    if isinstance(value, str):
        return path or "$" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return f"{path}.{key!r}" if path else repr(key)
            found = nul_path(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = nul_path(item, f"{path}[{i}]")
            if found:
                return found
    return None
