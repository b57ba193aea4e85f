"""Account balances and the trial balance, folded from the same entries as the journal."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Final

from ledger.accounts import Side
from projections.views import Event, Increment, Table, ViewReader, Write

BALANCES: Final = Table(
    "account_balances",
    ("account", "currency", "debits_minor", "credits_minor", "postings"),
    ("account",),
)
TRIAL: Final = Table("trial_balance", ("currency", "debits_minor", "credits_minor"), ("currency",))


class BalancesProjection:
    """Debits, credits and posting count per account."""

    name = "balances"
    #: Its fold reads nothing but the page (ADR 0037).
    page_local = True
    tables: tuple[Table, ...] = (BALANCES,)

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        # Summed per account over the whole batch: one upsert per account, not per posting.
        acc: dict[str, list[int]] = {}
        currency: dict[str, str] = {}
        debit = Side.DEBIT
        for ev in batch:
            entry = ev.entry
            if entry is None:
                continue
            for account, ccy, side, amount in entry.postings:
                row = acc.get(account)
                if row is None:
                    row = acc[account] = [0, 0, 0]
                row[0 if side is debit else 1] += amount
                row[2] += 1
                currency[account] = ccy
        rows = [(a, currency[a], d, c, n) for a, (d, c, n) in sorted(acc.items())]
        return [Increment(BALANCES, ("currency",), ("debits_minor", "credits_minor", "postings"), rows)]


class TrialBalanceProjection:
    """Total debits and credits per currency: equal at every position of the log."""

    name = "trial_balance"
    #: Its fold reads nothing but the page (ADR 0037).
    page_local = True
    tables: tuple[Table, ...] = (TRIAL,)

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        acc: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        debit = Side.DEBIT
        for ev in batch:
            entry = ev.entry
            if entry is None:
                continue
            # Each entry was checked to balance when it was built, here as at append.
            for _, ccy, side, amount in entry.postings:
                acc[ccy][0 if side is debit else 1] += amount
        rows = [(ccy, d, c) for ccy, (d, c) in sorted(acc.items())]
        return [Increment(TRIAL, (), ("debits_minor", "credits_minor"), rows)]
