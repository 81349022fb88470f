"""Honest time in a cycle: venues are read at once, each under the read deadline; every snapshot carries the
time it was read and is judged at decision time; a cycle that overruns names its slowest read.

These run on the wall clock with real (short) waits, so time moves during the awaits as it does live. Seen
before the redesign: the cycle read venues one after another and stamped the decision before reading, so a
hang on one venue held every other venue's top-up back, and data read first was judged fresh however long
the reads after it took.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from bot.core.world import AccountSnapshot, VenueSnapshot
from bot.engine.clock import WallClock
from bot.engine.observe import Observer
from bot.venues.paper import PaperExchange
from tests.harness import make_bot, paper_settings


class SlowVenue:
    """A venue that answers after `delay` seconds; its snapshot is taken when the answer comes."""

    def __init__(self, x: PaperExchange, name: str, delay: float) -> None:
        self.name, self.x, self.delay = name, x, delay

    async def snapshot(self) -> VenueSnapshot:
        await asyncio.sleep(self.delay)
        return self.x.snapshot(self.name)


class SlowAccount:
    def __init__(self, x: PaperExchange, name: str, delay: float) -> None:
        self.name, self.x, self.delay = name, x, delay

    async def balances(self) -> AccountSnapshot:
        await asyncio.sleep(self.delay)
        return self.x.account_snapshot(self.name)


async def _bot(tmp_path: Path, delays: dict[str, float], *, deadline: float, **bot: float):  # type: ignore[no-untyped-def]
    """The paper config with okx-main at 1M USDT (utilization 90%: a top-up is due), reads delayed as given."""
    s = paper_settings(okx_usdt=1_000_000, **bot)
    w = await make_bot(s, f"sqlite:///{tmp_path / 'm.db'}", WallClock())  # type: ignore[arg-type]
    x = w.exchange
    venues = [SlowVenue(x, v.name, delays.get(v.name, 0.0)) for v in s.venues]
    accounts = [SlowAccount(x, a.name, delays.get(a.name, 0.0)) for a in s.accounts]
    w.bot.observer = Observer(venues, accounts, w.bot.clock, deadline_seconds=deadline)  # type: ignore[arg-type]
    return w


async def test_a_hang_on_one_venue_does_not_hold_back_a_top_up_on_another(tmp_path: Path) -> None:
    """bybit-main hangs for a minute: the cycle ends at the 0.3 s deadline, bybit-main is stale, and
    okx-main's top-up goes out in that same cycle."""
    w = await _bot(tmp_path, {"bybit-main": 60.0}, deadline=0.3)
    t0 = time.perf_counter()
    result = await asyncio.wait_for(w.bot.cycle(), timeout=10)
    took = time.perf_counter() - t0
    assert took < 2.0
    assert result.observed["bybit-main"] is None
    assert result.states["bybit-main"].value == "stale"
    assert [o.status.value for o in result.outcomes if o.status is not None] == ["submitted"]
    assert {i.venue for i in w.store.intents.rows()} == {"okx-main"}


async def test_reads_run_at_once(tmp_path: Path) -> None:
    """Three venues and three accounts of 0.2 s each take about 0.2 s together, not 1.2 s."""
    names = ["okx-main", "bybit-main", "binance-pm", "okx-funding", "treasury-buffer", "treasury-emergency"]
    w = await _bot(tmp_path, dict.fromkeys(names, 0.2), deadline=2.0)
    t0 = time.perf_counter()
    await w.bot.cycle()
    assert time.perf_counter() - t0 < 0.8


async def test_data_older_than_the_limit_at_decision_time_is_never_acted_on(tmp_path: Path) -> None:
    """okx-main answers at once but bybit-main takes 0.6 s: decided 0.6 s later, okx-main's figures are
    older than max_data_age_seconds (0.3): stale, no top-up, a stale alert."""
    w = await _bot(tmp_path, {"bybit-main": 0.6}, deadline=2.0, max_data_age_seconds=0.3)
    result = await w.bot.cycle()
    assert result.observed["okx-main"] is None
    assert result.states["okx-main"].value == "stale"
    assert w.store.intents.rows() == []
    assert any(a.kind == "stale" and a.venue == "okx-main" for a in result.decision.alerts)


async def test_a_cycle_that_overruns_names_its_slowest_read(tmp_path: Path) -> None:
    """With cycle_seconds 0.2, a 1.6 s read overruns (by more than half and a second): a `cycle_overrun`
    warning names binance-pm and its time; the next quick cycle clears it."""
    w = await _bot(tmp_path, {"binance-pm": 1.6}, deadline=5.0, cycle_seconds=0.2)
    result = await w.bot.cycle()
    overrun = [a for a in result.raised if a.kind == "cycle_overrun"]
    assert len(overrun) == 1
    assert "slowest read: binance-pm 1.6s" in overrun[0].message
    w.bot.observer = Observer([], [], w.bot.clock, deadline_seconds=5.0)
    quiet = await w.bot.cycle()
    assert not any(a.kind == "cycle_overrun" for a in quiet.raised)


class SlowLookups:
    """A transfer port whose lookups take `delay` seconds and find nothing yet."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def submit(self, req: object) -> object:
        raise AssertionError("reconciliation never sends")

    async def lookup(self, req: object) -> None:
        await asyncio.sleep(self.delay)


async def test_reconciliation_looks_transfers_up_at_once(tmp_path: Path) -> None:
    """Three transfers in flight whose venues take 0.3 s each to answer: looked up together in about 0.3 s."""
    from bot.core.actions import IntentStatus, TransferKind
    from bot.core.world import IntentView
    from bot.engine.reconcile import Reconciler

    w = await _bot(tmp_path, {}, deadline=1.0)
    routes = w.bot.routes
    name = next(iter(routes))
    views = [
        IntentView(
            f"{k:032x}",
            TransferKind.TOPUP,
            "okx-main",
            name,
            "USDT",
            Decimal(1000),
            Decimal(0),
            Decimal(1000),
            IntentStatus.SUBMITTED,
            time.time(),
            True,
        )
        for k in range(3)
    ]
    rec = Reconciler(w.store, SlowLookups(0.3), routes, lag_seconds=600, desk="t")  # type: ignore[arg-type]
    t0 = time.perf_counter()
    found = await rec.run(views, time.time())
    assert time.perf_counter() - t0 < 0.7
    assert [f.classified for f in found] == [False, False, False]  # absent, still inside the venue's lag
