"""Order events: the commitment to buy, before any money moves."""

from __future__ import annotations

from typing import Literal

from domain.envelope import Amount, CountryCode, Envelope, Ident, Payload, Site, Text


class OrderPlacedPayload(Payload):
    """A buyer placed an order with a seller on a site."""

    order_id: Ident
    """The order's id, unique across the marketplace."""
    site: Site
    """The country site where the order was placed."""
    buyer_id: Ident
    """Who buys."""
    seller_id: Ident
    """Who sells."""
    total: Amount
    """What the buyer owes, in the site's currency."""
    seller_country: CountryCode | None = None
    """ISO 3166 country of a cross-border seller (``CN``); absent for local sellers."""


class OrderPlaced(Envelope):
    """``order.placed``: books nothing; it opens the order's consistency boundary."""

    type: Literal["order.placed"]
    schema_version: Literal[1]
    payload: OrderPlacedPayload


class OrderCancelledPayload(Payload):
    """An order was cancelled before it was fulfilled."""

    order_id: Ident
    """The order cancelled; it must have been placed and not already cancelled."""
    reason: Text
    """Why, in words."""


class OrderCancelled(Envelope):
    """``order.cancelled``: books nothing."""

    type: Literal["order.cancelled"]
    schema_version: Literal[1]
    payload: OrderCancelledPayload
