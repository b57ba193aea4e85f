"""The projections every ledger keeps, in the order the runner folds them."""

from __future__ import annotations

from projections.balances import BalancesProjection, TrialBalanceProjection
from projections.journal import JournalProjection
from projections.views import Projection


def core_projections() -> list[Projection]:
    """Journal, account balances and trial balance."""
    return [JournalProjection(), BalancesProjection(), TrialBalanceProjection()]
