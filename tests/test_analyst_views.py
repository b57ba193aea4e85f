"""The analyst views (ADR 0020): documented, the same on both databases, agreeing with the
projections, and on PostgreSQL readable by the analyst role while nothing else is."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.sql import SQL, Identifier
from typer.testing import CliRunner

import adapters.cli_analyst  # noqa: F401  (registers `quipu db analyst-role`)
from adapters.analyst import VIEWS, Column, _pg_decimal, _sqlite_decimal, moment_text, parse_doc, render_doc
from adapters.bootstrap import Ledger, open_ledger
from adapters.cli import app
from adapters.demo import SITES, generate
from adapters.reports import balance_rows, trial_balance_rows
from adapters.store.pg_url import parse_pg_url
from ledger.money import exponent, format_amount, from_minor_units
from tests.conftest import PG_URL, drop_schema, pg_url_for_new_schema

DOC = Path(__file__).resolve().parents[1] / "docs" / "analyst-views.md"
#: Each analyst view over one base table keeps that table's rows one for one.
BASE_TABLE = {
    "analyst_journal": "journal_postings",
    "analyst_balances": "account_balances",
    "analyst_trial_balance": "trial_balance",
    "analyst_seller_flows": "seller_flows",
    "analyst_settlement_schedule": "settlement_schedule",
    "analyst_settlement_batches": "settlement_batches",
    "analyst_settlement_holds": "settlement_holds",
    "analyst_tax_summary": "tax_summary",
    "analyst_tax_assessments": "tax_assessments",
    "analyst_fx_rates": "fx_rates",
    "analyst_fx_positions": "fx_positions",
    "analyst_aml_alerts": "aml_alerts",
    "analyst_aml_cases": "aml_cases",
    "analyst_aml_case_log": "aml_case_log",
    "analyst_recon_lines": "recon_lines",
    "analyst_recon_settlements": "recon_settlements",
    "analyst_recon_exceptions": "recon_exceptions",
    "analyst_config_versions": "config_versions",
    "analyst_logistics_compensations": "logistics_compensations",
}
runner = CliRunner()


def seed(ledger: Ledger) -> None:
    events = generate(seed=5, events=1200, settle=True)
    for i in range(0, len(events), 1000):
        ledger.service.post(events[i : i + 1000])
    ledger.runner.run()


@pytest.fixture
def seeded(ledger: Ledger) -> Ledger:
    seed(ledger)
    return ledger


def database_columns(ledger: Ledger, name: str) -> list[tuple[str, str]]:
    """A view's columns in order, with PostgreSQL's type name (empty on SQLite)."""
    if ledger.dialect == "sqlite":
        return [(r[1], "") for r in ledger.views.query(f"PRAGMA table_info({name})")]
    return [
        (r[0], r[1])
        for r in ledger.views.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (name,),
        )
    ]


def test_the_doc_is_generated_from_the_one_list_of_views() -> None:
    assert DOC.read_text() == render_doc(), "regenerate: python -m adapters.analyst doc > docs/analyst-views.md"
    documented = parse_doc(DOC.read_text())
    assert list(documented) == [v.name for v in VIEWS]
    for v in VIEWS:
        assert documented[v.name] == [(c.name, c.pg_type, c.sqlite_type) for c in v.columns]
        assert set(v.key) <= {c.name for c in v.columns}


def test_every_documented_view_exists_with_exactly_the_documented_columns(ledger: Ledger) -> None:
    documented = parse_doc(DOC.read_text())
    if ledger.dialect == "sqlite":
        found = {r[0] for r in ledger.views.query("SELECT name FROM sqlite_master WHERE type IN ('view', 'table')")}
    else:
        found = {
            r[0]
            for r in ledger.views.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
        }
    assert {n for n in found if n.startswith("analyst_")} == set(documented)
    for name, columns in documented.items():
        got = database_columns(ledger, name)
        assert [c for c, _ in got] == [c for c, _, _ in columns], name
        if ledger.dialect == "postgresql":
            assert [t for _, t in got] == [t for _, t, _ in columns], name


def test_no_view_reads_the_api_clients_table() -> None:
    for dialect in ("sqlite", "postgresql"):
        sql = (Path(__file__).resolve().parents[1] / "migrations" / dialect / "0012_analyst_views.sql").read_text()
        assert "api_clients" not in sql and "secret" not in sql


@pytest.mark.parametrize("exp", [0, 2, 3, 4])
def test_amounts_convert_to_exact_major_units(ledger: Ledger, exp: int) -> None:
    code = {0: "CLP", 2: "BRL", 3: "KWD", 4: "CLF"}[exp]
    values = [0, 1, -1, 5, -5, 99, 100, -100, 101, 12345, -12345, 10**15, -(10**15) + 7]
    rows = " UNION ALL ".join(f"SELECT {v} AS m" for v in values)
    cx = f"(SELECT {exp} AS exponent, {10**exp} AS minor_per_major)"
    expr = _sqlite_decimal("v.m") if ledger.dialect == "sqlite" else _pg_decimal("v.m")
    got = ledger.views.query(f"SELECT v.m, {expr} FROM ({rows}) v, {cx} cx ORDER BY v.m")
    for minor, major in got:
        assert str(major) == format_amount(minor, code)
        assert Decimal(major) == from_minor_units(minor, code)


def test_text_moments_become_utc(ledger: Ledger) -> None:
    column: Column = moment_text("at", "", "'2026-10-11T17:31:47.25-03:00'")
    expr = column.sqlite if ledger.dialect == "sqlite" else column.pg
    [(value,)] = ledger.views.query(f"SELECT {expr}")
    expected = dt.datetime(2026, 10, 11, 20, 31, 47, 250000, tzinfo=dt.UTC)
    if ledger.dialect == "sqlite":
        assert value == "2026-10-11T20:31:47.250000Z"
    else:
        assert value == expected


def test_currencies_carry_the_ledgers_exponents(ledger: Ledger) -> None:
    rows = ledger.views.query("SELECT currency, exponent, minor_per_major FROM analyst_currencies")
    assert {p.currency for p in SITES.values()} | {"USD", "EUR"} <= {r[0] for r in rows}
    for code, exp, unit in rows:
        assert exp == exponent(code) and unit == 10**exp


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def test_figures_agree_with_the_projections(seeded: Ledger) -> None:
    q = seeded.views.query
    for view, table in BASE_TABLE.items():
        assert q(f"SELECT COUNT(*) FROM {view}") == q(f"SELECT COUNT(*) FROM {table}"), view
    assert q("SELECT COUNT(*) FROM analyst_journal")[0][0] > 1000

    # Σ journal debits and credits per currency, in major units, equal the trial balance's.
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for ccy, debit, credit in q("SELECT currency, debit, credit FROM analyst_journal"):
        sums[ccy][0] += _dec(debit)
        sums[ccy][1] += _dec(credit)
    trial = {c: (d, k) for c, d, k in q("SELECT currency, debits_minor, credits_minor FROM trial_balance")}
    assert set(sums) == set(trial)
    for ccy, (d, k) in trial.items():
        assert sums[ccy] == [from_minor_units(d, ccy), from_minor_units(k, ccy)]

    tb = q("SELECT currency, debits, credits, net FROM analyst_trial_balance ORDER BY currency")
    assert [{"currency": c, "debits": str(d), "credits": str(k), "net": str(n)} for c, d, k, n in tb] == (
        trial_balance_rows(seeded)
    )

    # Balances are `quipu balances`, row for row, normal side included.
    balances = q(
        "SELECT account, currency, debits, credits, balance, normal_side, party, party_id, purpose, postings "
        "FROM analyst_balances ORDER BY account"
    )
    expected = balance_rows(seeded)
    assert [{"account": a, "currency": c, "debits": str(d), "credits": str(k), "balance": str(b), "normal_side": s}
            for a, c, d, k, b, s, *_ in balances] == expected  # fmt: skip
    for account, *_, party, party_id, purpose, _postings in balances:
        assert account.split(":")[:3] == [party, party_id, purpose]
    assert {r[0]: r[1] for r in q("SELECT account, postings FROM account_balances")} == {r[0]: r[-1] for r in balances}

    # Seller flows, batches and FX positions: the same sums, and the minor columns are the tables'.
    for view, table, keys in (
        ("analyst_seller_flows", "seller_flows", "seller_id, currency, day, kind"),
        ("analyst_settlement_batches", "settlement_batches", "site, currency, settles_on"),
    ):
        got = q(f"SELECT currency, amount, amount_minor FROM {view} ORDER BY {keys}")
        want = q(f"SELECT currency, amount_minor FROM {table} ORDER BY {keys}")
        assert [(c, m) for c, _, m in got] == want
        assert all(_dec(a) == from_minor_units(m, c) for c, a, m in got)
    positions = q("SELECT currency, position, carrying_usd, carrying_usd_minor FROM analyst_fx_positions")
    assert positions and all(
        _dec(p) == from_minor_units(m, c) and _dec(u) == Decimal(cents).scaleb(-2)
        for (c, p, u, cents), (m,) in zip(
            positions,
            [q("SELECT position_minor FROM fx_positions WHERE currency = ?", (r[0],))[0] for r in positions],
            strict=True,
        )
    )

    # Moments are the projections' microseconds, in UTC.
    [(occurred, recorded, us, rec_us)] = q(
        "SELECT a.occurred_at, a.recorded_at, e.occurred_at_us, e.recorded_at_us FROM analyst_journal a "
        "JOIN journal_entries e ON e.position = a.position WHERE a.position = (SELECT MAX(position) FROM "
        "journal_entries) AND a.line = 1"
    )
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    for value, micro in ((occurred, us), (recorded, rec_us)):
        moment = epoch + dt.timedelta(microseconds=micro)
        if seeded.dialect == "sqlite":
            assert value == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        else:
            assert value == moment

    # On SQLite every value has the storage class the doc promises.
    if seeded.dialect == "sqlite":
        kinds = {"TEXT": str, "INTEGER": int}
        for v in VIEWS:
            for row in q(f"SELECT * FROM {v.name} LIMIT 50"):
                for c, value in zip(v.columns, row, strict=True):
                    assert value is None or isinstance(value, kinds[c.sqlite_type]), (v.name, c.name, value)


# --- quipu db analyst-role -------------------------------------------------------------------


@pytest.fixture
def pg_ledger_url() -> Iterator[str]:
    url, schema = pg_url_for_new_schema()
    try:
        yield url
    finally:
        drop_schema(schema)


def _drop_role(role: str) -> None:
    with psycopg.connect(parse_pg_url(PG_URL).conninfo, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(SQL("DROP OWNED BY {}").format(Identifier(role)))
            conn.execute(SQL("DROP ROLE {}").format(Identifier(role)))


def test_the_analyst_role_reads_the_views_and_nothing_else(pg_ledger_url: str) -> None:
    role = f"t_analyst_{uuid.uuid4().hex[:10]}"
    target = parse_pg_url(pg_ledger_url)
    try:
        with open_ledger(pg_ledger_url) as ledger:
            seed(ledger)
        for _ in range(2):  # idempotent
            result = runner.invoke(app, ["db", "analyst-role", "--name", role, "--database", pg_ledger_url])
            assert result.exit_code == 0, result.output
        assert "NOLOGIN" in result.output and f"SELECT on {len(VIEWS)} analyst views" in result.output
        assert "postgres@" not in result.output and ":postgres" not in result.output  # no password printed

        with psycopg.connect(target.conninfo, options=f"-c search_path={target.schema}") as conn:
            conn.execute(SQL("SET ROLE {}").format(Identifier(role)))
            for v in VIEWS:
                conn.execute(f"SELECT * FROM {v.name} LIMIT 1").fetchall()
            assert conn.execute("SELECT COUNT(*) FROM analyst_journal").fetchone() == (
                conn.execute("SELECT SUM(postings) FROM analyst_balances").fetchone()
            )
            for refused in (
                "SELECT * FROM journal_postings",
                "SELECT * FROM api_clients",
                "SELECT * FROM quipu_events",
                "INSERT INTO analyst_aml_case_log (case_id) VALUES ('C-1')",
                "INSERT INTO trial_balance VALUES ('XYZ', 0, 0)",
                "DELETE FROM analyst_fx_rates",
                "CREATE VIEW analyst_mine AS SELECT 1",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(refused)
                conn.rollback()
                conn.execute(SQL("SET ROLE {}").format(Identifier(role)))

        # With a password the role logs in itself; the password is never printed.
        password = uuid.uuid4().hex
        result = runner.invoke(
            app,
            ["db", "analyst-role", "--name", role, "--password-env", "T_ANALYST_PW", "--database", pg_ledger_url],
            env={"T_ANALYST_PW": password},
        )
        assert result.exit_code == 0, result.output
        assert "LOGIN, password set" in result.output and password not in result.output
        analyst = target.with_schema(target.schema)
        conninfo = psycopg.conninfo.make_conninfo(analyst.conninfo, user=role, password=password)
        with psycopg.connect(conninfo, options=f"-c search_path={target.schema}") as conn:
            assert conn.execute("SELECT COUNT(*) FROM analyst_trial_balance").fetchone() != (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM account_balances")
    finally:
        _drop_role(role)


def test_analyst_role_refuses_what_would_not_be_read_only(pg_ledger_url: str) -> None:
    user = parse_pg_url(pg_ledger_url).user
    for name, says in ((user, "owns the ledger"), ("Bad-Name", "lower-case letters")):
        result = runner.invoke(app, ["db", "analyst-role", "--name", name, "--database", pg_ledger_url])
        assert result.exit_code == 2 and says in result.output, result.output
    result = runner.invoke(app, ["db", "analyst-role", "--password-env", "T_UNSET_VAR", "--database", pg_ledger_url])
    assert result.exit_code == 2 and "T_UNSET_VAR" in result.output


def test_on_sqlite_it_explains_and_the_file_opens_read_only(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with open_ledger(f"sqlite:///{path}") as ledger:
        seed(ledger)
    result = runner.invoke(app, ["db", "analyst-role", "--database", f"sqlite:///{path}"])
    assert result.exit_code == 0, result.output
    assert "no roles" in result.output and f"file:{path}?mode=ro" in result.output
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT COUNT(*) FROM analyst_trial_balance WHERE net_minor = 0").fetchone()[0] > 0
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM trial_balance")
    finally:
        conn.close()
