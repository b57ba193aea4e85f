"""The chart of accounts: one naming scheme by party, purpose and currency.

An account name has four colon-separated parts, ``party:party_id:purpose:CCY``::

    seller:S-1001:pending:BRL        funds owed to a seller, not yet released
    seller:S-1001:available:BRL      released funds the seller may pay out
    seller:S-1001:payout_reserved:BRL  funds set aside for a requested payout
    psp:cielo:receivable:BRL         what a payment processor owes us for captures
    platform:main:fee_revenue.commission:MXN
    platform:main:payouts_clearing:USD
    platform:main:chargeback_losses:CLP
    platform:main:rounding:CLP
    buyer:B-77:store_credit:BRL      compensation a buyer may spend on the marketplace

Every account holds exactly one currency. Its *normal side* (debit for assets and
expenses, credit for liabilities and revenue) decides the sign a report shows, so a
seller's positive balance is money we owe them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Final

from ledger.errors import AccountNameError

_PART: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")


class Side(str, Enum):
    """The side of a posting and the normal side of an account."""

    DEBIT = "debit"
    CREDIT = "credit"


class Party(str, Enum):
    """Who an account belongs to."""

    SELLER = "seller"
    BUYER = "buyer"
    PSP = "psp"
    PLATFORM = "platform"
    BANK = "bank"


#: Normal side by purpose (the part before any ``.`` qualifier). Unknown purposes are refused,
#: so a typo cannot open an account nobody reconciles.
NORMAL_SIDE: Final[dict[str, Side]] = {
    "pending": Side.CREDIT,
    "available": Side.CREDIT,
    "held": Side.CREDIT,
    "payout_reserved": Side.CREDIT,
    "refund_payable": Side.CREDIT,
    "receivable": Side.DEBIT,
    "cash": Side.DEBIT,
    "payouts_clearing": Side.CREDIT,
    "fee_revenue": Side.CREDIT,
    "fx_revenue": Side.CREDIT,
    "tax_payable": Side.CREDIT,
    "fx_liquidity": Side.CREDIT,  # a credit balance is a long position in the currency
    "fx_revaluation": Side.DEBIT,  # IAS 21: the remeasurement of open FX positions, in the functional currency
    "fx_unrealised": Side.CREDIT,  # IAS 21: unrealised FX gain (a debit balance is a loss)
    "fx_realised": Side.CREDIT,  # IAS 21: realised FX gain when a position is settled (debit: loss)
    "rounding": Side.DEBIT,
    "chargeback_losses": Side.DEBIT,
    "adjustments": Side.DEBIT,
    "store_credit": Side.CREDIT,  # what a buyer may spend on the marketplace (compensations)
    "logistics_compensation": Side.DEBIT,  # expense: delivery-delay compensations the platform funds
    "carrier_claims": Side.DEBIT,  # receivable: compensations a carrier owes back under its contract
    "suspense": Side.DEBIT,
    "psp_fees": Side.DEBIT,  # expense: what processors deduct from their settlements
}


@dataclass(frozen=True, slots=True)
class Account:
    """A parsed account name."""

    party: Party
    party_id: str
    purpose: str
    currency: str

    @property
    def name(self) -> str:
        """The canonical name, ``party:party_id:purpose:CCY``."""
        return f"{self.party.value}:{self.party_id}:{self.purpose}:{self.currency}"

    @property
    def normal_side(self) -> Side:
        """Debit for assets and expenses, credit for liabilities and revenue."""
        return NORMAL_SIDE[self.purpose.split(".", 1)[0]]


def account(party: Party | str, party_id: str, purpose: str, currency: str) -> Account:
    """A checked :class:`Account`; raises :class:`AccountNameError` naming the bad part."""
    try:
        party_enum = Party(party)
    except ValueError:
        known = ", ".join(p.value for p in Party)
        raise AccountNameError(f"party {party!r} is not one of {known}") from None
    if not _PART.fullmatch(party_id):
        raise AccountNameError(f"party id {party_id!r} must be 1-64 letters, digits, '.', '_' or '-'")
    base = purpose.split(".", 1)[0]
    if base not in NORMAL_SIDE or not _PART.fullmatch(purpose):
        raise AccountNameError(f"purpose {purpose!r} is not in the chart of accounts")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise AccountNameError(f"currency {currency!r} is not an ISO 4217 code")
    return Account(party_enum, party_id, purpose, currency)


@lru_cache(maxsize=65_536)
def parse_account(name: str) -> Account:
    """Parse ``party:party_id:purpose:CCY`` into an :class:`Account`."""
    parts = name.split(":")
    if len(parts) != 4:
        raise AccountNameError(f"account {name!r} must have four parts, party:party_id:purpose:CCY")
    return account(*parts)


@lru_cache(maxsize=65_536)
def normal_side_of(name: str) -> Side:
    """The normal side of an account given by name."""
    return NORMAL_SIDE[name.split(":")[2].split(".", 1)[0]]
