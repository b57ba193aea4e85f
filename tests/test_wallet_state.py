"""The wallet's state over persistent maps (ADR 0039): deciding never changes the state decided on, and every
id-keyed rule still refuses its repeat, however long the wallet's history."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalog import parse_event, to_current
from domain.envelope import Envelope
from domain.rules import RuleViolation, State, WalletState, evolve, initial_state
from tests.factories import held, hold_released, payout, payout_failed, payout_sent, released

WALLET = "wallet:S1"


def event(doc: dict[str, Any]) -> Envelope:
    return to_current(parse_event(orjson.dumps(doc)))


def fold(docs: list[dict[str, Any]], state: State | None = None) -> State:
    s = state if state is not None else initial_state(WALLET)
    for d in docs:
        s = evolve(s, event(d))
    return s


def busy_wallet(n: int) -> State:
    docs: list[dict[str, Any]] = []
    for i in range(n):
        docs += [released(f"R{i}", "10.00"), payout(f"P{i}", "1.00"), held(f"H{i}", "1.00")]
    return fold(docs)


def test_deciding_leaves_the_state_it_decided_on_as_it_was() -> None:
    # A batch that fails to append discards its new states and keeps the old ones (the service's cache): the old
    # state must not have taken in the new ids.
    before = busy_wallet(300)
    assert isinstance(before, WalletState)
    snapshot = (before.available, dict(before.release_ids), dict(before.payouts), dict(before.holds))
    after = fold([released("R-new", "5.00"), payout_sent("P7", "1.00"), hold_released("H9", "1.00"),
                  payout("P-new", "2.00")], before)  # fmt: skip
    assert (before.available, dict(before.release_ids), dict(before.payouts), dict(before.holds)) == snapshot
    assert isinstance(after, WalletState)
    assert "R-new" in after.release_ids and "R-new" not in before.release_ids
    assert after.payout("P7") == ("BRL", 100, "sent") and before.payout("P7") == ("BRL", 100, "requested")
    assert after.hold("H9") == ("BRL", 100, False) and before.hold("H9") == ("BRL", 100, True)
    # Equal histories give equal states, whichever way they were reached.
    assert after == fold([released("R-new", "5.00"), payout_sent("P7", "1.00"), hold_released("H9", "1.00"),
                          payout("P-new", "2.00")], busy_wallet(300))  # fmt: skip


@pytest.mark.parametrize(
    ("repeat", "field", "reason"),
    [
        (released("R17", "1.00"), "payload.release_id", "release R17 was already booked"),
        (payout("P17", "1.00"), "payload.payout_id", "payout P17 was already requested"),
        (held("H17", "1.00"), "payload.hold_id", "hold H17 was already placed"),
        (payout_failed("P-none", "1.00"), "payload.payout_id", "payout P-none was never requested"),
        (hold_released("H-none", "1.00"), "payload.hold_id", "hold H-none was never placed on seller S1"),
    ],
)
def test_a_long_history_still_refuses_repeats_and_unknown_ids(repeat: dict[str, Any], field: str, reason: str) -> None:
    wallet = busy_wallet(300)
    with pytest.raises(RuleViolation) as caught:
        evolve(wallet, event(repeat))
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_a_payout_moves_through_its_lifecycle_once() -> None:
    wallet = fold(
        [released("R1", "10.00"), payout("P1", "4.00"), payout_sent("P1", "4.00"), payout_failed("P1", "4.00")]
    )
    assert isinstance(wallet, WalletState)
    assert wallet.payout("P1") == ("BRL", 400, "failed") and wallet.balance("BRL") == 1000
    with pytest.raises(RuleViolation, match="payout P1 is failed, not requested"):
        evolve(wallet, event(payout_sent("P1", "4.00")))
    with pytest.raises(RuleViolation, match="payout P1 is failed, not sent"):
        evolve(wallet, event(payout_failed("P1", "4.00")))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["release", "payout", "hold", "unhold"]), min_size=1, max_size=40))
def test_a_wallet_refuses_exactly_what_a_plain_model_refuses(steps: list[str]) -> None:
    """The same rules against dicts and sets rebuilt on every step (the obvious, quadratic way)."""
    wallet: State = initial_state(WALLET)
    funds, releases, payouts, holds = 0, set(), set(), {}  # type: ignore[var-annotated]
    for i, kind in enumerate(steps):
        key = str(i // 3)  # ids repeat, so repeats are exercised
        doc = {"release": released(f"R{key}", "2.00"), "payout": payout(f"P{key}", "1.00"),
               "hold": held(f"H{key}", "1.00"), "unhold": hold_released(f"H{key}", "1.00")}[kind]  # fmt: skip
        if kind == "release":
            ok = key not in releases
        elif kind == "payout":
            ok = key not in payouts and funds >= 100
        elif kind == "hold":
            ok = key not in holds and funds >= 100
        else:
            ok = holds.get(key) is True
        try:
            wallet = evolve(wallet, event(doc))
        except RuleViolation:
            assert not ok, (kind, key)
            continue
        assert ok, (kind, key)
        if kind == "release":
            releases, funds = releases | {key}, funds + 200
        elif kind == "payout":
            payouts, funds = payouts | {key}, funds - 100
        elif kind == "hold":
            holds, funds = {**holds, key: True}, funds - 100
        else:
            holds, funds = {**holds, key: False}, funds + 100
    assert isinstance(wallet, WalletState) and wallet.balance("BRL") == funds
