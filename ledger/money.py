"""The one place money is made.

Amounts are :class:`moneyed.Money` over :class:`decimal.Decimal`, always quantized to the
currency's ISO 4217 exponent (CLP and PYG have none). Storage uses integer minor units.
Amounts on the wire are decimal strings; a JSON number, a float, too many decimals or an
unknown currency is refused with a :class:`~ledger.errors.MoneyError` naming the field.
"""

from __future__ import annotations

import copy
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Final

from babel import Locale
from babel.numbers import NumberPattern
from moneyed import Currency, CurrencyDoesNotExist, Money, get_currency

from ledger.errors import CurrencyMismatchError, MoneyError

#: The default rounding policy: banker's rounding, the ISO/IEEE default, unbiased on ties.
DEFAULT_ROUNDING: Final = ROUND_HALF_EVEN

# ISO 4217 codes with no minor unit defined ("N.A."): metals, SDR, test and "no currency".
_NOT_MONEY: Final = frozenset(
    {"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"}
)
_DECIMAL_STRING: Final = re.compile(r"-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?")

#: The largest magnitude, in minor units, that Quipu accepts (fits a signed 64-bit column
#: with room for sums of many amounts).
MAX_MINOR: Final = 10**15


@lru_cache(maxsize=512)
def currency(code: str, field: str = "currency") -> Currency:
    """The currency for an upper-case ISO 4217 alphabetic code, or a MoneyError."""
    if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{3}", code):
        raise MoneyError(field, f"{code!r} is not a three-letter upper-case ISO 4217 code")
    if code in _NOT_MONEY:
        raise MoneyError(field, f"{code} has no minor unit and is not accepted as money")
    try:
        cur = get_currency(code)
    except CurrencyDoesNotExist:
        raise MoneyError(field, f"unknown currency {code!r}") from None
    return cur


@lru_cache(maxsize=512)
def exponent(code: str) -> int:
    """The ISO 4217 exponent of ``code``: 2 for BRL, 0 for CLP and PYG, 3 for KWD."""
    if not isinstance(code, str):
        raise MoneyError("currency", f"{code!r} is not a three-letter upper-case ISO 4217 code")
    sub_unit: int = currency(code).sub_unit
    exp = len(str(sub_unit)) - 1
    if sub_unit != 10**exp:
        raise MoneyError("currency", f"{code} has a non-decimal minor unit")
    return exp


@lru_cache(maxsize=512)
def _quantum(code: str) -> Decimal:
    return Decimal(1).scaleb(-exponent(code))


def quantize(amount: Decimal, code: str, rounding: str = DEFAULT_ROUNDING) -> Decimal:
    """``amount`` rounded to the currency's exponent under an explicit rounding policy."""
    return amount.quantize(_quantum(code), rounding=rounding)


def parse_amount(value: object, code: str, field: str = "amount") -> Decimal:
    """A wire amount (a decimal string) checked against the currency, exactly, never rounded.

    Refuses JSON numbers and floats (they may already have lost a digit), more decimals than
    the currency has, and magnitudes beyond :data:`MAX_MINOR` minor units.
    """
    if isinstance(value, (bool, int, float, Decimal)):
        raise MoneyError(field, f'must be a decimal string such as "12.34", not a {type(value).__name__}')
    if not isinstance(value, str):
        raise MoneyError(field, 'must be a decimal string such as "12.34"')
    if not _DECIMAL_STRING.fullmatch(value):
        raise MoneyError(field, f'{value!r} is not a plain decimal string such as "12.34"')
    exp = exponent(code)
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes these
        raise MoneyError(field, f"{value!r} is not a decimal number") from None
    decimals = -amount.as_tuple().exponent  # type: ignore[operator]
    if decimals > exp:
        places = "no decimals" if exp == 0 else f"at most {exp} decimals"
        raise MoneyError(field, f"{value} has too many decimals for {code}, which takes {places}")
    amount = quantize(amount, code)
    if abs(to_minor_units(amount, code)) > MAX_MINOR:
        raise MoneyError(field, f"{value} is beyond the largest accepted amount")
    return amount


def money(value: object, code: str, field: str = "amount") -> Money:
    """A quantized :class:`Money` from a wire amount and a currency code."""
    cur = currency(code, field="currency")
    return Money(parse_amount(value, cur.code, field), cur)


def to_minor_units(amount: Decimal, code: str) -> int:
    """Integer minor units of an already-quantized amount (refuses a hidden fraction)."""
    scaled = amount.scaleb(exponent(code))
    if scaled != scaled.to_integral_value():
        raise MoneyError("amount", f"{amount} is not a whole number of {code} minor units")
    return int(scaled)


def from_minor_units(minor: int, code: str) -> Decimal:
    """The decimal amount, at the currency's exponent, of an integer count of minor units."""
    return quantize(Decimal(minor).scaleb(-exponent(code)), code)


def format_amount(minor: int, code: str) -> str:
    """Minor units as the canonical wire string: ``"12.30"`` for BRL, ``"1234"`` for CLP."""
    return str(from_minor_units(minor, code))


def allocate(total_minor: int, parts: int | list[int]) -> list[int]:
    """Split ``total_minor`` into parts that sum exactly to it: no minor unit is lost.

    ``parts`` is a count (equal shares) or a list of non-negative integer weights. Each
    share is the floor of its exact value; the leftover units go one each to the first
    shares, which is the card-installment convention (remainder on the first installment).
    """
    weights = [1] * parts if isinstance(parts, int) else list(parts)
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ValueError("allocate needs at least one part and a positive total weight")
    total_weight = sum(weights)
    sign = -1 if total_minor < 0 else 1
    magnitude = abs(total_minor)
    shares = [magnitude * w // total_weight for w in weights]
    leftover = magnitude - sum(shares)
    for i in range(leftover):
        shares[i % len(shares)] += 1
    return [sign * s for s in shares]


def add(a: Money, b: Money) -> Money:
    """``a + b``, refusing mixed currencies (py-moneyed raises a TypeError of its own)."""
    if a.currency != b.currency:
        raise CurrencyMismatchError(f"cannot add {a.currency.code} and {b.currency.code}")
    return Money(a.amount + b.amount, a.currency)


def format_money(amount: Decimal, code: str, locale: str) -> str:
    """A human amount for a locale (``R$ 1.234,50`` in pt_BR, ``$1.234`` in es_CL), via babel.

    The amount is quantized to the ISO 4217 exponent and shown with exactly that many decimals.
    """
    return format_currency_digits(quantize(amount, code), code, locale, exponent(code))


def format_currency_digits(amount: Decimal, code: str, locale: str | Locale, digits: int) -> str:
    """The locale's currency pattern with exactly ``digits`` decimals, the amount never rounded.

    Babel (and py-moneyed through it) would round to CLDR's currency digits, which are not
    ISO 4217's and change between CLDR releases: CLDR 48 shows COP without decimals, so a
    ledger's COP 1234.50 would print as ``$1.234``. The ledger's own exponent decides instead.
    """
    pattern = _currency_pattern(str(locale), digits)
    return str(pattern.apply(amount, Locale.parse(locale), currency=code, currency_digits=False))


@lru_cache(maxsize=256)
def _currency_pattern(locale: str, digits: int) -> NumberPattern:
    pattern: NumberPattern = copy.copy(Locale.parse(locale).currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return pattern
