"""Settlement: schedules from real bank calendars, the daily run (releases, reserves,
deficit recovery), holds, payouts over the cheapest route, and the projection's agreement
with the journal — on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing as mp
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import settlement
from adapters.bootstrap import Ledger, open_ledger
from domain.settlement.routes import RouteError
from tests.factories import amt, ev

BR_FRIDAY_EVENING = "2027-02-05T18:30:00-03:00"  # after the 17:00 cut-off, before Carnival


def order(oid: str, site: str, value: str, ccy: str, seller: str = "S1", when: str = BR_FRIDAY_EVENING) -> Any:
    return ev("order.placed", {"order_id": oid, "site": site, "buyer_id": "B1", "seller_id": seller,
                               "total": amt(value, ccy)}, when=when)  # fmt: skip


def authorized(pid: str, oid: str, value: str, ccy: str, method: dict[str, Any], seller: str = "S1",
               when: str = BR_FRIDAY_EVENING) -> Any:  # fmt: skip
    return ev("payment.authorized", {"payment_id": pid, "order_id": oid, "seller_id": seller, "psp": "cielo",
                                     "amount": amt(value, ccy), "method": method}, when=when)  # fmt: skip


def captured(pid: str, value: str, ccy: str, seller: str = "S1", when: str = BR_FRIDAY_EVENING) -> Any:
    return ev("payment.captured", {"payment_id": pid, "seller_id": seller, "psp": "cielo",
                                   "amount": amt(value, ccy)}, when=when)  # fmt: skip


def card(installments: int = 1) -> dict[str, Any]:
    return {"kind": "card", "brand": "visa", "installments": installments, "token": "tok_1", "last4": "4242"}


PIX = {"kind": "pix", "end_to_end_id": "E1"}


def sale(pid: str, site: str, value: str, ccy: str, method: dict[str, Any], seller: str = "S1",
         when: str = BR_FRIDAY_EVENING) -> list[Any]:  # fmt: skip
    return [order(f"o-{pid}", site, value, ccy, seller, when), authorized(pid, f"o-{pid}", value, ccy, method, seller,
            when), captured(pid, value, ccy, seller, when)]  # fmt: skip


def post_ok(ledger: Ledger, events: list[Any]) -> None:
    results = ledger.service.post(events)
    assert [r.outcome.value for r in results] == ["appended"] * len(events), [r.reason for r in results]
    ledger.runner.run()


def schedule(ledger: Ledger, pid: str) -> list[tuple[Any, ...]]:
    return ledger.views.query(
        "SELECT installment, settles_on, amount_minor FROM settlement_schedule WHERE payment_id = ? "
        "ORDER BY installment", [pid])  # fmt: skip


def seller_accounts(ledger: Ledger) -> dict[str, int]:
    rows = ledger.views.query(
        "SELECT account, debits_minor, credits_minor FROM account_balances WHERE account LIKE ?", ["seller:%"]
    )
    return {str(a): int(c) - int(d) for a, d, c in rows}


def test_a_card_capture_after_cut_off_before_carnival_settles_on_the_wednesday_after(ledger_url: str) -> None:
    # Friday 5 Feb 2027 18:30 in São Paulo is after the 17:00 cut-off: T is the next bank
    # business day. Carnival Monday 8 and Tuesday 9 Feb are bank holidays, Ash Wednesday 10
    # Feb is open: T = Wed 10 Feb, T+2 = Fri 12 Feb.
    with open_ledger(ledger_url) as ledger:
        post_ok(ledger, sale("P1", "BR", "100.00", "BRL", card()))
        assert schedule(ledger, "P1") == [(1, "2027-02-12", 10000)]
        batches = settlement.batch_rows(ledger, dt.date(2027, 2, 1), dt.date(2027, 2, 28), "BR")
        assert batches == [{"date": "2027-02-12", "site": "BR", "currency": "BRL", "amount": "100.00",
                            "installments": 1}]  # fmt: skip


def test_installments_split_the_remainder_onto_the_first_and_fall_every_30_days(ledger_url: str) -> None:
    # 100.00 / 3 = 33.33 remainder 0.01 on the first: 33.34, 33.33, 33.33. The local capture
    # date is 5 Feb 2027; +30 = Sun 7 Mar → Mon 8 Mar; +60 = Tue 6 Apr; +90 = Thu 6 May.
    with open_ledger(ledger_url) as ledger:
        post_ok(ledger, sale("P3", "BR", "100.00", "BRL", card(3)))
        assert schedule(ledger, "P3") == [(1, "2027-03-08", 3334), (2, "2027-04-06", 3333), (3, "2027-05-06", 3333)]


def test_a_mexican_bank_holiday_pushes_settlement(ledger_url: str) -> None:
    # Wed 11 Nov 2026 10:00 in Mexico City: T = 11 Nov; T+1 = Thu 12; T+2 = Fri 13 Nov.
    # Captured Fri 13 Nov: T+1 = Mon 16 Nov is Revolution Day (closed) → Tue 17, T+2 = Wed 18.
    with open_ledger(ledger_url) as ledger:
        post_ok(ledger, sale("M1", "MX", "500.00", "MXN", card(), when="2026-11-11T10:00:00-06:00"))
        post_ok(ledger, sale("M2", "MX", "500.00", "MXN", card(), when="2026-11-13T10:00:00-06:00"))
        assert schedule(ledger, "M1") == [(1, "2026-11-13", 50000)]
        assert schedule(ledger, "M2") == [(1, "2026-11-18", 50000)]


def test_a_capture_whose_order_is_unknown_is_kept_unscheduled_not_lost(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        post_ok(ledger, [authorized("X1", "o-missing", "10.00", "BRL", PIX), captured("X1", "10.00", "BRL")])
        rows = ledger.views.query("SELECT settles_on, amount_minor, rule FROM settlement_schedule")
        assert rows == [("", 1000, "unscheduled: the payment's order (and so its site) is not in the log")]
        # Never released: it is not due on any date.
        assert settlement.run(ledger, dt.date(2030, 1, 1)) == []


def _pix_sale(pid: str, value: str, when: str = "2026-10-05T12:00:00-03:00", seller: str = "S1") -> list[Any]:
    return sale(pid, "BR", value, "BRL", PIX, seller, when)


def test_the_run_releases_what_is_due_once_and_a_late_chargeback_is_recovered_before_payout(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        fee = ev("fee.charged", {"fee_id": "F1", "seller_id": "S1", "kind": "commission", "amount": amt("10.00")},
                 when="2026-10-05T12:00:00-03:00")  # fmt: skip
        post_ok(ledger, [*_pix_sale("P1", "100.00"), fee])
        # Pix settles on the capture date: 90.00 net is due on 5 Oct, nothing before.
        assert settlement.run(ledger, dt.date(2026, 10, 4)) == []
        first = settlement.run(ledger, dt.date(2026, 10, 5))
        assert [(o.kind, o.amount, o.outcome) for o in first] == [("funds.released", "90.00", "appended")]
        assert settlement.run(ledger, dt.date(2026, 10, 5)) == []  # idempotent
        # A chargeback of the whole 100.00 after release: the seller owes 10.00 more than was released.
        cb = ev("chargeback.opened", {"chargeback_id": "C1", "payment_id": "P1", "seller_id": "S1", "psp": "cielo",
                                      "amount": amt("100.00"), "reason_code": "10.4"},
                when="2026-10-06T09:00:00-03:00")  # fmt: skip
        post_ok(ledger, [cb])
        [p] = settlement.positions(ledger, dt.date(2026, 10, 6), "S1")
        assert (p.due, p.deficit, p.available) == (-10000, 10000, 9000)
        # The next run recovers it from available funds, visibly, before anything is paid out.
        recovered = settlement.run(ledger, dt.date(2026, 10, 6))
        assert [(o.kind, o.amount) for o in recovered] == [("deficit.recovered", "90.00")]
        [p] = settlement.positions(ledger, dt.date(2026, 10, 6), "S1")
        assert (p.available, p.deficit) == (0, 1000)
        # The remaining 10.00 deficit comes out of the next release: 50.00 due → 40.00 released.
        post_ok(ledger, _pix_sale("P2", "50.00", when="2026-10-07T12:00:00-03:00"))
        nxt = settlement.run(ledger, dt.date(2026, 10, 7))
        assert [(o.kind, o.amount) for o in nxt] == [("funds.released", "40.00")]
        _assert_positions_match_the_journal(ledger)


def _assert_positions_match_the_journal(ledger: Ledger) -> None:
    accounts = seller_accounts(ledger)
    for p in settlement.positions(ledger, dt.date(2100, 1, 1)):
        for purpose, value in (("pending", p.pending), ("available", p.available), ("held", p.held)):
            assert accounts.get(f"seller:{p.seller_id}:{purpose}:{p.currency}", 0) == value, (p, purpose)
        reserved = accounts.get(f"seller:{p.seller_id}:payout_reserved:{p.currency}", 0)
        assert reserved <= p.in_payout  # requested and not yet sent, within what is in payout
        # Every minor unit captured is somewhere: the identity the issue asks for.
        assert (p.available + p.pending + p.held + p.in_payout + p.paid_out + p.payout_fees
                + p.converted_out - p.converted_in) == p.captured - p.deductions  # fmt: skip


def test_holds_keep_funds_from_payouts_until_released(ledger_url: str) -> None:
    at = dt.datetime(2026, 10, 6, 12, tzinfo=dt.UTC)
    with open_ledger(ledger_url) as ledger:
        post_ok(ledger, _pix_sale("P1", "100.00"))
        settlement.run(ledger, dt.date(2026, 10, 5))
        too_much = settlement.place_hold(ledger, "S1", "100.01", "BRL", "aml", "ALERT-1", at)
        assert too_much.outcome.value == "rejected" and "exceeds seller S1's available 100.00 BRL" in str(
            too_much.reason
        )
        assert (
            settlement.place_hold(ledger, "S1", "60.00", "BRL", "aml", "ALERT-1", at, "H1").outcome.value == "appended"
        )
        head = ledger.store.head()
        _, refused = settlement.request_payout(ledger, "S1", "50.00", "BRL", "BRL", "acct", None, at)
        assert refused.outcome.value == "rejected"
        assert "held funds and earlier payouts excluded" in str(refused.reason)
        assert ledger.store.head() == head  # nothing written
        assert settlement.release_hold(ledger, "H1", "case C-1 cleared by ana", at).outcome.value == "appended"
        with pytest.raises(settlement.SettlementError, match="already released"):
            settlement.release_hold(ledger, "H1", "again", at)
        event, ok = settlement.request_payout(ledger, "S1", "50.00", "BRL", "BRL", "acct", None, at)
        assert ok.outcome.value == "appended"
        # Pix is the cheapest BRL route; its fee comes out of the 50.00.
        route = event["payload"]["route"]
        assert route["chosen"] == "pix-brl" and event["payload"]["rail"] == "pix"
        fee = event["payload"]["fee"]["amount"] if event["payload"]["fee"] else "0"
        assert Decimal(event["payload"]["amount"]["amount"]) + Decimal(fee) == Decimal("50.00")
        _assert_positions_match_the_journal(ledger)


def test_a_payout_retried_later_is_the_recorded_request_and_a_changed_one_a_conflict(ledger_url: str) -> None:
    first = dt.datetime(2026, 10, 6, 12, tzinfo=dt.UTC)
    later = first + dt.timedelta(seconds=1, microseconds=5)  # a client's retry, in the next second
    with open_ledger(ledger_url) as ledger:
        post_ok(ledger, _pix_sale("P1", "100.00"))
        settlement.run(ledger, dt.date(2026, 10, 5))
        event, ok = settlement.request_payout(ledger, "S1", "40.00", "BRL", "BRL", "acct", None, first, "W1")
        assert ok.outcome.value == "appended"
        head = ledger.store.head()
        again, dup = settlement.request_payout(ledger, "S1", "40.00", "BRL", "BRL", "acct", None, later, "W1")
        assert (dup.outcome.value, dup.position, dup.event_id) == ("duplicate", ok.position, ok.event_id)
        assert again == event  # the recorded request, priced at its own time
        for changed, field in [(("41.00", "BRL", "acct"), "amount 40.00 (asked 41.00)"),
                               (("40.00", "USD", "acct"), "to BRL (asked USD)"),
                               (("40.00", "BRL", "other"), "destination acct (asked other)")]:  # fmt: skip
            amount, target, destination = changed
            _, clash = settlement.request_payout(ledger, "S1", amount, "BRL", target, destination, None, later, "W1")
            assert clash.outcome.value == "conflict" and clash.position == ok.position
            assert clash.reason == f"payout_id: W1 was already requested with {field}"
        with pytest.raises(Exception, match="--amount"):  # a bad amount is refused as such, retry or not
            settlement.request_payout(ledger, "S1", "40.001", "BRL", "BRL", "acct", None, later, "W1")
        assert ledger.store.head() == head
        [p] = settlement.positions(ledger, dt.date(2026, 10, 6), "S1")
        assert (p.in_payout + p.payout_fees, p.available) == (4000, 6000)  # once


def test_bad_payout_requests_get_clear_errors_and_write_nothing(ledger_url: str) -> None:
    at = dt.datetime(2026, 10, 6, 12, tzinfo=dt.UTC)
    with open_ledger(ledger_url) as ledger:
        post_ok(ledger, _pix_sale("P1", "100.00"))
        settlement.run(ledger, dt.date(2026, 10, 5))
        head = ledger.store.head()
        with pytest.raises(settlement.SettlementError, match="--seller: unknown seller 'NOPE'"):
            settlement.request_payout(ledger, "NOPE", "10.00", "BRL", "BRL", "acct", None, at)
        with pytest.raises(RouteError, match="--to: no payout route from BRL to JPY"):
            settlement.request_payout(ledger, "S1", "10.00", "BRL", "JPY", "acct", None, at)
        with pytest.raises(Exception, match="--amount"):
            settlement.request_payout(ledger, "S1", "10.001", "BRL", "BRL", "acct", None, at)
        _, above = settlement.request_payout(ledger, "S1", "100.01", "BRL", "BRL", "acct", None, at)
        assert above.outcome.value == "rejected" and str(above.reason).startswith("payload.amount: payout of")
        assert ledger.store.head() == head


def test_a_rolling_reserve_is_held_at_release_and_released_when_due(ledger_url: str) -> None:
    # config/settlement.toml: seller S-MX-RISK keeps 10% of each MXN release for 30 days.
    with open_ledger(ledger_url) as ledger:
        post_ok(ledger, sale("R1", "MX", "1000.00", "MXN", card(), "S-MX-RISK", "2026-11-11T10:00:00-06:00"))
        run = settlement.run(ledger, dt.date(2026, 11, 13))
        assert [(o.kind, o.amount) for o in run] == [("funds.released", "1000.00"), ("funds.held", "100.00")]
        [p] = settlement.positions(ledger, dt.date(2026, 11, 13), "S-MX-RISK")
        assert (p.available, p.reserved, p.held) == (90000, 10000, 10000)
        assert settlement.run(ledger, dt.date(2026, 12, 12)) == []
        later = settlement.run(ledger, dt.date(2026, 12, 13))
        assert [(o.kind, o.amount) for o in later] == [("hold.released", "100.00")]
        _assert_positions_match_the_journal(ledger)


def test_the_settlement_projection_rebuilds_to_the_same_checksum_in_any_batch_size(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        events: list[Any] = []
        for i in range(12):
            method = card(1 + i % 4) if i % 3 else PIX
            events += sale(f"P{i}", "BR" if i % 2 else "MX", "123.45", "BRL" if i % 2 else "MXN", method,
                           f"S{i % 3}", f"2026-10-{1 + i:02d}T16:59:59-03:00")  # fmt: skip
        post_ok(ledger, events)
        for d in range(1, 20):
            settlement.run(ledger, dt.date(2026, 10, d))
        live = ledger.runner.checksums()["settlement"]
        for size in (1, 7, 5000):
            ledger.runner.batch_size = size
            ledger.runner.rebuild()
            assert ledger.runner.checksums()["settlement"] == live


def _payout_racer(url: str, worker: int, out: Any) -> None:
    at = dt.datetime(2026, 10, 6, 12, tzinfo=dt.UTC)
    outcomes = []
    with open_ledger(url) as ledger:
        for k in range(6):
            if k % 3 == 2:
                r = settlement.place_hold(ledger, "S1", "15.00", "BRL", "risk", None, at, f"H-{worker}-{k}")
            else:
                _, r = settlement.request_payout(ledger, "S1", "20.00", "BRL", "BRL", "acct", None, at,
                                                 f"PO-{worker}-{k}")  # fmt: skip
            outcomes.append(r.outcome.value)
    out.put(outcomes)


def test_concurrent_payouts_and_holds_never_overdraw_a_seller(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        post_ok(ledger, _pix_sale("P1", "100.00"))
        settlement.run(ledger, dt.date(2026, 10, 5))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_payout_racer, args=(ledger_url, w, queue)) for w in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(r.count("appended") for r in results) >= 1
    with open_ledger(ledger_url) as ledger:
        ledger.runner.run()
        accounts = seller_accounts(ledger)
        assert accounts["seller:S1:available:BRL"] >= 0
        taken = accounts.get("seller:S1:payout_reserved:BRL", 0) + accounts.get("seller:S1:held:BRL", 0)
        fees = ledger.views.query(
            "SELECT COALESCE(SUM(credits_minor), 0) FROM account_balances WHERE account LIKE ?",
            ["%fee_revenue.payout%"],
        )[0][0]
        assert taken + int(fees) + accounts["seller:S1:available:BRL"] == 10000
        _assert_positions_match_the_journal(ledger)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["sale", "refund", "chargeback", "fee", "run", "payout", "hold", "unhold"]),
                          st.integers(1, 3), st.integers(1, 30_000)), min_size=1, max_size=25))  # fmt: skip
def test_positions_always_equal_the_journal(tmp_path_factory: pytest.TempPathFactory, steps: list[Any]) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('prop')}/p.db"
    day = dt.date(2026, 10, 1)
    with open_ledger(url) as ledger:
        sales: list[tuple[str, str, int]] = []
        holds: list[str] = []
        for n, (kind, seller_no, cents) in enumerate(steps):
            seller = f"S{seller_no}"
            value = f"{cents // 100}.{cents % 100:02d}"
            when = f"{day.isoformat()}T12:00:00-03:00"
            if kind == "sale" or not sales:
                pid = f"P{n}"
                ledger.service.post(sale(pid, "BR", value, "BRL", PIX if n % 2 else card(1 + n % 3), seller, when))
                sales.append((pid, seller, cents))
            elif kind in ("refund", "chargeback"):
                pid, s, c = sales[cents % len(sales)]
                part = f"{max(1, c // 3) // 100}.{max(1, c // 3) % 100:02d}"
                key = "refund_id" if kind == "refund" else "chargeback_id"
                extra = {} if kind == "refund" else {"reason_code": "10.4"}
                ledger.service.post([ev("refund.issued" if kind == "refund" else "chargeback.opened",
                                        {key: f"{kind}-{n}", "payment_id": pid, "seller_id": s, "psp": "cielo",
                                         "amount": amt(part), **extra}, when=when)])  # fmt: skip
            elif kind == "fee":
                ledger.service.post([ev("fee.charged", {"fee_id": f"F{n}", "seller_id": seller, "kind": "commission",
                                                        "amount": amt(value)}, when=when)])  # fmt: skip
            elif kind == "run":
                day += dt.timedelta(days=cents % 40)
                settlement.run(ledger, day)
            elif kind == "payout":
                moment = dt.datetime.combine(day, dt.time(15), dt.UTC)
                with contextlib.suppress(settlement.SettlementError, RouteError):
                    settlement.request_payout(ledger, seller, value, "BRL", "BRL", "acct", None, moment, f"W{n}")
            elif kind == "hold":
                moment = dt.datetime.combine(day, dt.time(15), dt.UTC)
                r = settlement.place_hold(ledger, seller, value, "BRL", "risk", None, moment, f"H{n}")
                if r.outcome.value == "appended":
                    holds.append(f"H{n}")
            elif kind == "unhold" and holds:
                settlement.release_hold(ledger, holds.pop(0), "tests", dt.datetime.combine(day, dt.time(16), dt.UTC))
        ledger.runner.run()
        _assert_positions_match_the_journal(ledger)
        live = ledger.runner.checksums()["settlement"]
        ledger.runner.rebuild()
        assert ledger.runner.checksums()["settlement"] == live
        trial = ledger.views.query("SELECT debits_minor, credits_minor FROM trial_balance")
        assert all(d == c for d, c in trial)


def test_the_same_run_date_twice_proposes_the_same_event_ids() -> None:
    from domain.settlement.dates import MethodRules
    from domain.settlement.positions import position
    from domain.settlement.run import plan

    days = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
    rules = MethodRules.model_validate({"version": "t", "card": {"installment_interval_days": 30},
                                        "boleto": {"compensation_days": 3}, "pix": {},
                                        "oxxo": {"schedule": dict.fromkeys(days, "MON")}})  # fmt: skip
    p = position("S1", "CLP", {"captured": 1001, "fee": 1}, 1001)
    a = plan(dt.date(2026, 10, 5), [p], [], rules)
    b = plan(dt.date(2026, 10, 5), [p], [], rules)
    assert a == b and len(a) == 1
    assert a[0]["payload"]["amount"] == {"amount": "1000", "currency": "CLP"}  # zero-exponent: no decimals
    assert uuid.UUID(a[0]["event_id"]).version == 5


def test_a_cross_currency_payout_moves_only_on_days_both_calendars_are_open() -> None:
    from adapters.bootstrap import settlement_policy

    policy = settlement_policy()
    # Wed 25 Nov 2026 10:00 in São Paulo, BRL → USD in 2 days: Thu 26 Nov is Thanksgiving (the
    # Federal Reserve is closed), so day 1 is Fri 27 Nov and day 2 Mon 30 Nov.
    at = dt.datetime(2026, 11, 25, 10, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    assert policy.payout_arrival("BRL", "USD", at, dt.time(15), 2) == dt.date(2026, 11, 30)
    # The same payout within Brazil only counts Brazilian bank days: Thu 26 and Fri 27 Nov.
    assert policy.payout_arrival("BRL", "BRL", at, dt.time(15), 2) == dt.date(2026, 11, 27)
    # Requested on Carnival Monday 2027 it leaves on Ash Wednesday (10 Feb) and arrives 2 joint days later.
    carnival = dt.datetime(2027, 2, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    assert policy.payout_arrival("BRL", "EUR", carnival, dt.time(15), 2) == dt.date(2027, 2, 12)
    # After the route's cut-off it leaves the next joint business day.
    late = dt.datetime(2026, 11, 24, 16, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    assert policy.payout_arrival("BRL", "USD", late, dt.time(15), 0) == dt.date(2026, 11, 25)


def test_on_a_site_with_a_release_delay_funds_wait_for_delivery_plus_the_delay(ledger_url: str) -> None:
    # config/settlement.toml: CO captures from 2026-10-15 are released 3 days after delivery.
    # Pix-like account money settles on the capture date (Tue 20 Oct 2026, Bogotá).
    when = "2026-10-20T10:00:00-05:00"
    with open_ledger(ledger_url) as ledger:
        post_ok(ledger, sale("C1", "CO", "1000.00", "COP", {"kind": "account_money"}, "S-CO", when))
        assert schedule(ledger, "C1") == [(1, "2026-10-20", 100000)]
        assert settlement.run(ledger, dt.date(2026, 10, 25)) == []  # not delivered yet
        delivered = ev("delivery.confirmed", {"order_id": "o-C1", "shipment_id": "SH1", "carrier": "servientrega",
                                              "delivered_at": "2026-10-26T18:00:00-05:00"},
                       when="2026-10-26T18:00:00-05:00")  # fmt: skip
        post_ok(ledger, [delivered])
        assert settlement.run(ledger, dt.date(2026, 10, 28)) == []  # delivered 26 Oct + 3 days = 29 Oct
        assert [(o.kind, o.amount) for o in settlement.run(ledger, dt.date(2026, 10, 29))] == [
            ("funds.released", "1000.00")
        ]
        [twice] = ledger.service.post([{**delivered, "event_id": str(uuid.uuid4())}])
        assert twice.reason == "payload.order_id: order o-C1 was already delivered"
        _assert_positions_match_the_journal(ledger)
