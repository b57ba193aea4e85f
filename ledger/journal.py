"""Journal entries: postings that balance per currency, or nothing at all.

A :class:`JournalEntry` checks its invariants when it is built (every posting positive, in
its account's currency, debits equal to credits per currency) and the projections check the
trial balance again when they fold the entries: an invariant asserted in two places.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ledger.accounts import Side, parse_account
from ledger.errors import UnbalancedEntryError


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of an entry: an amount, in minor units, on one side of one account."""

    account: str
    """The account name, ``party:party_id:purpose:CCY``."""
    currency: str
    """ISO 4217 code; always the account's own currency."""
    side: Side
    """Debit or credit."""
    amount_minor: int
    """Strictly positive amount in the currency's minor units."""

    @property
    def signed_minor(self) -> int:
        """Debits positive, credits negative: the sum over an entry is zero per currency."""
        return self.amount_minor if self.side is Side.DEBIT else -self.amount_minor


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A balanced set of postings booked for one event."""

    postings: tuple[Posting, ...]
    memo: str = ""

    def __post_init__(self) -> None:
        check_balanced(self.postings)

    def totals(self) -> dict[str, tuple[int, int]]:
        """Per currency: (debits, credits) in minor units."""
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for p in self.postings:
            out[p.currency][0 if p.side is Side.DEBIT else 1] += p.amount_minor
        return {c: (d, k) for c, (d, k) in out.items()}


def check_balanced(postings: tuple[Posting, ...]) -> None:
    """Raise :class:`UnbalancedEntryError` unless the postings balance per currency."""
    net: dict[str, int] = {}
    for i, p in enumerate(postings):
        if p.amount_minor <= 0:
            raise UnbalancedEntryError(f"posting {i} on {p.account}: amount must be positive")
        account_currency = parse_account(p.account).currency
        if account_currency != p.currency:
            raise UnbalancedEntryError(
                f"posting {i} on {p.account}: currency {p.currency} is not the account's {account_currency}"
            )
        net[p.currency] = net.get(p.currency, 0) + (p.amount_minor if p.side is Side.DEBIT else -p.amount_minor)
    if any(net.values()):
        detail = ", ".join(
            f"{c} debits exceed credits by {n} minor units"
            if n > 0
            else f"{c} credits exceed debits by {-n} minor units"
            for c, n in sorted(net.items())
            if n
        )
        raise UnbalancedEntryError(f"entry does not balance: {detail}")


def debit(account: str, currency: str, amount_minor: int) -> Posting:
    """A debit posting."""
    return Posting(account, currency, Side.DEBIT, amount_minor)


def credit(account: str, currency: str, amount_minor: int) -> Posting:
    """A credit posting."""
    return Posting(account, currency, Side.CREDIT, amount_minor)
