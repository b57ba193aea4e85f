"""Holds, reserves and deficit recovery: funds a seller has but may not pay out.

A hold moves part of a seller's *available* funds to *held* for a reason (a dispute, a
chargeback, an AML case, a rolling reserve); only its release moves them back. A held
amount is never paid out because payouts draw on available funds only. A rolling reserve
is a hold with a ``release_on`` date that the settlement run releases when it arrives.

A *deficit* arises when refunds, chargebacks or fees arrive after the funds they reduce
were released: the seller's pending balance goes below what is still due. The settlement
run recovers it from available funds (``deficit.recovered``) before anything is paid out,
and from the next releases, which are net of it.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from domain.envelope import Amount, Envelope, Ident, Payload, Text

HoldReason = Literal["dispute", "chargeback", "aml", "reserve", "risk"]


class FundsHeldPayload(Payload):
    """Part of a seller's available funds is held."""

    hold_id: Ident
    seller_id: Ident
    amount: Amount
    """At most the seller's available funds in that currency."""
    reason: HoldReason
    reference: Ident | None = None
    """What caused it: a chargeback, an AML alert or case, a settlement run."""
    release_on: dt.date | None = None
    """For a rolling reserve: the day the settlement run releases it; otherwise a decision does."""


class FundsHeld(Envelope):
    """``funds.held``: Dr ``seller:<id>:available``, Cr ``seller:<id>:held``."""

    type: Literal["funds.held"]
    schema_version: Literal[1]
    payload: FundsHeldPayload


class HoldReleasedPayload(Payload):
    """A hold ends and its funds return to available."""

    hold_id: Ident
    seller_id: Ident
    amount: Amount
    """Must equal the held amount: a hold is released whole."""
    decided_by: Text
    """Who or what released it (``settlement-run``, ``case:C-7 cleared by ana``)."""


class HoldReleased(Envelope):
    """``hold.released``: Dr ``seller:<id>:held``, Cr ``seller:<id>:available``."""

    type: Literal["hold.released"]
    schema_version: Literal[1]
    payload: HoldReleasedPayload


class DeficitRecoveredPayload(Payload):
    """Available funds cover a deficit left by refunds or chargebacks after release."""

    recovery_id: Ident
    seller_id: Ident
    amount: Amount
    """At most the seller's available funds in that currency."""


class DeficitRecovered(Envelope):
    """``deficit.recovered``: Dr ``seller:<id>:available``, Cr ``seller:<id>:pending``."""

    type: Literal["deficit.recovered"]
    schema_version: Literal[1]
    payload: DeficitRecoveredPayload
