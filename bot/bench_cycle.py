"""`live_cycle` for `marginbot bench`: one bot cycle over four live venues (binance, okx, bybit, deribit) through
real ccxt and the fake servers on loopback, each exchange answering with its own latency.

Reads run at once, so a cycle should take about its slowest venue's read, not the sum of them: the workload
reports, per cycle, the cycle's time minus the slowest read (the engine's own overhead), and the sum of all
reads (what a cycle reading one venue after another would wait).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.app import build, market_from_settings, open_store
from bot.engine.clock import WallClock
from bot.settings import Settings, settings_from_dict
from bot.venues.fakes.rehearsal import Rehearsal
from bot.venues.live.ports import LiveWorld
from bot.venues.paper import PaperExchange

Progress = Callable[[str], None]
LATENCY_MS = {"binance": 10.0, "okx": 20.0, "bybit": 30.0, "deribit": 40.0}


def cycle_config() -> Settings:
    """A venue and a funding wallet per exchange, each venue comfortably inside its band (a quiet cycle)."""
    venues, accounts = [], []
    for x in LATENCY_MS:
        settle = "USDC" if x == "deribit" else "USDT"
        venues.append(
            {
                "name": f"{x}-main",
                "paper": {
                    "collateral": {settle: 3_000_000},
                    "positions": [{"symbol": f"BTC/{settle}:{settle}", "qty": -100, "entry": 60000}],
                    "im_rate": 0.1,
                    "funding_rate_8h": 0.0,
                },
            }
        )
        accounts.append(
            {"name": f"{x}-funding", "bucket": "buffer", "owner": "t", "balances": {settle: 10**7}}
        )
    data: dict[str, Any] = {
        "bot": {"read_deadline_seconds": 5.0},
        "approvals": {"approvers": ["alice", "bob"], "quorum": 2},
        "market": {"prices": {"BTC": 60000.0}},
        "venues": venues,
        "accounts": accounts,
    }
    return settings_from_dict(data)


async def _cycles(samples: int) -> tuple[list[float], list[float], list[float]]:
    s = cycle_config()
    clock = WallClock()
    paper = PaperExchange(s, market_from_settings(s), clock.now)
    names = {v.name: v.name.split("-")[0] for v in s.venues} | {
        a.name: a.name.split("-")[0] for a in s.accounts
    }
    rehearsal = Rehearsal(s, names, paper)
    live = await rehearsal.start()
    world = LiveWorld(live, clock=clock.now, env=rehearsal.env)
    overhead, slowest, total = [], [], []
    try:
        with tempfile.TemporaryDirectory(prefix="marginbot-bench-") as d:
            store = open_store(live, f"sqlite:///{Path(d) / 'cycle.db'}", purpose="simulation")
            wired = build(
                live, store, clock, market=paper.market, exchange=paper, live=world, send_notifications=False
            )
            await wired.bot.start()
            for x, ms in LATENCY_MS.items():
                rehearsal.fakes[x].latency = ms / 1000
            await wired.bot.cycle()  # markets loaded, sessions warm
            for _ in range(samples):
                t0 = time.perf_counter()
                await wired.bot.cycle()
                took = time.perf_counter() - t0
                reads = wired.bot.last_observation.seconds
                overhead.append(took - max(reads.values()))
                slowest.append(max(reads.values()))
                total.append(sum(reads.values()))
            await wired.bot.close()
            store.engine.dispose()
    finally:
        await world.close()
        await rehearsal.stop()
    return overhead, slowest, total


def bench_live_cycle(runs: int, progress: Progress) -> dict[str, Any]:
    overhead, slowest, total = asyncio.run(_cycles(max(10, 10 * runs)))
    med = statistics.median
    progress(
        f"bench live_cycle: cycle − slowest read {med(overhead) * 1e3:.1f} ms median; slowest read "
        f"{med(slowest) * 1e3:.0f} ms; reads one after another would take {med(total) * 1e3:.0f} ms"
    )
    return {
        "cycles": len(overhead),
        "latency_ms": LATENCY_MS,
        "overhead_ms": round(med(overhead) * 1e3, 2),
        "overhead_p90_ms": round(sorted(overhead)[int(len(overhead) * 0.9)] * 1e3, 2),
        "slowest_read_ms": round(med(slowest) * 1e3, 1),
        "sum_of_reads_ms": round(med(total) * 1e3, 1),
        "target_overhead_ms": 5.0,
        "summary": f"cycle = slowest read + {med(overhead) * 1e3:.1f} ms median (slowest read "
        f"{med(slowest) * 1e3:.0f} ms; one after another: {med(total) * 1e3:.0f} ms; 4 live venues, 4 accounts; "
        "target ≤ slowest + 5 ms)",
    }
