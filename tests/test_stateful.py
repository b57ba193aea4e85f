"""A tiny, obviously correct reference ledger, and Quipu driven by the same random commands.

Two sellers (one with a rolling reserve in ``config/settlement.toml``) trade in BRL, CLP (no
minor unit) and MXN: orders, authorisations, captures, refunds, chargebacks, fees, releases,
holds and their release, AML freezes, payouts (requested, sent, settled or failed) and daily
settlement runs, mixed with re-posts (duplicates), conflicting re-posts (same id, other body),
the same facts again under new event ids, partial projections, rebuilds and restarts.

Every post's outcome must be the model's. After every step the views — account balances, the
trial balance, each seller's settlement figures and the holds table — must equal the model's
as it was at the log position the views have reached: views lag until a ``project`` (which
may stop part way), a ``rebuild`` (likewise) or a settlement run brings them forward.

``QUIPU_STATEFUL_EXAMPLES`` sets the examples per backend (default 60 on SQLite, 15 on
PostgreSQL); ``python -m benchmarks.stateful`` runs the long version and prints the counts.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, cast

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from adapters import config_files, settlement
from adapters.bootstrap import Ledger, open_ledger
from tests.conftest import drop_schema, pg_url_for_new_schema
from tests.factories import (
    authorized,
    captured,
    chargeback,
    fee,
    frozen,
    held,
    hold_released,
    payout,
    payout_failed,
    payout_sent,
    payout_settled,
    placed,
    refunded,
    released,
    unfrozen,
)

SELLERS = ("MX-S7-003", "S-MX-RISK", "S1")  # sorted; the first two keep a rolling reserve of MXN releases
CURRENCIES = {"BRL": ("BR", 2), "CLP": ("CL", 0), "MXN": ("MX", 2)}  # site, decimals
START = dt.date(2026, 10, 1)
FAR = dt.date(2100, 1, 1)  # settlement figures are read as of a day after everything
FIGURES = ("captured", "settled", "deductions", "released", "recovered", "available", "held", "reserved",
           "in_payout", "paid_out")  # fmt: skip
ACCOUNTS = {
    "psp": "psp:cielo:receivable:{c}", "pending": "seller:{s}:pending:{c}", "available": "seller:{s}:available:{c}",
    "held": "seller:{s}:held:{c}", "reserved": "seller:{s}:payout_reserved:{c}",
    "fees": "platform:main:fee_revenue.commission:{c}", "clearing": "platform:main:payouts_clearing:{c}",
    "cash": "platform:main:cash:{c}",
}  # fmt: skip
STEPS = {"sent": ("requested", "reserved", "clearing"), "settled": ("sent", "clearing", "cash"),
         "failed": ("sent", "clearing", "available")}  # fmt: skip
Reserve = Callable[[str, str, dt.date], tuple[Fraction, int] | None]


def money(minor: int, ccy: str) -> str:
    places = CURRENCIES[ccy][1]
    return f"{minor // 10**places}.{minor % 10**places:0{places}d}" if places else str(minor)


@dataclass(frozen=True)
class Views:
    """What the read side shows; the model's own at each log position."""

    accounts: dict[str, tuple[int, int]]  # account → (debits, credits)
    trial: dict[str, tuple[int, int]]  # currency → (debits, credits)
    figures: dict[tuple[str, str], dict[str, int]]  # (seller, currency) → figure → minor units
    holds: dict[tuple[str, str], tuple[Any, ...]]  # (seller, id) → ccy, amount, reason, release_on, active


class Model:
    """What should happen, from the rules as stated: no posting rules, no stores, no caches."""

    def __init__(self, reserve: Reserve) -> None:
        self.reserve = reserve
        self.dr: Counter[str] = Counter()
        self.cr: Counter[str] = Counter()
        self.sums: Counter[tuple[str, str, str]] = Counter()  # (seller, ccy, captured|settled|deductions|...)
        self.payments: dict[str, list[Any]] = {}  # id → [seller, ccy, authorized, captured, returned, has site]
        self.holds: dict[tuple[str, str], list[Any]] = {}  # (seller, id) → [ccy, amount, reason, release_on, active]
        self.payouts: dict[str, list[Any]] = {}  # id → [seller, ccy, amount, status]
        self.freezes: dict[str, str] = {}  # active freeze id → seller
        self.used: set[str] = set()  # order, refund, chargeback, fee, release and payout ids; (seller, hold id)

    def apply(self, command: tuple[Any, ...]) -> bool:
        """Whether the command is accepted; if so its effects are made."""
        ok: bool = getattr(self, command[0])(*command[1:])
        return ok

    def _move(self, s: str, c: str, debit: str, credit: str, minor: int) -> None:
        self.dr[ACCOUNTS[debit].format(s=s, c=c)] += minor
        self.cr[ACCOUNTS[credit].format(s=s, c=c)] += minor

    def available(self, s: str, c: str) -> int:
        return self.cr[f"seller:{s}:available:{c}"] - self.dr[f"seller:{s}:available:{c}"]

    def _fresh(self, ident: Any, allowed: bool = True) -> bool:
        if ident in self.used or not allowed:
            return False
        self.used.add(ident)
        return True

    def place(self, oid: str) -> bool:
        return self._fresh(oid)

    def authorize(self, pid: str, s: str, c: str, minor: int, site: bool) -> bool:
        if pid in self.payments:
            return False
        self.payments[pid] = [s, c, minor, 0, 0, site]
        return True

    def capture(self, pid: str, minor: int) -> bool:
        p = self.payments.get(pid)
        if p is None or p[3] + minor > p[2]:
            return False
        p[3] += minor
        self.sums[p[0], p[1], "captured"] += minor
        self.sums[p[0], p[1], "settled"] += minor if p[5] else 0  # Pix on a known site: due on its capture day
        self._move(p[0], p[1], "psp", "pending", minor)
        return True

    def give_back(self, pid: str, rid: str, minor: int) -> bool:  # a refund or a chargeback
        p = self.payments.get(pid)
        if p is None or not self._fresh(rid, p[4] + minor <= p[3]):
            return False
        p[4] += minor
        self.sums[p[0], p[1], "deductions"] += minor
        self._move(p[0], p[1], "pending", "psp", minor)
        return True

    def fee(self, fid: str, s: str, c: str, minor: int) -> bool:
        if not self._fresh(fid):
            return False
        self.sums[s, c, "deductions"] += minor
        self._move(s, c, "pending", "fees", minor)
        return True

    def release(self, rid: str, s: str, c: str, minor: int) -> bool:
        if not self._fresh(rid):
            return False
        self.sums[s, c, "released"] += minor
        self._move(s, c, "pending", "available", minor)
        return True

    def hold(self, hid: str, s: str, c: str, minor: int, reason: str, release_on: str) -> bool:
        if not self._fresh((s, hid), minor <= self.available(s, c)):  # hold ids are the seller's own
            return False
        self.holds[s, hid] = [c, minor, reason, release_on, True]
        self._move(s, c, "available", "held", minor)
        return True

    def unhold(self, hid: str, s: str, c: str, minor: int) -> bool:
        h = self.holds.get((s, hid))
        if h is None or h[:2] != [c, minor] or not h[4]:
            return False
        h[4] = False
        self._move(s, c, "held", "available", minor)
        return True

    def freeze(self, fid: str, s: str) -> bool:
        if fid in self.freezes:
            return False
        self.freezes[fid] = s
        return True

    def unfreeze(self, fid: str, s: str) -> bool:
        if self.freezes.get(fid) != s:
            return False
        del self.freezes[fid]
        return True

    def payout(self, wid: str, s: str, c: str, minor: int) -> bool:
        if s in self.freezes.values() or not self._fresh(wid, minor <= self.available(s, c)):
            return False
        self.payouts[wid] = [s, c, minor, "requested"]
        self._move(s, c, "available", "reserved", minor)
        return True

    def payout_step(self, wid: str, step: str) -> bool:
        w = self.payouts.get(wid)
        if w is None or w[3] != STEPS[step][0]:
            return False
        w[3] = step
        self._move(w[0], w[1], STEPS[step][1], STEPS[step][2], w[2])
        return True

    def settle(self, day: dt.date) -> list[tuple[str, str, int, str]]:
        """The daily run: reserves whose day has come return to available; then per seller and
        currency what is due (settled − deductions − released + recovered) is released, less a
        rolling reserve, or a deficit is recovered from available funds."""
        done = []
        for (s, hid), (c, minor, reason, release_on, active) in sorted(self.holds.items(), key=lambda h: h[0][1]):
            if active and reason == "reserve" and release_on and release_on <= day.isoformat():
                self.unhold(hid, s, c, minor)
                done.append(("hold.released", s, minor, c))
        for s in SELLERS:
            for c in sorted(CURRENCIES):
                due = sum(self.sums[s, c, k] * sign for k, sign in
                          (("settled", 1), ("deductions", -1), ("released", -1), ("recovered", 1)))  # fmt: skip
                if due > 0:
                    self.release(f"run:{s}:{c}:{self.sums[s, c, 'released']}", s, c, due)
                    done.append(("funds.released", s, due, c))
                    rule = self.reserve(s, c, day)
                    if rule and (kept := round(due * rule[0] / 100)) > 0:
                        hid = f"RSV{day:%Y%m%d}-{c}-{self.sums[s, c, 'released'] - due}"
                        self.hold(hid, s, c, kept, "reserve", (day + dt.timedelta(days=rule[1])).isoformat())
                        done.append(("funds.held", s, kept, c))
                elif (covered := min(-due, self.available(s, c))) > 0:
                    self.sums[s, c, "recovered"] += covered
                    self._move(s, c, "available", "pending", covered)
                    done.append(("deficit.recovered", s, covered, c))
        return done

    def views(self) -> Views:
        accounts = {a: (self.dr[a], self.cr[a]) for a in self.dr.keys() | self.cr.keys()}
        trial: Counter[str] = Counter()
        for a, (d, _) in accounts.items():
            trial[a.rsplit(":", 1)[1]] += d  # every move debits and credits the same currency
        figures = {}
        for s in SELLERS:
            for c in CURRENCIES:
                f = {k: self.sums[s, c, k] for k in ("captured", "settled", "deductions", "released", "recovered")}
                held = [h for (hs, _), h in self.holds.items() if hs == s and h[0] == c and h[4]]
                out = [w for w in self.payouts.values() if w[:2] == [s, c]]
                f |= {
                    "available": self.available(s, c),
                    "held": sum(h[1] for h in held),
                    "reserved": sum(h[1] for h in held if h[2] == "reserve"),
                    "in_payout": sum(w[2] for w in out if w[3] in ("requested", "sent")),
                    "paid_out": sum(w[2] for w in out if w[3] == "settled"),
                }
                if any(f.values()):
                    figures[s, c] = f
        holds = {k: tuple(h) for k, h in self.holds.items()}
        return Views(accounts, {c: (n, n) for c, n in trial.items()}, figures, holds)


def reserve_rule(s: str, c: str, day: dt.date) -> tuple[Fraction, int] | None:
    """The rolling reserve in force (data from ``config/settlement.toml``)."""
    rule = config_files.settlement_methods().reserve_for(s, c, day)
    return (Fraction(Decimal(rule.percent)), rule.days) if rule else None


def read_views(ledger: Ledger) -> Views:
    """The read side as it is now, without projecting."""
    q = ledger.views.query
    accounts = {str(a): (int(d), int(c)) for a, d, c in q("SELECT account, debits_minor, credits_minor FROM "
                                                           "account_balances")}  # fmt: skip
    trial = {str(c): (int(d), int(k)) for c, d, k in q("SELECT currency, debits_minor, credits_minor FROM "
                                                        "trial_balance")}  # fmt: skip
    figures = {
        (p.seller_id, p.currency): f
        for p in settlement.positions(ledger, FAR)
        if any((f := {k: int(getattr(p, k)) for k in FIGURES}).values())
    }
    rows = q("SELECT hold_id, seller_id, currency, amount_minor, reason, release_on, released_on FROM settlement_holds")
    holds = {(str(s), str(h)): (str(c), int(m), str(r), str(on), not released) for h, s, c, m, r, on, released in rows}
    return Views(accounts, trial, figures, holds)


def amount(data: st.DataObject, limit: int) -> int:
    """Any amount, one within the limit, exactly the limit or one unit over it (where the rules draw lines)."""
    edges = [st.integers(min_value=1, max_value=limit), st.just(limit), st.just(limit + 1)] if limit > 0 else []
    minor: int = data.draw(st.one_of(st.integers(min_value=1, max_value=20_000), *edges))
    return minor


sellers = st.sampled_from(SELLERS)
currencies = st.sampled_from(sorted(CURRENCIES))


class LedgerMachine(RuleBasedStateMachine):
    new_url: ClassVar[Callable[[], tuple[str, Callable[[], None]]]]
    """Gives each example a fresh, empty ledger and how to remove it."""
    stats: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.model = Model(reserve_rule)
        self.url, self.remove = type(self).new_url()
        self.ledger: Ledger = open_ledger(self.url)
        self.today = START
        self.posted: list[tuple[dict[str, Any], tuple[Any, ...]]] = []  # accepted events and their commands
        self.freeze_ids: list[str] = []
        self.snapshots = {0: self.model.views()}  # log position → what the views must show there
        self.n = 0
        self.stats["examples"] += 1

    def _count(self, what: str) -> None:
        self.stats[what] += 1
        self.stats["steps"] += 1

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def _funded(self, data: st.DataObject) -> tuple[str, str]:
        """A seller and currency, more often one with available funds."""
        pairs = [(s, c) for s in SELLERS for c in sorted(CURRENCIES)]
        return data.draw(st.sampled_from([p for p in pairs if self.model.available(*p) > 0] * 8 + pairs))

    def _post(self, event: dict[str, Any], command: tuple[Any, ...]) -> None:
        event["occurred_at"] = f"{self.today.isoformat()}T12:00:00-03:00"
        expected = "appended" if self.model.apply(command) else "rejected"
        (result,) = self.ledger.service.post([event])
        assert result.outcome.value == expected, (command, result.reason)
        self.stats[f"outcome:{expected}"] += 1
        if result.position is not None:
            self.stats[f"accepted:{command[0]}"] += 1
            self.posted.append((event, command))
            self.snapshots[result.position] = self.model.views()

    @initialize(
        sales=st.lists(st.tuples(sellers, currencies, st.integers(min_value=1, max_value=20_000)), max_size=3),
        run=st.booleans(),
    )
    def open_shop(self, sales: list[tuple[str, str, int]], run: bool) -> None:
        """Start with a few captured sales on a site (Pix: due the same day), perhaps released by a first
        settlement run, so that funds flow sooner."""
        self._count("open_shop")
        for s, c, minor in sales:
            pid = self._id("p")
            self._post(placed(f"o-{pid}", CURRENCIES[c][0], money(minor, c), c, s), ("place", f"o-{pid}"))
            self._post(authorized(pid, money(minor, c), c, s), ("authorize", pid, s, c, minor, True))
            self._post(captured(pid, money(minor, c), c, s), ("capture", pid, minor))
        if run:
            self._settle(0)

    @rule(s=sellers, c=currencies, minor=st.integers(min_value=1, max_value=20_000), site=st.booleans())
    def authorize(self, s: str, c: str, minor: int, site: bool) -> None:
        """A payment with its order (so a site: Pix settles on the capture day) or without (never due)."""
        self._count("authorize")
        pid = self._id("p")
        if site:
            self._post(placed(f"o-{pid}", CURRENCIES[c][0], money(minor, c), c, s), ("place", f"o-{pid}"))
        self._post(authorized(pid, money(minor, c), c, s), ("authorize", pid, s, c, minor, site))

    @rule(data=st.data())
    def capture_or_give_back(self, data: st.DataObject) -> None:
        """A capture (most often of the payment with most left to capture), refund or chargeback of a
        payment, or of one never authorized."""
        kind = data.draw(st.sampled_from(["capture", "capture", "refund", "chargeback"]))
        self._count(kind)
        room = sorted(self.model.payments, key=lambda p: self.model.payments[p][3] - self.model.payments[p][2])
        pid = data.draw(st.sampled_from([*room, "p0"]))
        s, c, auth, done, back, _ = self.model.payments.get(pid, ["S1", "BRL", 0, 0, 0, False])
        if kind == "capture":
            minor = amount(data, auth - done)
            self._post(captured(pid, money(minor, c), c, s), ("capture", pid, minor))
            return
        minor, rid = amount(data, done - back), self._id(kind[0])
        make = refunded if kind == "refund" else chargeback
        self._post(make(pid, rid, money(minor, c), c, s), ("give_back", pid, rid, minor))

    @rule(
        s=sellers,
        c=currencies,
        minor=st.integers(min_value=1, max_value=20_000),
        kind=st.sampled_from(["fee", "release"]),
    )
    def fee_or_release(self, s: str, c: str, minor: int, kind: str) -> None:
        """A fee, or a release by hand (the settlement run's own come from ``settle``)."""
        self._count(kind)
        fid = self._id(kind[0])
        make = fee if kind == "fee" else released
        self._post(make(fid, money(minor, c), c, s), (kind, fid, s, c, minor))

    @rule(data=st.data(), reason=st.sampled_from(["risk", "aml", "dispute", "reserve"]),
          days=st.sampled_from([None, 0, 1, 7, 30]), place=st.booleans())  # fmt: skip
    def hold(self, data: st.DataObject, reason: str, days: int | None, place: bool) -> None:
        """A hold placed for a reason (with a release date, a reserve is released by the run on that day), or
        a hold released whole by a decision (a wrong amount, a released or an unknown hold are refused)."""
        if place or not self.model.holds:
            self._count("hold")
            s, c = self._funded(data)
            hid, minor = self._id("H"), amount(data, self.model.available(s, c))
            on = (self.today + dt.timedelta(days=days)).isoformat() if days is not None else None
            self._post(held(hid, money(minor, c), c, s, reason, on), ("hold", hid, s, c, minor, reason, on or ""))
            return
        self._count("release_hold")
        s, hid = data.draw(st.sampled_from([*sorted(self.model.holds), ("S1", "H0")]))
        c, minor, *_ = self.model.holds.get((s, hid), ["BRL", 1])
        minor += data.draw(st.sampled_from([0, 0, 1]))
        self._post(hold_released(hid, money(minor, c), c, s), ("unhold", hid, s, c, minor))

    @rule(data=st.data(), s=sellers, lift=st.sampled_from([False, True, True]))
    def freeze(self, data: st.DataObject, s: str, lift: bool) -> None:
        """An AML freeze (the seller's payouts are refused until it is lifted), or a freeze lifted."""
        if not lift or not self.freeze_ids:
            self._count("freeze")
            fid = self._id("Z")
            self.freeze_ids.append(fid)
            self._post(frozen(fid, s), ("freeze", fid, s))
            return
        self._count("unfreeze")
        fid = data.draw(st.sampled_from(self.freeze_ids))
        s = self.model.freezes.get(fid, s)
        self._post(unfrozen(fid, s), ("unfreeze", fid, s))

    @rule(data=st.data(), step=st.sampled_from(["requested", "requested", *sorted(STEPS)]))
    def payout(self, data: st.DataObject, step: str) -> None:
        """A payout requested, then sent, then settled or failed (its funds back to available); out of
        order is refused."""
        if step == "requested" or not self.model.payouts:
            self._count("payout")
            s, c = self._funded(data)
            wid, minor = self._id("W"), amount(data, self.model.available(s, c))
            self._post(payout(wid, money(minor, c), c, s), ("payout", wid, s, c, minor))
            return
        self._count(f"payout_{step}")
        wid = data.draw(st.sampled_from(sorted(self.model.payouts)))
        s, c, minor, _ = self.model.payouts[wid]
        make = {"sent": payout_sent, "settled": payout_settled, "failed": payout_failed}[step]
        self._post(make(wid, money(minor, c), c, s), ("payout_step", wid, step))

    @rule(days=st.sampled_from([1, 0, 2, 7, 31]))
    def settle(self, days: int) -> None:
        """The days pass and the daily settlement run (which projects first) releases, reserves, recovers."""
        self._count("settle")
        self._settle(days)

    def _settle(self, days: int) -> None:
        self.today += dt.timedelta(days=days)
        expected = [(k, s, money(m, c), c) for k, s, m, c in self.model.settle(self.today)]
        outcomes = settlement.run(self.ledger, self.today)
        assert [(o.kind, o.party, o.amount, o.currency) for o in outcomes] == expected
        assert {o.outcome for o in outcomes} <= {"appended"}, outcomes
        self.stats["outcome:appended"] += len(outcomes)
        self.stats.update(f"run:{o.kind}" for o in outcomes)
        self.snapshots[self.ledger.store.head()] = self.model.views()

    @precondition(lambda self: self.posted)
    @rule(data=st.data(), how=st.sampled_from(["post_again", "post_conflicting", "post_as_new_fact"]))
    def repost(self, data: st.DataObject, how: str) -> None:
        """An accepted event again: as it was (a duplicate), with another body under its id (a conflict),
        or under a new event id (a new fact: a second capture may fit, a reused business id may not)."""
        self._count(how)
        event, command = data.draw(st.sampled_from(self.posted))
        if how == "post_as_new_fact":
            self._post({**copy.deepcopy(event), "event_id": str(uuid.uuid4())}, command)
            return
        if how == "post_conflicting":
            event = {**copy.deepcopy(event), "source": f"other-{uuid.uuid4().hex[:6]}"}
        (result,) = self.ledger.service.post([event])
        expected = "duplicate" if how == "post_again" else "conflict"
        assert result.outcome.value == expected, result
        self.stats[f"outcome:{expected}"] += 1

    @rule(data=st.data(), how=st.sampled_from(["project", "rebuild", "restart"]))
    def operate(self, data: st.DataObject, how: str) -> None:
        """Bring the views forward, or empty them and fold the log again (to the head or part way); or
        restart: a new process's view of the same database, with no cached stream state."""
        self._count(how)
        if how == "restart":
            self.ledger.close()
            self.ledger = open_ledger(self.url)
            return
        stop = data.draw(st.sampled_from(sorted(self.snapshots)[::-1]))
        (self.ledger.runner.run if how == "project" else self.ledger.runner.rebuild)(to_position=stop)

    @invariant()
    def views_agree_with_the_model_where_they_stand(self) -> None:
        at = self.ledger.runner.positions()
        reached = {at["balances"], at["trial_balance"], at["settlement"]}
        assert len(reached) == 1, at
        expected, actual = self.snapshots[reached.pop()], read_views(self.ledger)
        assert actual.accounts == expected.accounts
        assert actual.trial == expected.trial
        assert actual.figures == expected.figures
        assert actual.holds == expected.holds

    def teardown(self) -> None:
        self.ledger.close()
        self.remove()


def examples(default: int) -> int:
    return int(os.environ.get("QUIPU_STATEFUL_EXAMPLES", default))


def run_machine(new_url: Callable[[], tuple[str, Callable[[], None]]], examples: int, steps: int = 30) -> Counter[str]:
    """Run the machine for ``examples`` examples; what ran (examples, steps, rules, outcomes)."""
    machine = cast(
        "type[LedgerMachine]", type("Machine", (LedgerMachine,), {"new_url": staticmethod(new_url), "stats": Counter()})
    )
    machine.TestCase.settings = settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, suppress_health_check=list(HealthCheck)
    )
    machine.TestCase().runTest()
    return machine.stats


def sqlite_urls(directory: Path) -> Callable[[], tuple[str, Callable[[], None]]]:
    counter = iter(range(10**9))

    def new() -> tuple[str, Callable[[], None]]:
        path = directory / f"m{next(counter)}.db"

        def remove() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        return f"sqlite:///{path}", remove

    return new


def pg_urls() -> tuple[str, Callable[[], None]]:
    url, schema = pg_url_for_new_schema()
    return url, lambda: drop_schema(schema)


def report(stats: Counter[str]) -> str:
    rules = ", ".join(f"{n:,} {k}" for k, n in stats.most_common() if k not in ("examples", "steps") and ":" not in k)
    outcomes = ", ".join(f"{n:,} {k[8:]}" for k, n in sorted(stats.items()) if k.startswith("outcome:"))
    runs = ", ".join(f"{n:,} {k[4:]}" for k, n in sorted(stats.items()) if k.startswith("run:"))
    accepted = ", ".join(f"{n:,} {k[9:]}" for k, n in stats.most_common() if k.startswith("accepted:"))
    return (f"{stats['examples']:,} examples, {stats['steps']:,} steps: {rules}; posts {outcomes} (accepted: "
            f"{accepted}); settlement runs posted {runs}")  # fmt: skip


def test_quipu_agrees_with_the_reference_model_on_sqlite(tmp_path: Path) -> None:
    print(report(run_machine(sqlite_urls(tmp_path), examples(60))))


def test_quipu_agrees_with_the_reference_model_on_postgresql() -> None:
    pg_urls()[1]()  # skips (or fails under CI) now if PostgreSQL is missing
    print(report(run_machine(pg_urls, examples(15))))


def test_two_sellers_reserves_held_the_same_day_are_both_released_when_due(tmp_path: Path) -> None:
    """MX-S7-003 and S-MX-RISK both keep 10 % of MXN releases for 30 days (config/settlement.toml)."""
    with open_ledger(f"sqlite:///{tmp_path}/reserves.db") as ledger:
        for s in ("MX-S7-003", "S-MX-RISK"):
            sale = [placed(f"o-p-{s}", "MX", "100.00", "MXN", s), authorized(f"p-{s}", "100.00", "MXN", s),
                    captured(f"p-{s}", "100.00", "MXN", s)]  # fmt: skip
            assert [r.outcome.value for r in ledger.service.post(sale)] == ["appended"] * 3
        held_then = [(o.kind, o.party) for o in settlement.run(ledger, START) if o.kind == "funds.held"]
        assert held_then == [("funds.held", "MX-S7-003"), ("funds.held", "S-MX-RISK")]
        released = [o.party for o in settlement.run(ledger, START + dt.timedelta(days=30))]
        assert released == ["MX-S7-003", "S-MX-RISK"]
        assert [(p.seller_id, p.held) for p in settlement.positions(ledger, FAR)] == [
            ("MX-S7-003", 0), ("S-MX-RISK", 0)
        ]  # fmt: skip
