"""Manual adjustments: the one way a person books postings by hand.

An adjustment never edits anything: it is a new event with explicit postings, a reason and
an author, and it must balance per currency like every other entry.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from domain.envelope import Amount, Envelope, Ident, Payload, Text
from ledger.accounts import parse_account
from ledger.errors import AccountNameError


class AdjustmentLine(Payload):
    """One posting of a manual adjustment."""

    account: Annotated[str, Field(min_length=7, max_length=200)]
    """Account name, ``party:party_id:purpose:CCY``; its currency must be the amount's."""
    side: Literal["debit", "credit"]
    amount: Amount

    @field_validator("account")
    @classmethod
    def _in_the_chart(cls, value: str) -> str:
        try:
            parse_account(value)
        except AccountNameError as exc:
            raise ValueError(str(exc)) from None
        return value


class AdjustmentPostedPayload(Payload):
    """Postings a person booked by hand, with the reason and who did it."""

    adjustment_id: Ident
    reason: Text
    """Why the adjustment was needed; required."""
    author: Annotated[str, Field(min_length=1, max_length=100)]
    """Who booked it; required."""
    lines: Annotated[tuple[AdjustmentLine, ...], Field(min_length=2, max_length=100)]
    """At least two postings, balancing per currency."""
    corrects: Ident | None = None
    """The event id or reference this adjustment corrects, when it corrects one."""


class AdjustmentPosted(Envelope):
    """``adjustment.posted``: books its lines as given, if they balance."""

    type: Literal["adjustment.posted"]
    schema_version: Literal[1]
    payload: AdjustmentPostedPayload
