"""The demo's processors and bank: reports and statements that match the simulated month, with
planted discrepancies, then the reconciliation that finds them.

Each processor pays out, two business days after each item's date on its site's calendar, one
batch per day and currency: its captures net of its fee, less refunds and chargebacks. The
treasury books each batch as ``psp.settlement_received``; the processor's report (Mercado Pago's
release report for ``mercadopago``, a Stripe-style balance-transactions export for the others)
lists every line with its batch, and the bank statement (camt.053) shows each payout's credit.
"""

from __future__ import annotations

import csv
import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from xml.sax.saxutils import escape

from rich.console import Console

from adapters import reconcile
from adapters.bootstrap import Ledger, settlement_policy
from adapters.config_files import reconciliation
from adapters.reports import Format, render
from domain.ids import derived_event
from domain.service import Outcome
from ledger.money import format_amount

PAYOUT_DELAY_BUSINESS_DAYS: Final = 2
_NS: Final = uuid.UUID("0c9f6a1e-2d4b-4e8a-9f3c-7b1d5e2a6c40")
MP_COLUMNS: Final = (
    "DATE", "SOURCE_ID", "EXTERNAL_REFERENCE", "RECORD_TYPE", "DESCRIPTION", "NET_CREDIT_AMOUNT",
    "NET_DEBIT_AMOUNT", "GROSS_AMOUNT", "MP_FEE_AMOUNT", "FINANCING_FEE_AMOUNT", "SHIPPING_FEE_AMOUNT",
    "TAXES_AMOUNT", "COUPON_AMOUNT", "INSTALLMENTS", "PAYMENT_METHOD", "TRANSACTION_APPROVAL_DATE", "PAYOUT_ID",
)  # fmt: skip
STRIPE_COLUMNS: Final = (
    "id", "type", "source", "amount", "fee", "net", "currency", "exchange_rate", "created", "available_on",
    "reporting_category", "description", "automatic_payout_id", "metadata[reference]",
)  # fmt: skip
#: Ledger item kind → (Stripe type, reporting category, Mercado Pago description, sign).
KINDS: Final = {
    "capture": ("charge", "charge", "payment", 1),
    "refund": ("refund", "refund", "refund", -1),
    "chargeback": ("adjustment", "dispute", "chargeback", -1),
    "chargeback_reversal": ("adjustment", "dispute_reversal", "chargeback_cancel", 1),
}


@dataclass(slots=True)
class Line:
    """One line the processor will report (amounts in minor units, positive)."""

    kind: str
    reference: str
    currency: str
    gross: int
    fee: int
    item_date: dt.date
    exchange_rate: str = ""

    @property
    def signed_net(self) -> int:
        return KINDS[self.kind][3] * (self.gross - self.fee)


@dataclass(slots=True)
class Batch:
    """One processor payout."""

    psp: str
    settlement_id: str
    currency: str
    paid_on: dt.date
    lines: list[Line] = field(default_factory=list)
    credited_on: dt.date | None = None

    @property
    def net(self) -> int:
        return sum(ln.signed_net for ln in self.lines)

    @property
    def fee(self) -> int:
        return sum(ln.fee for ln in self.lines)


@dataclass(slots=True)
class Simulation:
    """The files written and what was planted in them (category → reference)."""

    files: list[tuple[Path, str, str | None, str | None]] = field(default_factory=list)
    """(path, format, source, currency) to import."""
    planted: dict[str, str] = field(default_factory=dict)
    batches: int = 0


def simulate(ledger: Ledger, out_dir: Path, until: dt.date, plant: bool = True) -> Simulation:
    """Write each processor's report and the bank statement up to ``until``, post the processor
    settlements, and (with ``plant``) plant one discrepancy of each kind."""
    ledger.runner.run()
    config = reconciliation()
    policy = settlement_policy()
    rows = ledger.views.query(
        "SELECT reference, kind, psp, currency, gross_minor, fee_minor, item_date FROM recon_items "
        "WHERE psp <> '' ORDER BY psp, currency, item_date, reference, kind"
    )
    by_psp: dict[tuple[str, str], list[Line]] = defaultdict(list)
    for ref, kind, psp, ccy, gross, fee, day in rows:
        by_psp[(psp, ccy)].append(Line(kind, ref, ccy, int(gross), int(fee), dt.date.fromisoformat(day)))
    sim = Simulation()
    batches: list[Batch] = []
    for (psp, ccy), lines in sorted(by_psp.items()):
        site = config.site_of(psp) or "US"
        batches += _batches(psp, ccy, lines, until, lambda d, s=site: policy.calendar(s, d.year))  # type: ignore[misc]
    if plant:
        _plant(batches, sim, policy, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    _post_settlements(ledger, batches)
    sim.batches = len(batches)
    for psp in sorted({b.psp for b in batches}):
        mine = [b for b in batches if b.psp == psp]
        fmt = next((p.format for p in config.processor if p.name == psp), "stripe-balance")
        path = out_dir / f"{psp}-{until:%Y%m}.csv"
        if fmt == "mercadopago-release":
            _write_mp(path, mine, sim)
            sim.files.append((path, fmt, psp, mine[0].currency))
        else:
            _write_stripe(path, mine, sim)
            sim.files.append((path, fmt, psp, None))
    bank = out_dir / f"bank-{until:%Y%m}.camt053.xml"
    _write_camt(bank, batches, until)
    sim.files.append((bank, "camt053", "bank-main", None))
    return sim


def _batches(psp: str, ccy: str, lines: list[Line], until: dt.date, calendar: Callable[[dt.date], Any]) -> list[Batch]:
    by_day: dict[dt.date, list[Line]] = defaultdict(list)
    for ln in lines:
        by_day[calendar(ln.item_date).add_business_days(ln.item_date, PAYOUT_DELAY_BUSINESS_DAYS)].append(ln)
    out: list[Batch] = []
    carried: list[Line] = []
    for day in sorted(by_day):
        if day > until:
            break
        todo, carried = carried + by_day[day], []
        # At most 1,000 items per settlement event. A day whose debits exceed its credits is
        # netted against the latest payout that can absorb it, as processors net refunds and
        # chargebacks against what they pay out.
        for part, start in enumerate(range(0, len(todo), 1000)):
            chunk = todo[start : start + 1000]
            net = sum(ln.signed_net for ln in chunk)
            home = next((b for b in reversed(out) if b.net + net > 0 and len(b.lines) + len(chunk) <= 1000), None)
            if net <= 0 and home is not None:
                home.lines.extend(chunk)
            elif net <= 0:
                carried += chunk  # nothing paid out yet to net it against: the next day's payout
            else:
                out.append(Batch(psp, f"{psp}-PO-{day:%Y%m%d}-{ccy}-{part + 1}", ccy, day, chunk))
    home = next((b for b in reversed(out) if b.net + sum(ln.signed_net for ln in carried) > 0), None)
    if carried and home is not None:
        home.lines.extend(carried)
    return out


def _plant(batches: list[Batch], sim: Simulation, policy: Any, config: Any) -> None:
    """One of each: a capture missing from a report, a fee the processor got wrong, a line
    reported twice, a payout credited late, and a conversion the processor rounded its own way."""
    captures = [(b, ln) for b in batches for ln in b.lines if ln.kind == "capture" and ln.fee > 0]
    psps = sorted({b.psp for b, _ in captures})

    def pick(i: int) -> tuple[Batch, Line]:
        psp = psps[i % len(psps)]
        mine = [c for c in captures if c[0].psp == psp]
        return mine[len(mine) // 2 + i]

    _, ln = pick(0)
    sim.planted["missing_at_processor"] = ln.reference  # written to the payout, left out of the report
    _, ln = pick(1)
    ln.fee += 10 ** 2 if ln.currency not in ("CLP", "PYG") else 100  # fmt: skip
    sim.planted["fee_mismatch"] = ln.reference
    _, ln = pick(2)
    sim.planted["duplicate"] = ln.reference
    _, ln = pick(3)
    ln.gross += 1
    ln.exchange_rate = "0.0548"
    sim.planted["fx_rounding"] = ln.reference
    late = batches[len(batches) // 3]
    site = config.site_of(late.psp) or "US"
    late.credited_on = policy.calendar(site, late.paid_on.year).add_business_days(late.paid_on, 4)
    sim.planted["timing"] = late.settlement_id


def _post_settlements(ledger: Ledger, batches: Sequence[Batch]) -> None:
    docs = []
    for b in batches:
        at = dt.datetime.combine(b.paid_on, dt.time(12), dt.UTC)
        payload = {
            "settlement_id": b.settlement_id, "psp": b.psp,
            "net": {"amount": format_amount(b.net, b.currency), "currency": b.currency},
            "fee": {"amount": format_amount(b.fee, b.currency), "currency": b.currency} if b.fee else None,
            "value_date": b.paid_on.isoformat(), "bank_account": f"main-{b.currency}",
            "items": [{"kind": ln.kind, "reference": ln.reference} for ln in b.lines],
        }  # fmt: skip
        docs.append(derived_event(_NS, f"settlement:{b.settlement_id}", "psp.settlement_received", at, "treasury",
                                  payload))  # fmt: skip
    for i in range(0, len(docs), 500):
        for r in ledger.service.post(docs[i : i + 500]):
            if r.outcome not in (Outcome.APPENDED, Outcome.DUPLICATE):
                raise reconcile.ReconError(f"settlement {r.event_id}: {r.reason}")
    ledger.runner.run()


def _report_lines(b: Batch, sim: Simulation) -> list[Line]:
    lines = [ln for ln in b.lines if ln.reference != sim.planted.get("missing_at_processor")]
    return lines + [ln for ln in lines if ln.reference == sim.planted.get("duplicate") and ln.kind == "capture"]


def _write_stripe(path: Path, batches: Sequence[Batch], sim: Simulation) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(STRIPE_COLUMNS)
        n = 0
        for b in batches:
            for ln in _report_lines(b, sim):
                n += 1
                kind, category, _, sign = KINDS[ln.kind]
                created = f"{ln.item_date.isoformat()} 12:00:00"
                w.writerow((f"txn_{n:07d}", kind, f"src_{n:07d}", sign * ln.gross, ln.fee, ln.signed_net,
                            b.currency.lower(), ln.exchange_rate, created, f"{b.paid_on.isoformat()} 00:00:00",
                            category, "", b.settlement_id, ln.reference))  # fmt: skip
            n += 1
            w.writerow((f"txn_{n:07d}", "payout", b.settlement_id, -b.net, 0, -b.net, b.currency.lower(), "",
                        f"{b.paid_on.isoformat()} 00:00:00", f"{b.paid_on.isoformat()} 00:00:00", "payout", "",
                        "", b.settlement_id))  # fmt: skip


def _write_mp(path: Path, batches: Sequence[Batch], sim: Simulation) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(MP_COLUMNS)
        n = 0
        for b in batches:
            ccy = b.currency
            for ln in _report_lines(b, sim):
                n += 1
                _, _, description, sign = KINDS[ln.kind]
                net = format_amount(ln.gross - ln.fee, ccy)
                credit, debit = (net, "0") if sign > 0 else ("0", format_amount(ln.gross, ccy))
                approved = f"{ln.item_date.isoformat()}T12:00:00.000-03:00"
                w.writerow((b.paid_on.isoformat(), f"MP{n:09d}", ln.reference, "release",
                            description, credit, debit, format_amount(ln.gross, ccy), format_amount(ln.fee, ccy),
                            "0", "0", "0", "0", "1", "", approved, b.settlement_id))  # fmt: skip
            w.writerow((b.paid_on.isoformat(), b.settlement_id, b.settlement_id, "release", "withdrawal", "0",
                        format_amount(b.net, ccy), format_amount(b.net, ccy), "0", "0", "0", "0", "0", "", "",
                        f"{b.paid_on.isoformat()}T12:00:00.000-03:00", ""))  # fmt: skip


def _write_camt(path: Path, batches: Sequence[Batch], until: dt.date) -> None:
    by_ccy: dict[str, list[Batch]] = defaultdict(list)
    for b in batches:
        if (b.credited_on or b.paid_on) <= until:
            by_ccy[b.currency].append(b)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">',
        "<BkToCstmrStmt>",
        f"<GrpHdr><MsgId>QUIPU-DEMO-{until:%Y%m%d}</MsgId><CreDtTm>{until.isoformat()}T23:00:00</CreDtTm></GrpHdr>",
    ]
    for ccy, mine in sorted(by_ccy.items()):
        parts.append(f"<Stmt><Id>STMT-{ccy}-{until:%Y%m}</Id><CreDtTm>{until.isoformat()}T23:00:00</CreDtTm>")
        parts.append(f"<Acct><Id><Othr><Id>main-{ccy}</Id></Othr></Id><Ccy>{ccy}</Ccy></Acct>")
        for b in sorted(mine, key=lambda b: (b.credited_on or b.paid_on, b.settlement_id)):
            day = (b.credited_on or b.paid_on).isoformat()
            ref = escape(b.settlement_id)
            parts.append(
                f'<Ntry><Amt Ccy="{ccy}">{format_amount(b.net, ccy)}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
                f"<Sts>BOOK</Sts><BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>"
                f"<AcctSvcrRef>BK-{ref}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>{ref}</EndToEndId></Refs>"
                f"<RmtInf><Ustrd>{ref}</Ustrd></RmtInf></TxDtls></NtryDtls>"
                f"<AddtlNtryInf>{escape(b.psp)} payout</AddtlNtryInf></Ntry>"
            )
        parts.append("</Stmt>")
    parts += ["</BkToCstmrStmt>", "</Document>", ""]
    path.write_text("\n".join(parts), encoding="utf-8")


def reconcile_month(ledger: Ledger, out: Console, out_dir: Path, until: dt.date, plant: bool = True) -> dict[str, Any]:
    """Simulate, import, run all three levels and show what was found against what was planted."""
    sim = simulate(ledger, out_dir, until, plant)
    for path, fmt, source, ccy in sim.files:
        result = reconcile.import_file(ledger, path, fmt, source=source, currency=ccy)
        out.print(f"imported {result.file_name}: {result.lines} lines ({result.appended} new events)")
    report = reconcile.run(ledger, until)
    render(reconcile.summary_rows(report), Format.table, f"reconciliation as of {until}: match rate per level", out)
    render(reconcile.category_rows(report.findings), Format.table, "exceptions by category", out)
    found: dict[str, list[str]] = defaultdict(list)
    evidence: dict[tuple[str, str], str] = {}
    for f in report.findings:
        found[f.category].append(f.reference)
        evidence[(f.category, f.reference)] = ", ".join([*f.lines[:2], *f.event_ids[:1]])
    rows = [
        {"planted": cat, "reference": ref, "found_as": ", ".join(c for c, refs in found.items() if ref in refs) or "-",
         "evidence": evidence.get((cat, ref), "")}
        for cat, ref in sim.planted.items()
    ]  # fmt: skip
    if rows:
        render(rows, Format.table, "planted discrepancies and where the run found them", out)
    return {"report": report, "planted": sim.planted, "found": dict(found)}
