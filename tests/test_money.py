"""Money: exponents, wire parsing, allocation and locale formatting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import CurrencyMismatchError, MoneyError
from ledger.money import (
    MAX_MINOR,
    add,
    allocate,
    exponent,
    format_money,
    from_minor_units,
    money,
    parse_amount,
    quantize,
    to_minor_units,
)


@pytest.mark.parametrize(
    ("code", "exp"), [("BRL", 2), ("MXN", 2), ("CLP", 0), ("PYG", 0), ("COP", 2), ("KWD", 3), ("CLF", 4), ("USD", 2)]
)
def test_exponents_follow_iso_4217(code: str, exp: int) -> None:
    assert exponent(code) == exp


def test_zero_exponent_currencies_refuse_any_decimal_places() -> None:
    for value in ("1.5", "1.0", "1234.00"):
        with pytest.raises(MoneyError, match="no decimals"):
            parse_amount(value, "CLP")
    assert parse_amount("1234", "PYG") == Decimal("1234")


def test_fewer_decimals_are_normalised_to_the_exponent() -> None:
    assert str(parse_amount("10.5", "BRL")) == "10.50"
    assert str(parse_amount("7", "KWD")) == "7.000"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (12.5, "not a float"),
        (12, "not a int"),
        (Decimal("1.00"), "not a Decimal"),
        (True, "not a bool"),
        ("1.234", "too many decimals"),
        ("1e3", "plain decimal string"),
        (" 1.00", "plain decimal string"),
        ("01.00", "plain decimal string"),
        ("1,00", "plain decimal string"),
        ("", "plain decimal string"),
        (str(MAX_MINOR + 1), "largest accepted"),
    ],
)
def test_bad_wire_amounts_name_the_field_and_reason(value: object, reason: str) -> None:
    with pytest.raises(MoneyError, match=reason) as info:
        parse_amount(value, "BRL", field="payload.amount")
    assert info.value.field == "payload.amount"


@pytest.mark.parametrize("code", ["XYZ", "brl", "BR", "XAU", "XXX"])
def test_unknown_or_non_money_currencies_are_refused(code: str) -> None:
    with pytest.raises(MoneyError) as info:
        money("1", code)
    assert info.value.field == "currency"


def test_rounding_is_half_even_by_default() -> None:
    assert quantize(Decimal("0.125"), "BRL") == Decimal("0.12")
    assert quantize(Decimal("0.135"), "BRL") == Decimal("0.14")
    assert quantize(Decimal("2.5"), "CLP") == Decimal("2")
    assert quantize(Decimal("3.5"), "CLP") == Decimal("4")


@given(st.integers(min_value=-(10**12), max_value=10**12), st.sampled_from(["BRL", "CLP", "KWD"]))
def test_minor_units_round_trip(minor: int, code: str) -> None:
    assert to_minor_units(from_minor_units(minor, code), code) == minor


@given(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=1, max_value=48))
def test_allocation_into_n_parts_loses_no_minor_unit(total: int, n: int) -> None:
    parts = allocate(total, n)
    assert sum(parts) == total
    assert len(parts) == n
    assert max(parts) - min(parts) <= 1
    # The remainder goes to the first parts (installment convention).
    assert parts == sorted(parts, reverse=total >= 0)


@given(
    st.integers(min_value=0, max_value=10**12),
    st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=12).filter(lambda w: sum(w) > 0),
)
def test_weighted_allocation_loses_no_minor_unit(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == total
    for part, w in zip(parts, weights, strict=True):
        exact = Decimal(total) * w / sum(weights)
        assert abs(Decimal(part) - exact) < 1 + len(weights)


def test_allocation_refuses_no_parts() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        allocate(100, 0)


def test_adding_two_currencies_is_refused() -> None:
    with pytest.raises(CurrencyMismatchError):
        add(money("1", "BRL"), money("1", "MXN"))
    assert add(money("1.10", "BRL"), money("2.20", "BRL")).amount == Decimal("3.30")


@pytest.mark.parametrize(
    ("amount", "code", "locale", "expected"),
    [
        ("1234.50", "BRL", "pt_BR", "R$\xa01.234,50"),
        ("1234.50", "MXN", "es_MX", "$1,234.50"),
        ("1234.50", "ARS", "es_AR", "$1.234,50"),
        ("1234", "CLP", "es_CL", "$1.234"),
        ("1234.5", "CLP", "es_CL", "$1.234"),  # quantized half-even first, never kept as 1234.5
        ("1234.50", "COP", "es_CO", "$1.234,50"),
        ("1234.50", "PEN", "es_PE", "S/\xa01,234.50"),
        ("1234.50", "UYU", "es_UY", "$\xa01.234,50"),
    ],
)
def test_formatting_follows_each_locale(amount: str, code: str, locale: str, expected: str) -> None:
    assert format_money(Decimal(amount), code, locale) == expected


@given(
    minor=st.integers(min_value=-(10**12), max_value=10**12),
    code=st.sampled_from(["BRL", "MXN", "ARS", "CLP", "COP", "PEN", "UYU", "PYG", "KWD", "CLF", "USD", "EUR", "JPY"]),
    locale=st.sampled_from(["pt_BR", "es_MX", "es_AR", "es_CL", "es_CO", "es_PE", "es_UY", "en_IN", "fr", "ar"]),
)
def test_formatting_shows_every_minor_unit_of_the_iso_exponent(minor: int, code: str, locale: str) -> None:
    # CLDR's currency digits are not ISO 4217's (CLDR 48 shows COP without decimals): the ledger's decide.
    text = format_money(from_minor_units(minor, code), code, locale)
    shown = "".join(c for c in text if c.isdigit() or c in "٠١٢٣٤٥٦٧٨٩")
    assert int(shown.translate(str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789"))) == abs(minor)
