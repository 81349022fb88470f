"""The `stress_grid` bench workload: one projection of a large book under a hundred scenarios.

A synthetic book of 10 venues × 500 positions over ten assets (every third venue on portfolio margin, the
others cross with three or four tiers; collateral in USDT, BTC and ETH with haircuts; marks differing a little
from venue to venue) is projected under 100 scenarios drawn from the default grid, every shock type among them,
plus compound ones. `project` is timed (the median of several repetitions per run, then the median over runs);
`project_reference`, the scalar definition, is timed once for the ratio.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bot.core.margin import MarginParams, Position, build_tiers
from bot.core.stress_grid import Shock, StressScenario, default_grid, project, project_reference
from bot.core.world import VenueSnapshot

Progress = Callable[[str], None]

VENUES = 10
POSITIONS = 500  # per venue
SCENARIOS = 100
REPEATS = 5  # timed projections per run
TARGET_MS = 50.0
PRICES = {
    "BTC": 60_000.0,
    "ETH": 3_000.0,
    "SOL": 150.0,
    "XRP": 0.6,
    "DOGE": 0.15,
    "BNB": 550.0,
    "ADA": 0.45,
    "AVAX": 30.0,
    "LINK": 15.0,
    "LTC": 80.0,
}


def synthetic_book(
    venues: int = VENUES, positions: int = POSITIONS, seed: int = 11
) -> dict[str, VenueSnapshot]:
    """`venues` venues of `positions` positions each, long and short, from 10k to 3M USD of notional."""
    rng = random.Random(seed)
    assets = list(PRICES)
    tiers = (
        build_tiers([(1e6, 0.005), (5e6, 0.01), (None, 0.025)]),
        build_tiers([(250_000, 0.004), (1e6, 0.008), (4e6, 0.015), (None, 0.03)]),
    )
    out: dict[str, VenueSnapshot] = {}
    for v in range(venues):
        name = f"venue-{v:02d}"
        prices = {a: p * (1.0 + rng.uniform(-0.002, 0.002)) for a, p in PRICES.items()}
        pos = []
        for k in range(positions):
            a = assets[k % len(assets)] if k < len(assets) else rng.choice(assets)
            usd = 10 ** rng.uniform(4.0, 6.5)
            qty = rng.choice((-1.0, 1.0)) * usd / prices[a]
            pos.append(Position(f"{a}/USDT:USDT", a, qty, prices[a] * rng.uniform(0.9, 1.1)))
        if v % 3 == 0:
            params = MarginParams("portfolio", tiers[0], 0.1, im_multiplier=1.3, pm_min_rate=0.01)
        else:
            params = MarginParams("cross", tiers[v % 2], 0.1)
        collateral = {"USDT": 40e6 + 5e6 * v, "BTC": 50.0 + v, "ETH": 400.0}
        out[name] = VenueSnapshot(
            name, 0.0, collateral, tuple(pos), prices, {"BTC": 0.02, "ETH": 0.05}, params
        )
    return out


def synthetic_scenarios(
    assets: list[str], venues: list[str], count: int = SCENARIOS
) -> tuple[StressScenario, ...]:
    """`count` scenarios: the default grid's kinds taken in turn (price, vol, funding, margin, haircut, freeze,
    liquidity), and every fifth a compound one (a joint move with a margin hike, a funding flip and thin books)."""
    by_kind: dict[str, list[StressScenario]] = defaultdict(list)
    for sc in default_grid(assets, venues):
        by_kind[sc.shocks[-1].type].append(sc)
    taken = dict.fromkeys(by_kind, 0)
    turn = itertools.cycle(by_kind)
    out: list[StressScenario] = []
    while len(out) < count:
        i = len(out)
        if i % 5 == 4:
            pct = (-0.3, -0.15, 0.15, 0.3)[i % 4]
            shocks = (
                Shock("price", pct=pct),
                Shock("margin_rates", venue=venues[i % len(venues)], factor=1.5),
                Shock("funding", pct=0.003 if pct > 0 else -0.003),
                Shock("liquidity", factor=0.3),
                Shock("vol", asset=assets[i % len(assets)], factor=2.0),
            )
            out.append(StressScenario(f"compound {i}", shocks))
            continue
        kind = next(turn)
        while taken[kind] >= len(by_kind[kind]):  # a kind used up: the next one (the grid has enough)
            kind = next(turn)
        out.append(by_kind[kind][taken[kind]])
        taken[kind] += 1
    return tuple(out)


def bench_stress(runs: int, progress: Progress) -> dict[str, Any]:
    """Time `project` on the synthetic book (median of REPEATS per run, median over runs) and the reference once."""
    snaps = synthetic_book()
    scenarios = synthetic_scenarios(list(PRICES), sorted(snaps))
    project(snaps, scenarios)  # warm up (imports, allocator)
    medians = []
    for k in range(max(runs, 1)):
        times = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            project(snaps, scenarios)
            times.append((time.perf_counter() - t0) * 1e3)
        medians.append(statistics.median(times))
        progress(f"bench stress_grid run {k + 1}/{max(runs, 1)}: median {medians[-1]:.1f} ms")
    t0 = time.perf_counter()
    project_reference(snaps, scenarios)
    reference_ms = (time.perf_counter() - t0) * 1e3
    med = statistics.median(medians)
    return {
        "median_ms": round(med, 2),
        "reference_ms": round(reference_ms, 1),
        "speedup": round(reference_ms / med, 1),
        "positions": POSITIONS,
        "venues": len(snaps),
        "scenarios": len(scenarios),
        "runs": max(runs, 1),
        "summary": f"{POSITIONS} positions × {len(snaps)} venues × {len(scenarios)} scenarios: {med:.1f} ms median "
        f"(target ≤ {TARGET_MS:.0f} ms); scalar reference {reference_ms:,.0f} ms",
    }
