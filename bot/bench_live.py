"""Live-venue workloads for `marginbot bench`, run against the fake exchange servers on loopback.

ccxt_snapshot   one venue snapshot with 50 positions through real ccxt: balance, account figures,
                positions, marks; over HTTP (loopback) and from canned answers (ccxt's signing and parsing
                plus ours, no network): ms per snapshot and µs per position, per exchange
transfer_wait   client-side wait before a transfer leaves: from the `submit()` call to the request's
                arrival at the venue, with our rate budget, against ccxt's own limiter switched on
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bot.core.actions import canonical_json
from bot.engine.clock import SimClock
from bot.settings import Settings, settings_from_dict
from bot.sim.market import Market
from bot.venues.base import TransferRequest
from bot.venues.fakes.rehearsal import Rehearsal
from bot.venues.live.budget import Budget, RateGate
from bot.venues.live.ports import LiveTransfers, LiveVenue, LiveWorld
from bot.venues.paper import PaperExchange

Progress = Callable[[str], None]
START = 1_772_000_000.0
EXCHANGES = ("binance", "okx", "bybit", "deribit")


def bench_config(exchange: str, positions: int) -> Settings:
    """One venue with `positions` perpetuals on distinct assets, a funding account, an internal route."""
    settle = "USDC" if exchange == "deribit" else "USDT"
    assets = [f"A{i:02d}" for i in range(positions)]
    pos = [
        {"symbol": f"{a}/{settle}:{settle}", "qty": (1 if i % 2 else -1) * 100.0, "entry": 100.0 + i}
        for i, a in enumerate(assets)
    ]
    data: dict[str, Any] = {
        "approvals": {"approvers": ["alice", "bob"], "quorum": 2},
        "market": {"prices": {a: 101.0 + i for i, a in enumerate(assets)}},
        "venues": [
            {
                "name": "venue",
                "paper": {"collateral": {settle: 10_000_000}, "positions": pos, "im_rate": 0.1},
            }
        ],
        "accounts": [
            {"name": "funding", "bucket": "buffer", "owner": "treasury", "balances": {settle: 100_000_000}}
        ],
        "routes": [
            {
                "name": "fund-venue",
                "from": "funding",
                "to": "venue",
                "asset": settle,
                "method": "internal",
                "max_amount": 1_000_000,
                "daily_limit": 100_000_000,
                "settle_seconds": 0,
            }
        ],
    }
    return settings_from_dict(data)


async def _live(
    exchange: str, positions: int, *, ccxt_limiter: bool = False
) -> tuple[Rehearsal, LiveWorld, Settings]:
    s = bench_config(exchange, positions)
    clock = SimClock(START)
    paper = PaperExchange(s, Market(dict(s.market.prices), seed=1), clock.now)
    rehearsal = Rehearsal(s, {"venue": exchange, "funding": exchange}, paper)
    live = await rehearsal.start()
    world = LiveWorld(live, clock=clock.now, env=rehearsal.env)
    if ccxt_limiter:
        for conn in world.connections.values():
            conn.caller.ex.enableRateLimit = True
    return rehearsal, world, live


async def _snapshot_figures(exchange: str, positions: int, samples: int) -> dict[str, float]:
    """Interleaved samples of one snapshot over loopback and from canned answers, the rate budget lifted
    (the budget's waits are the transfer_wait workload's subject, not this one's)."""
    rehearsal, world, _ = await _live(exchange, positions)
    try:
        venue = LiveVenue(world, "venue")
        caller = world.by_name["venue"].caller
        caller.gate = RateGate(Budget(10**9, 1.0))
        await venue.snapshot()  # markets loaded, sessions warm
        ex = caller.ex
        real_fetch = ex.fetch
        answers: list[Any] = []

        async def record(*args: Any, **kwargs: Any) -> Any:
            answers.append(await real_fetch(*args, **kwargs))
            return answers[-1]

        ex.fetch = record
        snap = await venue.snapshot()
        assert len(snap.positions) == positions, f"{exchange}: {len(snap.positions)} positions parsed"
        canned_json = [canonical_json(a) for a in answers]
        http: list[float] = []
        parse: list[float] = []
        for _ in range(samples):
            ex.fetch = real_fetch
            t0 = time.perf_counter()
            await venue.snapshot()
            http.append(time.perf_counter() - t0)
            queue = [json.loads(a) for a in canned_json]

            async def replay(*_args: Any, queue: list[Any] = queue, **_kwargs: Any) -> Any:
                return queue.pop(0)

            ex.fetch = replay
            t0 = time.perf_counter()
            await venue.snapshot()
            parse.append(time.perf_counter() - t0)
        ex.fetch = real_fetch
        return {
            "http_ms": statistics.median(http) * 1000,
            "parse_ms": statistics.median(parse) * 1000,
            "parse_us_per_position": statistics.median(parse) / positions * 1e6,
            "requests": float(len(answers)),
        }
    finally:
        await world.close()
        await rehearsal.stop()


def bench_ccxt_snapshot(runs: int, progress: Progress, positions: int = 50) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for x in EXCHANGES:
        progress(f"ccxt_snapshot: {x}, {positions} positions")
        per_run = [asyncio.run(_snapshot_figures(x, positions, 20)) for _ in range(runs)]
        out[x] = {k: statistics.median(r[k] for r in per_run) for k in per_run[0]}
    summary = "; ".join(
        f"{x} {v['parse_ms']:.1f} ms parse ({v['parse_us_per_position']:.0f} µs/position), "
        f"{v['http_ms']:.1f} ms over loopback, {v['requests']:.0f} requests"
        for x, v in out.items()
    )
    return {"positions": positions, "exchanges": out, "summary": summary}


async def _transfer_waits(exchange: str, samples: int, ccxt_limiter: bool) -> list[float]:
    rehearsal, world, live = await _live(exchange, 1, ccxt_limiter=ccxt_limiter)
    try:
        fake = rehearsal.fakes[exchange]
        transfers = LiveTransfers(world, None)
        route = live.routes[0]
        conn = world.by_name["funding"]
        await conn.ensure()
        waits = []
        idle = conn.caller.gate.budget.period + 0.05  # an isolated transfer: our window has rolled
        for i in range(samples):
            await asyncio.sleep(1.2 if ccxt_limiter else idle)  # ccxt's bucket, too, had time to refill
            req = TransferRequest(
                client_id=f"{i:032x}",
                route=route.name,
                source=route.from_,
                destination=route.to,
                asset=route.asset,
                amount=Decimal(1000),
                method="internal",
                network=None,
                address=None,
                fee=Decimal(0),
                settle_seconds=0,
            )
            before = len(fake.hits)
            t0 = time.perf_counter()
            await transfers.submit(req)
            arrivals = [h.at for h in fake.hits[before:] if h.endpoint == "transfer"]
            waits.append(arrivals[0] - t0 if arrivals else float("nan"))
        return waits
    finally:
        await world.close()
        await rehearsal.stop()


def bench_transfer_wait(runs: int, progress: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for x in EXCHANGES:
        progress(f"transfer_wait: {x}")
        ours = [w for _ in range(runs) for w in asyncio.run(_transfer_waits(x, 5, False))]
        theirs = asyncio.run(_transfer_waits(x, 3, True))
        out[x] = {
            "ours_ms_p50": statistics.median(ours) * 1000,
            "ours_ms_max": max(ours) * 1000,
            "ccxt_limiter_ms_p50": statistics.median(theirs) * 1000,
        }
    summary = "; ".join(
        f"{x} {v['ours_ms_p50']:.2f} ms (max {v['ours_ms_max']:.2f}) vs ccxt limiter {v['ccxt_limiter_ms_p50']:.0f} ms"
        for x, v in out.items()
    )
    return {"exchanges": out, "summary": "submit() → request at the venue: " + summary}
