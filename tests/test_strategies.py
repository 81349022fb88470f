"""The pure hedge core: strategies (static, dynamic_band, funding_rotation), their registry, and the ledger."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies
from bot.core.hedge import HedgeInputs, HedgeSpec, Instrument, OrderReason, Quote, StopRule, Trade
from bot.core.hedge_book import HedgeState, stop_reason
from strategies.dynamic_band import DynamicBand
from strategies.funding_rotation import FundingRotation
from strategies.static import Static

NOW = 1_770_000_000.0
A = Instrument("v1", "BTC/USDT:USDT", fee_bps=5.0)
B = Instrument("v2", "BTC/USDT:USDT", fee_bps=5.0)
MARK = 60_000.0


def spec(**kw: object) -> HedgeSpec:
    base: dict[str, object] = {
        "name": "h1",
        "asset": "BTC",
        "strategy": "dynamic_band",
        "exposure": 10.0,
        "target_delta": 0.0,
        "band": 0.5,
        "min_trade": 0.01,
        "max_slippage_bps": 5.0,
        "instruments": (A, B),
    }
    base.update(kw)
    return HedgeSpec(**base)  # type: ignore[arg-type]


def quotes(rate_a: float = 0.0001, rate_b: float = 0.0001, *, b_up: bool = True) -> dict[str, Quote]:
    return {A.key: Quote(MARK, rate_a, True), B.key: Quote(MARK, rate_b, b_up)}


def inputs(
    s: HedgeSpec | None = None,
    *,
    exposure: float = 10.0,
    holdings: dict[str, float] | None = None,
    q: dict[str, Quote] | None = None,
    hedged: float | None = None,
    recent: tuple[float, ...] = (),
    now: float = NOW,
) -> HedgeInputs:
    return HedgeInputs(
        spec=s or spec(),
        now=now,
        exposure=exposure,
        holdings=holdings or {},
        quotes=q or quotes(),
        hedged_exposure=hedged,
        recent_trades=recent,
    )


# --- static -------------------------------------------------------------------------------------------------


def test_static_first_hedge_trades_net_delta_to_target() -> None:
    """With no trade on record, static proposes one rebalance taking net delta to the target."""
    (t,) = Static().propose(inputs(spec(target_delta=2.0), exposure=10.0, hedged=None))
    assert t.qty == pytest.approx(-8.0)
    assert t.reason is OrderReason.REBALANCE
    assert "first hedge" in t.note


def test_static_holds_while_exposure_is_unchanged_even_far_from_target() -> None:
    """Static never trades on drift alone: same exposure as at its last trade means no trade."""
    assert Static().propose(inputs(exposure=10.0, holdings={A.key: -3.0}, hedged=10.0)) == ()


def test_static_trades_again_when_exposure_changes() -> None:
    """A changed exposure makes static hedge the difference back to target."""
    (t,) = Static().propose(inputs(exposure=12.0, holdings={A.key: -10.0}, hedged=10.0))
    assert t.qty == pytest.approx(-2.0)
    assert "exposure changed" in t.note


def test_static_drops_a_change_smaller_than_min_trade() -> None:
    """An exposure change below min_trade is not worth a trade."""
    s = spec(min_trade=0.5)
    assert Static().propose(inputs(s, exposure=10.2, holdings={A.key: -10.0}, hedged=10.0)) == ()


# --- dynamic_band -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("held", [-9.75, -9.5, -10.5, -10.0])
def test_dynamic_band_does_nothing_inside_the_band_or_on_its_edge(held: float) -> None:
    """A deviation within ±band, including exactly ±band, proposes nothing."""
    assert DynamicBand().propose(inputs(exposure=10.0, holdings={A.key: held})) == ()


def test_dynamic_band_outside_trades_back_to_target() -> None:
    """Outside the band, one rebalance of −(net delta − target) is proposed."""
    s = spec(target_delta=1.0, band=0.5)
    (t,) = DynamicBand().propose(inputs(s, exposure=10.0, holdings={A.key: -4.0, B.key: -4.25}))
    assert t.qty == pytest.approx(-0.75)  # net 1.75, target 1
    assert t.reason is OrderReason.REBALANCE
    assert t.instruments == ()
    assert not t.reduce_only


def test_dynamic_band_drops_trades_below_min_trade() -> None:
    """A trade smaller than min_trade is dropped, one at min_trade goes."""
    s = spec(band=0.5, min_trade=1.0)
    assert DynamicBand().propose(inputs(s, exposure=10.0, holdings={A.key: -9.25})) == ()
    (t,) = DynamicBand().propose(inputs(s, exposure=10.0, holdings={A.key: -9.0}))
    assert t.qty == pytest.approx(-1.0)


def test_dynamic_band_stops_at_the_hourly_trade_cap() -> None:
    """max_trades_per_hour trades within the last 3600 s block a further one."""
    s = spec(max_trades_per_hour=3)
    recent = (NOW - 10.0, NOW - 100.0, NOW - 3599.0)
    assert DynamicBand().propose(inputs(s, exposure=10.0, recent=recent)) == ()


@pytest.mark.parametrize("age", [3600.0, 4000.0])
def test_dynamic_band_does_not_count_trades_an_hour_old_or_older(age: float) -> None:
    """A trade an hour or more ago no longer counts against the hourly cap."""
    s = spec(max_trades_per_hour=3)
    recent = (NOW - 10.0, NOW - 100.0, NOW - age)
    (t,) = DynamicBand().propose(inputs(s, exposure=10.0, recent=recent))
    assert t.qty == pytest.approx(-10.0)


# --- funding_rotation ---------------------------------------------------------------------------------------


def test_funding_rotation_short_hedge_goes_first_where_a_positive_rate_pays_most() -> None:
    """For a short hedge a positive rate is income, so the highest-rate instrument comes first."""
    (t,) = FundingRotation().propose(inputs(exposure=10.0, q=quotes(0.0001, 0.0003)))
    assert t.qty == pytest.approx(-10.0)
    assert t.instruments == (B.key, A.key)


def test_funding_rotation_long_hedge_goes_first_where_the_rate_is_lowest() -> None:
    """For a long hedge a positive rate is a cost, so the lowest-rate instrument comes first."""
    (t,) = FundingRotation().propose(inputs(exposure=-10.0, q=quotes(0.0001, 0.0003)))
    assert t.qty == pytest.approx(10.0)
    assert t.instruments == (A.key, B.key)


def test_funding_rotation_rotates_when_the_saving_beats_the_round_trip() -> None:
    """Saving 1,080 USD over 24 h against a 900 USD round trip: unwind on A, rebalance onto B."""
    # notional 600k; saving = 600k × (0.0007 − 0.0001) × 3 = 1,080; round trip = 600k × 15 bps = 900
    trades = FundingRotation().propose(
        inputs(exposure=10.0, holdings={A.key: -10.0}, q=quotes(0.0001, 0.0007))
    )
    assert trades == (
        Trade(10.0, OrderReason.UNWIND, instruments=(A.key,), reduce_only=True, note=trades[0].note),
        Trade(-10.0, OrderReason.REBALANCE, instruments=(B.key,), note=trades[1].note, match_previous=True),
    )
    assert "rotate" in trades[0].note


def test_funding_rotation_holds_when_the_saving_is_below_the_round_trip() -> None:
    """Saving 720 USD over 24 h does not pay for a 900 USD round trip."""
    assert (
        FundingRotation().propose(inputs(exposure=10.0, holdings={A.key: -10.0}, q=quotes(0.0001, 0.0005)))
        == ()
    )


def test_funding_rotation_counts_both_fees_in_the_round_trip() -> None:
    """With 20 bps fees per leg the 1,080 USD saving no longer beats the 2,700 USD round trip."""
    s = spec(instruments=(dataclasses.replace(A, fee_bps=20.0), dataclasses.replace(B, fee_bps=20.0)))
    got = FundingRotation().propose(
        inputs(s, exposure=10.0, holdings={A.key: -10.0}, q=quotes(0.0001, 0.0007))
    )
    assert got == ()


def test_funding_rotation_saving_scales_with_the_horizon() -> None:
    """A 720 USD saving over 24 h is 1,440 USD over 48 h, enough to rotate."""
    s = spec(funding_horizon_hours=48.0)
    trades = FundingRotation().propose(
        inputs(s, exposure=10.0, holdings={A.key: -10.0}, q=quotes(0.0001, 0.0005))
    )
    assert [t.reason for t in trades] == [OrderReason.UNWIND, OrderReason.REBALANCE]


def test_funding_rotation_never_rotates_to_an_unavailable_instrument() -> None:
    """A far cheaper instrument whose venue did not answer is neither a rotation target nor ranked."""
    q = quotes(0.0001, 0.01, b_up=False)
    assert FundingRotation().propose(inputs(exposure=10.0, holdings={A.key: -10.0}, q=q)) == ()
    (t,) = FundingRotation().propose(inputs(exposure=10.0, q=q))
    assert t.instruments == (A.key,)


# --- registry -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [("static", Static), ("dynamic_band", DynamicBand), ("funding_rotation", FundingRotation)],
)
def test_registry_returns_each_strategy_by_name(name: str, cls: type) -> None:
    """strategies.get returns the strategy registered under its own name."""
    got = strategies.get(name)
    assert isinstance(got, cls)
    assert got.name == name


def test_registry_unknown_name_raises_keyerror_listing_known_names() -> None:
    """An unknown strategy name raises KeyError naming all three known strategies."""
    with pytest.raises(KeyError) as err:
        strategies.get("martingale")
    for name in ("static", "dynamic_band", "funding_rotation"):
        assert name in str(err.value)


# --- properties of dynamic_band -----------------------------------------------------------------------------


def floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    exposure=floats(-1000, 1000),
    held_a=floats(-1000, 1000),
    held_b=floats(-1000, 1000),
    band=floats(0.01, 50),
    target=floats(-50, 50),
    min_trade=floats(0, 5),
)
def test_dynamic_band_trades_iff_outside_band_and_lands_inside(
    exposure: float, held_a: float, held_b: float, band: float, target: float, min_trade: float
) -> None:
    """No trade within ±band; outside it (and above min_trade) one trade that puts net delta back in band."""
    inp = inputs(
        spec(band=band, target_delta=target, min_trade=min_trade),
        exposure=exposure,
        holdings={A.key: held_a, B.key: held_b},
    )
    trades = DynamicBand().propose(inp)
    dev = inp.deviation
    if abs(dev) <= band or abs(dev) < min_trade:
        assert trades == ()
        return
    (t,) = trades
    after = exposure + held_a + held_b + t.qty
    assert abs(after - target) <= band
    assert abs(after - target) <= 1e-9 * (1.0 + abs(exposure) + abs(held_a) + abs(held_b))


@settings(max_examples=200, deadline=None)
@given(
    exposure=floats(-1000, 1000),
    held=floats(-1000, 1000),
    band=floats(0.01, 50),
    ages=st.lists(floats(0, 7200), max_size=8),
    cap=st.integers(1, 6),
)
def test_dynamic_band_is_deterministic(
    exposure: float, held: float, band: float, ages: list[float], cap: int
) -> None:
    """Two equal inputs built separately give equal proposals."""

    def build() -> HedgeInputs:
        s = spec(band=band, max_trades_per_hour=cap)
        return inputs(s, exposure=exposure, holdings={A.key: held}, recent=tuple(NOW - a for a in ages))

    assert DynamicBand().propose(build()) == DynamicBand().propose(build())


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(1, 1200), floats(-5, 5)), min_size=1, max_size=80),
    cap=st.integers(1, 6),
    band=floats(0.05, 2),
)
def test_dynamic_band_never_exceeds_the_hourly_cap_over_a_path(
    steps: list[tuple[int, float]], cap: int, band: float
) -> None:
    """Fed its own trade times back, dynamic_band never trades more than max_trades_per_hour in any hour."""
    s = spec(band=band, max_trades_per_hour=cap, min_trade=0.0)
    now, exposure, held = NOW, 0.0, 0.0
    times: list[float] = []
    for dt, dx in steps:
        now += dt
        exposure += dx
        recent = tuple(t for t in times if now - t < 3600.0)
        for t in DynamicBand().propose(
            inputs(s, exposure=exposure, holdings={A.key: held}, recent=recent, now=now)
        ):
            held += t.qty
            times.append(now)
    for end in times:
        assert sum(1 for t in times if end - 3600.0 < t <= end) <= cap


# --- the ledger (HedgeState) --------------------------------------------------------------------------------

K = A.key


def test_fill_adds_at_weighted_entry() -> None:
    """Adding to a holding averages its entry by quantity."""
    st_ = HedgeState().fill(K, -1.0, 60_000.0, 3.0).fill(K, -3.0, 62_000.0, 9.0)
    assert st_.holdings[K] == pytest.approx(-4.0)
    assert st_.entries[K] == pytest.approx(61_500.0)
    assert st_.fees == pytest.approx(12.0)
    assert st_.realized == 0.0


def test_fill_reduction_realizes_pnl_and_keeps_entry() -> None:
    """Buying back part of a short realizes (entry − price) per unit and keeps the entry."""
    st_ = HedgeState().fill(K, -2.0, 61_000.0, 0.0).fill(K, 1.0, 59_000.0, 0.0)
    assert st_.realized == pytest.approx(2_000.0)
    assert st_.holdings[K] == pytest.approx(-1.0)
    assert st_.entries[K] == pytest.approx(61_000.0)


def test_fill_flip_realizes_the_closed_part_and_reopens_at_the_fill_price() -> None:
    """A fill past zero realizes the closed quantity and opens the rest at the fill price."""
    st_ = HedgeState().fill(K, -1.0, 61_000.0, 0.0).fill(K, 3.0, 58_000.0, 0.0)
    assert st_.realized == pytest.approx(3_000.0)
    assert st_.holdings[K] == pytest.approx(2.0)
    assert st_.entries[K] == pytest.approx(58_000.0)


def test_fill_closing_to_zero_forgets_the_instrument() -> None:
    """A holding closed to zero leaves neither a holding nor an entry behind."""
    st_ = HedgeState().fill(K, -1.0, 61_000.0, 0.0).fill(K, 1.0, 60_000.0, 0.0)
    assert K not in st_.holdings
    assert K not in st_.entries
    assert st_.realized == pytest.approx(1_000.0)


def test_cost_sums_hedge_and_gamma_exposure_pnl() -> None:
    """Cost = realized + unrealized hedge PnL, plus the exposure PnL, the integral of its delta."""
    s = spec(gamma=2.0)
    st_ = HedgeState().set_exposure(s, 10.0, 60_000.0).fill(K, -10.0, 60_000.0, 30.0)
    price = 61_200.0
    c = st_.cost(s, price, {K: price})
    n = 1200
    h = (price - 60_000.0) / n
    integral = sum(st_.exposure(s, 60_000.0 + (i + 0.5) * h) * h for i in range(n))  # midpoint rule
    assert c.exposure_pnl == pytest.approx(integral, rel=1e-9)
    assert c.exposure_pnl == pytest.approx(14_400.0)  # 10 × 1200 + 2 × 1200² / (2 × 600)
    assert c.hedge_pnl == pytest.approx(-12_000.0)
    assert c.loss == pytest.approx(-2_400.0 + 30.0)  # the gamma gain less fees


def test_cost_uses_entry_when_a_mark_is_missing() -> None:
    """An instrument with no mark this cycle contributes no unrealized PnL."""
    st_ = HedgeState().fill(K, -1.0, 61_000.0, 0.0)
    assert st_.cost(spec(), 60_000.0, {}).hedge_pnl == 0.0


def test_funding_first_boundary_only_records_the_period() -> None:
    """The first funding boundary seen charges nothing: the holding may not have spanned the period."""
    st_ = HedgeState().fill(K, 2.0, MARK, 0.0).charge_funding(1, NOW, {K: MARK}, {K: 0.0001})
    assert st_.funding == 0.0
    assert st_.funding_period == 1
    assert st_.funding_drag(NOW) is None


def test_funding_longs_pay_shorts_receive_and_drag_is_in_bps_per_day() -> None:
    """A long pays q × mark × rate at a boundary; drag is that over notional, × 3 periods, in bps."""
    long_ = (
        HedgeState(funding_period=1).fill(K, 2.0, MARK, 0.0).charge_funding(2, NOW, {K: MARK}, {K: 0.0001})
    )
    assert long_.funding == pytest.approx(12.0)
    assert long_.funding_drag(NOW) == pytest.approx(3.0)
    short = (
        HedgeState(funding_period=1).fill(K, -2.0, MARK, 0.0).charge_funding(2, NOW, {K: MARK}, {K: 0.0001})
    )
    assert short.funding == pytest.approx(-12.0)
    assert short.funding_drag(NOW) == pytest.approx(-3.0)


def test_funding_drag_averages_only_the_last_day() -> None:
    """Charges older than 24 h drop out of the drag average."""
    st_ = HedgeState(funding_charges=((NOW - 90_000.0, 50.0), (NOW - 100.0, 4.0), (NOW, 2.0)))
    assert st_.funding_drag(NOW) == pytest.approx(3.0)
    assert st_.funding_drag(NOW + 200_000.0) is None


def test_stop_reason_on_max_loss() -> None:
    """A running cost above max_loss_usd stops the program; at the limit it does not."""
    s = spec(stop=StopRule(max_loss_usd=1_000.0))
    st_ = HedgeState().fill(K, -1.0, 60_000.0, 0.0)
    over = st_.cost(s, 0.0, {K: 61_000.01})
    at = st_.cost(s, 0.0, {K: 61_000.0})
    assert "max_loss_usd" in (stop_reason(s, st_, over, NOW) or "")
    assert stop_reason(s, st_, at, NOW) is None


def test_stop_reason_on_funding_drag() -> None:
    """A 24 h funding drag above max_funding_drag_bps_per_day stops the program."""
    s = spec(stop=StopRule(max_funding_drag_bps_per_day=5.0))
    cost = HedgeState().cost(s, MARK, {})
    assert "max_funding_drag" in (stop_reason(s, HedgeState(funding_charges=((NOW, 6.0),)), cost, NOW) or "")
    assert stop_reason(s, HedgeState(funding_charges=((NOW, 4.0),)), cost, NOW) is None


def test_ledger_json_round_trip_is_lossless() -> None:
    """to_json then from_json gives back an equal ledger, tuples and all."""
    s = spec(gamma=1.5)
    st_ = (
        HedgeState(config_exposure=10.0, funding_period=7)
        .set_exposure(s, 10.0, 60_000.0)
        .fill(K, -3.0, 60_100.5, 9.1)
        .fill(B.key, 1.0 / 3.0, 59_999.9, 0.2)
        .traded(NOW, 10.0)
        .traded(NOW + 5, 10.0)
    )
    st_ = dataclasses.replace(st_, funding_charges=((NOW, 1.25), (NOW + 1.0, -0.5))).stop("why")
    back = HedgeState.from_json(st_.to_json())
    assert back == st_
    assert isinstance(back.trades, tuple)
    assert back.funding_charges == ((NOW, 1.25), (NOW + 1.0, -0.5))


def test_scale_holding_shrinks_pro_rata_and_keeps_entry() -> None:
    """A shared de-risk scales a holding by the factor; zero removes it; unknown keys are untouched."""
    st_ = HedgeState().fill(K, -4.0, 60_000.0, 0.0)
    half = st_.scale_holding(K, 0.5, None)
    assert half.holdings[K] == pytest.approx(-2.0)
    assert half.entries[K] == 60_000.0
    assert half.realized == 0.0  # no price known: closed at entry
    assert K not in st_.scale_holding(K, 0.0, None).holdings
    assert st_.scale_holding("nowhere|X", 0.5, 1.0) is st_


def test_scale_holding_realizes_the_pnl_of_the_part_the_venue_closed() -> None:
    """A short of 4 at 60k of which the venue closes half at 48k realizes 2 × 12k = 24k of profit."""
    st_ = HedgeState().fill(K, -4.0, 60_000.0, 0.0)
    half = st_.scale_holding(K, 0.5, 48_000.0)
    assert half.realized == pytest.approx(24_000.0)
    marks = {K: 48_000.0}
    assert half.cost(spec(), 48_000.0, marks).hedge_pnl == pytest.approx(
        st_.cost(spec(), 48_000.0, marks).hedge_pnl
    )


def test_set_exposure_banks_the_open_segment() -> None:
    """A new exposure banks the old segment's PnL, and the new one accrues from its own price."""
    s = spec(gamma=1.0)
    st_ = HedgeState().set_exposure(s, 10.0, 60_000.0).set_exposure(s, 5.0, 60_600.0)
    banked = 10.0 * 600.0 + 1.0 * 600.0**2 / (2 * 600.0)
    assert st_.exposure_closed_pnl == pytest.approx(banked)
    later = st_.cost(s, 61_206.0, {})
    assert later.exposure_pnl == pytest.approx(banked + 5.0 * 606.0 + 606.0**2 / (2 * 606.0))
    assert st_.set_exposure(s, 2.0, 61_206.0).exposure_closed_pnl == pytest.approx(later.exposure_pnl)
    assert st_.exposure(s, 60_600.0) == 5.0
    assert math.isclose(st_.net_delta(s, 60_600.0), 5.0)
