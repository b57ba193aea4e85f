"""The general ledger of a period, mapped to an external chart of accounts, for an ERP to import.

One row per posting: the entry (log position, event id and type, UTC date, memo), the external
GL account a mapping file assigns to our account, our account, the seller and site dimensions,
the currency and the debit and credit as decimal strings at the currency's decimals.

The mapping (``config/erp_mapping.toml`` is an example) is a dated list of rules, each matching
accounts by an fnmatch pattern on the whole name or on its parts (party, purpose, currency).
Every account the period touches must match exactly one rule: an unmapped account would drop
out of the ERP's books and an account two rules claim would land wherever the order said, so
both are refused, naming the accounts, before anything is written.

Nothing is written unless it ties: every entry balances per currency, and the debits and
credits written per currency equal the trial balance's movement over the period (the
``trial_balance`` projection less every posting outside the period). A refusal leaves no file.

The CSV streams the period (``views.stream``) into a temporary file beside the target and moves
it into place only after the checks, so a million-posting month needs no more memory than one
entry. The XLSX holds the period in memory (it is bounded by Excel's 1,048,575 rows anyway).

Site: the journal does not carry it. A seller's site is taken from the settlement schedule (the
site each of its captures was made on) for the seller and the posting's currency when that is
one site; an entry with seller postings on one site gives that site to all its postings (the
PSP's receivable and the fee of a capture belong to the capture's site). Entries with no seller
(FX conversions, processor settlements) and sellers on several sites in one currency (USD on
EC, PA and SV) leave the site empty rather than guess.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from adapters.bootstrap import Ledger
from adapters.exports import Column, Section, defuse, export_report
from adapters.exports import _write_all as write_atomically  # the writer's temp-file-and-rename, reused
from ledger.accounts import parse_account
from ledger.errors import AccountNameError, QuipuError
from ledger.money import exponent

ProgressFn = Callable[[str], None]
FORMATS: Final = ("csv", "xlsx")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PROGRESS_EVERY: Final = 100_000
#: The columns of every export, in order.
COLUMNS: Final = (
    "position",
    "event_id",
    "event_type",
    "date",
    "memo",
    "gl_code",
    "gl_name",
    "account",
    "seller",
    "site",
    "currency",
    "debit",
    "credit",
)


class ErpExportError(QuipuError, ValueError):
    """A mapping that cannot be used, or a general ledger that does not tie: nothing was written."""


# -- the mapping file --------------------------------------------------------------------------------


class MappingRule(BaseModel):
    """One rule: accounts matching every pattern given map to ``code`` / ``name``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    name: str
    account: str | None = None
    party: str | None = None
    purpose: str | None = None
    currency: str | None = None

    @field_validator("code", "name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _one_way_of_matching(self) -> MappingRule:
        parts = (self.party, self.purpose, self.currency)
        if self.account is None and all(p is None for p in parts):
            raise ValueError("give `account` (a pattern on the whole name) or `party` / `purpose` / `currency`")
        if self.account is not None and any(p is not None for p in parts):
            raise ValueError("`account` matches the whole name: do not combine it with party, purpose or currency")
        if self.account is not None and self.account.count(":") != 3:
            raise ValueError(f"account pattern {self.account!r} must have the four parts party:id:purpose:CCY")
        return self

    def matches(self, account: str) -> bool:
        """Whether ``account`` (a valid account name) falls under this rule; case matters, as in the journal."""
        if self.account is not None:
            return fnmatch.fnmatchcase(account, self.account)
        parsed = parse_account(account)
        return all(
            pattern is None or fnmatch.fnmatchcase(value, pattern)
            for pattern, value in (
                (self.party, parsed.party.value),
                (self.purpose, parsed.purpose),
                (self.currency, parsed.currency),
            )
        )

    def describe(self) -> str:
        if self.account is not None:
            return self.account
        return " ".join(
            f"{k}={v}"
            for k, v in (("party", self.party), ("purpose", self.purpose), ("currency", self.currency))
            if v is not None
        )


class ErpMapping(BaseModel):
    """A mapping file: which external chart, since when, and its ordered rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    effective_from: dt.date
    chart: str
    rules: tuple[MappingRule, ...]

    @field_validator("rules")
    @classmethod
    def _some(cls, rules: tuple[MappingRule, ...]) -> tuple[MappingRule, ...]:
        if not rules:
            raise ValueError("no rules: give at least one [[rule]]")
        return rules

    def assign(self, accounts: Sequence[str]) -> dict[str, MappingRule]:
        """Each account's rule; refused naming every account that matches no rule or several."""
        assigned: dict[str, MappingRule] = {}
        unmapped: list[str] = []
        ambiguous: list[str] = []
        for account in sorted(set(accounts)):
            try:
                hits = [(n, r) for n, r in enumerate(self.rules, start=1) if r.matches(account)]
            except AccountNameError as exc:
                raise ErpExportError(f"the journal holds an account that is not in the chart: {exc}") from None
            if not hits:
                unmapped.append(account)
            elif len(hits) > 1:
                ambiguous.append(f"{account} (rules " + ", ".join(f"{n} {r.code}" for n, r in hits) + ")")
            else:
                assigned[account] = hits[0][1]
        problems = []
        if unmapped:
            problems.append(f"{len(unmapped)} accounts match no rule: {', '.join(unmapped)}")
        if ambiguous:
            problems.append(f"{len(ambiguous)} accounts match several rules: {'; '.join(ambiguous)}")
        if problems:
            raise ErpExportError("--mapping: " + "; ".join(problems) + "; nothing was written")
        return assigned


def load_mapping(path: Path) -> ErpMapping:
    """Read and check a mapping file; errors name the file, the rule and the field."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ErpExportError(f"--mapping: {path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ErpExportError(f"--mapping: {Path(path).name}: not valid TOML ({exc})") from None
    if isinstance(data, dict) and "rule" in data:
        data["rules"] = data.pop("rule")  # [[rule]] in the file reads better than [[rules]]
    try:
        return ErpMapping.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
            where = where.replace("rules[", "rule[")
            problems.append(f"{Path(path).name}: {where}: {e['msg'].removeprefix('Value error, ')}")
        raise ErpExportError("--mapping: " + "; ".join(problems)) from None


# -- the period ------------------------------------------------------------------------------------


def _us(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) * 1_000_000


@cache
def _formatter(currency: str) -> Callable[[int], str]:
    """Minor units as the canonical decimal string, by integer arithmetic (a million postings, two amounts each)."""
    places = exponent(currency)
    if places == 0:
        return str
    scale = 10**places

    def fmt(minor: int) -> str:
        whole, frac = divmod(abs(minor), scale)
        return f"{'-' if minor < 0 else ''}{whole}.{frac:0{places}d}"

    return fmt


@dataclass(frozen=True)
class Tie:
    """One currency's totals: what was exported against the trial balance's movement, in minor units."""

    currency: str
    debits: int
    credits: int
    tb_debits: int
    tb_credits: int

    @property
    def ties(self) -> bool:
        return (self.debits, self.credits) == (self.tb_debits, self.tb_credits)

    def row(self) -> dict[str, Any]:
        f = _formatter(self.currency)
        return {
            "currency": self.currency,
            "debits": f(self.debits),
            "credits": f(self.credits),
            "trial_balance_debits": f(self.tb_debits),
            "trial_balance_credits": f(self.tb_credits),
            "ties": "yes" if self.ties else "NO",
        }


@dataclass
class ErpResult:
    """What an export wrote (or would have written)."""

    path: Path
    entries: int = 0
    postings: int = 0
    totals: list[Tie] = field(default_factory=list)


_STREAM_SQL: Final = (
    "SELECT p.position, p.line, p.account, p.currency, p.debit_minor, p.credit_minor, e.event_id, e.event_type, "
    "e.occurred_at_us, e.memo FROM journal_postings p JOIN journal_entries e ON e.position = p.position "
    "WHERE p.occurred_at_us >= ? AND p.occurred_at_us < ? ORDER BY p.position, p.line"
)


def _seller_sites(ledger: Ledger) -> dict[tuple[str, str], str]:
    """(seller, currency) → site, where the settlement schedule puts the seller on one site in that currency."""
    rows = ledger.views.query(
        "SELECT seller_id, currency, MIN(site), COUNT(DISTINCT site) FROM settlement_schedule "
        "GROUP BY seller_id, currency"
    )
    return {(str(s), str(c)): str(site) for s, c, site, n in rows if int(n) == 1}


def _movement(ledger: Ledger, lo: int, hi: int) -> dict[str, tuple[int, int]]:
    """The trial balance's movement over [lo, hi): the projection's totals less every posting outside the period."""
    outside = {
        str(c): (int(d), int(k))
        for c, d, k in ledger.views.query(
            "SELECT currency, SUM(debit_minor), SUM(credit_minor) FROM journal_postings "
            "WHERE occurred_at_us < ? OR occurred_at_us >= ? GROUP BY currency",
            (lo, hi),
        )
    }
    out = {}
    for c, d, k in ledger.views.query("SELECT currency, debits_minor, credits_minor FROM trial_balance"):
        od, ok = outside.get(str(c), (0, 0))
        out[str(c)] = (int(d) - od, int(k) - ok)
    return out


class _Period:
    """Streams the period's postings as output rows, checking each entry and summing per currency."""

    def __init__(self, ledger: Ledger, lo: int, hi: int, rules: dict[str, MappingRule], say: ProgressFn) -> None:
        self.ledger, self.lo, self.hi, self.rules, self.say = ledger, lo, hi, rules, say
        self.sites = _seller_sites(ledger)
        self.debits: dict[str, int] = defaultdict(int)
        self.credits: dict[str, int] = defaultdict(int)
        self.unbalanced: list[str] = []
        self.entries = 0
        self.postings = 0

    def rows(self, defused: bool) -> Iterator[list[Any]]:
        """Output rows in COLUMNS order, amounts as decimal strings; ``defused`` for CSV (the XLSX writer
        defuses text itself, and defusing twice would show two quotes)."""
        self._defuse: Callable[[str], str] = defuse if defused else _same
        self._by_account: dict[str, tuple[str, str, str | None]] = {}
        entry: list[tuple[Any, ...]] = []
        for r in self.ledger.views.stream(_STREAM_SQL, (self.lo, self.hi)):
            if entry and r[0] != entry[0][0]:
                yield from self._entry(entry)
                entry = []
            entry.append(r)
        if entry:
            yield from self._entry(entry)

    def _account(self, account: str) -> tuple[str, str, str | None]:
        """(GL code, GL name, seller) of an account, worked out once per account rather than per posting."""
        found = self._by_account.get(account)
        if found is None:
            rule = self.rules[account]
            party, party_id, _ = account.split(":", 2)
            found = (self._defuse(rule.code), self._defuse(rule.name), party_id if party == "seller" else None)
            self._by_account[account] = found
        return found

    def _entry(self, postings: list[tuple[Any, ...]]) -> Iterator[list[Any]]:
        # The hot loop of a million-posting month: per-entry work is done once, per-account work is cached.
        self.entries += 1
        first = postings[0]
        position = int(first[0])
        event_id, event_type, memo = self._defuse(str(first[6])), self._defuse(str(first[7])), self._defuse(first[9])
        day = (_EPOCH + dt.timedelta(microseconds=int(first[8]))).date().isoformat()
        net: dict[str, int] = defaultdict(int)
        sites: set[str] = set()
        for p in postings:
            net[p[3]] += int(p[4]) - int(p[5])
            seller = self._account(p[2])[2]
            if seller is not None and (seller, p[3]) in self.sites:
                sites.add(self.sites[(seller, p[3])])
        off = {ccy: n for ccy, n in net.items() if n}
        if off:
            self.unbalanced.append(
                f"{position} ({', '.join(f'{_formatter(c)(n)} {c}' for c, n in sorted(off.items()))})"
            )
        entry_site = next(iter(sites)) if len(sites) == 1 else None
        for _, _, account, ccy, d_raw, c_raw, *_ in postings:
            d, c = int(d_raw), int(c_raw)
            self.debits[ccy] += d
            self.credits[ccy] += c
            self.postings += 1
            if self.postings % _PROGRESS_EVERY == 0:
                self.say(f"  … {self.postings:,} postings")
            code, name, seller = self._account(account)
            site = entry_site or (self.sites.get((seller, ccy), "") if seller else "")
            f = _formatter(ccy)
            yield [position, event_id, event_type, day, memo, code, name, account, seller or "", site, ccy, f(d), f(c)]

    def check(self, movement: dict[str, tuple[int, int]]) -> list[Tie]:
        """The per-currency tie-out; ErpExportError when an entry or a currency does not tie."""
        currencies = sorted(set(self.debits) | {c for c, (d, k) in movement.items() if d or k})
        ties = [Tie(c, self.debits.get(c, 0), self.credits.get(c, 0), *movement.get(c, (0, 0))) for c in currencies]
        problems = []
        if self.unbalanced:
            shown = ", ".join(self.unbalanced[:20]) + (" …" if len(self.unbalanced) > 20 else "")
            problems.append(f"{len(self.unbalanced)} entries do not balance (position, off by): {shown}")
        for t in ties:
            if not t.ties:
                f = _formatter(t.currency)
                problems.append(
                    f"{t.currency}: exported debits {f(t.debits)} / credits {f(t.credits)} but the trial balance "
                    f"moved {f(t.tb_debits)} / {f(t.tb_credits)}"
                )
        if problems:
            raise ErpExportError(
                "the general ledger does not tie, nothing was written: "
                + "; ".join(problems)
                + " (if the ledger was being posted to, run the export again)"
            )
        return ties


def _same(text: str) -> str:
    return text


def export_gl(
    ledger: Ledger,
    start: dt.date,
    end: dt.date,
    mapping: ErpMapping,
    fmt: str,
    out: Path,
    progress: ProgressFn | None = None,
) -> ErpResult:
    """Write the general ledger of ``start``..``end`` (UTC days, inclusive) to ``out`` as CSV or XLSX."""
    say = progress or (lambda _m: None)
    if fmt not in FORMATS:
        raise ErpExportError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if end < start:
        raise ErpExportError(f"--to: {end.isoformat()} is before --from {start.isoformat()}")
    lo, hi = _us(start), _us(end + dt.timedelta(days=1))
    say("catching the projections up")
    ledger.runner.run()
    say("mapping the period's accounts")
    accounts = [
        str(a)
        for (a,) in ledger.views.query(
            "SELECT DISTINCT account FROM journal_postings WHERE occurred_at_us >= ? AND occurred_at_us < ?", (lo, hi)
        )
    ]
    rules = mapping.assign(accounts)
    movement = _movement(ledger, lo, hi)
    period = _Period(ledger, lo, hi, rules, say)
    out = Path(out)
    result = ErpResult(out)
    say("writing the postings")
    if fmt == "csv":
        out.parent.mkdir(parents=True, exist_ok=True)

        def write(f: IO[Any]) -> None:
            writer = csv.writer(f, lineterminator="\r\n")  # RFC 4180, as the report writer
            writer.writerow(COLUMNS)
            # Text a spreadsheet would run is defused as the rows are made (account, seller and site
            # cannot start with a formula character: account parts start with a letter or digit).
            writer.writerows(period.rows(defused=True))
            # Raising here makes the writer delete its temporary file: a refusal leaves nothing behind.
            result.totals = period.check(movement)

        write_atomically([(out, write)], text=True)
    else:
        rows = [dict(zip(COLUMNS, r, strict=True)) for r in period.rows(defused=False)]
        result.totals = period.check(movement)
        columns = [
            Column("position", "int"),
            *(Column(n) for n in COLUMNS[1:3]),
            Column("date", "date"),
            *(Column(n) for n in COLUMNS[4:11]),
            Column("debit", "money"),
            Column("credit", "money"),
        ]
        totals_columns = [
            Column("currency"),
            *(Column(n, "money") for n in ("debits", "credits", "trial_balance_debits", "trial_balance_credits")),
            Column("ties"),
        ]
        say("writing the workbook")
        export_report(
            f"General ledger {start.isoformat()} to {end.isoformat()}",
            [
                Section("general ledger", rows, columns),
                Section("totals per currency", [t.row() for t in result.totals], totals_columns),
            ],
            "xlsx",
            out,
            subtitle=f"mapped to {mapping.chart} (mapping version {mapping.version})",
        )
    result.entries, result.postings = period.entries, period.postings
    return result
