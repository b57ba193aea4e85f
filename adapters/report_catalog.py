"""The report catalogue: every report the CLI prints, by name, as typed sections ready for a file.

Each entry turns ``(ledger, params)`` into :class:`~adapters.exports.Section` s with typed
columns (money next to its currency column, ints, dates) and charts, built from the very row
functions the console commands use (:mod:`adapters.reports`, :mod:`adapters.settlement`,
:mod:`adapters.reconcile`, :mod:`adapters.aml`, :mod:`adapters.taxes`), so a file and the
screen never disagree on a figure. Nothing here prints, and nothing records an event: the
reconciliation report is a dry run. The CLI (``quipu report``) and the web console both call
:func:`build_report`; a parameter a report needs and did not get, or one it does not take, is
refused naming the option (``--site: the report aml-threshold needs it``).

Params are a mapping from option name without its dashes (``"as-of"``, ``"from"``) to the text
given, as a command line or a query string has them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from adapters import aml, reconcile, settlement, taxes
from adapters.bootstrap import Ledger
from adapters.exports import Chart, Column, Section
from adapters.params import parse_day
from adapters.reports import balance_rows, fx_exposure_rows, trial_balance_rows
from ledger.errors import QuipuError

Params = Mapping[str, str | None]
#: Params after checking: only those given, each a non-empty string.
Given = Mapping[str, str]
ProgressFn = Callable[[str], None]
Row = dict[str, Any]


class CatalogError(QuipuError, ValueError):
    """A report that does not exist, or a parameter missing, unknown or malformed."""


@dataclass(frozen=True)
class Param:
    """One parameter a report takes: its option name (without dashes), whether it must be given, what it means."""

    name: str
    help: str
    required: bool = False

    @property
    def option(self) -> str:
        return f"--{self.name}"


@dataclass(frozen=True)
class Report:
    """A built report: what a file is titled, and its sections."""

    name: str
    title: str
    sections: list[Section]


Builder = Callable[[Ledger, Given, ProgressFn], Report]


@dataclass(frozen=True)
class ReportSpec:
    """One catalogue entry."""

    name: str
    description: str
    params: tuple[Param, ...]
    builder: Builder
    #: Long reports (a reconciliation run rebuilds every projection into scratch) say each stage.
    long: bool = False

    def needs(self) -> str:
        """What the report takes, for ``quipu report list``: required options bare, optional ones in brackets."""
        parts = [p.option if p.required else f"[{p.option}]" for p in self.params]
        return " ".join(parts) or "nothing"


# -- parameters ------------------------------------------------------------------------------------


def _check(spec: ReportSpec, params: Params) -> dict[str, str]:
    """The given params, refused when the report does not take one or needs one that is missing."""
    given = {k: v for k, v in params.items() if v is not None and v != ""}
    known = {p.name for p in spec.params}
    for name in sorted(set(given) - known):
        takes = ", ".join(p.option for p in spec.params) or "no options"
        raise CatalogError(f"--{name}: the report {spec.name} does not take it (it takes {takes})")
    for p in spec.params:
        if p.required and p.name not in given:
            raise CatalogError(f"{p.option}: the report {spec.name} needs it ({p.help})")
    return given


def _day(params: Mapping[str, str], name: str) -> dt.date:
    # parse_day falls back to today for None; every caller here has checked the value is given.
    return parse_day(params[name], f"--{name}")


# -- charts ----------------------------------------------------------------------------------------


def _per_currency_hbar(
    title: str, rows: Sequence[Row], label: Callable[[Row], str], amount: str = "amount"
) -> list[Chart]:
    """One horizontal bar chart per currency: amounts in different currencies share no axis."""
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in rows:
        if r.get("currency") and r.get(amount) not in (None, ""):
            sums[str(r["currency"])][label(r)] += Decimal(str(r[amount]))
    charts = []
    for ccy in sorted(sums):
        labels = sorted(sums[ccy])
        charts.append(Chart(f"{title} ({ccy})", "hbar", labels, {ccy: [sums[ccy][lb] for lb in labels]}, ccy))
    return charts


def _money(name: str, currency_column: str = "currency") -> Column:
    return Column(name, "money", currency_column)


def _text(*names: str) -> list[Column]:
    return [Column(n) for n in names]


# -- the reports -------------------------------------------------------------------------------------


def _trial_balance(ledger: Ledger, params: Given, say: ProgressFn) -> Report:
    rows = trial_balance_rows(ledger)
    columns = [Column("currency"), _money("debits"), _money("credits"), _money("net")]
    # No chart: one bar per currency would put BRL and COP on one axis, which says nothing.
    return Report("trial-balance", "Trial balance", [Section("trial balance", rows, columns)])


def _balances(ledger: Ledger, params: Given, say: ProgressFn) -> Report:
    rows = balance_rows(ledger, params.get("account"), params.get("as-of"))
    columns = [
        *_text("account", "currency"),
        _money("debits"),
        _money("credits"),
        _money("balance"),
        Column("normal_side"),
    ]

    def party_purpose(r: Row) -> str:
        party, _, purpose, _ = str(r["account"]).split(":")
        return f"{party}:{purpose}"

    charts = _per_currency_hbar("balances by party and purpose", rows, party_purpose, "balance")
    title = "Balances" + (f" as of {params['as-of']}" if params.get("as-of") else "")
    title += f" ({params['account']})" if params.get("account") else ""
    return Report("balances", title, [Section("balances", rows, columns, charts)])


def _settlement_schedule(ledger: Ledger, params: Given, say: ProgressFn) -> Report:
    day = _day(params, "date")
    site = params.get("site")
    rows = settlement.schedule_rows(ledger, day, site.upper() if site else None)
    columns = [
        *_text("site", "currency", "seller", "payment", "installment", "method"),
        _money("amount"),
        Column("rule"),
    ]
    charts = _per_currency_hbar("settling by method", rows, lambda r: str(r["method"]))
    title = f"Settling on {day.isoformat()}" + (f", {site.upper()}" if site else "")
    return Report("settlement-schedule", title, [Section("settlement schedule", rows, columns, charts)])


def _settlement_batches(ledger: Ledger, params: Given, say: ProgressFn) -> Report:
    first = _day(params, "from")
    # As `quipu settlement batches`: thirty days after --from when --to is not given.
    last = _day(params, "to") if params.get("to") else first + dt.timedelta(days=30)
    if last < first:
        raise CatalogError(f"--to: {last.isoformat()} is before --from {first.isoformat()}")
    site = params.get("site")
    rows = settlement.batch_rows(ledger, first, last, site.upper() if site else None)
    columns = [Column("date", "date"), *_text("site", "currency"), _money("amount"), Column("installments", "int")]
    charts = []
    for ccy in sorted({str(r["currency"]) for r in rows}):
        mine = [r for r in rows if r["currency"] == ccy]
        days = sorted({str(r["date"]) for r in mine})
        sites = sorted({str(r["site"]) for r in mine})
        # USD settles on several sites (EC, PA, SV): one stack per site.
        amounts = {(str(r["date"]), str(r["site"])): Decimal(str(r["amount"])) for r in mine}
        series = {s: [amounts.get((d, s), Decimal(0)) for d in days] for s in sites}
        charts.append(Chart(f"settlement amounts per day ({ccy})", "stacked_bar", days, series, ccy))
    title = f"Settlement batches {first.isoformat()} to {last.isoformat()}" + (f", {site.upper()}" if site else "")
    return Report("settlement-batches", title, [Section("settlement batches", rows, columns, charts)])


_CATEGORY_COLUMNS: Final = [
    Column("level", "int"),
    *_text("category", "currency"),
    Column("exceptions", "int"),
    _money("amount"),
]


def _category_charts(cats: Sequence[Row]) -> list[Chart]:
    if not cats:
        return []
    labels = [f"L{c['level']} {c['category']} {c['currency'] or ''}".strip() for c in cats]
    charts = [Chart("exceptions per category", "hbar", labels, {"exceptions": [int(c["exceptions"]) for c in cats]})]
    charts += _per_currency_hbar("amounts per category", cats, lambda c: f"L{c['level']} {c['category']}")
    return charts


def _reconciliation(ledger: Ledger, params: Given, say: ProgressFn) -> Report:
    day = _day(params, "date")
    # A dry run: a report must never record an exception (nor clear one) as a side effect.
    report = reconcile.run(ledger, day, dry_run=True, keep_decisions=False, progress=say)
    summary = reconcile.summary_rows(report)
    cats = reconcile.category_rows(report.findings)
    summary_columns = [
        Column("level", "int"),
        Column("matched", "int"),
        Column("pending", "int"),
        Column("exceptions", "int"),
        Column("match_rate_pct", "decimal"),
    ]
    rate_chart = Chart(
        "match rate per level (%)",
        "bar",
        [f"level {r['level']}" for r in summary],
        {"matched %": [Decimal(r["match_rate_pct"]) for r in summary]},
        "%",
    )
    return Report(
        "reconciliation",
        f"Reconciliation as of {day.isoformat()} (dry run: nothing recorded)",
        [
            Section("match rate per level", summary, summary_columns, [rate_chart] if summary else []),
            Section("exceptions by category", cats, _CATEGORY_COLUMNS, _category_charts(cats)),
        ],
    )


def _reconciliation_exceptions(ledger: Ledger, params: Given, say: ProgressFn) -> Report:
    day = _day(params, "as-of")
    status = params.get("status") or "open"
    say("catching the projections up")
    ledger.runner.run()  # as `quipu reconcile exceptions`
    rows = reconcile.exception_rows(ledger, day, None if status == "all" else status)
    columns = [
        Column("exception_id"),
        Column("level", "int"),
        *_text("category", "reference", "source", "currency"),
        _money("ledger"),
        _money("external"),
        _money("difference"),
        Column("item_date", "date"),
        Column("found_on", "date"),
        Column("age_days", "int"),
        *_text("status", "detail", "evidence"),
    ]
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[f"L{r['level']} {r['category']}"] += 1
    charts = []
    if counts:
        labels = sorted(counts)
        charts.append(Chart("exceptions per category", "hbar", labels, {"exceptions": [counts[lb] for lb in labels]}))
    buckets = reconcile.aging(rows)
    order = [label for _, _, label in reconcile.AGING_BUCKETS]
    present = sorted({b["bucket"] for b in buckets}, key=order.index)
    aging_charts = []
    if present:
        per_bucket = [sum(b["exceptions"] for b in buckets if b["bucket"] == lb) for lb in present]
        aging_charts.append(Chart("exceptions by age", "bar", present, {"exceptions": per_bucket}))
    aging_columns = [Column("bucket"), Column("category"), Column("exceptions", "int")]
    return Report(
        "reconciliation-exceptions",
        f"Reconciliation exceptions ({status}), as of {day.isoformat()}",
        [
            Section("exceptions", rows, columns, charts),
            Section("aging", buckets, aging_columns, aging_charts),
        ],
    )


def _aml_threshold(ledger: Ledger, params: Given, say: ProgressFn) -> Report:
    site, month = params["site"].upper(), params["month"]
    rows = aml.report_rows(ledger, site, month)
    columns = [
        Column("date", "date"),
        *_text("seller", "kind"),
        Column("operations", "int"),
        _money("amount"),
        *_text("currency", "detail", "events"),
    ]
    charts = _per_currency_hbar("amount reported per seller", rows, lambda r: str(r["seller"]))
    kinds: dict[str, int] = defaultdict(int)
    for r in rows:
        kinds[str(r["kind"])] += 1
    if kinds:
        labels = sorted(kinds)
        charts.append(Chart("reports per kind", "pie", labels, {"reports": [kinds[k] for k in labels]}))
    return Report(
        "aml-threshold", f"{site} threshold report {month}", [Section("threshold report", rows, columns, charts)]
    )


def _fx_exposure(ledger: Ledger, params: Given, say: ProgressFn) -> Report:
    valuation = (params.get("valuation") or "USD").upper()
    ledger.runner.run()  # as `quipu fx exposure`
    value = f"value_{valuation.lower()}"
    # The value is in the valuation currency, which no row field names: say it in a column of its own.
    rows = [{**r, "valuation_currency": valuation} for r in fx_exposure_rows(ledger, valuation)]
    columns = [
        Column("currency"),
        _money("position"),
        Column("rate", "decimal"),
        Column("source"),
        _money(value, "valuation_currency"),
        Column("valuation_currency"),
    ]
    valued = [r for r in rows if r[value]]
    charts = []
    if valued:
        charts.append(
            Chart(
                f"open positions valued in {valuation}",
                "hbar",
                [str(r["currency"]) for r in valued],
                {valuation: [Decimal(str(r[value])) for r in valued]},
                valuation,
            )
        )
    return Report("fx-exposure", f"FX exposure valued in {valuation}", [Section("fx exposure", rows, columns, charts)])


def _tax_summary(ledger: Ledger, params: Given, say: ProgressFn) -> Report:
    site = params.get("site")
    rows = taxes.summary_rows(ledger, site.upper() if site else None)
    columns = [*_text("site", "kind", "tax", "currency"), _money("amount"), Column("lines", "int")]
    charts = []
    for ccy in sorted({str(r["currency"]) for r in rows}):
        mine = [r for r in rows if r["currency"] == ccy]
        sites = sorted({str(r["site"]) for r in mine})
        kinds = sorted({str(r["kind"]) for r in mine})
        sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for r in mine:
            sums[(str(r["site"]), str(r["kind"]))] += Decimal(str(r["amount"]))
        series = {k: [sums[(s, k)] for s in sites] for k in kinds}
        charts.append(Chart(f"tax per site ({ccy})", "stacked_bar", sites, series, ccy))
    title = "Taxes assessed per site (reversals deducted)" + (f", {site.upper()}" if site else "")
    return Report("tax-summary", title, [Section("tax summary", rows, columns, charts)])


_SITE = Param("site", "country site, e.g. BR")
REPORTS: Final[dict[str, ReportSpec]] = {
    spec.name: spec
    for spec in (
        ReportSpec("trial-balance", "debits, credits and net per currency", (), _trial_balance),
        ReportSpec(
            "balances",
            "account balances on each account's normal side",
            (Param("account", "glob, e.g. 'seller:*:available:BRL'"), Param("as-of", "log position or ISO time")),
            _balances,
        ),
        ReportSpec(
            "settlement-schedule",
            "every installment settling on a date",
            (Param("date", "settlement date YYYY-MM-DD", required=True), _SITE),
            _settlement_schedule,
        ),
        ReportSpec(
            "settlement-batches",
            "daily settlement batches per site and currency",
            (
                Param("from", "first date YYYY-MM-DD", required=True),
                Param("to", "last date (default --from + 30)"),
                _SITE,
            ),
            _settlement_batches,
        ),
        ReportSpec(
            "reconciliation",
            "match rate per level and exceptions by category (a dry run: records nothing)",
            (Param("date", "reconcile as of the end of this day", required=True),),
            _reconciliation,
            long=True,
        ),
        ReportSpec(
            "reconciliation-exceptions",
            "recorded exceptions with evidence and age, and their aging",
            (
                Param("as-of", "age counted to this day", required=True),
                Param("status", "open (default), cleared, adjusted, accepted_timing, written_off or all"),
            ),
            _reconciliation_exceptions,
        ),
        ReportSpec(
            "aml-threshold",
            "threshold-report data of a site for a month (COAF / UIF)",
            (Param("site", "e.g. BR (COAF) or MX (UIF)", required=True), Param("month", "YYYY-MM", required=True)),
            _aml_threshold,
        ),
        ReportSpec(
            "fx-exposure",
            "open FX positions valued at the latest recorded rate",
            (Param("valuation", "currency to value in (default USD)"),),
            _fx_exposure,
        ),
        ReportSpec("tax-summary", "taxes assessed less reversed per site, kind and tax", (_SITE,), _tax_summary),
    )
}


def _quiet(_message: str) -> None:
    pass


def build_report(ledger: Ledger, name: str, params: Params | None = None, progress: ProgressFn | None = None) -> Report:
    """The report ``name`` with ``params``; CatalogError for an unknown name or a bad parameter."""
    spec = REPORTS.get(name)
    if spec is None:
        raise CatalogError(f"NAME: no report {name!r}; the reports are {', '.join(REPORTS)}")
    given = _check(spec, params or {})
    return spec.builder(ledger, given, progress or _quiet)


def sections(ledger: Ledger, name: str, params: Params | None = None) -> list[Section]:
    """Just the sections of ``name``: the ``(ledger, params) -> list[Section]`` view of the catalogue."""
    return build_report(ledger, name, params).sections


def catalogue_rows() -> list[Row]:
    """One row per report: its name, what it needs, what it shows."""
    return [{"report": s.name, "needs": s.needs(), "shows": s.description} for s in REPORTS.values()]
