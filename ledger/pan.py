"""Card numbers (PANs) must never enter the ledger: finding them in text, without echoing them.

A PAN is 13 to 19 digits (optionally grouped by spaces or dashes) that pass the Luhn check.
Quipu accepts only processor tokens, the BIN and the last four digits.
"""

from __future__ import annotations

import re
from typing import Final

_CANDIDATE: Final = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn (mod 10) check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def contains_pan(text: str) -> bool:
    """Whether ``text`` holds something that looks like a card number."""
    for match in _CANDIDATE.finditer(text):
        digits = match.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return True
    return False


def masked(text: str) -> str:
    """``text`` with every PAN-like run replaced by its length, for safe messages."""
    return _CANDIDATE.sub(lambda m: f"<{len(m.group())} digits removed>", text)
