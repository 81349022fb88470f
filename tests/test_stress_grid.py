"""Stress projections: the vectorised `project` against the scalar reference, monotonicity, the default grid."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.bench_stress import synthetic_book, synthetic_scenarios
from bot.core.margin import Figures, MarginParams, Position, Tier, build_tiers
from bot.core.stress_grid import (
    PRICE_MOVES,
    Projection,
    Shock,
    StressScenario,
    default_grid,
    project,
    project_reference,
    underlyings,
)
from bot.core.world import VenueSnapshot

ASSETS = ("BTC", "ETH", "SOL")
MARK = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "USDC": 1.0}
COLLATERAL = {"USDT": (0.0, 5e6), "USDC": (0.0, 5e6), "BTC": (0.0, 80.0), "ETH": (0.0, 1_500.0)}
TIERS = build_tiers([(1_000_000, 0.005), (5_000_000, 0.01), (None, 0.025)])
FIELDS = ("equity", "im", "mm", "utilization", "mm_ratio")


def floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def tier_sets(draw: st.DrawFn) -> tuple[Tier, ...]:
    """One to three tiers with rising bounds and rates; the last bound open or not."""
    n = draw(st.integers(1, 3))
    bounds = sorted(draw(st.lists(floats(1e3, 2e7), min_size=n, max_size=n, unique=True)))
    rates = sorted(draw(st.lists(floats(0.0, 0.05), min_size=n, max_size=n)))
    spec: list[tuple[float | None, float]] = list(zip(bounds, rates, strict=True))
    if draw(st.booleans()):
        spec[-1] = (None, rates[-1])
    return build_tiers(spec)


@st.composite
def params(draw: st.DrawFn, model: str | None = None) -> MarginParams:
    return MarginParams(
        model or draw(st.sampled_from(("cross", "portfolio"))),
        draw(tier_sets()),
        im_rate=draw(floats(0.01, 0.6)),
        im_multiplier=draw(floats(1.0, 2.0)),
        pm_min_rate=draw(floats(0.0, 0.05)),
        pm_shocks=tuple(draw(st.lists(floats(0.01, 0.3), max_size=3))),
    )


@st.composite
def positions(draw: st.DrawFn, bases: list[str], prices: dict[str, float], sign: float = 0.0) -> Position:
    """A position of 100 USD to 8M notional; `sign` forces long (+1) or short (−1)."""
    base = draw(st.sampled_from(bases))
    side = sign or draw(st.sampled_from((-1.0, 1.0)))
    qty = side * draw(floats(100.0, 8e6)) / prices[base]
    entry = draw(st.one_of(st.just(prices[base]), floats(0.5, 1.5).map(lambda f: f * prices[base])))
    symbol = draw(st.sampled_from((f"{base}/USDT:USDT", f"{base}/USD:{base}")))
    return Position(symbol, base, qty, entry)


@st.composite
def collateral(draw: st.DrawFn, assets: tuple[str, ...] = tuple(COLLATERAL)) -> dict[str, float]:
    held = draw(st.lists(st.sampled_from(assets), unique=True, max_size=3))
    return {a: draw(floats(*COLLATERAL[a])) for a in held}


@st.composite
def venues(draw: st.DrawFn, name: str) -> VenueSnapshot:
    """A venue quoting some of BTC, ETH, SOL and USDC (marks within 2% of each other across venues)."""
    quoted = draw(st.lists(st.sampled_from((*ASSETS, "USDC")), min_size=1, unique=True))
    prices = {a: MARK[a] * draw(floats(0.98, 1.02)) for a in quoted}
    bases = [a for a in quoted if a != "USDC"]
    pos = tuple(draw(st.lists(positions(bases, prices), max_size=8))) if bases else ()
    haircuts = draw(
        st.dictionaries(st.sampled_from(("USDC", "BTC", "ETH", "SOL")), floats(0.0, 0.5), max_size=3)
    )
    return VenueSnapshot(name, 0.0, draw(collateral()), pos, prices, haircuts, draw(params()))


@st.composite
def books(draw: st.DrawFn) -> dict[str, VenueSnapshot]:
    n = draw(st.integers(1, 4))
    return {f"v{i}": draw(venues(f"v{i}")) for i in range(n)}


def shocks(names: list[str]) -> st.SearchStrategy[Shock]:
    """Every shock type, on every venue or one (or one that does not exist), on an asset or all of them."""
    venue = st.one_of(st.none(), st.sampled_from([*names, "elsewhere"]))
    asset = st.one_of(st.none(), st.sampled_from((*ASSETS, "USDC", "USDT", "DOGE")))
    return st.one_of(
        st.builds(Shock, st.just("price"), asset=asset, pct=st.one_of(st.none(), floats(-1.5, 2.0))),
        st.builds(Shock, st.just("vol"), asset=asset, venue=venue, factor=floats(0.1, 5.0)),
        st.builds(Shock, st.just("funding"), venue=venue, pct=floats(-0.01, 0.01)),
        st.builds(Shock, st.just("margin_rates"), venue=venue, factor=floats(0.1, 5.0)),
        st.builds(Shock, st.just("haircut"), venue=venue, asset=asset, value=floats(0.0, 1.0)),
        st.builds(Shock, st.just("freeze"), venue=st.sampled_from(names)),
        st.builds(
            Shock,
            st.just("liquidity"),
            venue=venue,
            factor=st.one_of(st.none(), st.just(0.0), floats(0.05, 1.0)),
        ),
    )


def scenarios(names: list[str]) -> st.SearchStrategy[list[StressScenario]]:
    one = st.builds(StressScenario, st.just("s"), st.lists(shocks(names), max_size=5).map(tuple))
    return st.lists(one, max_size=12)


def assert_same(got: Projection, want: Projection) -> None:
    """Every figure equal within a relative 1e-9, infinities and the zeros of an empty venue included."""
    assert (got.venues, got.scenarios) == (want.venues, want.scenarios)
    assert len(got.figures) == len(want.figures)
    for got_row, want_row in zip((*got.figures, got.base), (*want.figures, want.base), strict=True):
        assert len(got_row) == len(want_row)
        for g, w in zip(got_row, want_row, strict=True):
            for f in FIELDS:
                x, y = getattr(g, f), getattr(w, f)
                assert x == y or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), (f, g, w)


def at_least(after: float, before: float) -> bool:
    """`after` ≥ `before`, allowing for rounding (infinity is above everything)."""
    return after >= before or after >= before - 1e-9 * abs(before)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_vectorised_projection_equals_the_reference_on_random_books_and_shocks(data: st.DataObject) -> None:
    """On any book (several venues, both models, tiers, haircut collateral) under any shocks, `project` gives the
    reference's figures."""
    snaps = data.draw(books())
    scs = data.draw(scenarios(sorted(snaps)))
    assert_same(project(snaps, scs), project_reference(snaps, scs))


@settings(max_examples=150, deadline=None)
@given(books())
def test_vectorised_projection_equals_the_reference_on_the_default_grid(
    snaps: dict[str, VenueSnapshot],
) -> None:
    """On any book, the default grid of its own assets and venues projects to the reference's figures."""
    scs = default_grid(underlyings(snaps), sorted(snaps))
    assert_same(project(snaps, scs), project_reference(snaps, scs))


def test_vectorised_projection_is_identical_to_the_reference_not_just_close() -> None:
    """Sums run in the reference's order, so every figure is the same float (the equity ≤ 0 rule cannot flip)."""
    snaps = synthetic_book(venues=4, positions=60)
    scs = synthetic_scenarios(underlyings(snaps), sorted(snaps), count=40)
    assert project(snaps, scs) == project_reference(snaps, scs)


def test_an_empty_venue_stays_at_zero_and_a_losing_one_at_infinity() -> None:
    """Nothing open with no equity: zero ratios; open positions with equity at or below zero: infinite ratios."""
    params = MarginParams("cross", TIERS, 0.1)
    empty = VenueSnapshot("empty", 0.0, {}, (), {"BTC": 60_000.0}, {}, params)
    broke = VenueSnapshot(
        "broke",
        0.0,
        {"USDT": 1_000.0},
        (Position("BTC/USDT:USDT", "BTC", 1.0, 70_000.0),),
        {"BTC": 60_000.0},
        {},
        params,
    )
    scs = (StressScenario("dry", (Shock("liquidity", factor=0.2), Shock("funding", pct=0.003))),)
    got = project({"empty": empty, "broke": broke}, scs)
    assert got == project_reference({"empty": empty, "broke": broke}, scs)
    broke_fig, empty_fig = got.figures[0]
    assert (broke_fig.utilization, broke_fig.mm_ratio) == (math.inf, math.inf)
    assert empty_fig == Figures(0.0, 0.0, 0.0, 0.0, 0.0)


def test_no_venues_give_empty_rows_and_no_scenarios_only_the_base() -> None:
    """No venues: a row of nothing per scenario; no scenarios: only the base figures."""
    sc = StressScenario("x", (Shock("price", pct=-0.1),))
    assert project({}, [sc]) == project_reference({}, [sc])
    snaps = synthetic_book(venues=2, positions=5)
    got = project(snaps, [])
    assert got == project_reference(snaps, [])
    assert got.figures == ()
    assert len(got.base) == 2


def test_a_position_without_a_mark_fails_as_in_the_reference() -> None:
    """A position whose base the venue does not price raises KeyError, as `core.margin.figures` does."""
    snap = VenueSnapshot(
        "v",
        0.0,
        {},
        (Position("ETH/USDT:USDT", "ETH", 1.0, 3_000.0),),
        {"BTC": 60_000.0},
        {},
        MarginParams("cross", TIERS, 0.1),
    )
    with pytest.raises(KeyError):
        project_reference({"v": snap}, [])
    with pytest.raises(KeyError):
        project({"v": snap}, [])


# Monotonicity. Take a venue whose positions in BTC are all on one side and whose collateral holds no BTC, and
# move BTC further against that side (p2 beyond p1), everything else equal:
#   shorts, BTC up: equity falls while every margin figure rises, so utilization and the liquidation ratio never
#   fall — whatever the book;
#   longs, BTC down: equity falls, but so does margin, charged on a notional that shrinks with the price. A ratio
#   never falls while it is at least the rate at which the BTC positions are charged (utilization ≥ im_rate,
#   i.e. equity ≤ gross notional, on cross; ≥ (largest shock + minimum rate) × multiplier on portfolio; the
#   liquidation ratio ≥ the highest tier rate on cross, ≥ largest shock + minimum rate on portfolio). Below that,
#   an over-collateralised venue's ratios fall as its longs lose: see the example test after the properties.


@st.composite
def one_sided(draw: st.DrawFn, sign: float) -> dict[str, VenueSnapshot]:
    """One venue: BTC positions all of `sign`, other positions either way, collateral without BTC."""
    prices = {a: MARK[a] * draw(floats(0.98, 1.02)) for a in ASSETS}
    btc = draw(st.lists(positions(["BTC"], prices, sign), min_size=1, max_size=5))
    other = draw(st.lists(positions(["ETH", "SOL"], prices), max_size=5))
    order = draw(st.permutations([*btc, *other]))
    coll = draw(collateral(("USDT", "USDC", "ETH")))
    haircuts = draw(st.dictionaries(st.sampled_from(("USDC", "ETH")), floats(0.0, 0.5), max_size=2))
    return {"v": VenueSnapshot("v", 0.0, coll, tuple(order), prices, haircuts, draw(params()))}


def common_shocks() -> st.SearchStrategy[tuple[Shock, ...]]:
    """Shocks that leave BTC's price alone, applied to both sides of a comparison."""
    return st.lists(
        st.one_of(
            st.builds(Shock, st.just("price"), asset=st.sampled_from(("ETH", "SOL")), pct=floats(-0.5, 0.5)),
            st.builds(Shock, st.just("margin_rates"), factor=floats(0.5, 3.0)),
            st.builds(Shock, st.just("vol"), factor=floats(0.5, 3.0)),
        ),
        max_size=3,
    ).map(tuple)


def moved(
    snaps: dict[str, VenueSnapshot], pcts: tuple[float, float], common: tuple[Shock, ...]
) -> list[Figures]:
    scs = [StressScenario(f"BTC {p:+.2%}", (*common, Shock("price", asset="BTC", pct=p))) for p in pcts]
    return [row[0] for row in project(snaps, scs).figures]


@settings(max_examples=300, deadline=None)
@given(one_sided(-1.0), floats(0.0, 1.0), floats(0.01, 1.0), common_shocks())
def test_a_larger_rise_never_lowers_the_ratios_of_a_venue_short_the_asset(
    snaps: dict[str, VenueSnapshot], p1: float, gap: float, common: tuple[Shock, ...]
) -> None:
    """For a venue short BTC on every position (no BTC collateral), BTC up more never lowers utilization or the
    liquidation ratio."""
    milder, harder = moved(snaps, (p1, p1 + gap), common)
    assert at_least(harder.utilization, milder.utilization), (milder, harder)
    assert at_least(harder.mm_ratio, milder.mm_ratio), (milder, harder)


@settings(max_examples=300, deadline=None)
@given(one_sided(1.0), floats(-0.6, 0.0), floats(0.01, 0.3), common_shocks())
def test_a_larger_fall_never_lowers_a_ratio_already_at_the_rate_the_longs_are_charged(
    snaps: dict[str, VenueSnapshot], p1: float, gap: float, common: tuple[Shock, ...]
) -> None:
    """For a venue long BTC on every position, BTC down more never lowers a ratio that is at least the marginal
    rate of the BTC positions (margin then falls no faster than equity)."""
    milder, harder = moved(snaps, (p1, p1 - gap), common)
    snap = snaps["v"]
    p = snap.params
    factor = math.prod(s.factor or 1.0 for s in common if s.type == "margin_rates")
    vol = math.prod(s.factor or 1.0 for s in common if s.type == "vol")
    if p.model == "cross":
        im_rate = min(1.0, p.im_rate * factor)  # at least the clamped rate the hikes leave
        mm_rate = max(t.rate for t in p.tiers) * factor
    else:
        mm_rate = (max(p.pm_shocks, default=0.0) * vol + p.pm_min_rate) * factor
        im_rate = mm_rate * p.im_multiplier
    if milder.utilization >= im_rate * (1 + 1e-9):
        assert at_least(harder.utilization, milder.utilization), (milder, harder)
    if milder.mm_ratio >= mm_rate * (1 + 1e-9):
        assert at_least(harder.mm_ratio, milder.mm_ratio), (milder, harder)


def test_an_over_collateralised_long_venue_sees_its_ratios_fall_as_its_longs_lose() -> None:
    """Long 10 BTC on 1M USDT: BTC −30% instead of −5% takes 15% of the equity but 26% of the margin, so the ratios
    fall — the one-sided property does not hold for longs without the rate condition above."""
    long_btc = (Position("BTC/USDT:USDT", "BTC", 10.0, 60_000.0),)
    params = MarginParams("cross", TIERS, 0.1)
    snap = VenueSnapshot("v", 0.0, {"USDT": 1_000_000.0}, long_btc, {"BTC": 60_000.0}, {}, params)
    milder, harder = moved({"v": snap}, (-0.05, -0.30), ())
    assert harder.equity < milder.equity
    assert harder.utilization < milder.utilization
    assert harder.mm_ratio < milder.mm_ratio


@settings(max_examples=200, deadline=None)
@given(books(), floats(0.1, 4.0), floats(0.01, 3.0))
def test_a_larger_margin_factor_never_lowers_the_ratios(
    snaps: dict[str, VenueSnapshot], f1: float, gap: float
) -> None:
    """Rates × f2 against × f1 < f2 on every venue: equity is unchanged and every margin figure grows, so neither
    utilization nor the liquidation ratio falls."""
    scs = [StressScenario(f"×{f}", (Shock("margin_rates", factor=f),)) for f in (f1, f1 * (1 + gap))]
    lower, higher = project(snaps, scs).figures
    for a, b in zip(lower, higher, strict=True):
        assert b.equity == a.equity
        assert at_least(b.utilization, a.utilization), (a, b)
        assert at_least(b.mm_ratio, a.mm_ratio), (a, b)


def _has(grid: tuple[StressScenario, ...], *shocks: Shock) -> bool:
    return any(set(sc.shocks) == set(shocks) for sc in grid)


def test_the_default_grid_covers_every_stress_the_desk_asked_for() -> None:
    """Per-asset and joint moves both ways, vol spikes, funding flips, hikes per venue and on all, haircuts, a freeze
    of each venue alone and during a joint ±20% move, and a liquidity drought."""
    assets, names = ["BTC", "ETH"], ["okx", "bybit"]
    grid = default_grid(assets, names)
    for m in PRICE_MOVES:
        for pct in (-m, m):
            assert _has(grid, Shock("price", pct=pct))
            for a in assets:
                assert _has(grid, Shock("price", asset=a, pct=pct))
    for f in (2.0, 3.0):
        assert _has(grid, Shock("vol", factor=f))
    assert _has(grid, Shock("funding", pct=0.003))
    assert _has(grid, Shock("funding", pct=-0.003))
    for f in (1.5, 2.0):
        assert _has(grid, Shock("margin_rates", factor=f))
        for v in names:
            assert _has(grid, Shock("margin_rates", venue=v, factor=f))
    assert _has(grid, *(Shock("haircut", asset=a, value=0.25) for a in assets))
    for v in names:
        assert _has(grid, Shock("freeze", venue=v))
        for pct in (-0.2, 0.2):
            assert _has(grid, Shock("freeze", venue=v), Shock("price", pct=pct))
    assert _has(grid, Shock("liquidity", factor=0.2))
    assert len({sc.name for sc in grid}) == len(grid)
    assert {sc.frozen for sc in grid if sc.frozen} == {frozenset({v}) for v in names}


def test_a_single_asset_grid_has_no_joint_moves() -> None:
    """With one asset a joint move would repeat the per-asset one, so the grid leaves it out."""
    grid = default_grid(["BTC"], ["okx"])
    assert not any(
        s.type == "price" and s.asset is None and len(sc.shocks) == 1 for sc in grid for s in sc.shocks
    )
