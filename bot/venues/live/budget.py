"""Rate budgets: per-venue weight tables enforced with asyncio-throttle, shared by the cycle and reconciliation.

ccxt's own limiter is off (it makes an isolated call wait its own cost: 0.3–1 s before a transfer). Ours
admits a call at once while the venue's budget has room, so a transfer is sent without a client-side
wait. A 429 with Retry-After pauses the whole venue until then; a 418 (IP ban) marks it banned.

The weights are approximations of each venue's published limits (per IP or per key), kept as data:
  binance  2,400 weight per minute (USDⓈ-M), account/positions 5, order book 5–10, sapi calls 1–10
  okx      per-endpoint 10 requests per 2 s (balance, positions); one pool of 10 per 2 s here
  bybit    10 requests per second per key by default
  deribit  credits: 50,000 pool refilled at 10,000/s, 500 per non-matching request: 20 per second
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from asyncio_throttle.throttler import Throttler


@dataclass(frozen=True, slots=True)
class Budget:
    capacity: int  # weight units per period
    period: float  # seconds
    weights: Mapping[str, int] = field(default_factory=dict)  # endpoint kind -> weight; missing kinds weigh 1

    def weight(self, kind: str) -> int:
        return max(1, min(self.weights.get(kind, 1), self.capacity))


BUDGETS: dict[str, Budget] = {
    "binance": Budget(
        2400,
        60.0,
        {
            "markets": 40,
            "balance": 5,
            "account": 20,
            "positions": 5,
            "tickers": 2,
            "funding": 10,
            "book": 5,
            "order": 1,
            "lookup": 1,
            "history": 5,
            "transfer": 1,
            "withdraw": 1,
            "permissions": 1,
        },
    ),
    "okx": Budget(10, 2.0, {"markets": 2}),
    "bybit": Budget(10, 1.0, {"markets": 2}),
    "deribit": Budget(20, 1.0, {"markets": 2}),
}


class RateGate:
    """One venue's budget: a weighted throttle, a pause after a 429, and a ban after a 418."""

    def __init__(
        self,
        budget: Budget,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.budget = budget
        self.throttler = Throttler(rate_limit=budget.capacity, period=budget.period, retry_interval=0.005)
        self.clock = clock
        self.sleep = sleep
        self.paused_until = 0.0
        self.banned_until: float | None = None
        self.waited = 0.0  # total seconds callers waited at this gate (the bench reads it)

    async def acquire(self, kind: str) -> float:
        """Wait until the budget admits a call of `kind`; return the seconds waited."""
        start = self.clock()
        pause = self.paused_until - start
        if pause > 0:
            await self.sleep(pause)  # type: ignore[misc]
        for _ in range(self.budget.weight(kind)):
            await self.throttler.acquire()  # type: ignore[no-untyped-call]
        waited = self.clock() - start
        self.waited += waited
        return waited

    def pause(self, seconds: float) -> None:
        """Honour a Retry-After: no call to this venue before then."""
        self.paused_until = max(self.paused_until, self.clock() + max(0.0, seconds))

    def ban(self, seconds: float | None) -> None:
        self.banned_until = self.clock() + (seconds if seconds is not None else 3600.0)

    def banned(self) -> bool:
        return self.banned_until is not None and self.clock() < self.banned_until
