"""The analyst surface: documented, stable ``analyst_*`` views over the projections (ADR 0020).

One list, :data:`VIEWS`, says every view's columns with their types and meaning on both
databases and the SQL that computes them. The same list renders the migration that creates
the views (:func:`migration_sql`, written once into ``migrations/<dialect>/0012_analyst_views.sql``
and never edited after), the reference ``docs/analyst-views.md`` (:func:`render_doc`) and what
the tests compare the databases against. Changing a view means a new migration: columns are
only ever added, and a breaking change is a new view name.

:func:`grant_analyst_role` makes the PostgreSQL role that may read these views and nothing
else in the ledger's schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

import psycopg
from psycopg.sql import SQL, Identifier
from psycopg.sql import Literal as SqlLiteral

from adapters.store.pg_url import PgTarget
from ledger.accounts import NORMAL_SIDE, Side
from ledger.errors import MoneyError, QuipuError
from ledger.money import exponent

Dialect = Literal["sqlite", "postgresql"]

#: The migration that creates the views (its number in both dialects' folders).
MIGRATION: Final = "0012_analyst_views"
PREFIX: Final = "analyst_"
DEFAULT_ROLE: Final = "quipu_analyst"

_CCY: Final = "cx"  # the alias of the analyst_currencies join in every view with amounts


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a view: its name, types, meaning and the expression on each database."""

    name: str
    pg_type: str
    """As PostgreSQL's ``information_schema.columns.data_type`` names it."""
    sqlite_type: str
    """The storage class its values have on SQLite (SQLite has no column types in a view)."""
    meaning: str
    pg: str
    sqlite: str


@dataclass(frozen=True, slots=True)
class View:
    """One analyst view: what a row is, its key, its columns, where they come from, an example."""

    name: str
    about: str
    grain: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    source: str
    """The ``FROM`` clause (the same on both databases unless ``sqlite_source`` is given)."""
    example: str
    sqlite_source: str = ""

    def from_clause(self, dialect: Dialect) -> str:
        return self.sqlite_source if dialect == "sqlite" and self.sqlite_source else self.source


# --- column kinds ----------------------------------------------------------------------------


def text(name: str, meaning: str, expr: str = "", *, empty_is_null: bool = False) -> Column:
    e = expr or f"t.{name}"
    if empty_is_null:
        e = f"NULLIF({e}, '')"
    return Column(name, "text", "TEXT", meaning, e, e)


def integer(name: str, meaning: str, expr: str = "", *, pg_type: str = "bigint") -> Column:
    e = expr or f"t.{name}"
    return Column(name, pg_type, "INTEGER", meaning, e, e)


def _pg_decimal(minor: str) -> str:
    return f"round({minor}::numeric / {_CCY}.minor_per_major, {_CCY}.exponent)"


def _sqlite_decimal(minor: str) -> str:
    # Exact: integer division and remainder by 10^exponent, the remainder zero-padded.
    unit = f"{_CCY}.minor_per_major"
    return (
        f"CASE WHEN {_CCY}.exponent = 0 THEN CAST({minor} AS TEXT) "
        f"ELSE CASE WHEN {minor} < 0 THEN '-' ELSE '' END || CAST(abs({minor}) / {unit} AS TEXT) || '.' "
        f"|| substr(CAST({unit} + abs({minor}) % {unit} AS TEXT), 2) END"
    )


def amount(name: str, meaning: str, minor: str = "") -> tuple[Column, Column]:
    """``name`` in major units (exact) and ``name_minor`` in integer minor units."""
    m = minor or f"t.{name}_minor"
    if " " in m:
        m = f"({m})"
    return (
        Column(
            name, "numeric", "TEXT", f"{meaning}, in major units (exact decimal)", _pg_decimal(m), _sqlite_decimal(m)
        ),
        Column(f"{name}_minor", "bigint", "INTEGER", f"`{name}` in integer minor units of `currency`", m, m),
    )


def moment_us(name: str, meaning: str, us: str) -> Column:
    """A UTC moment from microseconds since the epoch."""
    return Column(
        name,
        "timestamp with time zone",
        "TEXT",
        meaning,
        f"to_timestamp({us} / 1000000) + ({us} % 1000000) * interval '1 microsecond'",
        f"strftime('%Y-%m-%dT%H:%M:%S', {us} / 1000000, 'unixepoch') || '.' "
        f"|| substr(CAST(1000000 + {us} % 1000000 AS TEXT), 2) || 'Z'",
    )


def moment_text(name: str, meaning: str, expr: str = "") -> Column:
    """A UTC moment from ISO 8601 text with an offset (empty text is null)."""
    e = f"NULLIF({expr or f't.{name}'}, '')"
    return Column(
        name,
        "timestamp with time zone",
        "TEXT",
        meaning,
        f"{e}::timestamptz",
        f"strftime('%Y-%m-%dT%H:%M:%S', {e}) || substr(strftime('%f', {e}), 3) || '000Z'",
    )


def day(name: str, meaning: str, expr: str = "") -> Column:
    """A calendar date from ISO text ``YYYY-MM-DD`` (empty text is null)."""
    e = f"NULLIF({expr or f't.{name}'}, '')"
    return Column(name, "date", "TEXT", meaning, f"{e}::date", e)


def decimal(name: str, meaning: str, expr: str = "") -> Column:
    """A decimal kept as text in the projection (a rate): numeric on PostgreSQL."""
    e = expr or f"t.{name}"
    return Column(name, "numeric", "TEXT", meaning, f"{e}::numeric", e)


def json(name: str, meaning: str, expr: str = "") -> Column:
    e = expr or f"t.{name}"
    return Column(name, "jsonb", "TEXT", meaning, f"{e}::jsonb", e)


def flag(name: str, meaning: str, expr: str = "") -> Column:
    e = expr or f"t.{name}"
    return Column(name, "boolean", "INTEGER", meaning, f"({e} <> 0)", e)


def _with_currency(table: str) -> str:
    return f"FROM {table} t LEFT JOIN analyst_currencies {_CCY} ON {_CCY}.currency = t.currency"


# --- the views -------------------------------------------------------------------------------

_CURRENCY: Final = text("currency", "ISO 4217 code of every amount in the row")


def _normal_side_case(purpose_base: str) -> str:
    debit = ", ".join(f"'{p}'" for p, s in sorted(NORMAL_SIDE.items()) if s is Side.DEBIT)
    credit = ", ".join(f"'{p}'" for p, s in sorted(NORMAL_SIDE.items()) if s is Side.CREDIT)
    return f"CASE WHEN {purpose_base} IN ({debit}) THEN 'debit' WHEN {purpose_base} IN ({credit}) THEN 'credit' END"


_PURPOSE_BASE_PG: Final = "split_part(split_part(b.account, ':', 3), '.', 1)"
_PURPOSE_BASE_SQLITE: Final = (
    "CASE WHEN instr(p.purpose, '.') > 0 THEN substr(p.purpose, 1, instr(p.purpose, '.') - 1) ELSE p.purpose END"
)
_BALANCES_PG: Final = (
    "FROM (SELECT b.*, split_part(b.account, ':', 1) AS party, split_part(b.account, ':', 2) AS party_id, "
    "split_part(b.account, ':', 3) AS purpose, "
    f"{_normal_side_case(_PURPOSE_BASE_PG)} AS normal_side "
    f"FROM account_balances b) t LEFT JOIN analyst_currencies {_CCY} ON {_CCY}.currency = t.currency"
)
_BALANCES_SQLITE: Final = (
    "FROM (SELECT p.*, "
    f"{_normal_side_case(_PURPOSE_BASE_SQLITE)} AS normal_side "
    "FROM (SELECT r.*, substr(r.r2, 1, instr(r.r2, ':') - 1) AS purpose "
    "FROM (SELECT q.*, substr(q.r1, 1, instr(q.r1, ':') - 1) AS party_id, substr(q.r1, instr(q.r1, ':') + 1) AS r2 "
    "FROM (SELECT b.*, substr(b.account, 1, instr(b.account, ':') - 1) AS party, "
    "substr(b.account, instr(b.account, ':') + 1) AS r1 FROM account_balances b) q) r) p) t "
    f"LEFT JOIN analyst_currencies {_CCY} ON {_CCY}.currency = t.currency"
)
_BALANCE_MINOR: Final = (
    "CASE t.normal_side WHEN 'debit' THEN t.debits_minor - t.credits_minor "
    "WHEN 'credit' THEN t.credits_minor - t.debits_minor END"
)

CURRENCIES: Final = View(
    "analyst_currencies",
    "Every currency the ledger accepts, with its ISO 4217 exponent: how the other views turn minor units into "
    "major units. Join it to a `*_minor` column to do the same yourself. A small read-only table (filled by the "
    "migration from `ledger/money.py`), the one analyst relation that is not a view.",
    "one currency",
    ("currency",),
    (
        text("currency", "ISO 4217 alphabetic code"),
        integer(
            "exponent", "decimal places of the currency (2 for BRL, 0 for CLP and PYG, 3 for KWD)", pg_type="integer"
        ),
        integer("minor_per_major", "minor units in one major unit: 10 to the power `exponent`", pg_type="integer"),
    ),
    "",
    "SELECT currency, exponent FROM analyst_currencies WHERE exponent <> 2 ORDER BY currency",
)

VIEWS: Final[tuple[View, ...]] = (
    CURRENCIES,
    View(
        "analyst_journal",
        "The journal: every posting of every entry, with the entry's event, times and memo. Debits equal credits "
        "per currency over any set of whole entries.",
        "one posting (one line of one journal entry)",
        ("position", "line"),
        (
            integer("position", "log position of the event that booked the entry (orders entries)", "p.position"),
            integer("line", "line of the posting within its entry, from 1", "p.line", pg_type="integer"),
            text("event_id", "id of the event that booked the entry", "e.event_id"),
            text("event_type", "type of that event, e.g. `payment.captured`", "e.event_type"),
            moment_us("occurred_at", "business time of the event, UTC", "e.occurred_at_us"),
            moment_us("recorded_at", "when the ledger recorded the event, UTC", "e.recorded_at_us"),
            text("memo", "the entry's memo", "e.memo"),
            text("account", "account posted to, `party:party_id:purpose:CCY`", "p.account"),
            text("currency", "ISO 4217 code of the posting", "p.currency"),
            *amount("debit", "debit amount (0 on a credit line)", "p.debit_minor"),
            *amount("credit", "credit amount (0 on a debit line)", "p.credit_minor"),
        ),
        "FROM journal_postings p JOIN journal_entries e ON e.position = p.position "
        f"LEFT JOIN analyst_currencies {_CCY} ON {_CCY}.currency = p.currency",
        "SELECT currency, SUM(debit_minor) AS debits_minor, SUM(credit_minor) AS credits_minor\n"
        "FROM analyst_journal WHERE occurred_at >= '2026-10-01T00:00:00Z' AND occurred_at < '2026-11-01T00:00:00Z'\n"
        "GROUP BY currency",
    ),
    View(
        "analyst_balances",
        "Every account's totals and its balance on its normal side (debit for assets and expenses, credit for "
        "liabilities and revenue), as `quipu balances` shows them: a seller's positive balance is money owed to them.",
        "one account",
        ("account",),
        (
            text("account", "account name, `party:party_id:purpose:CCY`"),
            text("party", "`seller`, `buyer`, `psp`, `platform` or `bank`"),
            text("party_id", "the party's id, e.g. a seller id or `main` for the platform"),
            text("purpose", "what the account holds, e.g. `available` or `fee_revenue.commission`"),
            _CURRENCY,
            text("normal_side", "`debit` or `credit`: the side on which the balance is positive"),
            *amount("debits", "sum of the account's debits"),
            *amount("credits", "sum of the account's credits"),
            *amount("balance", "balance on the normal side", _BALANCE_MINOR),
            integer("postings", "number of postings to the account"),
        ),
        _BALANCES_PG,
        "SELECT party_id, balance FROM analyst_balances\n"
        "WHERE party = 'seller' AND purpose = 'available' AND currency = 'BRL' ORDER BY balance_minor DESC LIMIT 10",
        _BALANCES_SQLITE,
    ),
    View(
        "analyst_trial_balance",
        "Total debits and credits per currency; `net` is zero in a sound ledger.",
        "one currency",
        ("currency",),
        (
            _CURRENCY,
            *amount("debits", "sum of all debits"),
            *amount("credits", "sum of all credits"),
            *amount("net", "debits less credits (zero)", "t.debits_minor - t.credits_minor"),
        ),
        _with_currency("trial_balance"),
        "SELECT currency, debits, credits FROM analyst_trial_balance WHERE net_minor <> 0",
    ),
    View(
        "analyst_seller_flows",
        "Each seller's money movements per currency, UTC day and kind (`captured`, `refunded`, `charged_back`, "
        "`fee`, `released`, `recovered`, `payout_requested`, `payout_fee`, `payout_sent`, `payout_settled`, "
        "`payout_failed`, `chargeback_won`, `tax`, `tax_reversed`, `converted_out`, `converted_in`, "
        "`held:<reason>`, `hold_released:<reason>`). Amounts are positive; the kind says the direction.",
        "one seller, currency, UTC day and kind",
        ("seller_id", "currency", "day", "kind"),
        (
            text("seller_id", "the seller"),
            _CURRENCY,
            day("day", "UTC date the events occurred"),
            text("kind", "what moved (see above)"),
            *amount("amount", "sum of the events' amounts"),
            integer("events", "number of events summed"),
        ),
        _with_currency("seller_flows"),
        "SELECT seller_id, currency, SUM(amount_minor) AS captured_minor FROM analyst_seller_flows\n"
        "WHERE kind = 'captured' AND day BETWEEN '2026-10-01' AND '2026-10-31' GROUP BY seller_id, currency",
    ),
    View(
        "analyst_settlement_schedule",
        "Every installment each capture settles in, with the date the settlement rules give it.",
        "one installment of one captured payment",
        ("event_id", "installment"),
        (
            text("event_id", "id of the `payment.captured` event"),
            integer("installment", "installment number, from 1", pg_type="integer"),
            integer("of_installments", "number of installments of the payment", pg_type="integer"),
            text("payment_id", "the payment"),
            text("order_id", "the payment's order (null when its authorization is not in the log)", empty_is_null=True),
            text("seller_id", "the seller"),
            text("site", "the marketplace site, e.g. `BR` (null when the order is unknown)", empty_is_null=True),
            _CURRENCY,
            text("method", "payment method, e.g. `card`, `pix` (null when unknown)", empty_is_null=True),
            moment_us("captured_at", "when the payment was captured, UTC", "t.captured_at_us"),
            day("settles_on", "date the installment settles (null when unscheduled)"),
            *amount("amount", "the installment's amount"),
            flag("gated", "released only some days after delivery (release-after-delivery rule)"),
            text("rule", "the settlement rule that gave the date, in words"),
        ),
        _with_currency("settlement_schedule"),
        "SELECT settles_on, site, currency, SUM(amount_minor) AS amount_minor FROM analyst_settlement_schedule\n"
        "WHERE settles_on >= '2026-11-01' GROUP BY settles_on, site, currency ORDER BY settles_on",
    ),
    View(
        "analyst_settlement_batches",
        "What each site's processors settle per currency and day: the sum of the installments settling then.",
        "one site, currency and settlement date",
        ("site", "currency", "settles_on"),
        (
            text("site", "the marketplace site"),
            _CURRENCY,
            day("settles_on", "settlement date"),
            *amount("amount", "sum of the installments settling that day"),
            integer("items", "number of installments"),
        ),
        _with_currency("settlement_batches"),
        "SELECT site, currency, SUM(amount) AS amount FROM analyst_settlement_batches\n"
        "WHERE settles_on BETWEEN '2026-10-01' AND '2026-10-31' GROUP BY site, currency",
    ),
    View(
        "analyst_settlement_holds",
        "Funds held out of a seller's payouts (AML, disputes …) and when they were released.",
        "one hold of one seller (a hold id is unique per seller only)",
        ("seller_id", "hold_id"),
        (
            text("hold_id", "the hold"),
            text("seller_id", "the seller"),
            _CURRENCY,
            *amount("amount", "amount held"),
            text("reason", "why, e.g. `aml`"),
            day("held_on", "UTC date the funds were held"),
            day("release_on", "date the hold lapses by itself (null: only released by hand)"),
            day("released_on", "UTC date it was released (null: still held)"),
        ),
        _with_currency("settlement_holds"),
        "SELECT seller_id, currency, SUM(amount) AS held FROM analyst_settlement_holds\n"
        "WHERE released_on IS NULL GROUP BY seller_id, currency",
    ),
    View(
        "analyst_tax_summary",
        "Every tax line booked, assessed less reversed, per site, kind and tax (`quipu tax summary`).",
        "one site, assessment kind, tax and currency",
        ("site", "kind", "tax", "currency"),
        (
            text("site", "the marketplace site"),
            text("kind", "assessment kind, e.g. consumption tax, withholding, import duty"),
            text("tax", "the tax's name"),
            _CURRENCY,
            *amount("amount", "assessed less reversed"),
            integer("lines", "tax lines assessed less lines reversed"),
        ),
        _with_currency("tax_summary"),
        "SELECT site, tax, currency, amount FROM analyst_tax_summary WHERE site = 'MX' ORDER BY amount_minor DESC",
    ),
    View(
        "analyst_tax_assessments",
        "Each order's tax assessments, and whether they were reversed (an order cancelled).",
        "one order and assessment kind",
        ("order_id", "kind"),
        (
            text("order_id", "the order", "a.order_id"),
            text("kind", "assessment kind", "a.kind"),
            text("assessment_id", "the assessment", "a.assessment_id"),
            text("site", "the marketplace site", "a.site"),
            text("seller_id", "the seller", "a.seller_id"),
            text("currency", "ISO 4217 code of `total`", "a.currency"),
            *amount("total", "sum of the assessment's lines", "a.total_minor"),
            moment_text("reversed_at", "when it was reversed (null: it stands)", "r.reversed_at"),
        ),
        "FROM tax_assessments a LEFT JOIN tax_reversals r ON r.order_id = a.order_id AND r.kind = a.kind "
        f"LEFT JOIN analyst_currencies {_CCY} ON {_CCY}.currency = a.currency",
        "SELECT seller_id, currency, SUM(total_minor) AS taxes_minor FROM analyst_tax_assessments\n"
        "WHERE reversed_at IS NULL GROUP BY seller_id, currency",
    ),
    View(
        "analyst_fx_rates",
        "Every FX rate published to the ledger: one `base` buys `rate` units of `quote`.",
        "one rate of one source for one moment",
        ("base", "quote", "source", "as_of"),
        (
            text("base", "currency bought"),
            text("quote", "currency paid"),
            text("source", "who published it, e.g. `BCB PTAX`"),
            moment_us("as_of", "the moment the rate is for, UTC", "t.as_of_us"),
            decimal("rate", "units of `quote` per unit of `base`"),
            integer("position", "log position of the `fx.rate_published` event"),
        ),
        "FROM fx_rates t",
        "SELECT as_of, rate FROM analyst_fx_rates WHERE base = 'BRL' AND quote = 'USD' ORDER BY as_of DESC LIMIT 5",
    ),
    View(
        "analyst_fx_positions",
        "The platform's open position per foreign currency and its carrying value in USD (IAS 21).",
        "one currency",
        ("currency",),
        (
            _CURRENCY,
            *amount("position", "open position (positive: long)"),
            Column(
                "carrying_usd",
                "numeric",
                "TEXT",
                "carrying value of the position in USD (exact decimal)",
                "round(t.carrying_cents::numeric / 100, 2)",
                _sqlite_decimal("t.carrying_cents")
                .replace(f"{_CCY}.exponent", "2")
                .replace(f"{_CCY}.minor_per_major", "100"),
            ),
            integer("carrying_usd_minor", "`carrying_usd` in US cents", "t.carrying_cents"),
            integer("untracked", "conversions between two foreign currencies, carried without a USD value"),
        ),
        _with_currency("fx_positions"),
        "SELECT currency, position, carrying_usd FROM analyst_fx_positions WHERE position_minor <> 0",
    ),
    View(
        "analyst_aml_alerts",
        "AML alerts the per-seller windows raised, with their evidence.",
        "one alert",
        ("alert_id",),
        (
            text("alert_id", "the alert"),
            text("seller_id", "the seller"),
            text("site", "the marketplace site"),
            text("typology", "the AML typology detected"),
            text("severity", "`low`, `medium` or `high`"),
            moment_us("raised_at", "when it was raised, UTC", "t.raised_at_us"),
            text("summary", "one line in words"),
            json("evidence", "event ids and amounts that raised it (JSON)"),
            integer("position", "log position of the event that raised it"),
        ),
        "FROM aml_alerts t",
        "SELECT typology, severity, COUNT(*) AS alerts FROM analyst_aml_alerts GROUP BY typology, severity",
    ),
    View(
        "analyst_aml_cases",
        "AML cases opened from alerts, their state and outcome.",
        "one case",
        ("case_id",),
        (
            text("case_id", "the case"),
            text("seller_id", "the seller"),
            text("status", "`open`, `escalated`, `cleared` or `confirmed`"),
            text("alert_ids", "the alerts the case was opened for, comma-separated"),
            moment_text("opened_at", "when it was opened, UTC"),
            text("assignee", "who works it (null: unassigned)", empty_is_null=True),
            text("report", "the report reference once confirmed (null before)", empty_is_null=True),
        ),
        "FROM aml_cases t",
        "SELECT status, COUNT(*) AS cases FROM analyst_aml_cases GROUP BY status",
    ),
    View(
        "analyst_aml_case_log",
        "Every action on every AML case, in order.",
        "one action on one case",
        ("case_id", "position"),
        (
            text("case_id", "the case"),
            integer("position", "log position of the action's event (orders a case's actions)"),
            text("action", "`open`, `assign`, `note`, `escalate`, `clear` or `confirm`"),
            text("by_whom", "who acted"),
            text("text", "what they wrote"),
            moment_text("at", "when, UTC"),
        ),
        "FROM aml_case_log t",
        "SELECT c.case_id, l.at, l.action, l.by_whom FROM analyst_aml_cases c\n"
        "JOIN analyst_aml_case_log l ON l.case_id = c.case_id WHERE c.status = 'escalated' ORDER BY l.position",
    ),
    View(
        "analyst_recon_lines",
        "Every line imported from processor reports and bank statements, normalised: amounts positive, "
        "`direction` says which way from the platform's side.",
        "one line of one imported file",
        ("reference", "file_sha256", "line_no"),
        (
            text("reference", "the payment, refund, chargeback or payout id the line refers to"),
            text("file_sha256", "SHA-256 of the imported file"),
            integer("line_no", "line in the file, from 1"),
            text("file_name", "the file's name"),
            text("source", "who sent it, e.g. `cielo` or `bank-main`"),
            text("source_kind", "`processor` or `bank`"),
            text("record_type", "the kind of record (capture, refund, fee, payout …)"),
            text("batch_id", "the processor's payout batch (null when not said)"),
            text("direction", "`credit` (owed or paid to the platform) or `debit`"),
            _CURRENCY,
            *amount("gross", "gross amount (null when the file does not say)"),
            *amount("fee", "fee deducted (null when the file does not say)"),
            *amount("net", "net amount"),
            day("booked_on", "the line's own date"),
            day("value_date", "when the money is available or was credited (null when not said)"),
            decimal("exchange_rate", "rate the processor converted at (null when it did not convert)"),
            text("event_id", "id of the `recon.line_imported` event"),
        ),
        _with_currency("recon_lines"),
        "SELECT source, booked_on, currency, SUM(net_minor) AS net_minor FROM analyst_recon_lines\n"
        "WHERE direction = 'credit' GROUP BY source, booked_on, currency ORDER BY booked_on",
    ),
    View(
        "analyst_recon_settlements",
        "Processor settlements (payout batches) received in the bank, as recorded.",
        "one settlement of one processor",
        ("psp", "settlement_id"),
        (
            text("psp", "the processor"),
            text("settlement_id", "the processor's payout batch id"),
            _CURRENCY,
            *amount("net", "what reached the bank"),
            *amount("fee", "processor fees deducted from the batch"),
            day("value_date", "value date of the credit"),
            integer("items", "ledger items (captures, refunds, chargebacks) the batch nets"),
            text("event_id", "id of the `recon.settlement_received` event"),
        ),
        _with_currency("recon_settlements"),
        "SELECT psp, currency, SUM(fee) AS fees FROM analyst_recon_settlements GROUP BY psp, currency",
    ),
    View(
        "analyst_recon_exceptions",
        "Differences reconciliation found between the ledger and the outside, and how each was closed.",
        "one exception",
        ("exception_id",),
        (
            text("exception_id", "the exception"),
            integer("level", "the matching level that found it (1, 2 or 3)"),
            text("category", "e.g. `missing_in_ledger`, `amount_mismatch`, `fx_rounding`"),
            text("reference", "the reference it is about"),
            text("source", "the outside source (null for ledger-only findings)"),
            text("currency", "ISO 4217 code of the amounts (null when it has none)"),
            *amount("ledger_amount", "what the ledger says (null when absent)", "t.ledger_minor"),
            *amount("external_amount", "what the outside says (null when absent)", "t.external_minor"),
            *amount("difference", "external less ledger (null when not an amount difference)", "t.difference_minor"),
            day("item_date", "date of the item"),
            day("found_on", "date of the run that found it"),
            text("detail", "what is wrong, in words"),
            json("evidence", "event ids and file lines behind it (JSON)"),
            text("status", "`open`, `cleared`, `adjusted`, `written_off` …"),
            day("closed_on", "date it was closed (null: open)"),
            text("decided_by", "who resolved it (null: not resolved by hand)"),
            text("approved_by", "who approved a write-off (null otherwise)"),
            text("adjustment_id", "the adjustment that booked the fix (null otherwise)"),
            text("note", "resolution note"),
            text("raised_event_id", "id of the `recon.exception_raised` event"),
            text("closed_event_id", "id of the event that closed it (null: open)"),
        ),
        _with_currency("recon_exceptions"),
        "SELECT category, currency, COUNT(*) AS open, SUM(difference_minor) AS difference_minor\n"
        "FROM analyst_recon_exceptions WHERE status = 'open' GROUP BY category, currency",
    ),
    View(
        "analyst_config_versions",
        "Every published version of every rule file (rates, taxes, calendars …) with the date it takes effect.",
        "one version of one rule file",
        ("name", "version"),
        (
            text("name", "the rule file, e.g. `consumption_taxes`"),
            text("version", "its version"),
            day("effective_from", "date from which it applies"),
            text("sha256", "SHA-256 of the file published"),
            text("published_by", "who published it"),
            moment_text("published_at", "when, UTC"),
            integer("position", "log position of the `config.published` event"),
        ),
        "FROM config_versions t",
        "SELECT name, version, effective_from FROM analyst_config_versions ORDER BY name, effective_from",
    ),
    View(
        "analyst_logistics_compensations",
        "Compensations granted to buyers for late deliveries, with the delay that caused them.",
        "one compensated order",
        ("order_id",),
        (
            text("order_id", "the late order", "c.order_id"),
            text("compensation_id", "the compensation", "c.compensation_id"),
            text("buyer_id", "the buyer compensated", "c.buyer_id"),
            text("currency", "ISO 4217 code of `amount`", "c.currency"),
            *amount("amount", "store credit granted", "c.amount_minor"),
            text("funded_by", "who pays for it, e.g. the platform or the carrier", "c.funded_by"),
            moment_text("granted_at", "when it was granted, UTC", "c.granted_at"),
            integer(
                "days_late",
                "days the delivery was late (null when the delay is not in the log)",
                "d.days_late",
                pg_type="integer",
            ),
            text("carrier", "the carrier (null when the delay is not in the log)", "d.carrier"),
        ),
        "FROM logistics_compensations c LEFT JOIN logistics_delays d ON d.order_id = c.order_id "
        f"LEFT JOIN analyst_currencies {_CCY} ON {_CCY}.currency = c.currency",
        "SELECT carrier, currency, COUNT(*) AS orders, SUM(amount) AS compensated\n"
        "FROM analyst_logistics_compensations GROUP BY carrier, currency",
    ),
)


def view(name: str) -> View:
    """The documented view called ``name``."""
    for v in VIEWS:
        if v.name == name:
            return v
    raise KeyError(name)


# --- the migration ---------------------------------------------------------------------------


def currency_exponents() -> list[tuple[str, int]]:
    """Every currency ``ledger.money`` accepts, with its exponent, by code."""
    from moneyed import CURRENCIES as KNOWN

    found = []
    for code in sorted(KNOWN):
        try:
            found.append((code, exponent(code)))
        except MoneyError:
            continue  # metals, SDR, test codes: not money to the ledger
    return found


def create_view_sql(v: View, dialect: Dialect) -> str:
    """The statements that create one view (without the final semicolon)."""
    if v is CURRENCIES:
        # A small keyed table, not a view over VALUES: SQLite would scan the list once per row it joins.
        rows = ",\n    ".join(f"('{code}', {exp}, {10**exp})" for code, exp in currency_exponents())
        return (
            f"CREATE TABLE {v.name} (\n    currency TEXT PRIMARY KEY,\n    exponent INTEGER NOT NULL,\n"
            f"    minor_per_major INTEGER NOT NULL\n);\n"
            f"INSERT INTO {v.name} (currency, exponent, minor_per_major) VALUES\n    {rows}"
        )
    columns = ",\n    ".join(f"{c.pg if dialect == 'postgresql' else c.sqlite} AS {c.name}" for c in v.columns)
    return f"CREATE VIEW {v.name} AS\nSELECT\n    {columns}\n{v.from_clause(dialect)}"


def migration_sql(dialect: Dialect) -> str:
    """The text of ``migrations/<dialect>/0012_analyst_views.sql``, as generated."""
    head = (
        "-- The analyst views (ADR 0020, docs/analyst-views.md): stable, documented, read-only names over the\n"
        "-- projections. Generated by adapters/analyst.py. Columns are only ever added, by a new migration.\n"
        "-- Amounts in major units come from analyst_currencies (the ISO 4217 exponents of ledger/money.py).\n"
    )
    statements = [create_view_sql(v, dialect) for v in VIEWS]
    for s in statements[1:]:
        if ";" in s:  # the SQLite runner splits migrations on semicolons
            raise ValueError(f"a semicolon inside a view: {s[:60]}")
    return head + "".join(s + ";\n" for s in statements)


# --- the documentation -----------------------------------------------------------------------

_DOC_HEAD: Final = """\
# Analyst views

Read-only SQL for analysts: documented, stable views named `analyst_*` over the projections, the same names and
columns on PostgreSQL and on SQLite. Query these, not the projection tables: the tables are Quipu's own and change
shape between releases; these views only ever gain columns (ADR [0020](adr/0020-analyst-views.md)). A breaking
change gets a new view name and the old view stays.

This page is generated from `adapters/analyst.py` (`python -m adapters.analyst doc > docs/analyst-views.md`); a
test keeps it, the migration `0012_analyst_views` and both databases in agreement.

## Access

**PostgreSQL.** The views live in the ledger's schema (`?schema=` of the database URL, `quipu` by default).
`quipu db analyst-role` creates a role that may read the `analyst_*` views and nothing else there: it gets `USAGE`
on the schema and `SELECT` on each view (and on the small `analyst_currencies` table), and any other privilege it
held on the schema's tables is revoked. The views read the projection tables with their owner's rights (the
migrating user), so the role never needs, and never has, access to the base tables, the event log or `api_clients`
(client secret hashes: no view exposes them).

```
quipu db analyst-role                                   # NOLOGIN role quipu_analyst: GRANT quipu_analyst TO alice
ANALYST_PW=… quipu db analyst-role --name bi_reader --password-env ANALYST_PW   # a LOGIN role with that password
```

Running it again is harmless; run it again after an upgrade that adds views, so the role can read them. The
password is hashed on the client (SCRAM) before it is sent and is never printed. Connect with the ledger's schema on
the search path, e.g. `psql "host=… dbname=… user=bi_reader options='-c search_path=quipu'"`.

**SQLite.** SQLite has no roles: whoever can read the file can read every table in it, `api_clients` included, so
share the file only with people who may see all of it. The views are in the file; open it read-only:
`sqlite3 'file:quipu-data/quipu.db?mode=ro'` (or `sqlite3 -readonly quipu-data/quipu.db`; in Python
`sqlite3.connect('file:quipu-data/quipu.db?mode=ro', uri=True)`).

## Conventions

- **Amounts** come in pairs: `amount` in major units of the row's `currency`, exact (PostgreSQL `numeric` rounded to
  the currency's ISO 4217 exponent; SQLite exact decimal text such as `'1234.50'`, `'-0.05'`, `'1500'` for CLP),
  and `amount_minor`, the same figure in integer minor units. On SQLite, sum, compare and filter the `*_minor`
  columns (text compares as text there), then divide by `analyst_currencies.minor_per_major`.
- **Moments** are UTC: PostgreSQL `timestamptz` (shown in the session's `TimeZone`; `SET TIME ZONE 'UTC'`), SQLite ISO
  8601 text `YYYY-MM-DDTHH:MM:SS.ffffffZ`, which sorts and compares as time and which SQLite's date functions read.
  Compare with a full UTC moment such as `'2026-10-01T00:00:00Z'`, which means the same on both.
  Moments the projections keep as text with an offset (case times, reversals, publications) keep millisecond
  precision on SQLite.
- **Dates** are PostgreSQL `date`, SQLite text `YYYY-MM-DD`. Comparing with `'2026-10-31'` works on both.
- **JSON** is PostgreSQL `jsonb`, SQLite text (use `json_extract`).
- **Flags** are PostgreSQL `boolean`, SQLite `0`/`1`.
- Rates are PostgreSQL `numeric`, SQLite decimal text.
- Where a projection keeps empty text for "unknown" or "not yet" (sites, dates, assignees), the view says null.
- The views show what the projections hold: run `quipu project` (or let the services run) for up-to-date figures.
- Keys are unique; the views have no order: say `ORDER BY`.
"""


def render_doc() -> str:
    """The text of ``docs/analyst-views.md``."""
    out = [_DOC_HEAD, "\n## The views\n\n| view | one row is | key |\n|---|---|---|\n"]
    for v in VIEWS:
        out.append(f"| [`{v.name}`](#{v.name}) | {v.grain} | {', '.join(f'`{k}`' for k in v.key)} |\n")
    for v in VIEWS:
        out.append(f"\n### {v.name}\n\n{v.about}\n\n")
        out.append(f"One row is {v.grain}; key: {', '.join(f'`{k}`' for k in v.key)}.\n\n")
        out.append("| column | PostgreSQL | SQLite | meaning |\n|---|---|---|---|\n")
        for c in v.columns:
            out.append(f"| `{c.name}` | {c.pg_type} | {c.sqlite_type} | {c.meaning} |\n")
        out.append(f"\n```sql\n{v.example}\n```\n")
    return "".join(out)


_DOC_SECTION = re.compile(r"^### (analyst_\w+)$", re.MULTILINE)
_DOC_ROW = re.compile(r"^\| `(\w+)` \| ([^|]+) \| (\w+) \|", re.MULTILINE)


def parse_doc(text_: str) -> dict[str, list[tuple[str, str, str]]]:
    """Each documented view's columns as ``(name, PostgreSQL type, SQLite type)``, from the doc's tables."""
    found: dict[str, list[tuple[str, str, str]]] = {}
    parts = _DOC_SECTION.split(text_)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        found[name] = [(m[1], m[2].strip(), m[3]) for m in _DOC_ROW.finditer(body)]
    return found


# --- the PostgreSQL role ---------------------------------------------------------------------

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class AnalystRoleError(QuipuError):
    """The analyst role cannot be made as asked (a bad name, a superuser, missing privileges)."""


@dataclass(frozen=True, slots=True)
class RoleReport:
    """What ``quipu db analyst-role`` did."""

    name: str
    created: bool
    login: bool
    password_set: bool
    views: tuple[str, ...]


def grant_analyst_role(target: PgTarget, name: str, password: str | None) -> RoleReport:
    """Create (or update) ``name`` so it may read the ``analyst_*`` views of the target schema only.

    Idempotent. Without ``password`` a new role is NOLOGIN (grant it to people's own login roles)
    and an existing role keeps its login and password; with one it is LOGIN with that password,
    hashed here (SCRAM) so the server never sees or logs the text.
    """
    if not _ROLE_NAME.fullmatch(name):
        raise AnalystRoleError(f"--name: {name!r} must be lower-case letters, digits and underscores")
    try:
        with psycopg.connect(target.conninfo) as conn, conn.transaction():
            return _grant(conn, target, name, password)
    except psycopg.errors.InsufficientPrivilege as exc:
        first = str(exc).strip().splitlines()[0]
        raise AnalystRoleError(
            f"{target.user} may not manage roles or grants here ({first}); run as a user with CREATEROLE "
            "that owns the ledger's schema"
        ) from None


def _grant(conn: psycopg.Connection[Any], target: PgTarget, name: str, password: str | None) -> RoleReport:
    # One analyst-role run at a time per cluster: CREATE ROLE is not idempotent by itself.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('quipu analyst role'))")
    if name == target.user:
        raise AnalystRoleError(f"--name: {name} is the user that owns the ledger; choose another role name")
    row = conn.execute("SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    if row is not None and row[0]:
        raise AnalystRoleError(f"--name: {name} is a superuser and would read everything; choose another role name")
    role = Identifier(name)
    verifier = None
    if password is not None:
        verifier = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256").decode()
    created = row is None
    if created:
        if verifier is None:
            conn.execute(SQL("CREATE ROLE {} NOLOGIN").format(role))
        else:
            conn.execute(SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, SqlLiteral(verifier)))
    elif verifier is not None:
        conn.execute(SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(role, SqlLiteral(verifier)))
    login = verifier is not None or bool(row and row[1])
    views = tuple(
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('v', 'r') AND c.relname LIKE 'analyst\\_%%' ORDER BY c.relname",
            (target.schema,),
        ).fetchall()
    )
    if not views:
        raise AnalystRoleError(f"schema {target.schema} has no analyst views; run `quipu db upgrade` first")
    schema = Identifier(target.schema)
    conn.execute(SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
    # Exactly the views: whatever else the role was granted on the schema's tables goes.
    conn.execute(SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema, role))
    conn.execute(SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(schema, role))
    conn.execute(
        SQL("GRANT SELECT ON {} TO {}").format(SQL(", ").join(Identifier(target.schema, v) for v in views), role)
    )
    return RoleReport(name, created, login, verifier is not None, views)


def connection_hint(target: PgTarget, report: RoleReport) -> str:
    """How to connect as (or through) the role, without any password."""
    libpq = (
        f"host={target.host} port={target.port} dbname={target.dbname} user={report.name} "
        f"options='-c search_path={target.schema}'"
    )
    if report.login:
        return f'psql "{libpq}"'
    return (
        f"{report.name} cannot log in: GRANT {report.name} TO <an analyst's login role>; its members read the "
        f"views when they connect with options='-c search_path={target.schema}'"
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m adapters.analyst doc|sqlite|postgresql``: print the doc or a dialect's migration."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    what = args[0] if args else ""
    if what == "doc":
        sys.stdout.write(render_doc())
    elif what in ("sqlite", "postgresql"):
        sys.stdout.write(migration_sql("sqlite" if what == "sqlite" else "postgresql"))
    else:
        sys.stderr.write("usage: python -m adapters.analyst doc|sqlite|postgresql\n")
        raise SystemExit(2)


if __name__ == "__main__":
    main()
