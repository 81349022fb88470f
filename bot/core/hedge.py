"""Hedge programs as the pure core sees them: specs, the frozen inputs a strategy reads, the trades it
returns, and the orders they become.

    net delta = exposure + Σ holdings          (asset units; holdings are this program's own fills)
    exposure  = base + gamma × (price − ref) / (ref × 1%)

`gamma` is the exposure's own delta per 1% move of the asset (an options book); it is 0 for a spot
inventory, whose delta in asset units does not move with price. A strategy returns `Trade`s; the
execution planner (`bot.core.execution`) turns them into `OrderAction`s against order books and margin
headroom. A *trade* is one rebalance decision; it may be split into several orders.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from bot.core.actions import canonical_json


class OrderReason(StrEnum):
    REBALANCE = "rebalance"
    UNWIND = "unwind"
    STOP = "stop"
    DERISK = "derisk"


class OrderStatus(StrEnum):
    """Order lifecycle: intent recorded (`approved`), then the venue's answer (market orders, IOC)."""

    APPROVED = "approved"
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"  # the rest was cancelled by the venue (IOC)
    FAILED = "failed"  # refused, unreachable, or nothing filled
    UNKNOWN = "unknown"  # the answer was lost: look it up, never re-send


OPEN_ORDER_STATUSES = frozenset({OrderStatus.APPROVED, OrderStatus.UNKNOWN})


@dataclass(frozen=True, slots=True)
class Instrument:
    venue: str
    symbol: str
    fee_bps: float = 5.0
    qty_step: float = 0.001

    @property
    def key(self) -> str:
        return f"{self.venue}|{self.symbol}"

    @property
    def base(self) -> str:
        return self.symbol.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class StopRule:
    max_loss_usd: float | None = None
    max_funding_drag_bps_per_day: float | None = None


@dataclass(frozen=True, slots=True)
class HedgeSpec:
    """One `[[hedges]]` program, compiled."""

    name: str
    asset: str
    strategy: str
    exposure: float
    target_delta: float
    band: float
    min_trade: float
    max_slippage_bps: float
    instruments: tuple[Instrument, ...]  # ranked: the first is preferred
    max_trades_per_hour: int = 6
    gamma: float = 0.0
    exposure_account: str | None = None
    funding_horizon_hours: float = 24.0
    stop: StopRule = StopRule()

    def instrument(self, key: str) -> Instrument:
        for i in self.instruments:
            if i.key == key:
                return i
        raise KeyError(key)


@dataclass(frozen=True, slots=True)
class Quote:
    """What a strategy may know about one instrument this cycle."""

    mark: float
    funding_8h: float
    available: bool  # the venue answered with fresh data and is not halted


@dataclass(frozen=True, slots=True)
class HedgeInputs:
    """Everything a strategy reads. Strategies are pure functions of this."""

    spec: HedgeSpec
    now: float
    exposure: float  # the exposure's delta now, in asset units
    holdings: Mapping[str, float]  # instrument key -> signed qty this program holds
    quotes: Mapping[str, Quote]  # instrument key -> quote
    hedged_exposure: float | None  # the exposure at the program's last trade (None: never traded)
    recent_trades: tuple[float, ...]  # times of this program's trades within the last hour

    @property
    def net_delta(self) -> float:
        return self.exposure + sum(self.holdings.values())

    @property
    def deviation(self) -> float:
        return self.net_delta - self.spec.target_delta

    @property
    def at_trade_cap(self) -> bool:
        recent = [t for t in self.recent_trades if self.now - t < 3600.0]
        return len(recent) >= self.spec.max_trades_per_hour


@dataclass(frozen=True, slots=True)
class Trade:
    """A strategy's request: move `qty` (signed asset units) of hedge.

    `instruments` is the order to try (empty: the program's rank); the planner skips instruments that
    are unavailable, illiquid or without margin headroom. `reduce_only` trades only shrink holdings;
    `urgent` ones (stop unwinds) take the book as it is instead of capping at `max_slippage_bps`.
    `match_previous` limits a trade to what the previous one placed: a rotation never opens more on the new
    instrument than it closed on the old one.
    """

    qty: float
    reason: OrderReason
    instruments: tuple[str, ...] = ()
    reduce_only: bool = False
    urgent: bool = False
    note: str = ""
    match_previous: bool = False  # place no more than the previous trade placed (a rotation's second leg)


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OrderAction:
    """One market order (immediate-or-cancel), with a deterministic intent id sent as the client order id."""

    program: str | None  # None: a de-risk order on the venue's own book
    venue: str
    symbol: str
    side: str  # buy | sell
    qty: Decimal  # > 0, on the instrument's step
    reduce_only: bool
    reason: OrderReason
    trigger: str  # what was observed (cycle time): the basis of the id
    leg: int
    est_price: float
    est_slippage_bps: float
    note: str = ""
    effect: str = ""  # projected effect on the venue's margin (core.whatif), for the audit and notifications

    @property
    def signed(self) -> float:
        return float(self.qty) if self.side == "buy" else -float(self.qty)

    @property
    def intent_id(self) -> str:
        return _hex(
            f"order|{self.program}|{self.venue}|{self.symbol}|{self.side}|{self.reason}|{self.trigger}|{self.leg}"
        )[:32]

    @property
    def params_hash(self) -> str:
        return _hex(
            canonical_json(
                {
                    "venue": self.venue,
                    "symbol": self.symbol,
                    "side": self.side,
                    "qty": str(self.qty),
                    "reduce_only": self.reduce_only,
                }
            )
        )


def exposure_delta(base: float, ref_price: float, price: float, gamma: float) -> float:
    """The exposure's delta at `price`: base plus gamma per 1% move from the reference price."""
    if gamma == 0.0 or ref_price <= 0.0:
        return base
    return base + gamma * (price - ref_price) / (ref_price * 0.01)


def exposure_pnl(base: float, ref_price: float, price: float, gamma: float) -> float:
    """PnL of the exposure from `ref_price` to `price`: the integral of its delta."""
    move = price - ref_price
    if gamma == 0.0 or ref_price <= 0.0:
        return base * move
    return base * move + gamma * move * move / (2.0 * ref_price * 0.01)


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order intent as the engine needs to see it (open ones, for reconciliation and the startup gate)."""

    id: str
    program: str | None
    venue: str
    symbol: str
    side: str
    qty: Decimal
    reduce_only: bool
    reason: OrderReason
    status: OrderStatus
    created_at: float
    acknowledged: bool = False
    effect: str = ""  # the projected margin effect when it was sent (not kept in the store)

    @property
    def key(self) -> str:
        return f"{self.venue}|{self.symbol}"
