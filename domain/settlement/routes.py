"""The cheapest payout route: what each corridor costs a seller and what it delivers.

Sellers are paid in their local currency, USD or EUR, over corridors listed in
``config/payout_routes.toml`` (data finance can read and edit). Pricing one payout of
``amount`` in the source currency over a route:

* fee = fixed_fee + amount × percent_fee / 100, each part rounded half-even to the source
  currency's exponent on its own, then summed (what the provider's invoice shows);
* net_source = amount − fee (so fee + net_source == amount, exactly);
* cross-currency: effective rate = rate × (1 − fx_spread), kept exact (only money is
  rounded, as in :mod:`domain.fx`); delivered = net_source × effective rate, rounded
  half-even to the target exponent. Same currency: delivered = net_source;
* spread_cost = net_source × fx_spread rounded half-even in the source currency, so the
  route's total cost = fee + spread_cost can be compared across routes in one currency.

A route is eligible when it arrives within the asked number of business days and delivers
more than zero. The ranking puts the most delivered first, because that is what the seller
sees; ties go to the lower cost and then to the name, so the same inputs always give the
same order (the comparison is stored on the payout event and must replay identically).
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal, localcontext
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ledger.errors import QuipuError
from ledger.money import MAX_MINOR, exponent, quantize

Rail = Literal["bank_transfer", "pix", "spei", "swift", "sepa", "ach"]

_NON_NEGATIVE: Final = re.compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?")
_HH_MM: Final = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
# Multiplication and subtraction under this context never round: a rate is kept exactly as
# given, and money is rounded once, by ``quantize``, not twice (a silent 28-digit rounding
# first could turn an exact half into a tie broken the wrong way).
_EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, rounding=ROUND_HALF_EVEN)


class RouteError(QuipuError, ValueError):
    """A payout that cannot be priced or routed as asked: names the option (or file) and why."""


def _places(code: str) -> str:
    exp = exponent(code)
    return "no decimals" if exp == 0 else f"at most {exp} decimals"


def _decimal_string(value: object) -> object:
    # Fees and limits are quoted decimal strings in the file: a TOML float may already have
    # lost a digit, and an integer hides whether the author meant the minor unit.
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError(f'write it as a quoted decimal string such as "2.50", not {value!r}')
    if value.startswith("-"):
        raise ValueError(f"{value} is negative; fees, spreads and limits cannot be")
    if not _NON_NEGATIVE.fullmatch(value):
        raise ValueError(f'{value!r} is not a plain decimal string such as "2.50"')
    return Decimal(value)


def _check_places(value: Decimal | None, info: ValidationInfo) -> Decimal | None:
    # An amount in the source currency must be payable: no fraction of a minor unit.
    source = info.data.get("source")
    if value is None or source is None:
        return value
    if value != quantize(value, source):
        raise ValueError(f"{value} has too many decimals for {source}, which takes {_places(source)}")
    return quantize(value, source)


class Route(BaseModel):
    """One payout corridor: a rail from a source to a target currency, and its price."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=60)]
    rail: Rail
    source: str
    target: str
    fixed_fee: Annotated[Decimal, Field(ge=0)]
    """Per payout, in the source currency."""
    percent_fee: Annotated[Decimal, Field(ge=0, le=100)]
    """Of the amount, in percent: "0.5" is half a percent."""
    fx_spread: Annotated[Decimal, Field(ge=0, le=Decimal("0.2"))]
    """Fraction below the reference rate the provider converts at: "0.004" is 0.4%."""
    cutoff: dt.time
    """Local time after which the payout leaves on the next business day (not priced here)."""
    days_to_arrive: Annotated[int, Field(ge=0, le=30, strict=True)]
    """Business days from release to the seller's account."""
    min_amount: Annotated[Decimal, Field(ge=0)] | None = None
    max_amount: Annotated[Decimal, Field(ge=0)] | None = None

    _strings = field_validator("fixed_fee", "percent_fee", "fx_spread", "min_amount", "max_amount", mode="before")(
        _decimal_string
    )
    _payable = field_validator("fixed_fee", "min_amount")(_check_places)

    @field_validator("source", "target")
    @classmethod
    def _known(cls, code: str) -> str:
        try:
            exponent(code)
        except QuipuError as exc:
            raise ValueError(str(getattr(exc, "reason", exc))) from None
        return code

    @field_validator("fx_spread")
    @classmethod
    def _no_spread_without_conversion(cls, spread: Decimal, info: ValidationInfo) -> Decimal:
        source, target = info.data.get("source"), info.data.get("target")
        if source is not None and source == target and spread != 0:
            raise ValueError(f'must be "0": {source} to {target} converts nothing')
        return spread

    @field_validator("cutoff", mode="before")
    @classmethod
    def _hh_mm(cls, value: object) -> object:
        if not isinstance(value, str) or not _HH_MM.fullmatch(value):
            raise ValueError(f'write the local cut-off as a quoted "HH:MM" such as "17:00", not {value!r}')
        return dt.time.fromisoformat(value)

    @field_validator("max_amount")
    @classmethod
    def _range(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        value = _check_places(value, info)
        low = info.data.get("min_amount")
        if value is not None and low is not None and value < low:
            raise ValueError(f"{value} is below min_amount {low}")
        return value

    def accepts(self, amount: Decimal) -> bool:
        """Whether ``amount`` is within the route's limits (both inclusive)."""
        return (self.min_amount is None or amount >= self.min_amount) and (
            self.max_amount is None or amount <= self.max_amount
        )


class RouteTable(BaseModel):
    """``config/payout_routes.toml``: every payout corridor, dated by file version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Annotated[str, Field(min_length=1)]
    route: Annotated[tuple[Route, ...], Field(min_length=1)]

    @field_validator("route")
    @classmethod
    def _unique_names(cls, routes: tuple[Route, ...]) -> tuple[Route, ...]:
        # A stored comparison refers to routes by name: two with one name would be ambiguous.
        seen: dict[str, int] = {}
        for i, r in enumerate(routes):
            if r.name in seen:
                raise ValueError(f"route[{i}].name {r.name!r} is already the name of route[{seen[r.name]}]")
            seen[r.name] = i
        return routes


@dataclass(frozen=True, slots=True)
class RoutePrice:
    """What one route costs and delivers for one payout."""

    name: str
    rail: str
    source: str
    target: str
    amount: Decimal
    """The payout, in the source currency."""
    fee: Decimal
    """fixed_fee + the percent part, in the source currency."""
    spread_cost: Decimal
    """What the FX spread takes, valued in the source currency."""
    total_cost: Decimal
    """fee + spread_cost, in the source currency: comparable across routes."""
    rate: Decimal | None
    """The effective rate, rate × (1 − fx_spread), exact; None when nothing is converted."""
    delivered: Decimal
    """What reaches the seller, in the target currency."""
    days_to_arrive: int
    eligible: bool
    reason: str | None
    """Why the route is not eligible; None when it is."""

    @property
    def net_source(self) -> Decimal:
        """The amount left after the fee, in the source currency, before any conversion."""
        return self.amount - self.fee

    def as_record(self) -> dict[str, str | int | bool]:
        """The price as plain JSON values: decimals as strings (never floats), for events and output.

        ``rate`` is left out for a same-currency route and ``reason`` for an eligible one,
        rather than written as null, so every value in the record is a string, int or bool.
        """
        record: dict[str, str | int | bool] = {
            "name": self.name,
            "rail": self.rail,
            "source": self.source,
            "target": self.target,
            "amount": format(self.amount, "f"),
            "fee": format(self.fee, "f"),
            "spread_cost": format(self.spread_cost, "f"),
            "total_cost": format(self.total_cost, "f"),
            "delivered": format(self.delivered, "f"),
            "days_to_arrive": self.days_to_arrive,
            "eligible": self.eligible,
        }
        if self.rate is not None:
            record["rate"] = format(self.rate, "f")
        if self.reason is not None:
            record["reason"] = self.reason
        return record


def _days(n: int) -> str:
    return f"{n} business day" if n == 1 else f"{n} business days"


def _check_amount(amount: Decimal, source: str) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise RouteError('--amount: must be a decimal amount such as "1500.00"')
    if amount <= 0:
        raise RouteError("--amount: must be greater than zero")
    # The size first: quantizing a huge amount would overflow the context's precision.
    if amount.scaleb(exponent(source)) > MAX_MINOR:
        raise RouteError(f"--amount: {amount} is beyond the largest accepted amount")
    if amount != quantize(amount, source):
        raise RouteError(f"--amount: {amount} has too many decimals for {source}, which takes {_places(source)}")
    return quantize(amount, source)


def _price(route: Route, amount: Decimal, rate: Decimal | None, max_days: int | None) -> RoutePrice:
    source, target = route.source, route.target
    with localcontext(_EXACT):
        fee = quantize(route.fixed_fee, source) + quantize(amount * route.percent_fee.scaleb(-2), source)
        net_source = amount - fee
        spread_cost = quantize(net_source * route.fx_spread, source)
        if source == target:
            effective, delivered = None, net_source
        else:
            assert rate is not None  # checked by price_routes
            effective = rate * (1 - route.fx_spread)
            delivered = quantize(net_source * effective, target)
    problems = []
    if delivered <= 0:
        if net_source <= 0:
            problems.append(f"delivers nothing: the fee of {fee} {source} takes the whole amount")
        else:
            problems.append(f"delivers nothing: {net_source} {source} after fees rounds to {delivered} {target}")
    if max_days is not None and route.days_to_arrive > max_days:
        problems.append(f"takes {_days(route.days_to_arrive)}, more than the {max_days} allowed by --within")
    return RoutePrice(
        name=route.name,
        rail=route.rail,
        source=source,
        target=target,
        amount=amount,
        fee=fee,
        spread_cost=spread_cost,
        total_cost=fee + spread_cost,
        rate=effective,
        delivered=delivered,
        days_to_arrive=route.days_to_arrive,
        eligible=not problems,
        reason="; ".join(problems) or None,
    )


def price_routes(
    table: RouteTable,
    amount: Decimal,
    source: str,
    target: str,
    rate: Decimal | None,
    max_days: int | None,
) -> list[RoutePrice]:
    """Price a payout of ``amount`` ``source`` over every route to ``target`` that accepts it.

    ``rate`` is the reference rate in units of ``target`` per unit of ``source``, needed only
    when converting. ``max_days`` (``--within``) bounds the business days to arrive. Routes
    outside their min/max limits are left out; the others are returned ranked: eligible
    first, then most delivered, lowest total cost, name.
    """
    for option, code in (("--from", source), ("--to", target)):
        try:
            exponent(code)
        except QuipuError as exc:
            raise RouteError(f"{option}: {getattr(exc, 'reason', exc)}") from None
    amount = _check_amount(amount, source)
    if source == target:
        if rate is not None and rate != 1:
            raise RouteError(f"--rate: paying {source} out as {target} converts nothing; leave the rate out")
    elif rate is None:
        raise RouteError(f"--rate: paying {source} out as {target} needs a rate ({target} per {source})")
    elif not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
        raise RouteError(f"--rate: {rate} must be a decimal greater than zero ({target} per {source})")
    if max_days is not None and max_days < 0:
        raise RouteError(f"--within: {max_days} must be 0 or more business days")
    pair = [r for r in table.route if r.source == source and r.target == target]
    if not pair:
        raise RouteError(f"--to: no payout route from {source} to {target}")
    fitting = [r for r in pair if r.accepts(amount)]
    if not fitting:
        limits = ", ".join(f"{r.name} {r.min_amount or 0} to {r.max_amount or 'any'}" for r in pair)
        raise RouteError(f"--amount: {amount} {source} is outside the limits of every route to {target} ({limits})")
    prices = [_price(r, amount, rate if source != target else None, max_days) for r in fitting]
    return sorted(prices, key=lambda p: (not p.eligible, -p.delivered, p.total_cost, p.name))


def cheapest(prices: Sequence[RoutePrice], max_days: int | None = None) -> RoutePrice:
    """The best eligible route of a ranked list from :func:`price_routes`, or why there is none.

    ``max_days`` only words the error when every route is too slow; eligibility was already
    decided when pricing.
    """
    for price in prices:
        if price.eligible:
            return price
    if not prices:
        raise RouteError("no payout route was priced")
    delivering = [p for p in prices if p.delivered > 0]
    if not delivering:
        first = prices[0]
        raise RouteError(
            f"--amount: {first.amount} {first.source} does not cover the fees of any route to {first.target}"
        )
    fastest = min(p.days_to_arrive for p in delivering)
    limit = f"within {_days(max_days)}" if max_days is not None else "in time"
    raise RouteError(f"--within: no route arrives {limit}; fastest takes {_days(fastest)}")


def load_route_table(path: Path) -> RouteTable:
    """The route table in a TOML file; errors name the file, the route and the field."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RouteError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RouteError(f"{path.name}: not valid TOML ({exc})") from None
    try:
        return RouteTable.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
            problems.append(f"{path.name}: {where}: {e['msg'].removeprefix('Value error, ')}")
        raise RouteError("; ".join(problems)) from None
