"""The risk-array portfolio margin against hand-worked books, and its comparison with cross margin."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.margin import MarginParams, Position, build_tiers, figures
from bot.core.risk_array import MarginComparison, RiskArray, compare, cross_margin, risk_array_margin
from bot.core.world import VenueSnapshot

TIERS = build_tiers([(1_000_000, 0.005), (5_000_000, 0.01), (None, 0.025)])
PM = MarginParams("portfolio", TIERS, 0.10, im_multiplier=1.3, pm_min_rate=0.01, pm_shocks=(0.05, 0.10, 0.15))
PRICES = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0}
ARRAY = RiskArray()  # ±15% in 7 points, vol ±10 points, extremes ±45% at 0.33, minimum 1%


def snapshot(*positions: Position, params: MarginParams = PM) -> VenueSnapshot:
    return VenueSnapshot("v", 0.0, {"USDT": 10_000_000.0}, positions, PRICES, {}, params)


def btc(qty: float, symbol: str = "BTC/USDT:USDT") -> Position:
    return Position(symbol, "BTC", qty, 60_000.0)


def test_the_grid_spans_the_range_in_even_steps_with_extremes_at_three_times() -> None:
    """Seven points over ±15% are −15, −10, −5, 0, +5, +10, +15%; the extremes are ±45%; vol goes up, stays, down."""
    assert ARRAY.moves().tolist() == pytest.approx([-0.15, -0.10, -0.05, 0.0, 0.05, 0.10, 0.15])
    assert ARRAY.extremes().tolist() == pytest.approx([-0.45, 0.45])
    assert ARRAY.vol_moves().tolist() == [10.0, 0.0, -10.0]


def test_a_hedged_book_needs_far_less_under_portfolio_margin() -> None:
    """Long 10 BTC on the linear perp and short 10 on the inverse: nothing nets out but the 1% minimum, so cross
    IM (10% of 1.2M) is over seven times the portfolio IM (1% × 1.2M × 1.3)."""
    c = compare(snapshot(btc(10.0), btc(-10.0, "BTC/USD:BTC")))
    assert c.cross_im == pytest.approx(120_000.0)
    assert c.portfolio_im == pytest.approx(0.01 * 1_200_000.0 * 1.3)
    assert c.efficiency > 3.0


def test_a_naked_book_is_not_cheaper_under_portfolio_margin() -> None:
    """Long 10 BTC alone: the worst regular move charges 15% of 600k (the ±45% extreme at 0.33 is 14.85%), plus 1%,
    × 1.3 — more than cross IM's 10%."""
    c = compare(snapshot(btc(10.0)))
    assert c.portfolio_im == pytest.approx((0.15 + 0.01) * 600_000.0 * 1.3)
    assert c.cross_im == pytest.approx(60_000.0)
    assert c.efficiency <= 1.0


def test_positions_net_within_an_underlying_but_not_across_underlyings() -> None:
    """Long BTC against short BTC on another symbol charges only the minimum; long BTC against short ETH of the same
    notional charges both legs' worst moves."""
    same = risk_array_margin([btc(10.0), btc(-10.0, "BTC/USD:BTC")], PRICES, ARRAY)
    across = risk_array_margin([btc(10.0), Position("ETH/USDT:USDT", "ETH", -200.0, 3_000.0)], PRICES, ARRAY)
    assert same == pytest.approx(0.01 * 1_200_000.0)
    assert across == pytest.approx(2 * 0.15 * 600_000.0 + 0.01 * 1_200_000.0)


def test_a_short_gamma_book_is_charged_its_extreme_move_at_the_fraction() -> None:
    """Delta-neutral with gamma −1,000 USD per 1%: ±15% loses 50 × 1,000 × 0.15² = 1,125, while ±45% loses 10,125,
    of which 0.33 (3,341.25) is charged; with the fraction at zero only the regular 1,125 remains."""
    gamma = {"BTC": -1_000.0}
    assert risk_array_margin([], PRICES, ARRAY, gamma=gamma) == pytest.approx(0.33 * 10_125.0)
    no_extremes = RiskArray(extreme_fraction=0.0)
    assert risk_array_margin([], PRICES, no_extremes, gamma=gamma) == pytest.approx(1_125.0)


def test_a_short_gamma_book_loses_more_than_a_linear_one_on_large_moves() -> None:
    """The same long BTC with negative gamma is charged more than without it: the loss grows faster than the move."""
    linear = risk_array_margin([btc(10.0)], PRICES, ARRAY)
    short_gamma = risk_array_margin([btc(10.0)], PRICES, ARRAY, gamma={"BTC": -2_000.0})
    long_gamma = risk_array_margin([btc(10.0)], PRICES, ARRAY, gamma={"BTC": 2_000.0})
    assert short_gamma > linear > long_gamma


def test_volatility_moves_charge_vega_and_leave_linear_books_alone() -> None:
    """A short-vega book (−500 USD per vol point) is charged the 10-point rise, 5,000; vega 0 changes nothing."""
    assert risk_array_margin([], PRICES, ARRAY, vega={"ETH": -500.0}) == pytest.approx(5_000.0)
    book = [btc(10.0), Position("SOL/USDT:USDT", "SOL", -1_000.0, 150.0)]
    assert risk_array_margin(book, PRICES, ARRAY, vega={"BTC": 0.0}) == risk_array_margin(book, PRICES, ARRAY)


def test_the_portfolio_im_of_a_linear_book_matches_the_margin_module() -> None:
    """With the venue's own shocks as the range, a linear book's risk-array IM is `core.margin`'s portfolio IM."""
    book = (btc(10.0), btc(-4.0, "BTC/USD:BTC"), Position("ETH/USDT:USDT", "ETH", -300.0, 2_900.0))
    snap = snapshot(*book)
    own = figures(snap.collateral, snap.positions, snap.prices, snap.haircuts, PM)
    assert compare(snap).portfolio_im == pytest.approx(own.im)


def test_cross_margin_is_notional_times_the_im_rate_as_in_the_margin_module() -> None:
    """Cross IM is Σ |notional| × im_rate, the figure `core.margin.figures` reports for a cross venue."""
    cross = MarginParams("cross", TIERS, 0.10)
    book = (btc(-150.0), Position("ETH/USDT:USDT", "ETH", 1_000.0, 2_900.0))
    snap = snapshot(*book, params=cross)
    own = figures(snap.collateral, snap.positions, snap.prices, snap.haircuts, cross)
    assert (
        cross_margin(book, PRICES, TIERS, 0.10) == pytest.approx(own.im) == pytest.approx(12_000_000.0 * 0.10)
    )


def test_an_empty_book_is_charged_nothing_under_either_model() -> None:
    """No positions: zero IM both ways, and the two models are equally efficient."""
    assert compare(snapshot()) == MarginComparison(0.0, 0.0, 1.0)


def test_a_book_charged_only_under_cross_is_infinitely_more_efficient_under_portfolio() -> None:
    """A fully hedged book with no minimum charge costs nothing under portfolio margin: efficiency is infinite."""
    no_min = MarginParams("portfolio", TIERS, 0.10, pm_min_rate=0.0)
    c = compare(snapshot(btc(5.0), btc(-5.0, "BTC/USD:BTC"), params=no_min))
    assert c.portfolio_im == 0.0
    assert c.efficiency == math.inf


@pytest.mark.parametrize(
    "kwargs",
    [
        {"price_range": -0.1},
        {"points": 1},
        {"vol_points": -1.0},
        {"extreme_multiple": 0.5},
        {"extreme_fraction": 1.5},
        {"min_rate": -0.01},
        {"price_range": math.nan},
    ],
)
def test_a_risk_array_refuses_nonsensical_parameters(kwargs: dict[str, float]) -> None:
    """Negative ranges or rates, fewer than two points, extremes inside the range, a fraction beyond 1: ValueError."""
    with pytest.raises(ValueError):
        RiskArray(**kwargs)  # type: ignore[arg-type]


def linear(book: list[tuple[str, float]]) -> list[Position]:
    return [Position(f"{b}/USDT:USDT", b, usd / PRICES[b], PRICES[b]) for b, usd in book]


legs = st.lists(
    st.tuples(
        st.sampled_from(("BTC", "ETH", "SOL")),
        st.floats(-1e6, 1e6, allow_nan=False).filter(lambda x: abs(x) > 1.0),  # USD notional, signed
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    legs,
    st.floats(0.0, 0.5),
    st.floats(0.001, 0.5),
    st.dictionaries(st.sampled_from(("BTC", "ETH")), st.floats(-5_000.0, 0.0), max_size=2),
)
def test_the_charge_never_falls_as_the_range_widens(
    book: list[tuple[str, float]], r1: float, gap: float, gamma: dict[str, float]
) -> None:
    """For linear and short-gamma books (losses convex in the move), a wider price range never lowers the charge."""
    positions = linear(book)
    narrow = risk_array_margin(positions, PRICES, RiskArray(price_range=r1), gamma=gamma)
    wide = risk_array_margin(positions, PRICES, RiskArray(price_range=r1 + gap), gamma=gamma)
    assert wide >= narrow - 1e-9 * max(1.0, narrow)


@settings(max_examples=200, deadline=None)
@given(legs, legs)
def test_hedges_only_offset_within_an_underlying(
    book: list[tuple[str, float]], other: list[tuple[str, float]]
) -> None:
    """Charging two books together never costs more than separately, and netting never crosses underlyings:
    the worst-move part is Σ per underlying |net delta| × 15%."""
    a, b = linear(book), linear(other)
    together = risk_array_margin(a + b, PRICES, ARRAY)
    assert together <= risk_array_margin(a, PRICES, ARRAY) + risk_array_margin(b, PRICES, ARRAY) + 1e-6
    net: dict[str, float] = {}
    for p in a + b:
        net[p.base] = net.get(p.base, 0.0) + p.qty * PRICES[p.base]
    gross = sum(abs(p.qty * PRICES[p.base]) for p in a + b)
    assert together == pytest.approx(sum(abs(d) * 0.15 for d in net.values()) + 0.01 * gross, abs=1e-6)
