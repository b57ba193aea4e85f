"""A tiny, obviously correct reference ledger, and Quipu driven by the same random commands.

After every step the outcome of each post and, after projecting, every account balance and
the trial balance must agree with the model. Restarts (a new process's view of the same
database) and rebuilds happen at random too.
"""

from __future__ import annotations

import copy
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from adapters.bootstrap import Ledger, open_ledger
from tests.conftest import drop_schema, pg_url_for_new_schema
from tests.factories import authorized, captured, chargeback, fee, payout, refunded, released

amounts = st.integers(min_value=1, max_value=20_000)


def brl(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


class Model:
    """What should happen, in a few dozen lines: no posting rules, no stores, no caches."""

    def __init__(self) -> None:
        self.authorized: dict[str, int] = {}
        self.captured: dict[str, int] = defaultdict(int)
        self.returned: dict[str, int] = defaultdict(int)
        self.available = 0
        self.net: dict[str, int] = defaultdict(int)  # account → debits − credits
        self.seen: dict[str, bytes] = {}

    def move(self, debit: str, credit: str, minor: int) -> None:
        self.net[debit] += minor
        self.net[credit] -= minor

    def authorize(self, pid: str, minor: int) -> bool:
        if pid in self.authorized:
            return False
        self.authorized[pid] = minor
        return True

    def capture(self, pid: str, minor: int) -> bool:
        if pid not in self.authorized or self.captured[pid] + minor > self.authorized[pid]:
            return False
        self.captured[pid] += minor
        self.move("psp:cielo:receivable:BRL", "seller:S1:pending:BRL", minor)
        return True

    def give_back(self, pid: str, minor: int) -> bool:  # refund or chargeback
        if pid not in self.authorized or self.returned[pid] + minor > self.captured[pid]:
            return False
        self.returned[pid] += minor
        self.move("seller:S1:pending:BRL", "psp:cielo:receivable:BRL", minor)
        return True

    def fee(self, minor: int) -> bool:
        self.move("seller:S1:pending:BRL", "platform:main:fee_revenue.commission:BRL", minor)
        return True

    def release(self, minor: int) -> bool:
        self.available += minor
        self.move("seller:S1:pending:BRL", "seller:S1:available:BRL", minor)
        return True

    def payout(self, minor: int) -> bool:
        if minor > self.available:
            return False
        self.available -= minor
        self.move("seller:S1:available:BRL", "seller:S1:payout_reserved:BRL", minor)
        return True


class LedgerMachine(RuleBasedStateMachine):
    new_url: Callable[[], str]
    """Gives each example a fresh, empty ledger."""

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.url = type(self).new_url()
        self.ledger: Ledger = open_ledger(self.url)
        self.posted: list[dict[str, Any]] = []
        self.n = 0

    def _post(self, event: dict[str, Any], expected_ok: bool) -> None:
        (result,) = self.ledger.service.post([event])
        assert result.outcome.value == ("appended" if expected_ok else "rejected"), (event, result)
        if expected_ok:
            self.posted.append(event)

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    @rule(minor=amounts)
    def authorize(self, minor: int) -> None:
        pid = f"p{len(self.model.authorized) + 1}"
        self._post(authorized(pid, brl(minor)), self.model.authorize(pid, minor))

    @precondition(lambda self: self.model.authorized)
    @rule(data=st.data(), minor=amounts)
    def capture(self, data: st.DataObject, minor: int) -> None:
        pid = data.draw(st.sampled_from(sorted(self.model.authorized)))
        self._post(captured(pid, brl(minor)), self.model.capture(pid, minor))

    @precondition(lambda self: self.model.authorized)
    @rule(data=st.data(), minor=amounts, kind=st.sampled_from(["refund", "chargeback"]))
    def give_back(self, data: st.DataObject, minor: int, kind: str) -> None:
        pid = data.draw(st.sampled_from(sorted(self.model.authorized)))
        make = refunded if kind == "refund" else chargeback
        self._post(make(pid, self._id(kind[0]), brl(minor)), self.model.give_back(pid, minor))

    @rule(minor=amounts)
    def charge_fee(self, minor: int) -> None:
        self._post(fee(self._id("f"), brl(minor)), self.model.fee(minor))

    @rule(minor=amounts)
    def release(self, minor: int) -> None:
        self._post(released(self._id("L"), brl(minor)), self.model.release(minor))

    @rule(minor=amounts)
    def request_payout(self, minor: int) -> None:
        self._post(payout(self._id("W"), brl(minor)), self.model.payout(minor))

    @precondition(lambda self: self.posted)
    @rule(data=st.data())
    def post_again(self, data: st.DataObject) -> None:
        event = data.draw(st.sampled_from(self.posted))
        (result,) = self.ledger.service.post([event])
        assert result.outcome.value == "duplicate"

    @precondition(lambda self: self.posted)
    @rule(data=st.data())
    def post_conflicting(self, data: st.DataObject) -> None:
        event = copy.deepcopy(data.draw(st.sampled_from(self.posted)))
        event["source"] = f"other-{uuid.uuid4().hex[:6]}"
        (result,) = self.ledger.service.post([event])
        assert result.outcome.value == "conflict"

    @rule()
    def restart(self) -> None:
        self.ledger.close()
        self.ledger = open_ledger(self.url)

    @rule()
    def rebuild(self) -> None:
        self.ledger.runner.rebuild()

    @invariant()
    def balances_agree_with_the_model(self) -> None:
        self.ledger.runner.run()
        rows = self.ledger.views.query("SELECT account, debits_minor - credits_minor FROM account_balances")
        actual = {a: int(n) for a, n in rows if int(n) != 0}
        expected = {a: n for a, n in self.model.net.items() if n != 0}
        assert actual == expected
        trial = self.ledger.views.query("SELECT debits_minor, credits_minor FROM trial_balance")
        assert all(d == c for d, c in trial)

    def teardown(self) -> None:
        self.ledger.close()


def _run(new_url: Callable[[], str], examples: int) -> None:
    machine = type("Machine", (LedgerMachine,), {"new_url": staticmethod(new_url)})
    machine.TestCase.settings = settings(
        max_examples=examples, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
    )
    machine.TestCase().runTest()


def test_quipu_agrees_with_the_reference_model_on_sqlite(tmp_path: Path) -> None:
    counter = iter(range(10**6))
    _run(lambda: f"sqlite:///{tmp_path}/m{next(counter)}.db", examples=60)


def test_quipu_agrees_with_the_reference_model_on_postgresql() -> None:
    schemas: list[str] = []

    def url() -> str:
        made, schema = pg_url_for_new_schema()
        schemas.append(schema)
        return made

    try:
        _run(url, examples=15)
    finally:
        for schema in schemas:
            drop_schema(schema)
