"""`marginbot bench`: the standard performance workloads. Figures are medians over several runs.

decide_10x50      decisions per second: `decide` over 10 venues × 50 positions (quiet, and with a breach)
simulate_year     wall seconds to simulate one year of 1-minute steps (525,600) of the given config
reaction          breach observed → transfer intent durably committed (SQLite synchronous=FULL) and
                  submitted to the paper venue and its result committed: p50 / p99 over many breaches
hedge_plan        one hedge program's decision: strategy + books walked + margin headroom -> orders, in µs
ccxt_snapshot     one live venue snapshot (50 positions) through ccxt against the fake servers (bench_live)
transfer_wait     client-side wait before a live transfer leaves, ours against ccxt's limiter (bench_live)
stress_grid       the stress projection of 10 venues × 500 positions under 100 scenarios, vectorised (bench_stress)
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.app import build, compile_policy, open_store, require_paper, require_prices
from bot.bench_cycle import bench_live_cycle
from bot.bench_live import bench_ccxt_snapshot, bench_transfer_wait
from bot.bench_stress import bench_stress
from bot.core.actions import TransferKind
from bot.core.approvals import ApprovalPolicy
from bot.core.assets import STABLES
from bot.core.decide import decide
from bot.core.execution import plan_orders
from bot.core.fsm import VenueState
from bot.core.hedge import HedgeInputs, HedgeSpec, Instrument, Quote
from bot.core.margin import MarginParams, Position, build_tiers
from bot.core.policy import Band, Regime, VenuePolicy
from bot.core.world import AccountSnapshot, Policy, RouteSpec, VenueSnapshot, World
from bot.engine.clock import SimClock
from bot.errors import BadInput
from bot.settings import Settings
from bot.sim.runner import Replay
from bot.sim.scenario import PriceSpec, Scenario
from bot.venues.paper_orders import BookShape, synthetic_book
from strategies import get as get_strategy

Progress = Callable[[str], None]


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def synthetic_world(venues: int = 10, positions: int = 50, *, breach: bool = False) -> tuple[World, Policy]:
    """A world of `venues` venues with `positions` positions each over five assets, and one route per venue."""
    assets = ["BTC", "ETH", "SOL", "XRP", "DOGE"]
    prices = {"BTC": 60000.0, "ETH": 3000.0, "SOL": 150.0, "XRP": 0.6, "DOGE": 0.15}
    tiers = build_tiers([(1e6, 0.005), (5e6, 0.01), (None, 0.025)])
    snaps: dict[str, VenueSnapshot | None] = {}
    vpol: dict[str, VenuePolicy] = {}
    routes: list[RouteSpec] = []
    for v in range(venues):
        name = f"venue-{v}"
        pos = tuple(
            Position(
                f"{assets[k % 5]}/USDT:USDT",
                assets[k % 5],
                (1 if k % 2 else -1) * 1e5 / prices[assets[k % 5]],
                prices[assets[k % 5]] * 0.99,
            )
            for k in range(positions)
        )
        model = "portfolio" if v % 3 == 0 else "cross"
        params = MarginParams(model, tiers, 0.1)
        collateral = 300_000.0 if (breach and v == 0) else 1_200_000.0
        snaps[name] = VenueSnapshot(name, 1000.0, {"USDT": collateral}, pos, prices, {}, params)
        vpol[name] = VenuePolicy(0.8, 0.5, 0.75, Band(0.2, 0.3, 0.95), Band(0.4, 0.5, 0.95))
        routes.append(
            RouteSpec(
                name=f"to-{name}",
                kind=TransferKind.TOPUP,
                source="buffer",
                destination=name,
                venue=name,
                account="buffer",
                bucket="buffer",
                asset="USDT",
                method="internal",
                address=None,
                network=None,
                min_amount=Decimal(1000),
                max_amount=Decimal(2_000_000),
                daily_limit=Decimal(5_000_000),
                fee=Decimal(0),
                step=Decimal("0.01"),
                settle_seconds=30,
            )
        )
    policy = Policy(
        venues=vpol,
        routes=tuple(routes),
        approvals=ApprovalPolicy(Decimal(500_000), Decimal(2_000_000), ("alice", "bob"), 2),
        max_data_age_seconds=30,
    )
    world = World(
        now=1001.0,
        regime=Regime.NORMAL,
        snapshots=snaps,
        states=dict.fromkeys(vpol, VenueState.HEALTHY),
        accounts={"buffer": AccountSnapshot("buffer", "buffer", 1000.0, {"USDT": Decimal(50_000_000)})},
        intents=(),
    )
    return world, policy


def bench_decide(runs: int, progress: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, breach in (("quiet", False), ("breach", True)):
        world, policy = synthetic_world(breach=breach)
        n = 300
        rates = []
        for _ in range(runs):
            t0 = time.perf_counter()
            for _ in range(n):
                decide(world, policy)
            rates.append(n / (time.perf_counter() - t0))
        out[f"{label}_decisions_per_s"] = round(_median(rates), 1)
        progress(f"bench decide_10x50 ({label}): median {out[f'{label}_decisions_per_s']:,.0f} decisions/s")
    out["summary"] = (
        f"{out['quiet_decisions_per_s']:,.0f} decisions/s quiet, {out['breach_decisions_per_s']:,.0f} "
        f"with a top-up planned (10 venues × 50 positions; median of {runs})"
    )
    return out


def bench_hedge_plan(runs: int, progress: Progress) -> dict[str, Any]:
    """A dynamic_band program 20 BTC out of band over two instruments, with a book slippage cap that splits."""
    spec = HedgeSpec(
        name="bench",
        asset="BTC",
        strategy="dynamic_band",
        exposure=100.0,
        target_delta=0.0,
        band=5.0,
        min_trade=0.5,
        max_slippage_bps=10.0,
        instruments=(Instrument("venue-0", "BTC/USDT:USDT"), Instrument("venue-1", "BTC/USDT:USDT")),
    )
    world, _ = synthetic_world(venues=2, positions=50)
    books = {i.key: synthetic_book(60000.0, BookShape(level_usd=50_000.0), 1.0) for i in spec.instruments}
    limits = dict.fromkeys(world.snapshots, 0.95)
    quotes = {i.key: Quote(60000.0, 0.0001, True) for i in spec.instruments}
    inputs = HedgeInputs(spec, 0.0, 100.0, {spec.instruments[0].key: -80.0}, quotes, 100.0, ())
    strategy = get_strategy(spec.strategy)
    n = 500
    costs = []
    orders = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(n):
            trades = strategy.propose(inputs)
            plan = plan_orders(
                spec,
                trades,
                inputs.holdings,
                books=books,
                snapshots=world.snapshots,
                alert_utilization=limits,
                trigger="0",
            )
        costs.append((time.perf_counter() - t0) / n * 1e6)
        orders = len(plan.orders)
    med = _median(costs)
    progress(f"bench hedge_plan: median {med:.0f} µs per decision ({orders} orders)")
    return {
        "us_per_decision": round(med, 1),
        "orders": orders,
        "summary": f"{med:.0f} µs per hedge decision (strategy, two books walked, margin headroom over "
        f"50 positions; {orders} orders; median of {runs})",
    }


def year_scenario(settings: Settings, steps: int) -> Scenario:
    m = settings.market
    prices = {
        a: PriceSpec(start=p, vol_annual=m.vol_annual.get(a, 0.0), drift_annual=m.drift_annual.get(a, 0.0))
        for a, p in m.prices.items()
    }
    return Scenario(
        name="bench year",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        step_seconds=60,
        steps=steps,
        seed=m.seed,
        prices=prices,
        events=[],
    )


def bench_simulate(settings: Settings, runs: int, steps: int, progress: Progress) -> dict[str, Any]:
    seconds = []
    transfers = 0
    for k in range(runs):
        with tempfile.TemporaryDirectory(prefix="marginbot-bench-") as d:
            store = open_store(settings, f"sqlite:///{Path(d) / 'sim.db'}", purpose="simulation")
            t0 = time.perf_counter()
            out = asyncio.run(Replay(year_scenario(settings, steps), settings, store).run())
            seconds.append(time.perf_counter() - t0)
            store.engine.dispose()
            transfers = len(out["transfers"])
        progress(f"bench simulate_year run {k + 1}/{runs}: {seconds[-1]:.1f}s for {steps:,} steps")
    med = _median(seconds)
    return {
        "steps": steps,
        "runs": runs,
        "median_seconds": round(med, 2),
        "min_seconds": round(min(seconds), 2),
        "per_step_us": round(med / steps * 1e6, 1),
        "transfers": transfers,
        "target_seconds": 60,
        "summary": f"{med:.1f}s median for {steps:,} steps ({med / steps * 1e6:.0f} µs/step, "
        f"{transfers} transfers; target ≤ 60 s for 525,600)",
    }


async def _reaction_samples(settings: Settings, url: str, samples: int, first: bool) -> list[float]:
    # a bench writes only a store of its own: a new one, or (a later run on --db) the one its first run marked
    store = open_store(settings, url, synchronous="FULL", purpose="simulation" if first else "create")
    clock = SimClock(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    wired = build(settings, store, clock, send_notifications=False, figures_every_seconds=None)
    bot, exchange = wired.bot, wired.exchange
    await bot.start()
    policy = compile_policy(settings)
    venue = next(iter(policy.venues))
    book = exchange.books[venue]
    initial = dict(book.collateral)
    treasury = {a: dict(b) for a, b in exchange.accounts.items()}
    out: list[float] = []
    for _ in range(samples):
        clock.advance(2 * 86_400)  # settle the previous top-up and leave the rolling budgets
        exchange.advance()
        await bot.cycle()
        # the same breach every time: the venue's collateral is a third below its start, the treasury full
        book.collateral = {a: (q * 2 / 3).quantize(Decimal("0.01")) for a, q in initial.items()}
        book.refresh()
        exchange.accounts = {a: dict(b) for a, b in treasury.items()}
        clock.advance(1)
        bot.last_reaction_seconds = None
        await bot.cycle()
        if bot.last_reaction_seconds is not None:
            out.append(bot.last_reaction_seconds)
    await bot.close()
    store.engine.dispose()
    return out


def bench_reaction(settings: Settings, runs: int, progress: Progress, db: str | None) -> dict[str, Any]:
    p50s, p99s = [], []
    count = 0
    for k in range(runs):
        with tempfile.TemporaryDirectory(prefix="marginbot-bench-") as d:
            url = db or f"sqlite:///{Path(d) / 'reaction.db'}"
            xs = sorted(asyncio.run(_reaction_samples(settings, url, 500, first=db is None or k == 0)))
        if not xs:
            raise RuntimeError("the reaction workload produced no top-up: check the config's routes")
        count = len(xs)
        p50s.append(xs[len(xs) // 2] * 1e3)
        p99s.append(xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1e3)
        progress(
            f"bench reaction run {k + 1}/{runs}: p50 {p50s[-1]:.2f} ms, p99 {p99s[-1]:.2f} ms over {count}"
        )
    p50, p99 = _median(p50s), _median(p99s)
    return {
        "samples_per_run": count,
        "runs": runs,
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "target_p99_ms": 2.0,
        "synchronous": "FULL",
        "summary": f"p50 {p50:.2f} ms, p99 {p99:.2f} ms (median of {runs} runs × {count} breaches; target p99 ≤ 2 ms)",
    }


def run_all(
    settings: Settings,
    config_path: Path,
    *,
    runs: int,
    year_steps: int,
    db: str | None,
    progress: Progress,
    only: frozenset[str] | None = None,
) -> dict[str, Any]:
    jobs: dict[str, Callable[[], dict[str, Any]]] = {
        "decide_10x50": lambda: bench_decide(max(runs, 5), progress),
        "hedge_plan": lambda: bench_hedge_plan(max(runs, 5), progress),
        "reaction": lambda: bench_reaction(settings, runs, progress, db),
        "simulate_year": lambda: bench_simulate(settings, runs, year_steps, progress),
        "ccxt_snapshot": lambda: bench_ccxt_snapshot(runs, progress),
        "transfer_wait": lambda: bench_transfer_wait(runs, progress),
        "stress_grid": lambda: bench_stress(runs, progress),
        "live_cycle": lambda: bench_live_cycle(runs, progress),
    }
    if only is not None and not only:
        raise BadInput(f"--only: names no workload; known: {', '.join(jobs)}")
    unknown = sorted((only or frozenset()) - set(jobs))
    if unknown:
        raise BadInput(f"--only: unknown workload(s) {', '.join(unknown)}; known: {', '.join(jobs)}")
    chosen = [name for name in jobs if only is None or name in only]
    if {"reaction", "simulate_year"} & set(chosen):  # these replay the config's paper world
        require_paper(settings, "bench")
        require_prices(settings, set(settings.market.prices) | STABLES, "`bench`")
    workloads = {name: jobs[name]() for name in chosen}
    return {"config": str(config_path), "runs": runs, "workloads": workloads}
