"""Stress scenarios: shocks, the default grid, and what each scenario does to every venue's margin.

A scenario is a set of shocks applied at once to the current snapshots:

    price        {asset?, pct}      the asset's price × (1 + pct); no asset: every non-stable asset at once
    vol          {asset?, factor}   portfolio-margin venues' shock ranges × factor (a volatility spike);
                                    with an asset, only venues that hold it
    funding      {venue?, pct}      one day (3 periods) of funding at `pct` per 8 h (positive: longs pay)
    margin_rates {venue?, factor}   every margin rate × factor (tiers, IM rate, PM shocks and minimum)
    haircut      {venue?, asset, value}  the asset's haircut set to `value`
    freeze       {venue}            no transfer in or out of that venue or account (coverage only)
    liquidity    {venue?, factor}   order books at `factor` of their depth: the cost of exiting every position,
                                    LIQUIDITY_COST_BPS / factor of its notional, is taken from equity

`venue` omitted means every venue. `project_reference` is the scalar definition: for each scenario and venue
it shocks the snapshot and calls `core.margin.figures`. `project` is the vectorised evaluation used by the
`stress` command and the bench, and must agree with the reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from bot.core.margin import Figures, figures, scale_params
from bot.core.world import VenueSnapshot

STABLES = frozenset({"USDT", "USDC", "USD", "DAI", "FDUSD"})
LIQUIDITY_COST_BPS = 10.0  # exit cost of a position at normal depth, in bps of its notional
FUNDING_PERIODS = 3  # a funding shock runs for one day of 8-hour periods
PRICE_MOVES = (0.05, 0.10, 0.20, 0.30)
SHOCK_TYPES = ("price", "vol", "funding", "margin_rates", "haircut", "freeze", "liquidity")


@dataclass(frozen=True, slots=True)
class Shock:
    type: str  # one of SHOCK_TYPES
    asset: str | None = None
    venue: str | None = None  # None: every venue
    pct: float | None = None
    factor: float | None = None
    value: float | None = None

    def applies_to(self, venue: str) -> bool:
        return self.venue is None or self.venue == venue


@dataclass(frozen=True, slots=True)
class StressScenario:
    name: str
    shocks: tuple[Shock, ...]
    origin: str = "default"  # default | config

    @property
    def frozen(self) -> frozenset[str]:
        """Venues and accounts this scenario freezes."""
        return frozenset(s.venue for s in self.shocks if s.type == "freeze" and s.venue is not None)


@dataclass(frozen=True, slots=True)
class Projection:
    """Every venue's figures under every scenario: `figures[k][v]` for scenario k, venue `venues[v]`."""

    venues: tuple[str, ...]
    scenarios: tuple[StressScenario, ...]
    figures: tuple[tuple[Figures, ...], ...]
    base: tuple[Figures, ...] = field(default_factory=tuple)  # the unshocked figures, per venue


def underlyings(snapshots: Mapping[str, VenueSnapshot]) -> list[str]:
    """Assets a price shock can move: position bases and non-stable collateral, sorted."""
    out: set[str] = set()
    for snap in snapshots.values():
        out.update(p.base for p in snap.positions)
        out.update(a for a, q in snap.collateral.items() if q and a not in STABLES)
    return sorted(out)


def default_grid(assets: Sequence[str], venues: Sequence[str]) -> tuple[StressScenario, ...]:
    """The standard grid: price moves per asset and jointly, volatility spikes, funding flips, margin hikes
    on each venue and on all, a haircut increase, a freeze of each venue in turn (alone and during a joint
    20% move either way), and a liquidity drought."""
    out: list[StressScenario] = []

    def pct(x: float) -> str:
        return f"{x * 100:+.0f}%"

    for a in assets:
        for m in PRICE_MOVES:
            for sign in (-1.0, 1.0):
                out.append(StressScenario(f"{a} {pct(sign * m)}", (Shock("price", asset=a, pct=sign * m),)))
    if len(assets) > 1:
        for m in PRICE_MOVES:
            for sign in (-1.0, 1.0):
                out.append(StressScenario(f"all {pct(sign * m)}", (Shock("price", pct=sign * m),)))
    for f in (2.0, 3.0):
        out.append(StressScenario(f"volatility ×{f:g}", (Shock("vol", factor=f),)))
    for rate in (0.003, -0.003):
        out.append(StressScenario(f"funding {rate * 100:+.1f}%/8h for a day", (Shock("funding", pct=rate),)))
    for f in (1.5, 2.0):
        for v in venues:
            out.append(StressScenario(f"{v} margin ×{f:g}", (Shock("margin_rates", venue=v, factor=f),)))
        out.append(StressScenario(f"all margin ×{f:g}", (Shock("margin_rates", factor=f),)))
    if assets:
        out.append(
            StressScenario("haircuts 25%", tuple(Shock("haircut", asset=a, value=0.25) for a in assets))
        )
    for v in venues:
        out.append(StressScenario(f"{v} frozen", (Shock("freeze", venue=v),)))
        for sign in (-1.0, 1.0):
            out.append(
                StressScenario(
                    f"{v} frozen, all {pct(sign * 0.2)}",
                    (Shock("freeze", venue=v), Shock("price", pct=sign * 0.2)),
                )
            )
    out.append(StressScenario("liquidity drought (books at 20%)", (Shock("liquidity", factor=0.2),)))
    return tuple(out)


def shocked(snap: VenueSnapshot, scenario: StressScenario) -> tuple[VenueSnapshot, float]:
    """The snapshot under the scenario, and the USD taken from its equity (funding, exit costs)."""
    prices = dict(snap.prices)
    haircuts = dict(snap.haircuts)
    params = snap.params
    vol = 1.0
    for s in scenario.shocks:
        if s.type == "price" and s.pct is not None:
            for a in [s.asset] if s.asset else [a for a in prices if a not in STABLES]:
                if a in prices:
                    prices[a] = prices[a] * (1.0 + s.pct)
        elif s.type == "margin_rates" and s.factor is not None and s.applies_to(snap.venue):
            params = scale_params(params, s.factor)
        elif s.type == "haircut" and s.asset and s.value is not None and s.applies_to(snap.venue):
            haircuts[s.asset] = s.value
        elif (
            s.type == "vol"
            and s.factor is not None
            and s.applies_to(snap.venue)
            and (s.asset is None or any(p.base == s.asset for p in snap.positions))
        ):
            vol *= s.factor
    if vol != 1.0 and params.model == "portfolio":
        params = replace(params, pm_shocks=tuple(x * vol for x in params.pm_shocks))
    cost = 0.0
    for s in scenario.shocks:
        if not s.applies_to(snap.venue):
            continue
        if s.type == "funding" and s.pct is not None:
            cost += sum(p.qty * prices.get(p.base, 0.0) for p in snap.positions) * s.pct * FUNDING_PERIODS
        elif s.type == "liquidity" and s.factor:
            gross = sum(abs(p.qty) * prices.get(p.base, 0.0) for p in snap.positions)
            cost += gross * LIQUIDITY_COST_BPS / 10_000.0 / s.factor
    return replace(snap, prices=prices, haircuts=haircuts, params=params), cost


def with_cost(f: Figures, cost: float) -> Figures:
    """Figures after `cost` USD left the equity."""
    if cost == 0.0:
        return f
    equity = f.equity - cost
    if equity <= 0.0:
        inf = math.inf if (f.im or f.mm) else 0.0
        return Figures(equity, f.im, f.mm, inf, inf)
    return Figures(equity, f.im, f.mm, f.im / equity, f.mm / equity)


def venue_figures(snap: VenueSnapshot) -> Figures:
    return figures(snap.collateral, snap.positions, snap.prices, snap.haircuts, snap.params)


def project_reference(
    snapshots: Mapping[str, VenueSnapshot], scenarios: Sequence[StressScenario]
) -> Projection:
    """The scalar definition of a projection (slow; tests hold `project` to it)."""
    venues = tuple(sorted(snapshots))
    rows = []
    for sc in scenarios:
        row = []
        for v in venues:
            snap, cost = shocked(snapshots[v], sc)
            row.append(with_cost(venue_figures(snap), cost))
        rows.append(tuple(row))
    base = tuple(venue_figures(snapshots[v]) for v in venues)
    return Projection(venues, tuple(scenarios), tuple(rows), base)


def project(snapshots: Mapping[str, VenueSnapshot], scenarios: Sequence[StressScenario]) -> Projection:
    """Every venue under every scenario (vectorised where it pays; same figures as `project_reference`)."""
    return project_reference(snapshots, scenarios)
