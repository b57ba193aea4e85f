"""Reconciliation as events: imported external records, the processor's settlements, and the
exceptions a run finds with the finance team's decisions on them.

* ``recon.file_imported`` / ``recon.line_imported``: each line of a processor report or bank
  statement, with its file of origin (name and SHA-256) and line number. Their event ids are
  derived from the file's digest and the line number, so importing the same file again records
  nothing new. They book nothing: they are evidence, not money.
* ``psp.settlement_received``: a processor paid a settlement batch into the platform's bank
  account, net of its fees; it clears the processor's receivable.
* ``recon.exception_raised`` / ``recon.exception_cleared`` / ``recon.exception_resolved``: what
  a reconciliation run found, its disappearance on a later run (a timing difference that
  caught up), and a person's decision (booked with an adjustment, accepted as timing, or written
  off with a second person's approval).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, model_validator

from domain.envelope import Amount, Envelope, Ident, Payload, Text

#: A reference as an external system writes it (printable, no control characters).
ExternalRef = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Actor = Annotated[str, Field(min_length=1, max_length=100)]

SourceKind = Literal["processor", "bank"]
RecordType = Literal[
    "payment", "refund", "chargeback", "chargeback_reversal", "fee", "payout", "bank_credit", "bank_debit", "other"
]  # fmt: skip


class FileImportedPayload(Payload):
    """A processor report or bank statement accepted whole: every line follows as its own event."""

    file_sha256: Sha256
    file_name: Text
    source: Ident
    """Who produced it: ``mercadopago``, ``stripe``, ``bank-itau`` ..."""
    source_kind: SourceKind
    format: Annotated[str, Field(min_length=1, max_length=40)]
    """The importer that read it (``mercadopago-release``, ``stripe-balance``, ``camt053``, ``bank-csv``)."""
    lines: Annotated[int, Field(ge=0, le=50_000_000)]
    """How many record lines it holds (header and total rows not counted)."""


class FileImported(Envelope):
    """``recon.file_imported``: books nothing."""

    type: Literal["recon.file_imported"]
    schema_version: Literal[1]
    payload: FileImportedPayload


class StatementLinePayload(Payload):
    """One record of an external file, normalised; amounts positive, ``direction`` says which way."""

    file_sha256: Sha256
    file_name: Text
    line_no: Annotated[int, Field(ge=1)]
    """The physical line (CSV) or the element's line (XML) in the file, 1-based."""
    source: Ident
    source_kind: SourceKind
    record_type: RecordType
    reference: ExternalRef
    """The id this record refers to: a payment, refund or chargeback id, a payout batch id, or
    the bank's reference text."""
    batch_id: ExternalRef | None = None
    """The processor payout batch this record is paid out in, when the report says."""
    direction: Literal["credit", "debit"]
    """From the platform's side: money owed or paid to it (credit) or taken from it (debit)."""
    gross: Amount | None = None
    fee: Amount | None = None
    net: Amount
    booked_on: dt.date
    """The record's own date (transaction date, booking date)."""
    value_date: dt.date | None = None
    """When the money is available (processor) or was credited (bank)."""
    description: Annotated[str, Field(max_length=500)] | None = None
    exchange_rate: Annotated[str, Field(pattern=r"^[0-9]{1,12}(\.[0-9]{1,12})?$")] | None = None
    """The rate the processor converted at, when it converted the buyer's amount (its rounding
    of that conversion is what an ``fx_rounding`` exception is about)."""

    @model_validator(mode="after")
    def _one_currency(self) -> StatementLinePayload:
        for name in ("gross", "fee"):
            amount: Amount | None = getattr(self, name)
            if amount is not None and amount.currency != self.net.currency:
                raise ValueError(f"{name}.currency {amount.currency} differs from net.currency {self.net.currency}")
        return self


class LineImported(Envelope):
    """``recon.line_imported``: books nothing."""

    type: Literal["recon.line_imported"]
    schema_version: Literal[1]
    payload: StatementLinePayload


class SettledItem(Payload):
    """A ledger item a processor settlement includes."""

    kind: Literal["capture", "refund", "chargeback", "chargeback_reversal"]
    reference: Ident
    """Payment id (captures), refund id, or chargeback id."""


class SettlementReceivedPayload(Payload):
    """A processor paid a settlement batch into the platform's bank account."""

    settlement_id: Ident
    """The processor's payout (batch) id."""
    psp: Ident
    net: Amount
    """What reached the bank."""
    fee: Amount | None
    """The processor's fees deducted from the batch (null when none)."""
    value_date: dt.date
    bank_account: Ident
    items: Annotated[tuple[SettledItem, ...], Field(min_length=1, max_length=1000)]
    """The captures, refunds and chargebacks the batch nets (at most 1,000: split bigger batches)."""

    @model_validator(mode="after")
    def _one_currency(self) -> SettlementReceivedPayload:
        if self.fee is not None and self.fee.currency != self.net.currency:
            raise ValueError(f"fee.currency {self.fee.currency} differs from net.currency {self.net.currency}")
        return self


class SettlementReceived(Envelope):
    """``psp.settlement_received``: Dr ``platform cash`` (net), Dr ``platform psp_fees`` (fee),
    Cr ``psp:<psp>:receivable`` (net + fee)."""

    type: Literal["psp.settlement_received"]
    schema_version: Literal[1]
    payload: SettlementReceivedPayload


Level = Annotated[int, Field(ge=1, le=3)]
Category = Literal[
    "missing_in_ledger",
    "missing_at_processor",
    "missing_at_bank",
    "amount_mismatch",
    "fee_mismatch",
    "fx_rounding",
    "timing",
    "duplicate",
    "unknown_reference",
    "unbalanced_entry",
    "trial_balance",
    "subledger_mismatch",
    "projection_drift",
    "incomplete_lifecycle",
    "clearing_overdue",
]


class Evidence(Payload):
    """What an exception rests on: the events and the file lines."""

    event_ids: Annotated[tuple[UUID, ...], Field(max_length=50)] = ()
    """Event ids are UUIDs; the card-number check skips them (an all-digit UUID is no PAN)."""
    lines: Annotated[tuple[Annotated[str, Field(max_length=600)], ...], Field(max_length=50)] = ()
    """``file name:line`` of each external record involved."""


class ExceptionRaisedPayload(Payload):
    """A reconciliation run found something that does not reconcile."""

    exception_id: Ident
    """Derived from the level, the category and the references, so a later run finding the same
    thing raises nothing new."""
    level: Level
    category: Category
    reference: ExternalRef
    source: Ident | None = None
    """The processor or bank involved, when one is."""
    ledger_amount: Amount | None = None
    external_amount: Amount | None = None
    difference: Amount | None = None
    """``|ledger − external|`` in their currency, when both are known."""
    item_date: dt.date
    """The date of the record that should have matched: aging counts from it."""
    found_on: dt.date
    """The run date that found it."""
    detail: Text
    evidence: Evidence


class ExceptionRaised(Envelope):
    """``recon.exception_raised``: books nothing."""

    type: Literal["recon.exception_raised"]
    schema_version: Literal[1]
    payload: ExceptionRaisedPayload


class ExceptionClearedPayload(Payload):
    """A later run matched what an open exception was about (a timing difference caught up)."""

    exception_id: Ident
    cleared_on: dt.date
    detail: Text


class ExceptionCleared(Envelope):
    """``recon.exception_cleared``: books nothing."""

    type: Literal["recon.exception_cleared"]
    schema_version: Literal[1]
    payload: ExceptionClearedPayload


class ExceptionResolvedPayload(Payload):
    """A person's decision on an open exception."""

    exception_id: Ident
    resolution: Literal["adjusted", "accepted_timing", "written_off"]
    decided_by: Actor
    note: Text
    adjustment_id: Ident | None = None
    """The ``adjustment.posted`` that books the correction or the write-off (required for both)."""
    approved_by: Actor | None = None
    """A write-off needs a second person's approval."""

    @model_validator(mode="after")
    def _complete(self) -> ExceptionResolvedPayload:
        if self.resolution in ("adjusted", "written_off") and self.adjustment_id is None:
            raise ValueError(f"adjustment_id: required when the resolution is {self.resolution}")
        if self.resolution == "written_off":
            if self.approved_by is None:
                raise ValueError("approved_by: a write-off needs an approver")
            if self.approved_by == self.decided_by:
                raise ValueError("approved_by: the approver must be another person than decided_by")
        return self


class ExceptionResolved(Envelope):
    """``recon.exception_resolved``: books nothing (the adjustment it names does)."""

    type: Literal["recon.exception_resolved"]
    schema_version: Literal[1]
    payload: ExceptionResolvedPayload
