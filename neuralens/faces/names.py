"""People's names: the spelling shown (as typed, NFC-normalised) and the key they are matched by.

Two spellings are the same person when their keys are equal: NFC (so a precomposed 'É' and 'E' + a
combining accent are one letter), then Unicode case folding (so 'Émile' = 'émile' and 'Straße' = 'STRASSE',
which SQLite's ASCII-only NOCASE does not see). The gallery stores the key under its UNIQUE constraint and
every lookup (Python API, CLI, web) goes through ``name_key``.
"""

from __future__ import annotations

import unicodedata

from ..errors import NeuralensError

MAX_NAME = 100
# Control characters (Cc), invisible format characters (Cf: zero-width space and joiners, byte-order mark,
# bidirectional overrides, soft hyphen), lone surrogates (Cs) and line/paragraph separators (Zl, Zp): a
# name with one of them looks like another name on screen but is not the same key.
REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


class UnknownPerson(NeuralensError):
    """No one of that name is enrolled (the web answers 404)."""


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name or "")


def _refused(ch: str) -> bool:
    return unicodedata.category(ch) in REFUSED_CATEGORIES


def display_name(name: str) -> str:
    """A new name as it will be stored and shown: NFC-normalised and stripped. Raises NeuralensError
    (one line) for an empty name, one over 100 characters, or one with a control, zero-width or other
    invisible format character."""
    if not isinstance(name, str):
        raise NeuralensError(f"a person's name must be text, got {type(name).__name__}")
    name = _nfc(name).strip()
    if not name:
        raise NeuralensError("a person's name cannot be empty")
    bad = next((ch for ch in name if _refused(ch)), None)
    if bad is not None:
        what = unicodedata.name(bad, "") or f"a {unicodedata.category(bad)} character"
        raise NeuralensError(
            f"invalid name {name[:40]!r}: it contains U+{ord(bad):04X} ({what}); control and "
            "invisible format characters are not allowed in names"
        )
    if len(name) > MAX_NAME:
        raise NeuralensError(f"invalid name {name[:40]!r}...: at most {MAX_NAME} characters")
    return name


def name_key(name: str) -> str:
    """The key a name is matched by: NFC, stripped, case-folded (and NFC again, since folding can
    decompose a letter). Used for storage and for every lookup; never shown."""
    return _nfc(_nfc(name).strip().casefold())
