"""AML interception and cases as events: freezing a seller, opening a case, and the case's
actions (assign, note, escalate, clear, confirm). A freeze stops payouts until a case decision
lifts it; clearing a case lifts its freeze and releases its holds in the same batch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from domain.envelope import Envelope, Ident, Payload, Site, Text

Actor = Annotated[str, Field(min_length=1, max_length=100)]


class SellerFrozenPayload(Payload):
    """Payouts of a seller stop until a case decision."""

    freeze_id: Ident
    seller_id: Ident
    case_id: Ident
    reason: Text


class SellerFrozen(Envelope):
    """``seller.frozen``: books nothing; the seller's wallet refuses payouts while frozen."""

    type: Literal["seller.frozen"]
    schema_version: Literal[1]
    payload: SellerFrozenPayload


class SellerUnfrozenPayload(Payload):
    """A case decision lifts a freeze."""

    freeze_id: Ident
    seller_id: Ident
    case_id: Ident
    decided_by: Actor


class SellerUnfrozen(Envelope):
    """``seller.unfrozen``: books nothing; payouts may resume (if no other freeze remains)."""

    type: Literal["seller.unfrozen"]
    schema_version: Literal[1]
    payload: SellerUnfrozenPayload


class AmlCaseOpenedPayload(Payload):
    """A case opened on a seller from one or more alerts."""

    case_id: Ident
    seller_id: Ident
    site: Site | None = None
    alert_ids: Annotated[tuple[Ident, ...], Field(min_length=1, max_length=100)]
    typologies: Annotated[tuple[Annotated[str, Field(min_length=1, max_length=40)], ...], Field(min_length=1)]
    opened_by: Actor


class AmlCaseOpened(Envelope):
    """``aml.case_opened``: books nothing."""

    type: Literal["aml.case_opened"]
    schema_version: Literal[1]
    payload: AmlCaseOpenedPayload


class AmlCaseActionPayload(Payload):
    """One step of a case: assign, note, escalate, clear (lifts the freeze and holds), confirm
    (keeps them and marks a regulatory report as due)."""

    case_id: Ident
    seller_id: Ident
    action: Literal["assign", "note", "escalate", "clear", "confirm"]
    by: Actor
    text: Text
    assignee: Actor | None = None
    """For ``assign``."""
    report: Literal["COAF", "UIF", "STR"] | None = None
    """For ``confirm``: the report now due."""


class AmlCaseAction(Envelope):
    """``aml.case_action``: books nothing; the case's audit trail."""

    type: Literal["aml.case_action"]
    schema_version: Literal[1]
    payload: AmlCaseActionPayload
