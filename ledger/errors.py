"""Errors of the accounting core. Each names the field (or the thing) at fault and why."""

from __future__ import annotations


class QuipuError(Exception):
    """Base of every error Quipu raises on purpose (never for a bug)."""


class MoneyError(QuipuError, ValueError):
    """An amount or a currency that cannot be money: names the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class CurrencyMismatchError(QuipuError, ValueError):
    """Arithmetic across two currencies, which is never implicit."""


class UnbalancedEntryError(QuipuError, ValueError):
    """A journal entry whose debits and credits differ in some currency."""


class AccountNameError(QuipuError, ValueError):
    """An account name that does not follow the naming scheme."""
