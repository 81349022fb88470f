"""Margin mathematics: equity, maintenance and initial margin, utilization, top-up and sweep sizing.

Valuation runs on floats (a hot numeric path, evaluated every cycle for every venue); the amounts that
move money are converted to `Decimal` once, when a transfer is sized (see `bot.core.numbers`).

Definitions (SPEC.md "Words"):
    equity  = Σ collateral × price × (1 − haircut) + Σ unrealized PnL
    cross MM     = Σ per position, tiered: MM(N) = N·rate_k − cum_k, continuous across tiers
    portfolio MM = worst loss over a grid of price shocks per underlying (positions netted) + pm_min_rate × Σ|N|
    cross IM     = Σ N × im_rate;  portfolio IM = MM × im_multiplier
    utilization u = IM / equity (∞ when equity ≤ 0);  buffer = 1 − u;  liquidation ratio m = MM / equity
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from bot.core.assets import STABLES

INF = math.inf


@dataclass(frozen=True, slots=True)
class Position:
    """A linear perpetual position: qty in base-asset units, signed (negative = short)."""

    symbol: str
    base: str
    qty: float
    entry: float


@dataclass(frozen=True, slots=True)
class Tier:
    """One maintenance-margin tier: notional up to `up_to` at `rate`, `cum` keeping MM continuous."""

    up_to: float
    rate: float
    cum: float


def build_tiers(tiers: list[tuple[float | None, float]]) -> tuple[Tier, ...]:
    """Compute each tier's `cum` so that MM(N) = N·rate − cum is continuous at every boundary."""
    out: list[Tier] = []
    cum = 0.0
    prev_rate = 0.0
    prev_up = 0.0
    for i, (up_to, rate) in enumerate(tiers):
        if i > 0:
            cum += prev_up * (rate - prev_rate)
        bound = INF if up_to is None else float(up_to)
        out.append(Tier(bound, rate, cum))
        prev_rate, prev_up = rate, bound
    return tuple(out)


@dataclass(frozen=True, slots=True)
class MarginParams:
    """How a venue margins its positions."""

    model: str  # "cross" | "portfolio"
    tiers: tuple[Tier, ...]
    im_rate: float
    im_multiplier: float = 1.3
    pm_min_rate: float = 0.01
    pm_shocks: tuple[float, ...] = (0.05, 0.10, 0.15)


@dataclass(frozen=True, init=False)
class Figures:
    """A venue's margin state in USD and as ratios.

    Frozen; made for every venue every cycle, so its `__init__` fills the instance dict directly (≈ 1 µs
    less than the generated one of a frozen dataclass).
    """

    equity: float
    im: float
    mm: float
    utilization: float
    mm_ratio: float

    def __init__(self, equity: float, im: float, mm: float, utilization: float, mm_ratio: float) -> None:
        d = self.__dict__
        d["equity"] = equity
        d["im"] = im
        d["mm"] = mm
        d["utilization"] = utilization
        d["mm_ratio"] = mm_ratio

    @property
    def buffer(self) -> float:
        return 1.0 - self.utilization


def tiered_mm(notional: float, tiers: tuple[Tier, ...]) -> float:
    """Maintenance margin for one position's absolute notional."""
    for t in tiers:
        if notional <= t.up_to:
            return notional * t.rate - t.cum
    last = tiers[-1]
    return notional * last.rate - last.cum


def collateral_value(
    collateral: Mapping[str, float], prices: Mapping[str, float], haircuts: Mapping[str, float]
) -> float:
    """Σ collateral × price × (1 − haircut); a stablecoin is priced at 1, an unpriced asset counts for nothing."""
    total = 0.0
    for asset, qty in collateral.items():
        price = prices.get(asset)
        if price is None:
            price = 1.0 if asset in STABLES else 0.0
        total += qty * price * (1.0 - haircuts.get(asset, 0.0))
    return total


def portfolio_mm(positions: tuple[Position, ...], prices: Mapping[str, float], p: MarginParams) -> float:
    """Worst loss over the shock grid (0, ±s for s in pm_shocks), netted per underlying, plus the minimum charge."""
    net: dict[str, float] = {}
    gross = 0.0
    for pos in positions:
        mark = prices[pos.base]
        net[pos.base] = net.get(pos.base, 0.0) + pos.qty * mark
        gross += abs(pos.qty * mark)
    worst = 0.0
    for delta_usd in net.values():
        loss = 0.0
        for s in p.pm_shocks:
            # a linear book loses delta × s on a move of s; the worst of +s and −s is |delta| × s
            loss = max(loss, -delta_usd * s, delta_usd * s)
        worst += loss
    return worst + p.pm_min_rate * gross


def figures(
    collateral: Mapping[str, float],
    positions: tuple[Position, ...],
    prices: Mapping[str, float],
    haircuts: Mapping[str, float],
    p: MarginParams,
) -> Figures:
    """Equity, IM, MM, utilization and liquidation ratio of one venue.

    One pass over the positions (the hot path of every cycle): the sums are those of `tiered_mm` and
    `portfolio_mm`, term for term and in the same order, so the figures are identical to the bit.
    """
    return figures_on(collateral_value(collateral, prices, haircuts), positions, prices, p)


def figures_on(
    cash: float, positions: tuple[Position, ...], prices: Mapping[str, float], p: MarginParams
) -> Figures:
    """`figures` from the collateral's value (`collateral_value`), for a caller that keeps it between calls."""
    equity = cash
    if p.model == "portfolio":
        equity, mm = _portfolio_pass(equity, positions, prices, p)
        im = mm * p.im_multiplier
    else:
        equity, gross, mm = _cross_pass(equity, positions, prices, p.tiers)
        im = gross * p.im_rate
    if equity <= 0.0:
        if im == 0.0 and mm == 0.0:  # nothing open: nothing to margin, nothing to liquidate
            return Figures(equity, 0.0, 0.0, 0.0, 0.0)
        return Figures(equity, im, mm, INF, INF)
    return Figures(equity, im, mm, im / equity, mm / equity)


def _cross_pass(
    equity: float, positions: tuple[Position, ...], prices: Mapping[str, float], tiers: tuple[Tier, ...]
) -> tuple[float, float, float]:
    """Equity with each position's PnL added, gross notional, and the tiered MM (first tier inlined)."""
    gross = mm = 0.0
    if not positions:
        return equity, gross, mm
    first = tiers[0]
    up_to, rate, cum = first.up_to, first.rate, first.cum
    if cum != 0.0:
        for pos in positions:
            qty = pos.qty
            mark = prices[pos.base]
            equity += qty * (mark - pos.entry)
            n = abs(qty * mark)
            gross += n
            mm += n * rate - cum if n <= up_to else tiered_mm(n, tiers)
        return equity, gross, mm
    for pos in positions:  # the first tier of `build_tiers`: x − 0.0 is x, so the subtraction is skipped
        qty = pos.qty
        mark = prices[pos.base]
        equity += qty * (mark - pos.entry)
        n = abs(qty * mark)
        gross += n
        mm += n * rate if n <= up_to else tiered_mm(n, tiers)
    return equity, gross, mm


def _portfolio_pass(
    equity: float, positions: tuple[Position, ...], prices: Mapping[str, float], p: MarginParams
) -> tuple[float, float]:
    """Equity with each position's PnL added, and `portfolio_mm` of the positions."""
    net: dict[str, float] = {}
    gross = 0.0
    for pos in positions:
        base, qty = pos.base, pos.qty
        mark = prices[base]
        equity += qty * (mark - pos.entry)
        delta = qty * mark
        net[base] = net.get(base, 0.0) + delta
        gross += abs(delta)
    worst = 0.0
    for delta_usd in net.values():
        loss = 0.0
        for s in p.pm_shocks:
            loss = max(loss, -delta_usd * s, delta_usd * s)
        worst += loss
    return equity, worst + p.pm_min_rate * gross


def equity_for_buffer(im: float, buffer: float) -> float:
    """The equity at which the buffer (1 − IM/equity) equals `buffer`."""
    return im / (1.0 - buffer)


def topup_usd(f: Figures, target: float, incoming_usd: float) -> float:
    """USD of equity to add so the buffer reaches `target`, counting value already in flight."""
    return max(0.0, equity_for_buffer(f.im, target) - (f.equity + incoming_usd))


def sweep_usd(f: Figures, target: float) -> float:
    """USD of equity that can leave so the buffer falls back to `target` (never below what IM needs)."""
    return max(0.0, f.equity - equity_for_buffer(f.im, target))


def scale_params(base: MarginParams, factor: float) -> MarginParams:
    """A margin-rate hike: every rate (and the portfolio shocks) multiplied by `factor`."""
    return replace(
        base,
        tiers=tuple(Tier(t.up_to, t.rate * factor, t.cum * factor) for t in base.tiers),
        im_rate=min(1.0, base.im_rate * factor),
        pm_min_rate=base.pm_min_rate * factor,
        pm_shocks=tuple(s * factor for s in base.pm_shocks),
    )
