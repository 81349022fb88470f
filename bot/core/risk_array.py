"""Portfolio margin by risk array (SPAN / Deribit style), and how it compares with cross margin.

A risk array revalues each underlying's book over a grid of scenarios and charges the worst loss:

    price        `points` moves spread evenly over ±price_range (7 points over ±15%: −15, −10, −5, 0, +5, +10, +15%)
    volatility   up, unchanged and down by `vol_points` (a vol point is 1% of annualised volatility)
    extremes     ±extreme_multiple × price_range (±45%), with the volatility moves, their loss counted at
                 `extreme_fraction` (0.33): a crash is charged in part, as SPAN's extreme scenarios are

Positions are netted per underlying (every symbol on BTC offsets every other), never across underlyings: the
charge is Σ over underlyings of max(0, worst regular loss, extreme_fraction × worst extreme loss), plus
`min_rate` × gross notional. An underlying's value after a move of x (a fraction) and a volatility change of
dv points is

    PnL(x, dv) = delta × x + 50 × gamma × x² + vega × dv

with delta its net notional in USD, gamma the USD change in delta per 1% move (so 50 × gamma × x² is the
integral of delta + gamma × x / 1%: a short-gamma book, gamma < 0, loses more the larger the move) and vega
the USD change per vol point. Linear perpetuals have gamma = vega = 0; the inputs are there for books that
carry options, and the volatility dimension stays in the grid for them.

Initial margin under portfolio margin is the risk-array charge × the venue's `im_multiplier`; under cross
margin it is Σ notional × im_rate (`core.margin.figures`). `compare` puts the two side by side for a snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bot.core.margin import MarginParams, Position, Tier
from bot.core.world import VenueSnapshot

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RiskArray:
    """The scenario grid and charges of a risk-array portfolio margin."""

    price_range: float = 0.15  # the largest regular move, as a fraction of the price
    points: int = 7  # price moves spread evenly over ±price_range, both ends included
    vol_points: float = 10.0  # volatility moved up and down by this many points (and left unchanged)
    extreme_multiple: float = 3.0  # extreme moves: ±extreme_multiple × price_range
    extreme_fraction: float = 0.33  # the share of an extreme move's loss that is charged
    min_rate: float = 0.01  # the minimum charge, as a fraction of gross notional

    def __post_init__(self) -> None:
        if not self.price_range >= 0.0:
            raise ValueError(f"price_range must be ≥ 0, not {self.price_range}")
        if self.points < 2:
            raise ValueError(f"a risk array needs at least 2 price points, not {self.points}")
        if not self.vol_points >= 0.0:
            raise ValueError(f"vol_points must be ≥ 0, not {self.vol_points}")
        if not self.extreme_multiple >= 1.0:
            raise ValueError(f"extreme_multiple must be ≥ 1, not {self.extreme_multiple}")
        if not 0.0 <= self.extreme_fraction <= 1.0:
            raise ValueError(f"extreme_fraction must be within [0, 1], not {self.extreme_fraction}")
        if not self.min_rate >= 0.0:
            raise ValueError(f"min_rate must be ≥ 0, not {self.min_rate}")

    @classmethod
    def of(cls, params: MarginParams) -> RiskArray:
        """A venue's risk array: its largest portfolio shock as the range, its minimum rate as the floor."""
        if not params.pm_shocks:
            return cls(min_rate=params.pm_min_rate)
        return cls(price_range=max(abs(s) for s in params.pm_shocks), min_rate=params.pm_min_rate)

    def moves(self) -> F64:
        """The regular price moves, as fractions."""
        return np.linspace(-self.price_range, self.price_range, self.points)

    def extremes(self) -> F64:
        """The extreme price moves, as fractions."""
        m = self.extreme_multiple * self.price_range
        return np.array([-m, m])

    def vol_moves(self) -> F64:
        """Volatility up, unchanged and down, in vol points."""
        return np.array([self.vol_points, 0.0, -self.vol_points])


@dataclass(frozen=True, slots=True)
class MarginComparison:
    """One book's initial margin under cross and under portfolio margin; efficiency = cross / portfolio."""

    cross_im: float
    portfolio_im: float
    efficiency: (
        float  # > 1: portfolio margin asks less; ∞ when it asks nothing of a book cross margin charges
    )


def net_delta(positions: Sequence[Position], prices: Mapping[str, float]) -> dict[str, float]:
    """Net notional in USD per underlying (positions on every symbol of an underlying offset each other)."""
    out: dict[str, float] = {}
    for p in positions:
        out[p.base] = out.get(p.base, 0.0) + p.qty * prices[p.base]
    return out


def gross_notional(positions: Sequence[Position], prices: Mapping[str, float]) -> float:
    """Σ |notional| in USD."""
    return sum((abs(p.qty * prices[p.base]) for p in positions), 0.0)


def scenario_losses(delta: F64, gamma: F64, vega: F64, moves: F64, vol_moves: F64) -> F64:
    """Loss (−PnL) of each underlying (rows) in each scenario: (U, len(moves), len(vol_moves))."""
    x = moves[None, :, None]
    dv = vol_moves[None, None, :]
    pnl = delta[:, None, None] * x + 50.0 * gamma[:, None, None] * x * x + vega[:, None, None] * dv
    out: F64 = -pnl
    return out


def risk_array_margin(
    positions: Sequence[Position],
    prices: Mapping[str, float],
    params: RiskArray,
    gamma: Mapping[str, float] | None = None,
    vega: Mapping[str, float] | None = None,
) -> float:
    """The risk-array charge (a maintenance figure): Σ per underlying of its worst scenario loss, extremes at
    their fraction, never below zero, plus the minimum charge on gross notional. `gamma` and `vega` are per
    underlying (USD of delta per 1% move; USD per vol point); an underlying with only greeks is charged too."""
    net = net_delta(positions, prices)
    greeks = {**(gamma or {}), **(vega or {})}
    names = list(net) + [u for u in greeks if u not in net]
    if not names:
        return 0.0
    d = np.array([net.get(u, 0.0) for u in names])
    g = np.array([(gamma or {}).get(u, 0.0) for u in names])
    v = np.array([(vega or {}).get(u, 0.0) for u in names])
    vols = params.vol_moves()
    regular = scenario_losses(d, g, v, params.moves(), vols).max(axis=(1, 2))
    extreme = scenario_losses(d, g, v, params.extremes(), vols).max(axis=(1, 2)) * params.extreme_fraction
    worst = np.maximum(0.0, np.maximum(regular, extreme))
    return float(worst.sum()) + params.min_rate * gross_notional(positions, prices)


def cross_margin(
    positions: Sequence[Position], prices: Mapping[str, float], tiers: Sequence[Tier], im_rate: float
) -> float:
    """Initial margin under cross margin: Σ |notional| × im_rate, as `core.margin.figures` computes it.

    `tiers` (the venue's maintenance tiers) complete the cross rule set a caller holds; the initial margin
    does not depend on them."""
    del tiers
    return gross_notional(positions, prices) * im_rate


def compare(
    snapshot: VenueSnapshot,
    params: RiskArray | None = None,
    gamma: Mapping[str, float] | None = None,
    vega: Mapping[str, float] | None = None,
) -> MarginComparison:
    """The snapshot's book under both models with its own rates: cross IM from its tiers and IM rate, portfolio
    IM = the risk-array charge (by default `RiskArray.of` its parameters) × its `im_multiplier`."""
    p = snapshot.params
    cross = cross_margin(snapshot.positions, snapshot.prices, p.tiers, p.im_rate)
    charge = risk_array_margin(snapshot.positions, snapshot.prices, params or RiskArray.of(p), gamma, vega)
    portfolio = charge * p.im_multiplier
    if portfolio > 0.0:
        return MarginComparison(cross, portfolio, cross / portfolio)
    return MarginComparison(cross, portfolio, math.inf if cross > 0.0 else 1.0)  # nothing open: no difference
