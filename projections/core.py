"""The projections every ledger keeps, in the order the runner folds them."""

from __future__ import annotations

from projections.balances import BalancesProjection, TrialBalanceProjection
from projections.fx_rates import FxRatesProjection
from projections.journal import JournalProjection
from projections.views import Projection


def core_projections() -> list[Projection]:
    """Journal, account balances, trial balance and published FX rates."""
    return [JournalProjection(), BalancesProjection(), TrialBalanceProjection(), FxRatesProjection()]
