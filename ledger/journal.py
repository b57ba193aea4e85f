"""Journal entries: postings that balance per currency, or nothing at all.

A :class:`JournalEntry` checks its invariants when it is built (every posting positive, in
its account's currency, debits equal to credits per currency) and the projections check the
trial balance again when they fold the entries: an invariant asserted in two places.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Final, NamedTuple

from ledger.accounts import Side, parse_account
from ledger.errors import UnbalancedEntryError


class Posting(NamedTuple):
    """One line of an entry: an amount, in minor units, on one side of one account.

    A named tuple rather than a frozen dataclass: every booked event makes two or more, on
    ingest and again on every rebuild, and a tuple is built in a third of the time.
    """

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


_DEBIT: Final = Side.DEBIT
_CREDIT: Final = Side.CREDIT


def check_balanced(postings: tuple[Posting, ...]) -> None:
    """Raise :class:`UnbalancedEntryError` unless the postings balance per currency."""
    net: dict[str, int] = {}
    for account, currency, side, amount in postings:
        if amount <= 0 or parse_account(account).currency != currency:
            _refuse_posting(postings)
        net[currency] = net.get(currency, 0) + (amount if side is _DEBIT else -amount)
    if any(net.values()):
        detail = ", ".join(
            f"{c} debits exceed credits by {n} minor units"
            if n > 0
            else f"{c} credits exceed debits by {-n} minor units"
            for c, n in sorted(net.items())
            if n
        )
        raise UnbalancedEntryError(f"entry does not balance: {detail}")


def _refuse_posting(postings: tuple[Posting, ...]) -> None:
    # Off the hot path: walk again, in the same order, to name the first posting at fault.
    for i, (account, currency, _, amount) in enumerate(postings):
        if amount <= 0:
            raise UnbalancedEntryError(f"posting {i} on {account}: amount must be positive")
        account_currency = parse_account(account).currency
        if account_currency != currency:
            raise UnbalancedEntryError(
                f"posting {i} on {account}: currency {currency} is not the account's {account_currency}"
            )


def debit(account: str, currency: str, amount_minor: int) -> Posting:
    """A debit posting."""
    return Posting(account, currency, _DEBIT, amount_minor)


def credit(account: str, currency: str, amount_minor: int) -> Posting:
    """A credit posting."""
    return Posting(account, currency, _CREDIT, amount_minor)
