"""Delivery confirmations: the carrier's word that an order arrived.

On sites with a release delay (``config/settlement.toml``), a capture's funds are released
only once the order was delivered and the delay has passed, as well as its settlement date.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime

from domain.envelope import Envelope, Ident, Payload


class DeliveryConfirmedPayload(Payload):
    """A carrier confirmed an order's delivery."""

    order_id: Ident
    shipment_id: Ident
    carrier: Ident
    delivered_at: AwareDatetime


class DeliveryConfirmed(Envelope):
    """``delivery.confirmed``: books nothing; it starts the release delay where a site has one."""

    type: Literal["delivery.confirmed"]
    schema_version: Literal[1]
    payload: DeliveryConfirmedPayload
