"""Taxes as events: what was assessed on an order, with every line and the rule it came from.

The posting rule books the recorded lines, never a table: a replay after a rate or table
change books exactly what was booked when the event was recorded. The platform collects the
tax inside the order total and owes it to the authority: each line moves the amount from the
seller's pending funds to ``platform:main:tax_payable.<tax>``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from domain.envelope import Amount, Envelope, Ident, Payload, Site, Text

TaxKind = Literal["consumption", "withholding", "import"]


class AssessedLine(Payload):
    """One tax of an assessment."""

    name: Annotated[str, Field(min_length=1, max_length=40)]
    base: Amount
    """What the rate applies to (for import duties, the customs value in USD)."""
    rate_pct: Annotated[str, Field(pattern=r"^(0|[1-9][0-9]?)(\.[0-9]{1,4})?$")]
    amount: Amount
    """Booked, in the order's currency."""


class TaxAssessedPayload(Payload):
    """Taxes on an order, computed by the rules in force when it was placed."""

    assessment_id: Ident
    order_id: Ident
    seller_id: Ident
    site: Site
    kind: TaxKind
    lines: Annotated[tuple[AssessedLine, ...], Field(min_length=1, max_length=20)]
    rule: Text
    """The table, its version and the rule's dates: the figures are traceable to the data."""
    reference_rate: Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,18})?$")] | None = None
    """For import duties computed in USD: the recorded rate (USD per unit of the order's currency)."""
    rate_source: Annotated[str, Field(min_length=1, max_length=60)] | None = None
    rate_as_of: AwareDatetime | None = None


class TaxAssessed(Envelope):
    """``tax.assessed``: per line, Dr ``seller:<id>:pending``, Cr ``platform:main:tax_payable.<tax>``."""

    type: Literal["tax.assessed"]
    schema_version: Literal[1]
    payload: TaxAssessedPayload


class TaxReversedPayload(Payload):
    """An assessment undone (the order was cancelled before it was fulfilled)."""

    assessment_id: Ident
    order_id: Ident
    seller_id: Ident
    site: Site
    kind: TaxKind
    lines: Annotated[tuple[AssessedLine, ...], Field(min_length=1, max_length=20)]
    """The assessed lines, repeated: the reversal books their exact opposite."""
    reason: Text


class TaxReversed(Envelope):
    """``tax.reversed``: per line, Dr ``platform:main:tax_payable.<tax>``, Cr ``seller:<id>:pending``."""

    type: Literal["tax.reversed"]
    schema_version: Literal[1]
    payload: TaxReversedPayload
