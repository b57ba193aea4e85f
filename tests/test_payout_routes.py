"""Payout routes: prices worked by hand, bad tables and inputs refused by name, a stable ranking."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.settlement.routes import (
    RouteError,
    RoutePrice,
    RouteTable,
    cheapest,
    load_route_table,
    price_routes,
)
from ledger.money import exponent, quantize

CONFIG = Path(__file__).resolve().parents[1] / "config" / "payout_routes.toml"
D = Decimal


def route(name: str, source: str, target: str, **fields: Any) -> dict[str, Any]:
    base = {"name": name, "rail": "bank_transfer", "source": source, "target": target, "fixed_fee": "0",
            "percent_fee": "0", "fx_spread": "0", "cutoff": "17:00", "days_to_arrive": 1}  # fmt: skip
    return base | fields


ROUTES = [
    route("pix-brl", "BRL", "BRL", rail="pix", fixed_fee="0.50", days_to_arrive=0),
    route("ted-brl", "BRL", "BRL", fixed_fee="3.90", days_to_arrive=0),
    route("swift-brl-usd", "BRL", "USD", rail="swift", fixed_fee="150.00", fx_spread="0.01", days_to_arrive=2),
    route("partner-brl-usd", "BRL", "USD", fixed_fee="5.00", percent_fee="0.35", fx_spread="0.004", days_to_arrive=3),
    route("sepa-brl-eur", "BRL", "EUR", rail="sepa", percent_fee="0.5"),
    route("swift-clp-usd", "CLP", "USD", rail="swift", fixed_fee="25000", fx_spread="0.008", days_to_arrive=2),
    route("tef-clp", "CLP", "CLP", percent_fee="0.5", days_to_arrive=0),
]
TABLE = RouteTable.model_validate({"version": "test", "route": ROUTES})


def table(*routes: dict[str, Any]) -> RouteTable:
    return RouteTable.model_validate({"version": "test", "route": list(routes)})


class Bare(str):
    """A value written into the TOML file as is, unquoted."""


def write(tmp_path: Path, *routes: dict[str, Any]) -> Path:
    lines = ['version = "test"']
    for r in routes:
        lines.append("[[route]]")
        lines += [f"{k} = {v if isinstance(v, Bare) else json.dumps(v)}" for k, v in r.items()]
    path = tmp_path / "routes.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- worked examples --------------------------------------------------------------------------


def test_brl_to_usd_the_partner_delivers_more_but_swift_is_faster() -> None:
    prices = price_routes(TABLE, D("10000.00"), "BRL", "USD", D("0.1834"), None)
    partner, swift = prices
    # partner: fee = 5.00 + 10000.00 × 0.35% = 5.00 + 35.00 = 40.00; net 9960.00;
    # rate 0.1834 × (1 − 0.004) = 0.1826664; 9960.00 × 0.1826664 = 1819.357344 → 1819.36 USD;
    # spread cost 9960.00 × 0.004 = 39.84; total 79.84 BRL.
    assert (partner.name, partner.fee, partner.net_source) == ("partner-brl-usd", D("40.00"), D("9960.00"))
    assert (partner.rate, partner.delivered) == (D("0.1826664"), D("1819.36"))
    assert (partner.spread_cost, partner.total_cost, partner.eligible, partner.reason) == (
        D("39.84"), D("79.84"), True, None,
    )  # fmt: skip
    # swift: fee 150.00; net 9850.00; rate 0.1834 × 0.99 = 0.181566; 9850.00 × 0.181566 = 1788.4251 → 1788.43;
    # spread cost 9850.00 × 0.01 = 98.50; total 248.50 BRL.
    assert (swift.fee, swift.rate, swift.delivered, swift.spread_cost, swift.total_cost) == (
        D("150.00"), D("0.181566"), D("1788.43"), D("98.50"), D("248.50"),
    )  # fmt: skip
    assert cheapest(prices) is partner
    # Within 2 business days only swift qualifies: it is ranked first, the partner after with its reason.
    within_two = price_routes(TABLE, D("10000.00"), "BRL", "USD", D("0.1834"), 2)
    assert [p.name for p in within_two] == ["swift-brl-usd", "partner-brl-usd"]
    assert within_two[1].reason == "takes 3 business days, more than the 2 allowed by --within"
    assert cheapest(within_two, 2).delivered == D("1788.43")


def test_clp_has_no_decimals() -> None:
    (price,) = price_routes(TABLE, D("1234567"), "CLP", "USD", D("0.00105"), None)
    # fee 25000; net 1209567; spread cost 1209567 × 0.008 = 9676.536 → 9677 CLP (no decimals);
    # rate 0.00105 × 0.992 = 0.0010416; 1209567 × 0.0010416 = 1259.8849872 → 1259.88 USD.
    assert (price.fee, price.net_source, price.spread_cost, price.total_cost) == (
        D("25000"), D("1209567"), D("9677"), D("34677"),
    )  # fmt: skip
    assert (price.rate, price.delivered) == (D("0.0010416"), D("1259.88"))
    assert price.as_record()["total_cost"] == "34677"


@pytest.mark.parametrize(
    ("amount", "fee", "delivered"),
    [
        # 4100 × 0.5% = 20.5 → a tie, to the even 20 (half-up would give 21); 4100 − 20 = 4080.
        ("4100", "20", "4080"),
        # 4300 × 0.5% = 21.5 → a tie, to the even 22; 4300 − 22 = 4278.
        ("4300", "22", "4278"),
        # 4310 × 0.5% = 21.55 → 22 (not a tie).
        ("4310", "22", "4288"),
    ],
)
def test_clp_percent_fee_ties_go_to_even(amount: str, fee: str, delivered: str) -> None:
    (price,) = price_routes(TABLE, D(amount), "CLP", "CLP", None, None)
    assert (price.fee, price.delivered, price.rate, price.total_cost) == (D(fee), D(delivered), None, D(fee))


def test_half_even_ties_on_the_fee_and_on_the_delivered_amount() -> None:
    # sepa-brl-eur: 0.5%, no fixed fee, no spread. 201.00 × 0.5% = 1.005 → tie → 1.00 (half-up: 1.01);
    # net 200.00; 200.00 × 0.160025 = 32.005 → tie → 32.00 (half-up: 32.01).
    (price,) = price_routes(TABLE, D("201.00"), "BRL", "EUR", D("0.160025"), None)
    assert (price.fee, price.net_source, price.delivered) == (D("1.00"), D("200.00"), D("32.00"))
    assert (price.spread_cost, price.total_cost, price.rate) == (D("0.00"), D("1.00"), D("0.160025"))
    # 203.00 × 0.5% = 1.015 → tie → 1.02 (the even neighbour is above); 201.98 × 0.160025 = 32.3218495 → 32.32.
    (price,) = price_routes(TABLE, D("203.00"), "BRL", "EUR", D("0.160025"), None)
    assert (price.fee, price.delivered) == (D("1.02"), D("32.32"))


def test_same_currency_pays_net_of_the_fee_and_records_no_rate() -> None:
    prices = price_routes(TABLE, D("1000"), "BRL", "BRL", None, None)
    # pix: 1000.00 − 0.50 = 999.50; TED: 1000.00 − 3.90 = 996.10.
    assert [(p.name, p.delivered, p.total_cost) for p in prices] == [
        ("pix-brl", D("999.50"), D("0.50")),
        ("ted-brl", D("996.10"), D("3.90")),
    ]
    record = prices[0].as_record()
    assert record == {
        "name": "pix-brl", "rail": "pix", "source": "BRL", "target": "BRL", "amount": "1000.00", "fee": "0.50",
        "spread_cost": "0.00", "total_cost": "0.50", "delivered": "999.50", "days_to_arrive": 0, "eligible": True,
    }  # fmt: skip
    assert json.loads(json.dumps(record)) == record


def test_the_record_of_a_cross_currency_route_keeps_the_exact_rate_and_the_reason() -> None:
    prices = price_routes(TABLE, D("10000.00"), "BRL", "USD", D("0.1834"), 2)
    record = prices[1].as_record()
    assert record["rate"] == "0.1826664"
    assert record["eligible"] is False
    assert record["reason"] == "takes 3 business days, more than the 2 allowed by --within"
    assert all(isinstance(v, (str, int, bool)) for v in record.values())


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((D("100.00"), "BRL", "JPY", D("24.5"), None), "--to: no payout route from BRL to JPY"),
        ((D("100.00"), "BRL", "XYZ", D("1"), None), "--to: unknown currency 'XYZ'"),
        ((D("100.00"), "brl", "USD", D("1"), None), "--from: 'brl' is not a three-letter"),
        ((D("100.00"), "BRL", "USD", None, None), "--rate: paying BRL out as USD needs a rate (USD per BRL)"),
        ((D("100.00"), "BRL", "USD", D("0"), None), "--rate: 0 must be a decimal greater than zero"),
        ((D("100.00"), "BRL", "USD", D("NaN"), None), "--rate: NaN must be a decimal greater than zero"),
        ((D("100.00"), "BRL", "BRL", D("5.2"), None), "--rate: paying BRL out as BRL converts nothing"),
        ((D("0"), "BRL", "BRL", None, None), "--amount: must be greater than zero"),
        ((D("-5.00"), "BRL", "BRL", None, None), "--amount: must be greater than zero"),
        ((D("10.005"), "BRL", "BRL", None, None), "--amount: 10.005 has too many decimals for BRL"),
        ((D("100.5"), "CLP", "CLP", None, None), "--amount: 100.5 has too many decimals for CLP, which takes no"),
        ((D("1E+20"), "BRL", "BRL", None, None), "--amount: 1E+20 is beyond the largest accepted amount"),
        ((D("1E+40"), "CLP", "CLP", None, None), "--amount: 1E+40 is beyond the largest accepted amount"),
        ((D("100.00"), "BRL", "BRL", None, -1), "--within: -1 must be 0 or more business days"),
    ],
)
def test_bad_requests_name_the_option(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(RouteError) as caught:
        price_routes(TABLE, *args)
    assert message in str(caught.value)


def test_nothing_arrives_in_time() -> None:
    prices = price_routes(TABLE, D("10000.00"), "BRL", "USD", D("0.1834"), 1)
    assert not any(p.eligible for p in prices)
    with pytest.raises(RouteError, match=r"^--within: no route arrives within 1 business day; fastest takes 2 "):
        cheapest(prices, 1)
    with pytest.raises(RouteError, match=r"^--within: no route arrives in time; fastest takes 2 business days$"):
        cheapest(prices)


def test_an_amount_the_fees_eat_is_not_eligible() -> None:
    # 100.00 BRL: swift's fee of 150.00 takes it all; the partner's 5.00 + 0.35 leaves 94.65.
    prices = price_routes(TABLE, D("100.00"), "BRL", "USD", D("0.1834"), None)
    assert [(p.name, p.eligible) for p in prices] == [("partner-brl-usd", True), ("swift-brl-usd", False)]
    assert prices[1].reason == "delivers nothing: the fee of 150.00 BRL takes the whole amount"
    assert prices[1].delivered == D("-9.08")  # −50.00 × 0.181566 = −9.0783
    # 0.01 BRL over a 0.5% route: fee 0.00005 → 0.00, 0.01 × 0.0001 = 0.000001 → 0.00 EUR delivered.
    (tiny,) = price_routes(TABLE, D("0.01"), "BRL", "EUR", D("0.0001"), None)
    assert tiny.reason == "delivers nothing: 0.01 BRL after fees rounds to 0.00 EUR"
    with pytest.raises(RouteError, match=r"^--amount: 0.01 BRL does not cover the fees of any route to EUR$"):
        cheapest([tiny])
    with pytest.raises(RouteError, match="no payout route was priced"):
        cheapest([])


def test_routes_outside_their_limits_are_left_out() -> None:
    limited = table(
        route("small", "BRL", "BRL", max_amount="100.00"),
        route("large", "BRL", "BRL", fixed_fee="1.00", min_amount="100.00"),
    )
    # Both limits are inclusive: 100.00 fits both.
    assert [p.name for p in price_routes(limited, D("100.00"), "BRL", "BRL", None, None)] == ["small", "large"]
    assert [p.name for p in price_routes(limited, D("100.01"), "BRL", "BRL", None, None)] == ["large"]
    only_mid = table(route("mid", "BRL", "BRL", min_amount="10.00", max_amount="20.00"))
    with pytest.raises(RouteError, match=r"^--amount: 5.00 BRL is outside the limits of every route to BRL \(mid "):
        price_routes(only_mid, D("5.00"), "BRL", "BRL", None, None)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"fixed_fee": "-1.00"}, "route[1].fixed_fee: -1.00 is negative; fees, spreads and limits cannot be"),
        # A bare TOML number (here a TOML float, 1.5) is refused: it may already have lost a digit.
        ({"fixed_fee": Bare("1.5")}, 'route[1].fixed_fee: write it as a quoted decimal string such as "2.50", not 1.5'),
        ({"percent_fee": Bare("1")}, "route[1].percent_fee: write it as a quoted decimal string"),
        ({"percent_fee": "1e2"}, "route[1].percent_fee: '1e2' is not a plain decimal string"),
        ({"percent_fee": "100.5"}, "route[1].percent_fee: Input should be less than or equal to 100"),
        ({"fx_spread": "0.004"}, 'route[1].fx_spread: must be "0": BRL to BRL converts nothing'),
        ({"fixed_fee": "1.234"}, "route[1].fixed_fee: 1.234 has too many decimals for BRL, which takes at most 2"),
        ({"source": "CLP", "target": "CLP", "fixed_fee": "0.5"}, "route[1].fixed_fee: 0.5 has too many decimals"),
        ({"target": "XYZ"}, "route[1].target: unknown currency 'XYZ'"),
        ({"rail": "fax"}, "route[1].rail: Input should be 'bank_transfer', 'pix', 'spei', 'swift', 'sepa' or 'ach'"),
        ({"cutoff": "5pm"}, 'route[1].cutoff: write the local cut-off as a quoted "HH:MM"'),
        ({"days_to_arrive": "2"}, "route[1].days_to_arrive: Input should be a valid integer"),
        ({"min_amount": "50.00", "max_amount": "10.00"}, "route[1].max_amount: 10.00 is below min_amount 50.00"),
        ({"name": "pix-brl"}, "route: route[1].name 'pix-brl' is already the name of route[0]"),
        ({"colour": "red"}, "route[1].colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_table_is_refused_naming_the_file_route_and_field(
    tmp_path: Path, bad: dict[str, Any], message: str
) -> None:
    path = write(tmp_path, ROUTES[0], route("second", "BRL", "BRL") | bad)
    with pytest.raises(RouteError) as caught:
        load_route_table(path)
    assert f"routes.toml: {message}" in str(caught.value)


def test_the_models_report_the_route_index_and_field() -> None:
    with pytest.raises(ValidationError) as caught:
        table(ROUTES[0], ROUTES[1], route("x", "USD", "USD", fx_spread="0.01"))
    assert [e["loc"] for e in caught.value.errors()] == [("route", 2, "fx_spread")]


def test_an_unreadable_or_malformed_file_is_a_route_error(tmp_path: Path) -> None:
    with pytest.raises(RouteError, match=r"missing\.toml: cannot read"):
        load_route_table(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = \n")
    with pytest.raises(RouteError, match=r"^bad.toml: not valid TOML"):
        load_route_table(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text('version = "x"\n')
    with pytest.raises(RouteError, match=r"^empty.toml: route: Field required$"):
        load_route_table(empty)


# --- ordering ---------------------------------------------------------------------------------


def test_ties_go_to_the_lower_cost_then_the_name_whatever_the_table_order() -> None:
    routes = [
        # 100.00 BRL at 0.5 USD/BRL. a and b: fee 1.00 → net 99.00 × 0.5 = 49.50 USD, cost 1.00.
        route("b-fee", "BRL", "USD", fixed_fee="1.00"),
        route("a-fee", "BRL", "USD", fixed_fee="1.00"),
        # z: no fee, spread 0.99%: 100.00 × 0.5 × 0.9901 = 49.505 → tie → 49.50 USD, the same; cost 0.99.
        route("z-spread", "BRL", "USD", fx_spread="0.0099"),
        # slow: delivers the most (no fee, no spread) but takes 5 days; with --within 3 it goes last.
        route("slow", "BRL", "USD", days_to_arrive=5),
    ]
    records = []
    for order in itertools.permutations(routes):
        prices = price_routes(table(*order), D("100.00"), "BRL", "USD", D("0.5"), 3)
        records.append([p.as_record() for p in prices])
        assert [p.name for p in prices] == ["z-spread", "a-fee", "b-fee", "slow"]
        assert [p.delivered for p in prices] == [D("49.50")] * 3 + [D("50.00")]
        assert [p.total_cost for p in prices] == [D("0.99"), D("1.00"), D("1.00"), D("0.00")]
    assert all(r == records[0] for r in records)


# --- the real file ----------------------------------------------------------------------------


def test_the_shipped_route_file_validates_and_covers_the_corridors() -> None:
    routes = load_route_table(CONFIG)
    assert routes.version == "2026-11-26"
    pairs = {(r.source, r.target) for r in routes.route}
    expected = {
        ("BRL", "BRL"), ("MXN", "MXN"), ("BRL", "USD"), ("BRL", "EUR"), ("MXN", "USD"), ("ARS", "USD"),
        ("CLP", "USD"), ("COP", "USD"), ("USD", "USD"), ("EUR", "EUR"), ("CLP", "CLP"), ("COP", "COP"),
        ("ARS", "ARS"), ("PEN", "PEN"),
    }  # fmt: skip
    assert expected <= pairs
    assert cheapest(price_routes(routes, D("1000.00"), "BRL", "BRL", None, None)).name == "pix-brl"
    # The partner is cheaper but slower than SWIFT for a typical payout.
    brl_usd = price_routes(routes, D("10000.00"), "BRL", "USD", D("0.1834"), None)
    assert [p.rail for p in brl_usd] == ["bank_transfer", "swift"]
    assert brl_usd[0].days_to_arrive > brl_usd[1].days_to_arrive
    assert cheapest(price_routes(routes, D("10000.00"), "BRL", "USD", D("0.1834"), 2)).rail == "swift"


# --- properties -------------------------------------------------------------------------------

PAIRS = [("BRL", "USD"), ("CLP", "USD"), ("USD", "CLP"), ("BRL", "BRL"), ("CLP", "CLP"), ("USD", "KWD")]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[RouteTable, Decimal, str, str, Decimal | None, int | None]:
    source, target = draw(st.sampled_from(PAIRS))
    exp = exponent(source)
    n = draw(st.integers(1, 4))
    routes = []
    for i in range(n):
        spread = D(draw(st.integers(0, 2000))).scaleb(-4) if source != target else D(0)
        routes.append(
            route(
                f"r{i}", source, target,
                fixed_fee=str(D(draw(st.integers(0, 10**6))).scaleb(-exp)),
                percent_fee=str(D(draw(st.integers(0, 10_000))).scaleb(-3)),
                fx_spread=str(spread),
                days_to_arrive=draw(st.integers(0, 5)),
            )
        )  # fmt: skip
    amount = D(draw(st.integers(1, 10**13))).scaleb(-exp)
    rate = D(draw(st.integers(1, 10**9))).scaleb(-draw(st.integers(0, 12))) if source != target else None
    max_days = draw(st.none() | st.integers(0, 5))
    return table(*routes), amount, source, target, rate, max_days


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_prices_add_up_and_the_choice_delivers_the_most(
    scenario: tuple[RouteTable, Decimal, str, str, Decimal | None, int | None],
) -> None:
    routes, amount, source, target, rate, max_days = scenario
    prices = price_routes(routes, amount, source, target, rate, max_days)
    assert len(prices) == len(routes.route)
    for p in prices:
        assert p.fee + p.net_source == amount
        assert p.fee == quantize(p.fee, source) and p.spread_cost == quantize(p.spread_cost, source)
        assert p.delivered == quantize(p.delivered, target)
        assert -p.delivered.as_tuple().exponent <= exponent(target)  # type: ignore[operator]
        if source == target:
            assert p.fee + p.delivered == amount and p.rate is None
        assert p.eligible == (p.delivered > 0 and (max_days is None or p.days_to_arrive <= max_days))
        assert (p.reason is None) == p.eligible
    eligible = [p for p in prices if p.eligible]
    if eligible:
        best: RoutePrice = cheapest(prices, max_days)
        assert best.delivered == max(p.delivered for p in eligible)
        assert best.total_cost == min(p.total_cost for p in eligible if p.delivered == best.delivered)
    else:
        with pytest.raises(RouteError):
            cheapest(prices, max_days)
