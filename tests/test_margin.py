"""Margin mathematics against hand-worked examples."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.margin import (
    Figures,
    MarginParams,
    Position,
    Tier,
    build_tiers,
    collateral_value,
    figures,
    portfolio_mm,
    sweep_usd,
    tiered_mm,
    topup_usd,
)

TIERS = build_tiers([(1_000_000, 0.005), (5_000_000, 0.01), (None, 0.025)])
CROSS = MarginParams("cross", TIERS, 0.10)
PRICES = {"BTC": 60_000.0, "ETH": 3_000.0}


def test_tier_offsets_make_mm_continuous_at_every_boundary() -> None:
    """MM computed from either side of a tier boundary is the same number."""
    assert TIERS[1].cum == pytest.approx(5_000.0)  # 1M × (1% − 0.5%)
    assert TIERS[2].cum == pytest.approx(80_000.0)  # 5k + 5M × (2.5% − 1%)
    for bound, lower, upper in ((1e6, TIERS[0], TIERS[1]), (5e6, TIERS[1], TIERS[2])):
        assert bound * lower.rate - lower.cum == pytest.approx(bound * upper.rate - upper.cum)
        assert tiered_mm(bound - 0.01, TIERS) == pytest.approx(tiered_mm(bound + 0.01, TIERS), abs=0.01)


def test_tiered_mm_of_a_nine_million_position() -> None:
    """9M notional sits in the 2.5% tier: 225,000 − 80,000 = 145,000."""
    assert tiered_mm(9_000_000, TIERS) == pytest.approx(145_000.0)


def test_equity_counts_haircuts_and_unrealized_pnl() -> None:
    """Equity = Σ collateral × price × (1 − haircut) + Σ unrealized PnL."""
    collateral = {"USDT": 400_000.0, "BTC": 3.0}
    assert collateral_value(collateral, PRICES, {"BTC": 0.05}) == pytest.approx(400_000 + 3 * 60_000 * 0.95)
    pos = (Position("ETH/USDT:USDT", "ETH", 1000, 2_900),)
    f = figures(collateral, pos, PRICES, {"BTC": 0.05}, CROSS)
    assert f.equity == pytest.approx(571_000 + 100_000)


def test_cross_margin_of_the_spec_example() -> None:
    """A 150 BTC short at 60k on 1.5M USDT: IM 900k, utilization 60%, MM 145k."""
    f = figures({"USDT": 1_500_000.0}, (Position("BTC/USDT:USDT", "BTC", -150, 60_000),), PRICES, {}, CROSS)
    assert f.im == pytest.approx(900_000)
    assert f.utilization == pytest.approx(0.60)
    assert f.buffer == pytest.approx(0.40)
    assert f.mm == pytest.approx(145_000)
    assert f.mm_ratio == pytest.approx(145_000 / 1_500_000)


def test_portfolio_margin_nets_positions_per_underlying() -> None:
    """Long 60 / short 50 BTC nets to 10 BTC: worst 15% loss 90k plus 1% of 6.6M gross = 156k; IM × 1.3."""
    pm = MarginParams(
        "portfolio", TIERS, 0.10, im_multiplier=1.3, pm_min_rate=0.01, pm_shocks=(0.05, 0.10, 0.15)
    )
    book = (Position("BTC/USDT:USDT", "BTC", 60, 60_000), Position("BTC/USDC:USDC", "BTC", -50, 60_000))
    assert portfolio_mm(book, PRICES, pm) == pytest.approx(156_000)
    f = figures({"USDT": 450_000.0}, book, PRICES, {}, pm)
    assert f.im == pytest.approx(156_000 * 1.3)


def test_a_hedged_book_needs_less_portfolio_margin_than_a_naked_one() -> None:
    """Offsets count under the portfolio model: the hedged book's MM is far below the naked long's."""
    pm = MarginParams("portfolio", TIERS, 0.10)
    hedged = (Position("BTC/USDT:USDT", "BTC", 10, 60_000), Position("BTC/USDC:USDC", "BTC", -10, 60_000))
    naked = (Position("BTC/USDT:USDT", "BTC", 10, 60_000),)
    assert portfolio_mm(hedged, PRICES, pm) < portfolio_mm(naked, PRICES, pm) / 5


def test_utilization_is_infinite_when_equity_is_gone() -> None:
    """No equity left means utilization and liquidation ratio are infinite, never negative."""
    f = figures({"USDT": 100_000.0}, (Position("BTC/USDT:USDT", "BTC", 10, 80_000),), PRICES, {}, CROSS)
    assert f.equity < 0
    assert math.isinf(f.utilization)
    assert math.isinf(f.mm_ratio)


def test_topup_restores_the_target_buffer_counting_what_is_in_flight() -> None:
    """At 90% utilization, reaching a 30% buffer needs IM/0.7 − equity, less what is already on its way."""
    f = figures({"USDT": 1_000_000.0}, (Position("BTC/USDT:USDT", "BTC", -150, 60_000),), PRICES, {}, CROSS)
    need = topup_usd(f, 0.30, 0.0)
    assert need == pytest.approx(900_000 / 0.7 - 1_000_000)
    assert topup_usd(f, 0.30, 100_000.0) == pytest.approx(need - 100_000)
    assert topup_usd(f, 0.30, 10_000_000.0) == 0.0


def test_sweep_never_takes_the_buffer_below_target() -> None:
    """The sweepable excess leaves exactly the target buffer behind."""
    f = figures({"USDT": 3_000_000.0}, (Position("BTC/USDT:USDT", "BTC", -150, 60_000),), PRICES, {}, CROSS)
    excess = sweep_usd(f, 0.30)
    after = figures(
        {"USDT": 3_000_000.0 - excess}, (Position("BTC/USDT:USDT", "BTC", -150, 60_000),), PRICES, {}, CROSS
    )
    assert after.buffer == pytest.approx(0.30)
    assert after.equity > after.im


def _figures_by_definition(collateral, positions, prices, haircuts, p):  # type: ignore[no-untyped-def]
    """The two-pass definition `figures` fuses: equity, then `tiered_mm` or `portfolio_mm`."""
    equity = collateral_value(collateral, prices, haircuts)
    for pos in positions:
        equity += pos.qty * (prices[pos.base] - pos.entry)
    if p.model == "portfolio":
        mm = portfolio_mm(positions, prices, p)
        im = mm * p.im_multiplier
    else:
        mm = gross = 0.0
        for pos in positions:
            n = abs(pos.qty * prices[pos.base])
            gross += n
            mm += tiered_mm(n, p.tiers)
        im = gross * p.im_rate
    if equity <= 0.0:
        if im == 0.0 and mm == 0.0:
            return Figures(equity, 0.0, 0.0, 0.0, 0.0)
        return Figures(equity, im, mm, math.inf, math.inf)
    return Figures(equity, im, mm, im / equity, mm / equity)


_positions = st.lists(
    st.tuples(
        st.sampled_from(["BTC", "ETH"]),
        st.floats(min_value=-2_000, max_value=2_000),
        st.floats(min_value=100, max_value=100_000),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    _positions,
    st.floats(min_value=-1e6, max_value=1e8),
    st.floats(min_value=100, max_value=100_000),
    st.floats(min_value=100, max_value=10_000),
    st.sampled_from(["cross", "portfolio"]),
    st.sampled_from([TIERS, (Tier(1e6, 0.01, 100.0), Tier(math.inf, 0.02, 10_100.0))]),
)
def test_the_one_pass_figures_are_the_definition_to_the_bit(  # type: ignore[no-untyped-def]
    rows, usdt, btc, eth, model, tiers
) -> None:
    """`figures` walks the positions once; every sum is the definition's, term for term and in order."""
    positions = tuple(Position(f"{b}/USDT:USDT", b, q, e) for b, q, e in rows)
    prices = {"BTC": btc, "ETH": eth}
    params = MarginParams(model, tiers, 0.10)
    got = figures({"USDT": usdt, "ETH": 3.0}, positions, prices, {"ETH": 0.1}, params)
    assert got == _figures_by_definition({"USDT": usdt, "ETH": 3.0}, positions, prices, {"ETH": 0.1}, params)
