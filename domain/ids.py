"""Identifiers Quipu derives itself (quotes, payouts, holds): stable for the same key, so a
retry is a duplicate, and never a long digit run that the card-number check would refuse."""

from __future__ import annotations

import base64
import uuid
from typing import Final

NAMESPACE: Final = uuid.UUID("d1c0f3a2-5b4e-4a69-8c7d-0e1f2a3b4c5d")


def derived_id(prefix: str, key: str, length: int = 20) -> str:
    """``prefix`` + base32 of a name-based UUID of ``key`` (letters and the digits 2-7)."""
    return prefix + base64.b32encode(uuid.uuid5(NAMESPACE, key).bytes).decode()[:length]
