"""Reconciliation runs: import external files, match the three levels, record what was found.

A run reads the reconciliation projection (both sides sorted by reference, streamed), decides
with the pure matchers of ``domain.recon.matching``, and records each new exception as a
``recon.exception_raised`` event (and each open one that a later run no longer finds as
``recon.exception_cleared``). Their ids are derived from what was found, so running the same date
twice records nothing new. ``--dry-run`` shows every decision and records nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

import orjson

from adapters import config_files
from adapters.bootstrap import Ledger, settlement_policy
from adapters.recorded import recorded_event
from domain.ids import derived_event, derived_event_id
from domain.recon.matching import (
    BusinessCalendar,
    Decision,
    ExternalLine,
    Finding,
    LedgerItem,
    Level2Totals,
    Settlement,
    Windows,
    match_bank,
    match_batches,
    match_items,
)
from domain.recon.rules import ReconConfig, ReconRules
from domain.service import Outcome
from ledger.errors import QuipuError
from ledger.money import format_amount
from projections.reconciliation import EXCEPTIONS, LIFECYCLE

LEVELS: Final = (1, 2, 3)
_BATCH: Final = 1000
ProgressFn = Callable[[str], None]


class ReconError(QuipuError, ValueError):
    """A reconciliation request that cannot be carried out as asked."""


@dataclass(slots=True)
class LevelSummary:
    """One level's outcome counts."""

    level: int
    matched: int = 0
    pending: int = 0
    exceptions: int = 0

    @property
    def match_rate(self) -> str:
        """Matched share of what was due (pending items are not due yet), as a percentage string."""
        due = self.matched + self.exceptions
        return "100.00" if due == 0 else f"{self.matched * 100 / due:.2f}"


@dataclass(slots=True)
class RunReport:
    """What a run found and recorded."""

    run_date: dt.date
    levels: tuple[int, ...]
    summaries: dict[int, LevelSummary]
    findings: list[Finding]
    decisions: list[Decision] = field(default_factory=list)
    raised: int = 0
    cleared: int = 0
    already_known: int = 0
    dry_run: bool = False


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


class _Calendars:
    """Each processor's bank calendar (its site's), built once per site."""

    def __init__(self, config: ReconConfig) -> None:
        self.config = config
        self.policy = settlement_policy()
        self._by_source: dict[str, BusinessCalendar] = {}

    def __call__(self, source: str) -> BusinessCalendar:
        cal = self._by_source.get(source)
        if cal is None:
            site = self.config.site_of(source) or "US"
            cal = self._by_source[source] = _MultiYear(self.policy, site)
        return cal


class _MultiYear:
    """A site's calendar across year ends (the policy builds calendars a few years at a time)."""

    def __init__(self, policy: Any, site: str) -> None:
        self.policy, self.site = policy, site

    def add_business_days(self, day: dt.date, n: int) -> dt.date:
        return self.policy.calendar(self.site, day.year).add_business_days(day, n)  # type: ignore[no-any-return]


def _items(ledger: Ledger) -> Iterator[LedgerItem]:
    sql = ("SELECT reference, kind, psp, currency, gross_minor, fee_minor, item_date, event_ids, settlement_id "
           "FROM recon_items ORDER BY reference, kind")  # fmt: skip
    for r in ledger.views.stream(sql):
        # BIGINT columns come back as int from both databases.
        yield LedgerItem(r[0], r[1], r[2], r[3], r[4], r[5], dt.date.fromisoformat(r[6]), r[7], r[8])


def _lines(ledger: Ledger, source_kind: str) -> Iterator[ExternalLine]:
    sql = ("SELECT file_name, line_no, source, source_kind, record_type, reference, batch_id, direction, currency, "
           "gross_minor, fee_minor, net_minor, booked_on, value_date, exchange_rate, event_id FROM recon_lines "
           "WHERE source_kind = ? ORDER BY reference, file_sha256, line_no")  # fmt: skip
    if source_kind == "bank":
        # A literal, so the planner may use the partial index of bank lines (a bound parameter
        # could be anything); processor lines stream in key order instead.
        sql = sql.replace("source_kind = ?", "source_kind = 'bank'")
    params: tuple[str, ...] = () if source_kind == "bank" else (source_kind,)
    for r in ledger.views.stream(sql, params):
        yield ExternalLine(r[0], int(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8],
                           None if r[9] is None else int(r[9]), None if r[10] is None else int(r[10]), int(r[11]),
                           dt.date.fromisoformat(r[12]), _date(r[13]), r[14], r[15])  # fmt: skip


def _settlements(ledger: Ledger) -> list[Settlement]:
    rows = ledger.views.query(
        "SELECT settlement_id, psp, currency, net_minor, fee_minor, value_date, event_id FROM recon_settlements"
    )
    return [Settlement(r[0], r[1], r[2], int(r[3]), int(r[4]), dt.date.fromisoformat(r[5]), r[6]) for r in rows]


def run(
    ledger: Ledger,
    run_date: dt.date,
    levels: Sequence[int] = LEVELS,
    dry_run: bool = False,
    keep_decisions: bool = False,
    progress: ProgressFn | None = None,
    config: ReconConfig | None = None,
    check_projections: bool = True,
) -> RunReport:
    """Reconcile as of the end of ``run_date`` at the given levels."""
    bad = sorted(set(levels) - set(LEVELS))
    if bad or not levels:
        raise ReconError(f"--level: {bad or 'none'} is not one of 1, 2, 3")
    say = progress or (lambda _msg: None)
    config = config or config_files.reconciliation()
    rules = config.rules_on(run_date)
    windows = Windows(_Calendars(config))
    say("catching the projections up")
    ledger.runner.run()
    if 2 in levels or 3 in levels:
        _refuse_incomplete_files(ledger)
    report = RunReport(
        run_date, tuple(sorted(levels)), {n: LevelSummary(n) for n in sorted(levels)}, [], dry_run=dry_run
    )
    decisions: list[Decision] = []

    def take(stream: Iterable[Decision]) -> None:
        for n, d in enumerate(stream, 1):
            if n % 100_000 == 0:
                say(f"  … {n:,} decided")
            s = report.summaries.get(d.level)
            if s is None:
                continue
            if d.outcome == "matched":
                s.matched += 1
            elif d.outcome == "pending":
                s.pending += 1
            else:
                s.exceptions += 1
                assert d.finding is not None
                report.findings.append(d.finding)
            if keep_decisions:
                decisions.append(d)

    if 2 in levels or 3 in levels:
        say("level 2: ledger against processor reports")
        totals = Level2Totals()

        def known(reference: str) -> bool:
            keys = [(k, reference) for k in ("payment", "order", "payout")]
            return bool(ledger.views.lookup(LIFECYCLE, keys))

        level2 = match_items(_items(ledger), _lines(ledger, "processor"), rules, windows, run_date, known, totals)
        if 2 in levels:
            take(level2)
            take(match_batches(_settlements(ledger), totals, rules, windows, run_date))
        else:
            for _ in level2:  # level 3 needs the payouts the level-2 pass collects
                pass
        if 3 in levels:
            say("level 3: processor payouts against bank credits")
            take(match_bank(totals.payouts, list(_lines(ledger, "bank")), rules, windows, run_date))
    if 1 in levels:
        say("level 1: internal")
        take(internal_checks(ledger, rules, windows, run_date, check_projections, say))
    report.findings = _one_per_root_cause(report.findings)
    report.decisions = decisions
    if not dry_run:
        _record(ledger, report, say)
    return report


def _refuse_incomplete_files(ledger: Ledger) -> None:
    """Matching against a statement whose import stopped part way (a killed process, a lost
    connection) would raise an exception for every line not yet recorded: refuse, and say how
    to finish it (an import records in batches and is resumable: lines already in are duplicates)."""
    short = ledger.views.query(
        "SELECT f.file_name, f.lines, COUNT(l.line_no) FROM recon_files f "
        "LEFT JOIN recon_lines l ON l.file_sha256 = f.file_sha256 "
        "GROUP BY f.file_sha256, f.file_name, f.lines HAVING COUNT(l.line_no) < f.lines ORDER BY f.file_name"
    )
    if short:
        files = "; ".join(f"{name}: {int(got):,} of {int(lines):,} lines recorded" for name, lines, got in short)
        raise ReconError(
            f"statement import incomplete ({files}); run `quipu recon import` on the same file again to finish it "
            "(the lines already recorded count as duplicates), then reconcile"
        )


def _one_per_root_cause(findings: list[Finding]) -> list[Finding]:
    """An unsettled or incomplete item that a level-2 or level-3 exception already explains is
    reported once, under that exception (the more specific finding)."""
    explained = {f.reference for f in findings if f.level > 1}
    kept = [f for f in findings if not (f.level == 1 and f.reference in explained)]
    return sorted(kept, key=lambda f: (f.level, f.category, f.reference, f.exception_id))


def internal_checks(
    ledger: Ledger, rules: ReconRules, windows: Windows, run_date: dt.date, check_projections: bool, say: ProgressFn
) -> Iterator[Decision]:
    """Level 1: entries balance, the trial balance is zero, projections equal their rebuild,
    lifecycles are complete and clearing accounts clear within their windows."""
    views = ledger.views
    unbalanced = views.query(
        "SELECT position, currency, SUM(debit_minor) - SUM(credit_minor) FROM journal_postings "
        "GROUP BY position, currency HAVING SUM(debit_minor) <> SUM(credit_minor) ORDER BY position LIMIT 100"
    )
    for position, ccy, diff in unbalanced:
        yield _l1("unbalanced_entry", f"entry@{position}", run_date, f"entry at position {position} is off by "
                  f"{diff} minor units of {ccy}", ccy)  # fmt: skip
    if not unbalanced:
        yield _ok(1, "journal", "every journal entry balances per currency")
    trial = views.query("SELECT currency, debits_minor - credits_minor FROM trial_balance ORDER BY currency")
    off = [(c, int(d)) for c, d in trial if int(d) != 0]
    for ccy, diff in off:
        yield _l1("trial_balance", f"trial:{ccy}", run_date, f"trial balance off by {diff} minor units", ccy)
    if not off:
        yield _ok(1, "trial", f"trial balance zero in {len(trial)} currencies")
    yield from _subledgers(ledger, run_date)
    if check_projections:
        say("level 1: rebuilding every projection into scratch to compare")
        from rich.progress import Progress

        from adapters.check import check_rebuild

        for row in check_rebuild(ledger, lambda: Progress(disable=True)):
            if row["projection"] == "reconciliation":
                continue  # this run is about to change it
            if row["equal"]:
                yield _ok(1, f"projection:{row['projection']}", "equals its rebuild")
            else:
                yield _l1("projection_drift", f"projection:{row['projection']}", run_date,
                          f"live checksum {row['live']} ≠ rebuilt {row['rebuilt']}")  # fmt: skip
    yield from _lifecycles(ledger, rules, run_date)
    yield from _clearing(ledger, rules, windows, run_date)


def _subledgers(ledger: Ledger, run_date: dt.date) -> Iterator[Decision]:
    """Each seller's sub-ledger (the settlement projection's position: pending, available, held)
    against the journal's seller accounts (the control), as the log stands now."""
    from adapters import settlement

    rows = ledger.views.query(
        "SELECT account, debits_minor, credits_minor FROM account_balances WHERE account LIKE ?", ("seller:%",)
    )
    control = {str(a): int(c) - int(d) for a, d, c in rows}
    checked = 0
    for p in settlement.positions(ledger, dt.date(2100, 1, 1)):
        for purpose, value in (("pending", p.pending), ("available", p.available), ("held", p.held)):
            account = f"seller:{p.seller_id}:{purpose}:{p.currency}"
            booked = control.get(account, 0)
            checked += 1
            if booked != value:
                yield _l1("subledger_mismatch", account, run_date, f"{account}: the settlement sub-ledger says "
                          f"{value}, the journal {booked} minor units", p.currency)  # fmt: skip
    yield _ok(1, "subledgers", f"{checked} seller sub-ledger balances checked against the journal")


def _ok(level: int, reference: str, why: str) -> Decision:
    return Decision(level, reference, "check", "matched", "check", why)


def _l1(category: Any, reference: str, day: dt.date, detail: str, ccy: str | None = None,
        event_ids: tuple[str, ...] = ()) -> Decision:  # fmt: skip
    return Decision(1, reference, "check", "exception", "check", detail,
                    Finding(1, category, reference, day, detail, None, ccy, None, None, event_ids))  # fmt: skip


#: Stage → (rule field with the allowed days, what is missing).
OPEN_STAGES: Final = {
    ("order", "placed"): ("order_unpaid_days", "neither paid nor cancelled"),
    ("payment", "authorized"): ("payment_unsettled_days", "neither captured nor failed"),
    ("payout", "requested"): ("payout_unsent_days", "not sent"),
}


def _lifecycles(ledger: Ledger, rules: ReconRules, run_date: dt.date) -> Iterator[Decision]:
    rows = ledger.views.query(
        "SELECT kind, id, stage, since, event_id, seller_id FROM recon_lifecycle ORDER BY kind, id"
    )
    frozen = dict(
        ledger.views.query("SELECT seller_id, MIN(case_id) FROM recon_freezes WHERE active = 1 GROUP BY seller_id")
    )
    for kind, ident, stage, since, event_id, seller in rows:
        since_d = dt.date.fromisoformat(since)
        if since_d > run_date:
            continue
        if (kind, stage) == ("payout", "sent"):
            limit = rules.payout_in_transit_days
            if (run_date - since_d).days > limit:
                yield _l1("clearing_overdue", ident, run_date, f"payout {ident} sent on {since} is still in transit "
                          f"after {limit} days (payouts clearing)", None, (event_id,))  # fmt: skip
            continue
        rule = OPEN_STAGES.get((kind, stage))
        if kind == "payout" and stage == "requested" and seller in frozen:
            yield Decision(1, ident, kind, "pending", "lifecycle", f"held: seller frozen by AML case {frozen[seller]}")
            continue
        if rule is None:
            yield Decision(1, ident, kind, "matched", "lifecycle", f"{kind} {stage}")
            continue
        limit = getattr(rules, rule[0])
        if (run_date - since_d).days > limit:
            yield Decision(1, ident, kind, "exception", "lifecycle", rule[1],
                           Finding(1, "incomplete_lifecycle", ident, since_d,
                                   f"{kind} {ident} {stage} on {since}, {rule[1]} after {limit} days", None, None,
                                   None, None, (event_id,)))  # fmt: skip
        else:
            yield Decision(1, ident, kind, "pending", "lifecycle", f"{kind} {stage} within {limit} days")


def _clearing(ledger: Ledger, rules: ReconRules, windows: Windows, run_date: dt.date) -> Iterator[Decision]:
    """The processors' receivable clears item by item: each capture, refund and chargeback must
    be in a processor settlement within the clearing window."""
    sql = "SELECT reference, kind, psp, currency, gross_minor, item_date, event_ids, settlement_id FROM recon_items"
    for ref, kind, psp, ccy, gross, item_date, ids, settlement_id in ledger.views.stream(sql + " ORDER BY reference"):
        day = dt.date.fromisoformat(item_date)
        if day > run_date or not psp:
            continue
        if settlement_id is not None:
            yield Decision(1, ref, kind, "matched", "clearing", f"settled in {settlement_id}")
            continue
        due = windows.due(psp, day, rules.psp_clearing_business_days)
        if run_date <= due:
            yield Decision(1, ref, kind, "pending", "clearing", f"settles by {due}")
            continue
        yield Decision(1, ref, kind, "exception", "clearing", "not settled",
                       Finding(1, "clearing_overdue", ref, day,
                               f"{kind} {ref} booked on {item_date} is in no {psp} settlement (due by {due})", psp,
                               ccy, int(gross), None, tuple(orjson.loads(ids))))  # fmt: skip


def _record(ledger: Ledger, report: RunReport, say: ProgressFn) -> None:
    ids = [f.exception_id for f in report.findings]
    known: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        chunk = [(x,) for x in ids[i : i + 500]]
        known.update({k[0]: v[13] for k, v in ledger.views.lookup(EXCEPTIONS, chunk).items()})
    at = dt.datetime.combine(report.run_date, dt.time(23, 59, 59), dt.UTC)
    events: list[dict[str, Any]] = []
    for f in report.findings:
        if f.exception_id in known:
            report.already_known += 1
            continue
        events.append(_raised(f, report.run_date, at))
    found = set(ids)
    levels = set(report.levels)
    # Only what an earlier (or the same) run date found can be cleared: a run as of an earlier day
    # says nothing about what a later day's run saw.
    for exception_id, level in ledger.views.query(
        "SELECT exception_id, level FROM recon_exceptions WHERE status = 'open' AND found_on <= ? "
        "ORDER BY exception_id",
        (report.run_date.isoformat(),),
    ):
        if exception_id not in found and int(level) in levels:
            payload = {"exception_id": exception_id, "cleared_on": report.run_date.isoformat(),
                       "detail": f"matched by the run of {report.run_date}"}  # fmt: skip
            events.append(_event("recon.exception_cleared", f"recon-cleared:{exception_id}", at, payload))
    say(f"recording {len(events)} exception events")
    for i in range(0, len(events), _BATCH):
        for r in ledger.service.post(events[i : i + _BATCH]):
            if r.outcome is Outcome.REJECTED or r.outcome is Outcome.CONFLICT:
                raise ReconError(f"could not record {r.event_id}: {r.reason}")
    report.raised = sum(1 for e in events if e["type"] == "recon.exception_raised")
    report.cleared = len(events) - report.raised
    ledger.runner.run()


#: Namespace of the ids of the events reconciliation posts (fixed: a rerun must derive the same ids).
NAMESPACE: Final = uuid.UUID("6f1d1c1e-3b0a-4f57-9c55-5a2b3e4d0c11")


def _event(kind: str, key: str, at: dt.datetime, payload: dict[str, Any]) -> dict[str, Any]:
    return derived_event(NAMESPACE, key, kind, at, "reconciliation", payload)


def _amount(minor: int | None, ccy: str | None) -> dict[str, str] | None:
    if minor is None or ccy is None:
        return None
    return {"amount": format_amount(abs(minor), ccy), "currency": ccy}


def _raised(f: Finding, run_date: dt.date, at: dt.datetime) -> dict[str, Any]:
    return _event("recon.exception_raised", f"recon-raised:{f.exception_id}", at, {
            "exception_id": f.exception_id, "level": f.level, "category": f.category, "reference": f.reference,
            "source": f.source, "ledger_amount": _amount(f.ledger_minor, f.currency),
            "external_amount": _amount(f.external_minor, f.currency),
            "difference": _amount(f.difference, f.currency) if f.difference else None,
            "item_date": f.item_date.isoformat(), "found_on": run_date.isoformat(), "detail": f.detail[:500],
            "evidence": {"event_ids": list(f.event_ids[:50]), "lines": list(f.lines[:50])},
    })  # fmt: skip


# -- reading the results --------------------------------------------------------------------------

EXCEPTION_COLUMNS: Final = (
    "exception_id", "level", "category", "reference", "source", "currency", "ledger", "external", "difference",
    "item_date", "found_on", "age_days", "status", "detail", "evidence",
)  # fmt: skip


def exception_rows(ledger: Ledger, as_of: dt.date, status: str | None = "open") -> list[dict[str, Any]]:
    """Exceptions (open ones by default) with their age in days as of ``as_of``."""
    sql = ("SELECT exception_id, level, category, reference, source, currency, ledger_minor, external_minor, "
           "difference_minor, item_date, found_on, status, detail, evidence FROM recon_exceptions")  # fmt: skip
    params: tuple[Any, ...] = ()
    if status is not None:
        sql += " WHERE status = ?"
        params = (status,)
    out = []
    for r in ledger.views.query(sql + " ORDER BY level, category, reference, exception_id", params):
        ccy = r[5]

        def money(minor: Any, currency: str | None = ccy) -> str | None:
            return None if minor is None or currency is None else format_amount(int(minor), currency)

        evidence = orjson.loads(r[13])
        out.append({
            "exception_id": r[0], "level": int(r[1]), "category": r[2], "reference": r[3], "source": r[4],
            "currency": ccy, "ledger": money(r[6]), "external": money(r[7]), "difference": money(r[8]),
            "item_date": r[9], "found_on": r[10], "age_days": (as_of - dt.date.fromisoformat(r[9])).days,
            "status": r[11], "detail": r[12],
            "evidence": "; ".join([*evidence["lines"], *evidence["event_ids"]]),
        })  # fmt: skip
    return out


AGING_BUCKETS: Final = ((0, 7, "0-7 days"), (8, 30, "8-30 days"), (31, 90, "31-90 days"), (91, 10**6, "over 90 days"))


def aging(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open exceptions per aging bucket and category."""
    counts: Counter[tuple[str, str]] = Counter()
    for r in rows:
        bucket = next(label for lo, hi, label in AGING_BUCKETS if lo <= r["age_days"] <= hi)
        counts[(bucket, r["category"])] += 1
    order = {label: i for i, (_, _, label) in enumerate(AGING_BUCKETS)}
    return [{"bucket": b, "category": c, "exceptions": n} for (b, c), n in sorted(counts.items(),
            key=lambda kv: (order[kv[0][0]], kv[0][1]))]  # fmt: skip


def summary_rows(report: RunReport) -> list[dict[str, Any]]:
    """Per level: matched, pending, exceptions and the match rate."""
    return [
        {"level": s.level, "matched": s.matched, "pending": s.pending, "exceptions": s.exceptions,
         "match_rate_pct": s.match_rate}
        for s in report.summaries.values()
    ]  # fmt: skip


def category_rows(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    """Exceptions per level and category, with their amounts per currency."""
    counts: Counter[tuple[int, str, str]] = Counter()
    amounts: dict[tuple[int, str, str], int] = defaultdict(int)
    for f in findings:
        key = (f.level, f.category, f.currency or "")
        counts[key] += 1
        # The difference when there is one, else the amount at stake (a duplicate, a late credit).
        amounts[key] += f.difference or max(abs(f.ledger_minor or 0), abs(f.external_minor or 0))
    return [
        {"level": lv, "category": cat, "currency": ccy or None, "exceptions": counts[(lv, cat, ccy)],
         "amount": format_amount(amounts[(lv, cat, ccy)], ccy) if ccy else None}
        for lv, cat, ccy in sorted(counts)
    ]  # fmt: skip


def decision_rows(report: RunReport) -> list[dict[str, Any]]:
    """A dry run's decisions: what would match, by which rule, and why."""
    return [
        {"level": d.level, "reference": d.reference, "kind": d.kind, "outcome": d.outcome, "rule": d.rule,
         "why": d.why, "category": d.finding.category if d.finding else None}
        for d in report.decisions
    ]  # fmt: skip


# -- imports ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What importing one file did."""

    file_name: str
    sha256: str
    lines: int
    appended: int
    duplicates: int
    already_imported_as: str | None = None


def import_file(
    ledger: Ledger,
    path: Path,
    fmt: str,
    source: str | None = None,
    currency: str | None = None,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Read the whole file (refusing it whole on any bad line), then record its lines.

    The lines are recorded in batches, each its own transaction: an import stopped part way
    leaves the file short, which :func:`run` refuses to match until the same file is imported
    again (what is already recorded comes back as duplicates, the rest is appended)."""
    from adapters.recon_import import read_statement, statement_events

    imported = read_statement(path, fmt, source=source, currency=currency)
    ledger.runner.run()
    before = ledger.views.query("SELECT file_name FROM recon_files WHERE file_sha256 = ?", (imported.sha256,))
    if before and before[0][0] != imported.name:
        return ImportResult(imported.name, imported.sha256, len(imported.lines), 0, len(imported.lines) + 1,
                            str(before[0][0]))  # fmt: skip
    docs = statement_events(imported)
    appended = duplicates = 0
    for i in range(0, len(docs), _BATCH):
        if progress is not None and i and i % 100_000 == 0:
            progress(f"  … {i:,} of {len(docs):,} lines recorded")
        for r in ledger.service.post(docs[i : i + _BATCH]):
            if r.outcome is Outcome.APPENDED:
                appended += 1
            elif r.outcome is Outcome.DUPLICATE:
                duplicates += 1
            else:
                raise ReconError(f"{imported.name}: event {r.event_id} {r.outcome.value}: {r.reason}")
    ledger.runner.run()
    return ImportResult(imported.name, imported.sha256, len(imported.lines), appended, duplicates)


RESOLUTIONS: Final = ("adjusted", "accepted_timing", "written_off")


class Resolved(NamedTuple):
    """A resolution's event, and whether it was already in the log (the same decision asked again)."""

    event_id: str
    recorded_before: bool


def resolve(
    ledger: Ledger,
    exception_id: str,
    resolution: str,
    decided_by: str,
    note: str,
    adjustment_id: str | None = None,
    approved_by: str | None = None,
    at: dt.datetime | None = None,
) -> Resolved:
    """Record a person's decision on an open exception; returns its event id.

    ``adjusted`` and ``written_off`` name the ``adjustment.posted`` that books the money, which
    must already be in the log; a write-off also needs a second person's approval. The same decision
    asked again is answered with the recorded event; another decision on a closed exception is refused.
    """
    from domain.rules import stream_id

    asked = {"resolution": resolution, "decided_by": decided_by, "note": note, "adjustment_id": adjustment_id,
             "approved_by": approved_by}  # fmt: skip
    key = f"recon-resolved:{exception_id}"
    event_id = derived_event_id(NAMESPACE, key)
    if (found := recorded_event(ledger, event_id)) is not None and all(
        found[1]["payload"].get(k) == v for k, v in asked.items()
    ):
        return Resolved(str(event_id), recorded_before=True)  # a retry whose answer was lost: recorded once
    ledger.runner.run()
    row = ledger.views.lookup(EXCEPTIONS, [(exception_id,)]).get((exception_id,))
    if row is None:
        raise ReconError(f"exception_id: no exception {exception_id}")
    if row[13] != "open":
        raise ReconError(f"exception_id: {exception_id} is already closed ({row[13]})")
    if adjustment_id is not None and not ledger.store.stream_events([stream_id(f"adjustment:{adjustment_id}")]):
        raise ReconError(f"adjustment_id: no adjustment {adjustment_id} was posted")
    when = at or dt.datetime.now(dt.UTC)
    payload = {"exception_id": exception_id, **asked}
    doc = _event("recon.exception_resolved", key, when, payload)
    (result,) = ledger.service.post([doc])
    if result.outcome is not Outcome.APPENDED:
        raise ReconError(result.reason or f"exception {exception_id}: {result.outcome.value}")
    ledger.runner.run()
    return Resolved(str(result.event_id), recorded_before=False)
