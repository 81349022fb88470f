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

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from bot.core.assets import STABLES
from bot.core.margin import Figures, figures, scale_params
from bot.core.world import VenueSnapshot

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
    out = _price_moves(assets)
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
    out.extend(_freezes(venues))
    out.append(StressScenario("liquidity drought (books at 20%)", (Shock("liquidity", factor=0.2),)))
    return tuple(out)


def _pct(x: float) -> str:
    return f"{x * 100:+.0f}%"


def _price_moves(assets: Sequence[str]) -> list[StressScenario]:
    """Each move either way per asset, then (with more than one asset) every asset at once."""
    out: list[StressScenario] = []
    for a in assets:
        for m in PRICE_MOVES:
            for sign in (-1.0, 1.0):
                out.append(StressScenario(f"{a} {_pct(sign * m)}", (Shock("price", asset=a, pct=sign * m),)))
    if len(assets) > 1:
        for m in PRICE_MOVES:
            for sign in (-1.0, 1.0):
                out.append(StressScenario(f"all {_pct(sign * m)}", (Shock("price", pct=sign * m),)))
    return out


def _freezes(venues: Sequence[str]) -> list[StressScenario]:
    """Each venue frozen, alone and during a joint 20% move either way."""
    out: list[StressScenario] = []
    for v in venues:
        out.append(StressScenario(f"{v} frozen", (Shock("freeze", venue=v),)))
        for sign in (-1.0, 1.0):
            out.append(
                StressScenario(
                    f"{v} frozen, all {_pct(sign * 0.2)}",
                    (Shock("freeze", venue=v), Shock("price", pct=sign * 0.2)),
                )
            )
    return out


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
        elif s.factor is not None and _vol_applies(s, snap):
            vol *= s.factor
    if vol != 1.0 and params.model == "portfolio":
        params = replace(params, pm_shocks=tuple(x * vol for x in params.pm_shocks))
    return replace(snap, prices=prices, haircuts=haircuts, params=params), _cost(snap, scenario, prices)


def _vol_applies(s: Shock, snap: VenueSnapshot) -> bool:
    """A volatility shock for this venue: all of them, or those that hold the shocked asset."""
    return (
        s.type == "vol"
        and s.applies_to(snap.venue)
        and (s.asset is None or any(p.base == s.asset for p in snap.positions))
    )


def _cost(snap: VenueSnapshot, scenario: StressScenario, prices: Mapping[str, float]) -> float:
    """USD the scenario takes from the venue's equity: a day of funding, the cost of exiting in thin books."""
    cost = 0.0
    for s in scenario.shocks:
        if not s.applies_to(snap.venue):
            continue
        if s.type == "funding" and s.pct is not None:
            cost += sum(p.qty * prices.get(p.base, 0.0) for p in snap.positions) * s.pct * FUNDING_PERIODS
        elif s.type == "liquidity" and s.factor:
            gross = sum(abs(p.qty) * prices.get(p.base, 0.0) for p in snap.positions)
            cost += gross * LIQUIDITY_COST_BPS / 10_000.0 / s.factor
    return cost


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
    """Every venue under every scenario, evaluated on arrays; the same figures as `project_reference`."""
    venues = tuple(sorted(snapshots))
    scs = tuple(scenarios)
    if not venues:
        return Projection(venues, scs, tuple(() for _ in scs), ())
    book = _book([snapshots[v] for v in venues])
    cols = max(len(scs) + 1, 2)  # the scenarios, then the unshocked base (and a spare column when alone)
    with np.errstate(all="ignore"):  # overflow to ∞ without a warning, as Python floats do
        rules, costs = _shock(book, scs, cols)
        equity, im, mm, util, ratio = _evaluate(book, rules, costs)
    eq_t, im_t, mm_t, u_t, r_t = (x.T.tolist() for x in (equity, im, mm, util, ratio))
    rows = [
        tuple(Figures(*f) for f in zip(eq_t[k], im_t[k], mm_t[k], u_t[k], r_t[k], strict=True))
        for k in range(len(scs) + 1)
    ]
    return Projection(venues, scs, tuple(rows[:-1]), rows[-1])


# The vectorised evaluation. Arrays hold one column per scenario (the base last) and one row per position,
# venue by venue, so that every per-venue sum is a reduction along axis 0 of a block of rows. NumPy adds such
# a reduction row by row, in the order `core.margin.figures` adds, so the figures come out identical to the
# reference rather than merely close, and its `equity <= 0` and "nothing open" rules cannot flip on a rounding
# difference. (A single column would be summed pairwise: hence at least two columns.)

F64 = NDArray[np.float64]
Idx = NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class _Book:
    """The snapshots as arrays (V venues, A assets, P positions), built once per projection.

    Rows: venue v owns rows `start[v]` .. `start[v + 1]`; the first is its collateral value, the others its
    positions in snapshot order. A row's mark comes from `source`, an index into the V·A (venue, asset) marks
    followed by the V collateral values.
    """

    venues: tuple[str, ...]
    assets: dict[str, int]
    nonstable: Idx  # assets an unnamed price shock moves
    prices: F64  # (V, A) marks, 1.0 where the venue quotes none
    priced: NDArray[np.bool_]  # (V, A)
    unquoted: F64  # (A,) the value of an asset no venue quotes: 1 for a stablecoin, 0 (worth nothing) else
    haircuts: F64  # (V, A)
    holds: frozenset[tuple[int, int]]  # (venue, asset) with a position: where an asset's vol shock applies
    coll_source: Idx  # (C,) collateral entries, venue by venue in dict order: index into the V·A marks
    coll_qty: F64
    coll_start: tuple[int, ...]  # V + 1 bounds into the collateral entries
    source: Idx  # (R,)
    qty: F64  # (R,) 0 on collateral rows
    entry: F64  # (R,) 0 on collateral rows
    pnl_qty: F64  # (R,) qty, and 1 on collateral rows (their "PnL" is the collateral value itself)
    start: tuple[int, ...]  # V + 1
    by_underlying: tuple[Idx, ...]  # per venue: its positions by underlying (first seen first), stable
    underlying_start: tuple[tuple[int, ...], ...]  # per venue: bounds of each underlying in `by_underlying`
    portfolio: tuple[bool, ...]
    tier_up: tuple[tuple[float, ...], ...]
    tier_rate: F64  # (V, T) padded with zeros
    tier_cum: F64  # (V, T)
    im_rate: F64  # (V,)
    im_multiplier: F64  # (V,)
    pm_min_rate: F64  # (V,)
    pm_shock: F64  # (V,) the largest |pm shock|: the worst of ±s on a linear book is |delta| × max|s|


@dataclass(frozen=True, slots=True)
class _Rules:
    """Per-scenario inputs after the shocks: marks, haircuts and margin rules, each with a last axis of columns."""

    prices: F64  # (V, A, K)
    haircuts: F64  # (V, A, K)
    tier_rate: F64  # (V, T, K)
    tier_cum: F64  # (V, T, K)
    im_rate: F64  # (V, K)
    pm_min_rate: F64  # (V, K)
    pm_shock: F64  # (V, K) after margin factors and volatility


_Targets = slice | list[int]
_Cost = tuple[int, _Targets, Shock]


def _book(snaps: Sequence[VenueSnapshot]) -> _Book:
    assets: dict[str, int] = {}
    for snap in snaps:
        for a in (*snap.prices, *snap.collateral):
            assets.setdefault(a, len(assets))
    n_v, n_a = len(snaps), len(assets)
    prices, priced, haircuts = _marks(snaps, assets)
    holds: set[tuple[int, int]] = set()
    coll_source: list[int] = []
    coll_qty: list[float] = []
    coll_start = [0]
    source: list[Idx] = []
    qty: list[F64] = []
    entry: list[F64] = []
    pnl_qty: list[F64] = []
    start = [0]
    by_underlying: list[Idx] = []
    underlying_start: list[tuple[int, ...]] = []
    tier_rate, tier_cum = _tiers(snaps)
    for v, snap in enumerate(snaps):
        for a, q in snap.collateral.items():
            coll_source.append(v * n_a + assets[a])
            coll_qty.append(q)
        coll_start.append(len(coll_source))
        n_p = len(snap.positions)
        bases = [p.base for p in snap.positions]
        unpriced = set(bases).difference(snap.prices)
        if unpriced:  # `figures` reads every position's mark: a missing one fails there as here
            raise KeyError(next(b for b in bases if b in unpriced))
        ai = np.fromiter(map(assets.__getitem__, bases), np.intp, n_p)
        qs = np.fromiter((p.qty for p in snap.positions), np.float64, n_p)
        held = np.unique(ai) if n_p else ai
        holds.update((v, a) for a in held.tolist())
        source.append(np.concatenate([np.array([n_v * n_a + v], dtype=np.intp), v * n_a + ai]))
        qty.append(np.concatenate([[0.0], qs]))
        entry.append(np.concatenate([[0.0], np.fromiter((p.entry for p in snap.positions), np.float64, n_p)]))
        pnl_qty.append(np.concatenate([[1.0], qs]))
        start.append(start[-1] + 1 + n_p)
        order, bounds = _by_first_seen(ai) if snap.params.model == "portfolio" else (ai[:0], (0,))
        by_underlying.append(order)
        underlying_start.append(bounds)
    params = [s.params for s in snaps]
    return _Book(
        venues=tuple(s.venue for s in snaps),
        assets=assets,
        nonstable=np.array([i for a, i in assets.items() if a not in STABLES], dtype=np.intp),
        prices=prices,
        priced=priced,
        unquoted=np.array([1.0 if a in STABLES else 0.0 for a in assets], dtype=np.float64),
        haircuts=haircuts,
        holds=frozenset(holds),
        coll_source=np.array(coll_source, dtype=np.intp),
        coll_qty=np.array(coll_qty, dtype=np.float64),
        coll_start=tuple(coll_start),
        source=np.concatenate(source),
        qty=np.concatenate(qty),
        entry=np.concatenate(entry),
        pnl_qty=np.concatenate(pnl_qty),
        start=tuple(start),
        by_underlying=tuple(by_underlying),
        underlying_start=tuple(underlying_start),
        portfolio=tuple(p.model == "portfolio" for p in params),
        tier_up=tuple(tuple(t.up_to for t in p.tiers) for p in params),
        tier_rate=tier_rate,
        tier_cum=tier_cum,
        im_rate=np.array([p.im_rate for p in params], dtype=np.float64),
        im_multiplier=np.array([p.im_multiplier for p in params], dtype=np.float64),
        pm_min_rate=np.array([p.pm_min_rate for p in params], dtype=np.float64),
        pm_shock=np.array([max((abs(s) for s in p.pm_shocks), default=0.0) for p in params]),
    )


def _marks(snaps: Sequence[VenueSnapshot], assets: Mapping[str, int]) -> tuple[F64, NDArray[np.bool_], F64]:
    """(V, A) marks (1.0 where the venue quotes none), whether quoted, and haircuts."""
    n_v, n_a = len(snaps), len(assets)
    prices = np.ones((n_v, n_a))
    priced = np.zeros((n_v, n_a), dtype=np.bool_)
    haircuts = np.zeros((n_v, n_a))
    for v, snap in enumerate(snaps):
        for a, p in snap.prices.items():
            prices[v, assets[a]] = p
            priced[v, assets[a]] = True
        for a, h in snap.haircuts.items():
            if a in assets:
                haircuts[v, assets[a]] = h
    return prices, priced, haircuts


def _tiers(snaps: Sequence[VenueSnapshot]) -> tuple[F64, F64]:
    """(V, T) tier rates and offsets, padded with zeros."""
    n_tiers = max(len(s.params.tiers) for s in snaps)
    tier_rate = np.zeros((len(snaps), n_tiers))
    tier_cum = np.zeros((len(snaps), n_tiers))
    for v, snap in enumerate(snaps):
        for j, t in enumerate(snap.params.tiers):
            tier_rate[v, j] = t.rate
            tier_cum[v, j] = t.cum
    return tier_rate, tier_cum


def _by_first_seen(ai: Idx) -> tuple[Idx, tuple[int, ...]]:
    """Rows grouped by asset, assets in order of first appearance, rows in order within each (as `dict`
    insertion orders `portfolio_mm`'s nets), and the bounds of each group."""
    if not len(ai):
        return ai, (0,)
    assets, first, inverse = np.unique(ai, return_index=True, return_inverse=True)
    rank = np.empty(len(assets), dtype=np.intp)
    rank[np.argsort(first)] = np.arange(len(assets))
    ranks = rank[inverse]
    bounds = (0, *np.cumsum(np.bincount(ranks, minlength=len(assets))).tolist())
    return np.argsort(ranks, kind="stable").astype(np.intp), bounds


def _columns(x: F64, cols: int) -> F64:
    """`x` repeated along a new last axis of `cols` columns (a writable copy)."""
    return np.repeat(x[..., None], cols, axis=-1)


def _shock(book: _Book, scenarios: Sequence[StressScenario], cols: int) -> tuple[_Rules, list[_Cost]]:
    """Apply every scenario's shocks to its column, in the order `shocked` applies them (factors compound
    in that order, so the products round alike); the costs are returned to be taken once sums exist."""
    r = _Rules(
        _columns(book.prices, cols),
        _columns(book.haircuts, cols),
        _columns(book.tier_rate, cols),
        _columns(book.tier_cum, cols),
        _columns(book.im_rate, cols),
        _columns(book.pm_min_rate, cols),
        _columns(book.pm_shock, cols),
    )
    vol = np.ones_like(r.pm_shock)
    venue_index = {v: i for i, v in enumerate(book.venues)}
    costs: list[_Cost] = []
    for k, sc in enumerate(scenarios):
        for s in sc.shocks:
            if s.type == "price":
                _price_shock(book, r.prices, s, k)
                continue
            if s.venue is None:
                vs: _Targets = slice(None)
            elif s.venue in venue_index:
                vs = [venue_index[s.venue]]
            else:
                continue
            if (s.type == "funding" and s.pct is not None) or (s.type == "liquidity" and s.factor):
                costs.append((k, vs, s))
            else:
                _venue_shock(book, r, vol, s, k=k, vs=vs)
    prices = np.where(book.priced[:, :, None], r.prices, book.unquoted[None, :, None])
    return replace(r, prices=prices, pm_shock=np.abs(r.pm_shock * vol)), costs


def _price_shock(book: _Book, prices: F64, s: Shock, k: int) -> None:
    """Column k's marks of the asset (or of every non-stable asset) × (1 + pct)."""
    if s.pct is None:
        return
    if s.asset:
        a = book.assets.get(s.asset)
        if a is not None:
            prices[:, a, k] *= 1.0 + s.pct
    else:
        prices[:, book.nonstable, k] *= 1.0 + s.pct


def _venue_shock(book: _Book, r: _Rules, vol: F64, s: Shock, *, k: int, vs: _Targets) -> None:
    """A margin-rate, haircut or volatility shock on column k of the targeted venues."""
    if s.type == "margin_rates" and s.factor is not None:
        f = s.factor
        r.tier_rate[vs, :, k] *= f
        r.tier_cum[vs, :, k] *= f
        r.im_rate[vs, k] = np.minimum(1.0, r.im_rate[vs, k] * f)
        r.pm_min_rate[vs, k] *= f
        r.pm_shock[vs, k] *= f
    elif s.type == "haircut" and s.asset and s.value is not None:
        a = book.assets.get(s.asset)
        if a is not None:
            r.haircuts[vs, a, k] = s.value
    elif s.type == "vol" and s.factor is not None:
        if s.asset is None:
            vol[vs, k] *= s.factor
        else:
            a = book.assets.get(s.asset, -1)
            among = range(len(book.venues)) if isinstance(vs, slice) else vs
            held = [v for v in among if (v, a) in book.holds]
            vol[held, k] *= s.factor


def _evaluate(book: _Book, r: _Rules, costs: list[_Cost]) -> tuple[F64, F64, F64, F64, F64]:
    """Equity, IM, MM, utilization and liquidation ratio, each (V, K), venue by venue: a venue's rows by
    every column at once, in work arrays allocated once (fresh large arrays cost a page fault per 4 KiB)."""
    n_v, n_a, cols = r.prices.shape
    marks = r.prices.reshape(n_v * n_a, cols)
    cut = r.haircuts.reshape(n_v * n_a, cols)[book.coll_source]
    coll = marks[book.coll_source] * book.coll_qty[:, None] * (1.0 - cut)
    coll_value = np.stack([coll[a:b].sum(axis=0) for a, b in itertools.pairwise(book.coll_start)])
    source = np.concatenate([marks, coll_value])
    exits = any(s.type == "liquidity" for _, _, s in costs) and bool((r.prices < 0.0).any())
    rows = max(b - a for a, b in itertools.pairwise(book.start))
    work_mark = np.empty((rows, cols))
    work_qm = np.empty((rows - 1, cols))
    work = _Work(np.empty((rows - 1, cols)), np.empty((rows - 1, cols)), np.empty((rows - 1, cols), np.bool_))
    equity = np.empty((n_v, cols))
    gross = np.empty((n_v, cols))
    signed = np.empty((n_v, cols))
    exit_gross = np.empty((n_v, cols))
    im = np.empty((n_v, cols))
    mm = np.empty((n_v, cols))
    for v, (a, b) in enumerate(itertools.pairwise(book.start)):
        n = b - a - 1
        # the collateral value, then each position's mark
        mark = np.take(source, book.source[a:b], axis=0, out=work_mark[: n + 1])
        qty = book.qty[a + 1 : b, None]
        qm = np.multiply(mark[1:], qty, out=work_qm[:n])
        if exits:  # |qty| × mark, as `shocked` prices an exit; it differs from |qty × mark| below zero
            exit_gross[v] = np.multiply(np.abs(qty), mark[1:], out=work.value[:n]).sum(axis=0)
        mark -= book.entry[a:b, None]
        mark *= book.pnl_qty[a:b, None]
        equity[v] = mark.sum(axis=0)  # the collateral value first, then each position's PnL, in order
        signed[v] = qm.sum(axis=0)
        worst = None
        if book.portfolio[v]:
            net = np.take(qm, book.by_underlying[v], axis=0, out=work.value[:n])
            bounds = itertools.pairwise(book.underlying_start[v])
            delta = np.stack([net[x:y].sum(axis=0) for x, y in bounds] or [np.zeros(cols)])
            worst = (np.abs(delta) * r.pm_shock[v]).sum(axis=0)  # |delta| × max|s| per underlying, summed
        notional = np.abs(qm, out=qm)
        gross[v] = notional.sum(axis=0)
        if worst is not None:
            mm[v] = worst + r.pm_min_rate[v] * gross[v]
            im[v] = mm[v] * book.im_multiplier[v]
        else:
            mm[v] = _tiered(notional, book.tier_up[v], r.tier_rate[v], r.tier_cum[v], work.head(n))
            im[v] = gross[v] * r.im_rate[v]
    if costs:
        equity -= _costs(costs, signed, exit_gross if exits else gross)
    idle = np.where((im == 0.0) & (mm == 0.0), 0.0, math.inf)  # nothing open: nothing to margin or liquidate
    under = equity <= 0.0
    util = np.where(under, idle, im / equity)
    ratio = np.where(under, idle, mm / equity)
    return equity, im, mm, util, ratio


def _costs(costs: list[_Cost], signed: F64, exit_gross: F64) -> F64:
    """USD each scenario takes from each venue's equity: a day of funding on the signed notional, the exit
    cost on the gross one."""
    cost = np.zeros(signed.shape)
    for k, vs, s in costs:
        if s.type == "funding" and s.pct is not None:
            cost[vs, k] += signed[vs, k] * s.pct * FUNDING_PERIODS
        elif s.factor:
            cost[vs, k] += exit_gross[vs, k] * LIQUIDITY_COST_BPS / 10_000.0 / s.factor
    return cost


@dataclass(frozen=True, slots=True)
class _Work:
    """Scratch arrays of the largest venue's size; a venue uses their first rows."""

    value: F64
    mm: F64
    mask: NDArray[np.bool_]

    def head(self, n: int) -> _Work:
        return _Work(self.value[:n], self.mm[:n], self.mask[:n])


def _tiered(notional: F64, up: tuple[float, ...], rate: F64, cum: F64, work: _Work) -> F64:
    """Σ tiered MM over a venue's positions (rows), per column: each at the first tier whose bound holds
    it (else the last), `notional × rate − cum` with that column's rates."""
    if not len(notional):
        return np.zeros(rate.shape[-1])
    if not up:
        raise IndexError("cross margin needs at least one tier")
    top = notional.max()
    hi = next((j for j, u in enumerate(up) if top <= u), len(up) - 1)  # no row needs a tier above this
    mm = np.multiply(notional, rate[hi], out=work.mm)
    mm -= cum[hi]
    for j in range(hi - 1, -1, -1):
        value = np.multiply(notional, rate[j], out=work.value)
        value -= cum[j]
        np.copyto(mm, value, where=np.less_equal(notional, up[j], out=work.mask))
    out: F64 = mm.sum(axis=0)
    return out
