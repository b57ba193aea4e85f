"""Matching, levels 2 and 3: the ledger's items against the processor's report, the processor's
payouts against the bank's credits. Pure functions of their inputs and the run date.

Both sides arrive **sorted by reference** and are merge-joined group by group, so memory holds
one reference's records at a time plus the payouts (a few per processor per day), never the
whole input. Each group ends as a :class:`Decision`: matched (and by which rule), pending (still
inside its window) or an exception, a :class:`Finding` with its evidence.

One root cause, one exception: a line reported twice is a ``duplicate`` and is left out of the
sums; a batch whose lines do not add up is an exception only for the part no item-level
exception already explains.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Final, Literal, Protocol

import orjson

from domain.ids import derived_id
from domain.recon.rules import ReconRules

#: Processor record types and the ledger item kind each one matches.
RECORD_TO_KIND: Final = {
    "payment": "capture",
    "refund": "refund",
    "chargeback": "chargeback",
    "chargeback_reversal": "chargeback_reversal",
}


class BusinessCalendar(Protocol):
    """What matching needs of a bank calendar."""

    def add_business_days(self, day: dt.date, n: int) -> dt.date: ...


@dataclass(frozen=True, slots=True)
class LedgerItem:
    """A capture, refund or chargeback (or its reversal) as the ledger booked it."""

    reference: str
    kind: str
    psp: str
    currency: str
    gross: int
    fee: int
    """The processing fee the ledger expects the processor to take (captures)."""
    item_date: dt.date
    event_ids_json: str
    """Its events' ids as a JSON array, decoded only when a finding needs them."""
    settlement_id: str | None = None

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(orjson.loads(self.event_ids_json))


@dataclass(frozen=True, slots=True)
class ExternalLine:
    """A line of a processor report or a bank statement, amounts in minor units."""

    file_name: str
    line_no: int
    source: str
    source_kind: str
    record_type: str
    reference: str
    batch_id: str | None
    direction: str
    currency: str
    gross: int | None
    fee: int | None
    net: int
    booked_on: dt.date
    value_date: dt.date | None
    exchange_rate: str | None
    event_id: str

    @property
    def where(self) -> str:
        return f"{self.file_name}:{self.line_no}"

    @property
    def gross_or_net(self) -> int:
        return self.gross if self.gross is not None else self.net + (self.fee or 0)

    @property
    def signed_net(self) -> int:
        return self.net if self.direction == "credit" else -self.net

    def same_record(self, other: ExternalLine) -> bool:
        """Whether two lines say the very same thing (a line reported twice)."""
        return (self.record_type, self.reference, self.direction, self.currency, self.gross, self.fee, self.net,
                self.booked_on, self.value_date, self.batch_id) == (
                other.record_type, other.reference, other.direction, other.currency, other.gross, other.fee,
                other.net, other.booked_on, other.value_date, other.batch_id)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Settlement:
    """A processor settlement the ledger booked (``psp.settlement_received``)."""

    settlement_id: str
    psp: str
    currency: str
    net: int
    fee: int
    value_date: dt.date
    event_id: str


Category = Literal[
    "missing_in_ledger", "missing_at_processor", "missing_at_bank", "amount_mismatch", "fee_mismatch",
    "fx_rounding", "timing", "duplicate", "unknown_reference", "unbalanced_entry", "trial_balance",
    "subledger_mismatch", "projection_drift", "incomplete_lifecycle", "clearing_overdue",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Finding:
    """Something that does not reconcile, with its evidence."""

    level: int
    category: Category
    reference: str
    item_date: dt.date
    detail: str
    source: str | None = None
    currency: str | None = None
    ledger_minor: int | None = None
    external_minor: int | None = None
    event_ids: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()

    @property
    def exception_id(self) -> str:
        """Stable for the same finding, so a later run raises nothing new (evidence lines are
        part of it: a different set of lines is a different exception)."""
        key = "|".join((str(self.level), self.category, self.reference, self.source or "", *sorted(self.lines)))
        return derived_id("RX", key, 24)

    @property
    def difference(self) -> int | None:
        if self.ledger_minor is None or self.external_minor is None:
            return None
        return abs(self.ledger_minor - self.external_minor)


Outcome = Literal["matched", "pending", "exception"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of one reference (or batch, or payout) at one level, and why."""

    level: int
    reference: str
    kind: str
    outcome: Outcome
    rule: str
    """``exact``, ``tolerance``, ``one-to-many``, ``many-to-one``, ``reference``, ``amount+date`` …"""
    why: str
    finding: Finding | None = None


@dataclass(slots=True)
class Level2Totals:
    """What the item pass leaves for the batch and bank passes."""

    payouts: list[ExternalLine] = field(default_factory=list)
    batch_lines_net: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """batch id → Σ signed net of its (non-duplicate) lines."""
    explained: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """settlement id → Σ signed ledger net of its items missing from the report."""
    lines_in_batches: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """batch id → where its first lines are (evidence; capped, so memory does not grow with the report)."""

    def count(self, line: ExternalLine) -> None:
        """Add a (kept, non-duplicate) report line to its batch's running sum and evidence."""
        if line.batch_id is None:
            return
        self.batch_lines_net[line.batch_id] += line.signed_net
        evidence = self.lines_in_batches[line.batch_id]
        if len(evidence) < 48:
            evidence.append(line.where)


class Windows:
    """Due dates by business days on each processor's calendar, cached per (source, day, n)."""

    def __init__(self, calendar: Callable[[str], BusinessCalendar]) -> None:
        self._calendar = calendar
        self._cache: dict[tuple[str, dt.date, int], dt.date] = {}

    def due(self, source: str, day: dt.date, n: int) -> dt.date:
        key = (source, day, n)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._calendar(source).add_business_days(day, n)
        return hit

    def apart(self, source: str, a: dt.date, b: dt.date, n: int) -> bool:
        """Whether ``a`` and ``b`` are more than ``n`` business days apart."""
        early, late = (a, b) if a <= b else (b, a)
        return late > self.due(source, early, n)


def match_items(
    items: Iterable[LedgerItem],
    lines: Iterable[ExternalLine],
    rules: ReconRules,
    windows: Windows,
    run_date: dt.date,
    known_reference: Callable[[str], bool],
    totals: Level2Totals,
) -> Iterator[Decision]:
    """Level 2: ledger items against processor lines, both sorted by reference.

    Lines of other record types feed ``totals``: payouts (for levels 2 batches and 3) and each
    batch's running sum; standalone ``fee`` lines add to their payment's fee.
    """
    item_groups = groupby((i for i in items if i.item_date <= run_date), key=lambda i: i.reference)
    line_groups = groupby((ln for ln in lines if ln.booked_on <= run_date), key=lambda ln: ln.reference)
    item_next = next(item_groups, None)
    line_next = next(line_groups, None)
    while item_next is not None or line_next is not None:
        if line_next is None or (item_next is not None and item_next[0] < line_next[0]):
            assert item_next is not None
            yield from _group(item_next[0], list(item_next[1]), [], rules, windows, run_date, known_reference, totals)
            item_next = next(item_groups, None)
        elif item_next is None or line_next[0] < item_next[0]:
            yield from _group(line_next[0], [], list(line_next[1]), rules, windows, run_date, known_reference, totals)
            line_next = next(line_groups, None)
        else:
            ref = item_next[0]
            group_items, group_lines = list(item_next[1]), list(line_next[1])
            fast = None
            if len(group_items) == 1 and len(group_lines) == 1:
                fast = _one_to_one(group_items[0], group_lines[0], rules, windows, totals)
            if fast is not None:
                yield fast
            else:
                yield from _group(ref, group_items, group_lines, rules, windows, run_date, known_reference, totals)
            item_next = next(item_groups, None)
            line_next = next(line_groups, None)


_AGREE: Final = "reference, gross, fee and date agree"


def _one_to_one(
    item: LedgerItem, ln: ExternalLine, rules: ReconRules, windows: Windows, totals: Level2Totals
) -> Decision | None:
    """The common case, decided without the general path's allocations: one item, one line that
    agree exactly. Anything else (None) goes the general way, which explains what differs."""
    if RECORD_TO_KIND.get(ln.record_type) != item.kind or ln.currency != item.currency:
        return None
    fee = ln.fee or 0
    gross = ln.gross if ln.gross is not None else ln.net + fee
    if gross != item.gross or (item.kind == "capture" and fee != item.fee):
        return None
    if windows.apart(item.psp, item.item_date, ln.booked_on, rules.date_tolerance_business_days):
        return None
    totals.count(ln)
    return Decision(2, item.reference, item.kind, "matched", "exact", _AGREE)


def _group(
    reference: str,
    items: list[LedgerItem],
    lines: list[ExternalLine],
    rules: ReconRules,
    windows: Windows,
    run_date: dt.date,
    known_reference: Callable[[str], bool],
    totals: Level2Totals,
) -> Iterator[Decision]:
    by_kind: dict[str, list[ExternalLine]] = defaultdict(list)
    fees: list[ExternalLine] = []
    for ln in lines:
        if ln.record_type == "payout":
            totals.payouts.append(ln)
        elif ln.record_type == "fee":
            fees.append(ln)
        elif ln.record_type in RECORD_TO_KIND:
            by_kind[RECORD_TO_KIND[ln.record_type]].append(ln)
    ledger = {i.kind: i for i in items}
    if fees:
        # A fee the processor reports on its own line belongs to the payment's capture.
        by_kind["capture"] = by_kind.get("capture", []) + fees
    for kind in sorted(set(ledger) | set(by_kind)):
        yield _decide(reference, kind, ledger.get(kind), by_kind.get(kind, []), rules, windows, run_date,
                      bool(ledger) or known_reference(reference), totals)  # fmt: skip


def _decide(
    reference: str,
    kind: str,
    item: LedgerItem | None,
    lines: list[ExternalLine],
    rules: ReconRules,
    windows: Windows,
    run_date: dt.date,
    known: bool,
    totals: Level2Totals,
) -> Decision:
    # A line reported twice is a duplicate: flagged, and left out of every sum.
    kept: list[ExternalLine] = []
    extra: list[ExternalLine] = []
    for ln in lines:
        (extra if any(ln.same_record(k) for k in kept) else kept).append(ln)
    for ln in kept:
        totals.count(ln)
    if extra:
        first = extra[0]
        return Decision(2, reference, kind, "exception", "duplicate", "the same line appears more than once",
                        Finding(2, "duplicate", reference, first.booked_on,
                                f"{kind} {reference} reported {len(extra) + 1} times by {first.source}",
                                first.source, first.currency, item.gross if item else None,
                                sum(x.gross_or_net for x in extra),
                                item.event_ids if item else (), tuple(x.where for x in [*kept, *extra])))  # fmt: skip
    if item is None:
        first = kept[0]
        category: Category = "missing_in_ledger" if known else "unknown_reference"
        what = "the ledger booked no such" if known else "no ledger record has the reference of this"
        return Decision(2, reference, kind, "exception", "none", what,
                        Finding(2, category, reference, first.booked_on, f"{what} {kind} ({first.source} reports it)",
                                first.source, first.currency, None, sum(x.gross_or_net for x in kept), (),
                                tuple(x.where for x in kept)))  # fmt: skip
    if not kept:
        due = windows.due(item.psp, item.item_date, rules.report_lag_business_days)
        if run_date <= due:
            return Decision(2, reference, kind, "pending", "none", f"not reported yet; missing only after {due}")
        if item.settlement_id is not None:
            net = item.gross - item.fee
            totals.explained[item.settlement_id] += -net if kind in ("refund", "chargeback") else net
        return Decision(2, reference, kind, "exception", "none", "absent from the processor's report",
                        Finding(2, "missing_at_processor", reference, item.item_date,
                                f"{kind} {reference} is not in {item.psp}'s report (due by {due})", item.psp,
                                item.currency, item.gross, None, item.event_ids))  # fmt: skip
    return _compare(reference, kind, item, kept, rules, windows)


def _compare(
    reference: str, kind: str, item: LedgerItem, kept: list[ExternalLine], rules: ReconRules, windows: Windows
) -> Decision:
    first = kept[0]
    where = tuple(x.where for x in kept)
    core = [x for x in kept if x.record_type != "fee"]
    gross = sum(x.gross_or_net for x in core)
    fee = sum(x.fee or 0 for x in core) + sum(x.net for x in kept if x.record_type == "fee")
    diff = gross - item.gross
    rule = "exact" if len(core) <= 1 else f"one-to-many ({len(core)} lines)"

    def finding(category: Category, detail: str, ledger: int, external: int) -> Decision:
        return Decision(2, reference, kind, "exception", rule, detail,
                        Finding(2, category, reference, item.item_date, detail, first.source, item.currency,
                                ledger, external, item.event_ids, where))  # fmt: skip

    if first.currency != item.currency:
        return finding("amount_mismatch", f"{kind} {reference}: ledger in {item.currency}, report in "
                       f"{first.currency}", item.gross, gross)  # fmt: skip
    if diff:
        converted = any(x.exchange_rate for x in core)
        if rules.within_tolerance(item.gross, diff):
            rule = "tolerance"
        elif converted and abs(diff) <= rules.fx_rounding_max_minor:
            return finding("fx_rounding", f"{kind} {reference}: the processor's conversion rounds to {diff:+d} "
                           f"minor units of {item.currency}", item.gross, gross)  # fmt: skip
        else:
            partial = " (partial)" if 0 < gross < item.gross else ""
            return finding("amount_mismatch", f"{kind} {reference}: gross {diff:+d} minor units of {item.currency}"
                           f"{partial}", item.gross, gross)  # fmt: skip
    if kind == "capture" and fee != item.fee:
        return finding("fee_mismatch", f"{kind} {reference}: processor fee {fee} vs ledger {item.fee} minor units "
                       f"of {item.currency}", item.fee, fee)  # fmt: skip
    booked = min(x.booked_on for x in core) if core else first.booked_on
    if windows.apart(item.psp, item.item_date, booked, rules.date_tolerance_business_days):
        return finding("timing", f"{kind} {reference}: reported on {booked}, booked on {item.item_date}",
                       item.gross, gross)  # fmt: skip
    why = "reference, gross, fee and date agree" if rule != "tolerance" else f"gross within tolerance ({diff:+d})"
    return Decision(2, reference, kind, "matched", rule, why)


def match_batches(
    settlements: Iterable[Settlement],
    totals: Level2Totals,
    rules: ReconRules,
    windows: Windows,
    run_date: dt.date,
) -> Iterator[Decision]:
    """Level 2, many-to-one: each settlement the ledger booked against the processor's payout
    line, and the payout against the lines it pays (the report's lines of that batch)."""
    payouts = {p.reference: p for p in totals.payouts if p.booked_on <= run_date}
    seen: set[str] = set()
    for s in sorted(settlements, key=lambda s: s.settlement_id):
        if s.value_date > run_date:
            continue
        seen.add(s.settlement_id)
        line = payouts.get(s.settlement_id)
        if line is None:
            due = windows.due(s.psp, s.value_date, rules.report_lag_business_days)
            if run_date <= due:
                yield Decision(2, s.settlement_id, "settlement", "pending", "none", f"not reported before {due}")
                continue
            yield Decision(2, s.settlement_id, "settlement", "exception", "none", "no payout line",
                           Finding(2, "missing_at_processor", s.settlement_id, s.value_date,
                                   f"settlement {s.settlement_id} booked but not in {s.psp}'s report", s.psp,
                                   s.currency, s.net, None, (s.event_id,)))  # fmt: skip
            continue
        paid = line.net  # a payout leaves the processor's balance (a debit there): what we are paid
        lines_sum = totals.batch_lines_net.get(s.settlement_id, 0) + totals.explained.get(s.settlement_id, 0)
        evidence = (line.where, *totals.lines_in_batches.get(s.settlement_id, []))
        if paid != s.net:
            yield Decision(2, s.settlement_id, "settlement", "exception", "many-to-one", "payout ≠ settlement",
                           Finding(2, "amount_mismatch", s.settlement_id, s.value_date,
                                   f"payout {s.settlement_id}: {s.psp} paid {paid}, the ledger booked {s.net} minor "
                                   f"units of {s.currency}", s.psp, s.currency, s.net, paid, (s.event_id,),
                                   evidence))  # fmt: skip
        elif lines_sum != paid:
            yield Decision(2, s.settlement_id, "settlement", "exception", "many-to-one", "lines ≠ payout",
                           Finding(2, "amount_mismatch", s.settlement_id, s.value_date,
                                   f"payout {s.settlement_id}: its report lines add to {lines_sum}, the payout is "
                                   f"{paid} minor units of {s.currency}", s.psp, s.currency, paid, lines_sum,
                                   (s.event_id,), evidence))  # fmt: skip
        else:
            yield Decision(2, s.settlement_id, "settlement", "matched", "many-to-one",
                           "payout = settlement = Σ its lines")  # fmt: skip
    for ref, line in sorted(payouts.items()):
        if ref in seen:
            continue
        yield Decision(2, ref, "settlement", "exception", "none", "payout the ledger never booked",
                       Finding(2, "missing_in_ledger", ref, line.booked_on,
                               f"{line.source} paid out {ref} but the ledger booked no settlement", line.source,
                               line.currency, None, line.signed_net, (), (line.where,)))  # fmt: skip


def match_bank(
    payouts: Iterable[ExternalLine],
    bank_lines: Iterable[ExternalLine],
    rules: ReconRules,
    windows: Windows,
    run_date: dt.date,
) -> Iterator[Decision]:
    """Level 3: each processor payout against a bank credit — by reference first, then by
    amount, currency and value date when exactly one unclaimed credit fits."""
    credits = sorted((b for b in bank_lines if b.direction == "credit" and b.booked_on <= run_date),
                     key=lambda b: (b.booked_on, b.where))  # fmt: skip
    claimed: set[str] = set()
    by_ref: dict[str, list[ExternalLine]] = defaultdict(list)
    for b in credits:
        by_ref[b.reference].append(b)
    for p in sorted((p for p in payouts if p.booked_on <= run_date), key=lambda p: (p.reference, p.where)):
        paid_on = p.value_date or p.booked_on
        match = next((b for b in by_ref.get(p.reference, []) if b.where not in claimed), None)
        rule = "reference"
        if match is None:
            fits = [b for b in credits if b.where not in claimed and b.currency == p.currency and b.net == p.net
                    and not windows.apart(p.source, paid_on, b.value_date or b.booked_on,
                                          rules.value_date_tolerance_business_days)]  # fmt: skip
            match = fits[0] if len(fits) == 1 else None
            rule = "amount+date"
        if match is None:
            due = windows.due(p.source, paid_on, rules.bank_lag_business_days)
            if run_date <= due:
                yield Decision(3, p.reference, "payout", "pending", "none", f"no bank credit yet; missing after {due}")
                continue
            yield Decision(3, p.reference, "payout", "exception", "none", "no bank credit",
                           Finding(3, "missing_at_bank", p.reference, paid_on,
                                   f"{p.source} payout {p.reference} of {p.net} minor units of {p.currency} has no "
                                   f"bank credit (due by {due})", p.source, p.currency, p.net, None, (p.event_id,),
                                   (p.where,)))  # fmt: skip
            continue
        claimed.add(match.where)
        credited = match.value_date or match.booked_on
        evidence = (p.event_id, match.event_id)
        if match.currency != p.currency or match.net != p.net:
            yield Decision(3, p.reference, "payout", "exception", rule, "credit ≠ payout",
                           Finding(3, "amount_mismatch", p.reference, paid_on,
                                   f"payout {p.reference}: {p.net} {p.currency} paid, {match.net} {match.currency} "
                                   f"credited", p.source, p.currency, p.net, match.net, evidence,
                                   (p.where, match.where)))  # fmt: skip
        elif windows.apart(p.source, paid_on, credited, rules.value_date_tolerance_business_days):
            yield Decision(3, p.reference, "payout", "exception", rule, "credited late",
                           Finding(3, "timing", p.reference, paid_on,
                                   f"payout {p.reference} paid on {paid_on}, credited on {credited}", p.source,
                                   p.currency, p.net, match.net, evidence, (p.where, match.where)))  # fmt: skip
        else:
            yield Decision(3, p.reference, "payout", "matched", rule, f"credited on {credited}")
    for b in credits:
        if b.where in claimed:
            continue
        yield Decision(3, b.reference, "credit", "exception", "none", "credit no payout explains",
                       Finding(3, "unknown_reference", b.reference, b.booked_on,
                               f"bank credit {b.reference} of {b.net} minor units of {b.currency} matches no payout",
                               b.source, b.currency, None, b.net, (b.event_id,), (b.where,)))  # fmt: skip
