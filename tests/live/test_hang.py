"""A hanging exchange, through real ccxt and the fake servers, on the wall clock: its venue is cut off at the
read deadline and is stale this cycle, while a top-up due on another exchange goes out in the same cycle."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bot.app import build, market_from_settings, open_store
from bot.engine.clock import WallClock
from bot.settings import Settings, settings_from_dict
from bot.venues.fakes.rehearsal import Rehearsal
from bot.venues.live.ports import LiveWorld
from bot.venues.paper import PaperExchange
from tests.live.harness import _with_timeout


def config() -> Settings:
    """okx-main (fine, 40% used) and bybit-main (90% used: a top-up is due), each with a funding wallet."""

    def venue(name: str, usdt: int) -> dict[str, Any]:
        return {
            "name": name,
            "paper": {
                "collateral": {"USDT": usdt},
                "positions": [{"symbol": "BTC/USDT:USDT", "qty": -100, "entry": 60000}],
                "im_rate": 0.1,
                "funding_rate_8h": 0.0,
            },
        }

    def route(name: str, src: str, dst: str) -> dict[str, Any]:
        return {
            "name": name,
            "from": src,
            "to": dst,
            "asset": "USDT",
            "method": "internal",
            "max_amount": 5_000_000,
            "daily_limit": 50_000_000,
            "settle_seconds": 0,
        }

    data: dict[str, Any] = {
        "bot": {"read_deadline_seconds": 0.8, "max_data_age_seconds": 30},
        "approvals": {
            "approvers": ["alice", "bob"],
            "quorum": 2,
            "auto_limit_usd": 5_000_000,
            "daily_auto_limit_usd": 50_000_000,
        },
        "market": {"prices": {"BTC": 60000.0}},
        "venues": [venue("okx-main", 1_500_000), venue("bybit-main", 666_667)],
        "accounts": [
            {"name": f"{x}-funding", "bucket": "buffer", "owner": "t", "balances": {"USDT": 10_000_000}}
            for x in ("okx", "bybit")
        ],
        "routes": [
            route("fund-okx", "okx-funding", "okx-main"),
            route("fund-bybit", "bybit-funding", "bybit-main"),
        ],
    }
    return settings_from_dict(data)


async def test_a_hanging_exchange_is_cut_off_and_the_other_tops_up(tmp_path: Path) -> None:
    """Every OKX request hangs (the fake holds it 20 s; ccxt gives up after 0.3 s and retries): the cycle
    ends near the 0.8 s read deadline, okx-main is stale, bybit-main's top-up is submitted."""
    s = config()
    clock = WallClock()
    paper = PaperExchange(s, market_from_settings(s), clock.now)
    exchange_of = {"okx-main": "okx", "okx-funding": "okx", "bybit-main": "bybit", "bybit-funding": "bybit"}
    rehearsal = Rehearsal(s, exchange_of, paper, hang_seconds=20.0)
    live = _with_timeout(await rehearsal.start(), 0.3)
    world = LiveWorld(live, clock=clock.now, env=rehearsal.env, read_wait_max=0.01)
    try:
        store = open_store(live, f"sqlite:///{tmp_path / 'm.db'}", synchronous="OFF")
        wired = build(
            live, store, clock, market=paper.market, exchange=paper, live=world, send_notifications=False
        )
        await wired.bot.start()
        rehearsal.fakes["okx"].add_fault("timeout", "any", count=1000)
        t0 = time.perf_counter()
        result = await asyncio.wait_for(wired.bot.cycle(), timeout=15)
        took = time.perf_counter() - t0
        assert took < 3.0, took
        assert result.observed["okx-main"] is None
        assert result.states["okx-main"].value == "stale"
        rows = store.intents.rows()
        assert [(r.venue, r.status) for r in rows] == [("bybit-main", "submitted")]
    finally:
        await world.close()
        await rehearsal.stop()
