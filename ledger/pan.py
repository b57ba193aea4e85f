"""Card numbers (PANs) must never enter the ledger: finding them in text, without echoing them.

A PAN is 13 to 19 digits (optionally grouped by spaces or dashes) that pass the Luhn check.
Quipu accepts only processor tokens, the BIN and the last four digits.
"""

from __future__ import annotations

import re
from typing import Final

_CANDIDATE: Final = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")

# A candidate, and the digits its look-arounds test, lie inside one maximal run of digits,
# spaces and dashes, so the regex need only see such runs of 13 characters or more. They are
# found in one C pass (translate, then substring search) instead of the regex engine trying
# every digit of every id, time and amount: most events have no such run at all.
_RUN_CHARS: Final = bytes(48 if 48 <= b <= 57 or b in (32, 45) else 120 for b in range(256))
_RUN_13: Final = b"0" * 13


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn (mod 10) check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def contains_pan(text: str | bytes) -> bool:
    """Whether ``text`` (or UTF-8 bytes) holds something that looks like a card number."""
    # Non-ASCII characters encode to bytes >= 0x80, never to a digit; lone surrogates pass through.
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    runs = data.translate(_RUN_CHARS)
    start = runs.find(_RUN_13)
    while start >= 0:
        # The first 13 in a row start a maximal run; it ends at the next other character.
        end = runs.find(b"x", start)
        end = len(runs) if end < 0 else end
        for match in _CANDIDATE.finditer(data[start:end].decode("ascii")):
            digits = match.group().replace(" ", "").replace("-", "")
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                return True
        start = runs.find(_RUN_13, end)
    return False


def masked(text: str) -> str:
    """``text`` with every PAN-like run replaced by its length, for safe messages."""
    return _CANDIDATE.sub(lambda m: f"<{len(m.group())} digits removed>", text)
