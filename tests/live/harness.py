"""Twin bots: one over the paper venue, one over ccxt → fake exchange servers → a second paper world.

Both worlds start from the same paper config and see the same prices, so a scenario's outcome (the
intents, their amounts and statuses, the orders and their fills, the balances) can be compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.app import Wired, build, market_from_settings, open_store
from bot.engine.clock import SimClock
from bot.settings import Settings
from bot.venues.fakes.base import FakeExchange
from bot.venues.fakes.rehearsal import Rehearsal
from bot.venues.live.ports import LiveWorld
from bot.venues.paper import PaperExchange

START = 1_772_000_000.0


@dataclass
class Side:
    wired: Wired
    paper: PaperExchange  # the world whose money moves (behind the fakes, for the live side)


class Twin:
    def __init__(self, settings: Settings, exchange_of: Mapping[str, str], tmp: Any) -> None:
        self.settings = settings
        self.exchange_of = dict(exchange_of)
        self.tmp = tmp
        self.clock = SimClock(START)
        self.rehearsal: Rehearsal | None = None
        self.world: LiveWorld | None = None

    async def start(self, *, hang_seconds: float = 1.0, timeout_seconds: float = 0.3) -> Twin:
        s = self.settings
        ma, mb = market_from_settings(s), market_from_settings(s)
        pa, pb = PaperExchange(s, ma, self.clock.now), PaperExchange(s, mb, self.clock.now)
        self.rehearsal = Rehearsal(s, self.exchange_of, pb, hang_seconds=hang_seconds)
        live = await self.rehearsal.start()
        live = _with_timeout(live, timeout_seconds)
        self.live_settings = live
        self.world = LiveWorld(live, clock=self.clock.now, env=self.rehearsal.env, read_wait_max=0.01)
        store_a = open_store(s, f"sqlite:///{self.tmp}/paper.db", synchronous="OFF")
        store_b = open_store(live, f"sqlite:///{self.tmp}/live.db", synchronous="OFF")
        wa = build(
            s,
            store_a,
            self.clock,
            market=ma,
            exchange=pa,
            send_notifications=False,
            figures_every_seconds=None,
        )
        wb = build(  # names left paper in the live config are read from the same world the fakes serve
            live,
            store_b,
            self.clock,
            market=mb,
            exchange=pb,
            send_notifications=False,
            figures_every_seconds=None,
            live=self.world,
        )
        self.paper = Side(wa, pa)
        self.ccxt = Side(wb, pb)
        await wa.bot.start()
        await wb.bot.start()
        return self

    def fake(self, exchange: str) -> FakeExchange:
        assert self.rehearsal is not None
        return self.rehearsal.fakes[exchange]

    def shock(self, asset: str, pct: float) -> None:
        """Move one price in both worlds (−0.1 is a 10% drop)."""
        for side in (self.paper, self.ccxt):
            side.wired.market.shock(asset, pct)

    async def cycle(self, seconds: float = 5.0) -> None:
        """Advance the clock, move both paper worlds, run one cycle of each bot."""
        self.clock.advance(seconds)
        for side in (self.paper, self.ccxt):
            side.paper.advance()
        await self.paper.wired.bot.cycle()
        await self.ccxt.wired.bot.cycle()

    async def stop(self) -> None:
        for side in (self.paper, self.ccxt):
            await side.wired.bot.close()
        if self.world is not None:
            await self.world.close()
        if self.rehearsal is not None:
            await self.rehearsal.stop()


def _with_timeout(s: Settings, seconds: float) -> Settings:
    from bot.settings import settings_from_dict

    data = s.model_dump(mode="json", by_alias=True, exclude_none=True)
    for group in ("venues", "accounts"):
        for item in data.get(group, []):
            if item.get("kind") == "ccxt":
                item.setdefault("live", {})["timeout_seconds"] = seconds
    return settings_from_dict(data)


def intents(side: Side) -> list[tuple[str, str, Decimal, str]]:
    """(kind, route, amount, status) of every intent, oldest first."""
    rows = side.wired.store.intents.rows()
    return [(r.kind, r.route, Decimal(str(r.amount)), r.status) for r in rows]


def orders(side: Side) -> list[tuple[str, str, str, Decimal, Decimal, str]]:
    """(venue, symbol, side, qty, filled, status) of every order, oldest first."""
    rows = side.wired.store.orders.rows()
    return [
        (
            r.venue,
            r.symbol,
            r.side,
            Decimal(str(r.qty)),
            Decimal(str(r.filled or 0)),
            r.status,
        )
        for r in rows
    ]
