"""Tax, duty and FX quotes: worked examples checked by hand in the comments, and bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import config_files


def quipu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from adapters.cli import main; main()", *args],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "COLUMNS": "200"},
        cwd=tempfile.gettempdir(),
    )  # fmt: skip


def amounts(run: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert run.returncode == 0, run.stderr
    return {row["component"]: row["amount"] for row in json.loads(run.stdout)}


def test_the_rule_files_are_valid_and_cover_every_site() -> None:
    regions = config_files.regions()
    assert len(regions.region_config) == 18
    sites_with_tax = {r.site for r in config_files.consumption_taxes().rule}
    assert sites_with_tax == set(regions.region_config)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # MX: 1000.00 × 16% = 160.00.
        (["--site", "MX", "--net", "1000.00"], {"IVA": "160.00", "total tax": "160.00", "total": "1160.00"}),
        # MX border region: 1000.00 × 8% = 80.00.
        (["--site", "MX", "--state", "BORDER", "--net", "1000.00"], {"IVA": "80.00", "total": "1080.00"}),
        # BR/RJ: ICMS 20% = 200.00 and FECP 2% = 20.00, each on its own.
        (
            ["--site", "BR", "--state", "RJ", "--net", "1000.00"],
            {"ICMS": "200.00", "FECP": "20.00", "total": "1220.00"},
        ),
        # BR/BA: 99.99 × 20.5% = 20.49795 → 20.50.
        (["--site", "BR", "--state", "BA", "--net", "99.99"], {"ICMS": "20.50", "total": "120.49"}),
        # CL has no decimals: 10001 × 19% = 1900.19 → 1900.
        (["--site", "CL", "--net", "10001"], {"IVA": "1900", "total": "11901"}),
        # Half-even tie: 0.50 × 21% = 0.105 → 0.10 (the even cent), not 0.11.
        (["--site", "AR", "--net", "0.50"], {"IVA": "0.10"}),
        # Half-even tie the other way: 1.50 × 21% = 0.315 → 0.32.
        (["--site", "AR", "--net", "1.50"], {"IVA": "0.32"}),
        # PE: IGV 16% and IPM 2% rounded separately: 0.25 × 16% = 0.04, 0.25 × 2% = 0.005 → 0.00.
        (["--site", "PE", "--net", "0.25"], {"IGV": "0.04", "IPM": "0.00", "total tax": "0.04"}),
        # PY has no decimals: 12345 × 10% = 1234.5 → 1234 (half-even).
        (["--site", "PY", "--net", "12345"], {"IVA": "1234"}),
    ],
)
def test_consumption_tax_worked_examples(args: list[str], expected: dict[str, str]) -> None:
    got = amounts(quipu("tax", "quote", *args, "--date", "2026-11-25", "--format", "json"))
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("site", "origin", "value", "date", "expected"),
    [
        # BR from 1 Aug 2024, ≤ 50: II 20% = 10.00; ICMS (50 + 10)/(1 − 0.17) × 0.17 = 12.2892 → 12.29.
        ("BR", "CN", "50.00", "2026-11-25", {"II": "10.00", "ICMS": "12.29", "total": "72.29"}),
        # Just above the band: II 50.01 × 60% = 30.006 → 30.01, − 20.00 = 10.01;
        # ICMS 60.02 × 0.17 / 0.83 = 12.2932 → 12.29; total 50.01 + 10.01 + 12.29 = 72.31.
        ("BR", "CN", "50.01", "2026-11-25", {"II": "10.01", "ICMS": "12.29", "total": "72.31"}),
        # 100.00: II 60.00 − 20.00 = 40.00; ICMS 140 × 0.17 / 0.83 = 28.6747 → 28.67.
        ("BR", "CN", "100.00", "2026-11-25", {"II": "40.00", "ICMS": "28.67", "total": "168.67"}),
        # Before 1 Aug 2024 (certified platforms from 1 Aug 2023): 0% up to 50; ICMS 50/0.83 × 0.17 = 10.2410 → 10.24.
        ("BR", "CN", "50.00", "2024-07-31", {"II": "0.00", "ICMS": "10.24", "total": "60.24"}),
        # ... and a flat 60% above 50 with no deduction: 100 → 60.00; ICMS 160 × 0.17/0.83 = 32.7711 → 32.77.
        ("BR", "CN", "100.00", "2024-07-31", {"II": "60.00", "ICMS": "32.77", "total": "192.77"}),
        # MX from China after 15 Aug 2025: 33.5% × 200.00 = 67.00.
        ("MX", "CN", "200.00", "2025-08-15", {"Global rate": "67.00", "total": "267.00"}),
        # ... the day before: 19% × 200.00 = 38.00.
        ("MX", "CN", "200.00", "2025-08-14", {"Global rate": "38.00"}),
        # MX from the US: under 50 exempt; 50.00 pays 17% = 8.50; 117.00 still 17% = 19.89; 117.01 pays 19% = 22.23.
        ("MX", "US", "49.99", "2026-11-25", {"Global rate": "0.00"}),
        ("MX", "US", "50.00", "2026-11-25", {"Global rate": "8.50"}),
        ("MX", "US", "117.00", "2026-11-25", {"Global rate": "19.89"}),
        ("MX", "US", "117.01", "2026-11-25", {"Global rate": "22.23"}),
        # CL from 25 Oct 2025: 19% IVA up to 500: 500.00 → 95.00.
        ("CL", "CN", "500.00", "2025-10-25", {"IVA": "95.00", "total": "595.00"}),
        # ... above 500: tariff 6% = 30.06; IVA 19% × (501.00 + 30.06) = 100.9014 → 100.90.
        ("CL", "CN", "501.00", "2026-11-25", {"Tariff": "30.06", "IVA": "100.90", "total": "631.96"}),
        # ... before the law: up to USD 41 exempt.
        ("CL", "CN", "41.00", "2025-10-24", {"Exempt": "0.00", "total": "41.00"}),
        # AR: up to 400 only IVA 21%: 400.00 → 84.00; 500.00 → 50% of the 100 excess = 50.00 and IVA 105.00.
        ("AR", "CN", "400.00", "2026-11-25", {"IVA": "84.00", "total": "484.00"}),
        ("AR", "CN", "500.00", "2026-11-25", {"Duty on excess": "50.00", "IVA": "105.00", "total": "655.00"}),
    ],
)
def test_import_duty_worked_examples(site: str, origin: str, value: str, date: str, expected: dict[str, str]) -> None:
    run = quipu("tax", "quote", "--import", "--site", site, "--value-usd", value, "--origin", origin,
                "--date", date, "--format", "json")  # fmt: skip
    got = amounts(run)
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "XX", "--net", "1.00"], "--site: unknown site 'XX'"),
        (["--site", "BR", "--state", "ZZ", "--net", "1.00"], "--state: site BR has no rule for state 'ZZ'"),
        (["--site", "CL", "--net", "10.5"], "--net: 10.5 has too many decimals for CLP"),
        (["--site", "MX", "--net", "-1.00"], "--net: -1.00 must be zero or more"),
        (["--site", "MX", "--net", "1e3"], "--net: '1e3' is not a plain decimal string"),
        (["--site", "MX", "--net", "1.00", "--date", "yesterday"], "--date: 'yesterday' is not a date"),
        (["--import", "--site", "BR", "--value-usd", "3000.01", "--origin", "CN"], "above the 3000.00 USD limit"),
        (["--import", "--site", "BR", "--value-usd", "50.00", "--origin", "CN", "--date", "2023-07-31"],
         "--date: no import regime for BR from CN on 2023-07-31"),
        (["--import", "--site", "PY", "--value-usd", "5.00", "--origin", "CN"], "no import regime for site 'PY'"),
        (["--import", "--site", "BR", "--value-usd", "5.001", "--origin", "CN"], "more than 2 decimals"),
        (["--import", "--site", "BR", "--value-usd", "5.00", "--origin", "China"], "--origin: 'China' is not"),
    ],
)  # fmt: skip
def test_bad_tax_quotes_name_the_option(args: list[str], message: str) -> None:
    run = quipu("tax", "quote", *args)
    assert run.returncode == 2
    assert message in run.stderr


def test_fx_quote_follows_the_convention() -> None:
    # final = 0.1834 × 0.98 = 0.179732; target = 1000.00 × 0.179732 = 179.732 → 179.73;
    # revenue = 1000.00 × 0.1834 = 183.40 − 179.73 = 3.67.
    run = quipu("fx", "quote", "--from", "BRL", "--to", "USD", "--amount", "1000.00", "--rate", "0.1834",
                "--markup", "0.02", "--at", "2026-11-25T12:00:00Z", "--format", "json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    (row,) = json.loads(run.stdout)
    assert row["final_rate"] == "0.179732"
    assert (row["target_amount"], row["revenue"], row["currency"]) == ("179.73", "3.67", "USD")
    assert row["expires_at"] == "2026-11-25T12:05:00+00:00"


def test_fx_quote_takes_its_default_markup_from_the_config() -> None:
    # config/fx.toml: default_markup = "0.02" → the same figures as an explicit --markup 0.02.
    run = quipu("fx", "quote", "--from", "BRL", "--to", "USD", "--amount", "1000.00", "--rate", "0.1834",
                "--at", "2026-11-25T12:00:00Z", "--format", "json")  # fmt: skip
    (row,) = json.loads(run.stdout)
    assert (row["markup"], row["target_amount"], row["revenue"]) == ("0.02", "179.73", "3.67")


def test_fx_into_a_zero_exponent_currency_has_no_decimals() -> None:
    # 100.00 USD × 950.5 = 95050 CLP; final 950.5 × 0.99 = 940.995 → 94099.5 → 94100 (half-even: 94099.5 → 94100).
    run = quipu("fx", "quote", "--from", "USD", "--to", "CLP", "--amount", "100.00", "--rate", "950.5",
                "--markup", "0.01", "--at", "2026-11-25T12:00:00Z", "--format", "json")  # fmt: skip
    (row,) = json.loads(run.stdout)
    assert (row["target_amount"], row["revenue"]) == ("94100", "950")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "BRL", "--to", "XYZ", "--amount", "1.00", "--rate", "1"], "--to: currency: unknown currency 'XYZ'"),
        (["--from", "BRL", "--to", "BRL", "--amount", "1.00", "--rate", "1"], "into itself"),
        (["--from", "BRL", "--to", "USD", "--amount", "1.00", "--rate", "-0.18"], "--rate: '-0.18' is not a positive"),
        (["--from", "BRL", "--to", "USD", "--amount", "1.00", "--rate", "0.18", "--markup", "1.5"], "--markup"),
        (["--from", "BRL", "--to", "USD", "--amount", "1.00", "--rate", "0.18", "--markup", "abc"], "--markup: 'abc'"),
        (["--from", "BRL", "--to", "USD", "--amount", "1.001", "--rate", "0.18"], "--amount: 1.001 has too many"),
        (["--from", "BRL", "--to", "USD", "--amount", "1.00"], "--rate: no BRL/USD rate recorded"),
    ],
)
def test_bad_fx_quotes_name_the_option(args: list[str], message: str, tmp_path: Path) -> None:
    assert quipu("db", "upgrade", "--database", f"sqlite:///{tmp_path}/l.db").returncode == 0  # a ledger with no rates
    run = quipu("fx", "quote", *args, "--database", f"sqlite:///{tmp_path}/l.db")
    assert run.returncode == 2
    assert message in run.stderr


@given(
    st.integers(min_value=1, max_value=10**10),
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("5000"), places=4),
    st.decimals(min_value=Decimal(0), max_value=Decimal("0.1"), places=3),
    st.sampled_from([("BRL", "USD"), ("USD", "CLP"), ("USD", "PYG"), ("MXN", "BRL")]),
)
def test_conversion_conserves_value_within_a_minor_unit(
    minor: int, rate: Decimal, markup: Decimal, pair: tuple[str, str]
) -> None:
    import datetime as dt

    from domain.fx import quote
    from ledger.money import exponent, format_amount

    source, target = pair
    amount = format_amount(minor, source)
    q = quote(source, target, amount, rate, "test", markup, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.timedelta(0))
    exact = Decimal(amount) * rate
    unit = Decimal(1).scaleb(-exponent(target))
    # Target plus revenue is the value at the reference rate, rounded once: never off by more than half a unit.
    assert abs(q.target_amount + q.revenue - exact) <= unit / 2
    assert q.target_amount == q.target_amount.quantize(unit) and q.revenue == q.revenue.quantize(unit)
    assert q.revenue >= 0
