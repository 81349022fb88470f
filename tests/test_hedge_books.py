"""The hedge engine's book reads: the books the first step names are read at once, each under the read
deadline; a book that does not come passes its instrument over, as an unreachable venue does."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.engine.clock import SimClock
from bot.venues.base import OrderReceipt, OrderRequest
from bot.venues.paper import PaperOrders
from tests.harness import START, make_bot
from tests.test_hedge_engine import hedging


class SlowBooks:
    """Order books that take `delay` seconds to come (forever on the `hanging` venues); orders as on paper."""

    def __init__(
        self, inner: PaperOrders, *, delay: float = 0.0, hanging: frozenset[str] = frozenset()
    ) -> None:
        self.inner = inner
        self.delay = delay
        self.hanging = hanging
        self.asked: list[tuple[str, str]] = []

    async def order_book(self, venue: str, symbol: str) -> Any:
        self.asked.append((venue, symbol))
        await asyncio.sleep(3600.0 if venue in self.hanging else self.delay)
        return await self.inner.order_book(venue, symbol)

    async def place(self, req: OrderRequest) -> OrderReceipt:
        return await self.inner.place(req)

    async def lookup_order(self, req: OrderRequest) -> OrderReceipt | None:
        return await self.inner.lookup_order(req)


async def test_a_hanging_book_is_cut_off_at_the_deadline_and_the_hedge_goes_elsewhere(db_url: str) -> None:
    """okx's book never comes: after the read deadline the okx instrument is passed over and the hedge is
    placed on bybit, the program's second instrument, in the same cycle."""
    w = await make_bot(hedging("btc-options", read_deadline_seconds=0.2), db_url, SimClock(START))
    assert w.bot.hedger is not None
    w.bot.hedger.port = SlowBooks(PaperOrders(w.exchange), hanging=frozenset({"okx-main"}))  # type: ignore[assignment]
    began = time.perf_counter()
    result = await w.bot.cycle()
    took = time.perf_counter() - began
    assert result.orders
    assert {o.order.venue for o in result.orders} == {"bybit-main"}
    assert took < 2.0


async def test_the_books_of_a_cycle_are_read_at_once(db_url: str) -> None:
    """Two books that take 0.5 s each: the cycle waits for about one of them, not for both in turn."""
    w = await make_bot(hedging("btc-options", read_deadline_seconds=5.0), db_url, SimClock(START))
    assert w.bot.hedger is not None
    port = SlowBooks(PaperOrders(w.exchange), delay=0.5)
    w.bot.hedger.port = port  # type: ignore[assignment]
    began = time.perf_counter()
    result = await w.bot.cycle()
    took = time.perf_counter() - began
    assert sorted(port.asked) == [("bybit-main", "BTC/USDT:USDT"), ("okx-main", "BTC/USDT:USDT")]
    assert result.orders
    assert took < 0.85  # one after the other: 1 s and more
