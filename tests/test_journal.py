"""Journal entries balance per currency or refuse to exist; posting rules always balance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.catalog import parse_event
from domain.posting_rules import RULES, entry_for
from ledger.accounts import Side, parse_account
from ledger.errors import AccountNameError, UnbalancedEntryError
from ledger.journal import JournalEntry, Posting, credit, debit
from tests.factories import adjustment, captured, chargeback, fee, payout, refunded, released

ACCOUNTS = ["seller:S1:pending:BRL", "psp:cielo:receivable:BRL", "seller:S2:pending:MXN", "psp:adyen:receivable:MXN"]


@st.composite
def postings(draw: st.DrawFn) -> tuple[Posting, ...]:
    lines = draw(
        st.lists(
            st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(list(Side)), st.integers(1, 10**9)),
            min_size=1,
            max_size=8,
        )
    )
    return tuple(Posting(a, a[-3:], s, n) for a, s, n in lines)


@given(postings())
def test_an_entry_exists_only_when_it_balances_in_every_currency(lines: tuple[Posting, ...]) -> None:
    net: dict[str, int] = {}
    for p in lines:
        net[p.currency] = net.get(p.currency, 0) + p.signed_minor
    if all(v == 0 for v in net.values()):
        entry = JournalEntry(lines)
        assert all(d == c for d, c in entry.totals().values())
    else:
        with pytest.raises(UnbalancedEntryError, match="does not balance"):
            JournalEntry(lines)


def test_balanced_in_total_but_not_per_currency_is_refused() -> None:
    with pytest.raises(UnbalancedEntryError, match="BRL debits exceed credits by 100"):
        JournalEntry((debit(ACCOUNTS[0], "BRL", 100), credit(ACCOUNTS[2], "MXN", 100)))


def test_a_posting_in_another_currency_than_its_account_is_refused() -> None:
    with pytest.raises(UnbalancedEntryError, match="is not the account's BRL"):
        JournalEntry((debit(ACCOUNTS[0], "MXN", 1), credit(ACCOUNTS[2], "MXN", 1)))


def test_non_positive_postings_are_refused() -> None:
    with pytest.raises(UnbalancedEntryError, match="must be positive"):
        JournalEntry((debit(ACCOUNTS[0], "BRL", 0), credit(ACCOUNTS[1], "BRL", 0)))


@pytest.mark.parametrize(
    "name", ["seller:S1:pending", "alien:S1:pending:BRL", "seller:S 1:pending:BRL", "seller:S1:pending:brl"]
)
def test_account_names_follow_the_scheme(name: str) -> None:
    with pytest.raises(AccountNameError):
        parse_account(name)


amounts = st.integers(min_value=1, max_value=10**9).map(lambda n: f"{n // 100}.{n % 100:02d}")


@given(amounts, st.sampled_from([captured, refunded, chargeback, fee, released, payout]))
def test_every_posting_rule_books_a_balanced_entry(value: str, make: Callable[..., dict[str, Any]]) -> None:
    if make is refunded or make is chargeback:
        doc = make("p1", "x1", value)
    elif make is captured:
        doc = make("p1", value)
    else:
        doc = make("id1", value)
    entry = entry_for(parse_event(doc))
    assert entry is not None
    assert all(d == c for d, c in entry.totals().values())


def test_every_rule_is_keyed_by_a_known_type_and_version() -> None:
    from domain.catalog import CURRENT_VERSION

    for kind, version in RULES:
        assert 1 <= version <= CURRENT_VERSION[kind]


def test_an_unbalanced_adjustment_names_the_currency_and_difference() -> None:
    doc = adjustment("a1", [("seller:S1:available:BRL", "debit", "10.00", "BRL"),
                            ("platform:main:adjustments:BRL", "credit", "9.99", "BRL")])  # fmt: skip
    with pytest.raises(UnbalancedEntryError, match="BRL debits exceed credits by 1 minor units"):
        entry_for(parse_event(doc))
