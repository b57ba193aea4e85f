"""The projections every ledger keeps, in the order the runner folds them."""

from __future__ import annotations

from domain.aml.rules import AmlRules
from domain.settlement.policy import SettlementPolicy
from projections.aml import AmlProjection
from projections.balances import BalancesProjection, TrialBalanceProjection
from projections.config_history import ConfigHistoryProjection
from projections.fx_positions import FxPositionsProjection
from projections.fx_rates import FxRatesProjection
from projections.journal import JournalProjection
from projections.logistics import LogisticsProjection
from projections.reconciliation import ReconciliationProjection
from projections.settlement import SettlementProjection
from projections.taxes import TaxProjection
from projections.views import Projection


def core_projections(settlement: SettlementPolicy, aml: AmlRules) -> list[Projection]:
    """Journal, balances, trial balance, FX rates, settlement, logistics, taxes, rule files, AML,
    reconciliation."""
    return [
        JournalProjection(),
        BalancesProjection(),
        TrialBalanceProjection(),
        FxRatesProjection(),
        FxPositionsProjection(),
        SettlementProjection(settlement),
        LogisticsProjection(),
        TaxProjection(),
        ConfigHistoryProjection(),
        AmlProjection(aml),
        ReconciliationProjection(),
    ]
