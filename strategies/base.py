"""The one small protocol every hedge strategy implements, and helpers they share.

A strategy is a pure function of frozen `HedgeInputs` (which include `now`) returning `Trade`s; it never
performs I/O. The engine turns an exception raised by a strategy into a `StrategyError` and stops that
program alone.
"""

from __future__ import annotations

from typing import Protocol

from bot.core.hedge import HedgeInputs, OrderReason, Trade

EPS = 1e-9


class Strategy(Protocol):
    name: str

    def propose(self, inputs: HedgeInputs) -> tuple[Trade, ...]:
        """The trades this program wants now (empty: nothing to do)."""
        ...


def back_to_target(inputs: HedgeInputs, note: str, instruments: tuple[str, ...] = ()) -> tuple[Trade, ...]:
    """One trade taking net delta back to target, unless it is below `min_trade` or the hourly cap is reached."""
    qty = -inputs.deviation
    if abs(qty) < max(inputs.spec.min_trade, EPS) or inputs.at_trade_cap:
        return ()
    return (Trade(qty, OrderReason.REBALANCE, instruments=instruments, note=note),)


def available(inputs: HedgeInputs) -> tuple[str, ...]:
    """Instrument keys in rank order whose venue answered this cycle."""
    return tuple(i.key for i in inputs.spec.instruments if (q := inputs.quotes.get(i.key)) and q.available)
