"""The execution planner: a strategy's trades become orders against order books and margin headroom.

For each trade, instruments are tried in order (the trade's, else the program's rank):
  - unavailable (no fresh data, halted venue, no order book)      -> next instrument
  - reducing: shrink holdings that oppose the trade, least preferred instrument first (reduce-only)
  - liquidity: walk the book; if the estimated slippage exceeds `max_slippage_bps`, cap the order at the
    size that fits and carry the rest to the next instrument (a split); urgent trades take the book
  - margin headroom: an order that would push its venue's utilization over the alert level is cut to what
    fits; what is left goes to the next instrument. If nothing fits anywhere, the extra initial margin is
    reported per venue (`im_needs`), and the treasury tops that venue up before the hedge is placed.
Whatever no instrument could take is reported as unplaced, with the reasons. The initial margin the
planned orders add is reported per venue (`im_added`) so that treasury does not sweep it away in the
same cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from bot.core.hedge import HedgeSpec, Instrument, OrderAction, Trade
from bot.core.margin import Figures, Position, figures
from bot.core.world import VenueSnapshot

EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Book:
    """An order book: levels best first, (price, qty)."""

    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]

    @property
    def mid(self) -> float:
        if self.bids and self.asks:
            return (self.bids[0][0] + self.asks[0][0]) / 2.0
        return (self.bids or self.asks or ((0.0, 0.0),))[0][0]

    def side(self, side: str) -> tuple[tuple[float, float], ...]:
        return self.asks if side == "buy" else self.bids


def walk(book: Book, side: str, qty: float) -> tuple[float, float]:
    """(filled qty, average price) of a market order of `qty` against the book."""
    left, cost = qty, 0.0
    for price, size in book.side(side):
        take = min(left, size)
        cost += take * price
        left -= take
        if left <= EPS:
            break
    filled = qty - max(left, 0.0)
    return filled, (cost / filled if filled > EPS else 0.0)


def slippage_bps(book: Book, side: str, avg_price: float) -> float:
    mid = book.mid
    if mid <= 0.0 or avg_price <= 0.0:
        return 0.0
    return (avg_price - mid) / mid * 10_000.0 * (1.0 if side == "buy" else -1.0)


def max_qty_within(book: Book, side: str, max_bps: float) -> float:
    """The largest order whose average price stays within `max_bps` of mid."""
    mid = book.mid
    limit = mid * (1.0 + max_bps / 10_000.0) if side == "buy" else mid * (1.0 - max_bps / 10_000.0)
    qty = cost = 0.0
    for price, size in book.side(side):
        # taking x of this level keeps the average within the limit while (cost + x·p) / (qty + x) ≤ limit
        new_cost, new_qty = cost + size * price, qty + size
        if (side == "buy" and new_cost <= limit * new_qty) or (
            side == "sell" and new_cost >= limit * new_qty
        ):
            qty, cost = new_qty, new_cost
            continue
        gap = price - limit
        if abs(gap) > EPS:
            x = (limit * qty - cost) / gap
            qty += max(0.0, min(size, x))
        break
    return qty


def round_step(qty: float, step: float) -> Decimal:
    """Round a size down to the instrument's step, exactly."""
    d = Decimal(repr(step))
    return (Decimal(repr(qty)) / d).to_integral_value(rounding=ROUND_DOWN) * d


def apply_fill(
    positions: tuple[Position, ...], symbol: str, base: str, qty: float, price: float
) -> tuple[tuple[Position, ...], float]:
    """Positions after a fill of `qty` at `price` (weighted entry on adds, the old entry kept on reductions,
    the fill price on a flip), and the PnL the fill realizes (it moves into collateral)."""
    out: list[Position] = []
    realized = 0.0
    found = False
    for p in positions:
        if p.symbol != symbol or found:
            out.append(p)
            continue
        found = True
        new = p.qty + qty
        if (p.qty > 0) == (qty > 0):
            entry = (p.qty * p.entry + qty * price) / new
        else:
            closed = min(abs(qty), abs(p.qty))
            realized = closed * (price - p.entry) * (1.0 if p.qty > 0 else -1.0)
            entry = p.entry if abs(qty) <= abs(p.qty) else price
        if abs(new) > EPS:
            out.append(Position(symbol, base, new, entry))
    if not found and abs(qty) > EPS:
        out.append(Position(symbol, base, qty, price))
    return tuple(out), realized


REALIZED = (
    "realized PnL"  # a collateral line, valued at 1 USD with no haircut, for PnL a planned fill realizes
)


def _equity_view(collateral: Mapping[str, float], realized: float) -> Mapping[str, float]:
    return collateral if realized == 0.0 else {**collateral, REALIZED: realized}


@dataclass(frozen=True, slots=True)
class Plan:
    orders: tuple[OrderAction, ...] = ()
    im_needs: Mapping[str, float] = field(default_factory=dict)  # venue -> extra initial margin (USD) wanted
    im_added: Mapping[str, float] = field(
        default_factory=dict
    )  # venue -> initial margin the orders add (USD)
    unplaced: float = 0.0  # signed qty no instrument could take this cycle
    notes: tuple[str, ...] = ()


@dataclass
class _Room:
    """A venue's margin room, updated as this cycle's orders are planned on it."""

    snap: VenueSnapshot
    alert_utilization: float
    positions: tuple[Position, ...]
    realized: float = 0.0

    def figures_after(self, symbol: str, base: str, qty: float, price: float) -> Figures:
        s = self.snap
        trial, pnl = apply_fill(self.positions, symbol, base, qty, price)
        return figures(_equity_view(s.collateral, self.realized + pnl), trial, s.prices, s.haircuts, s.params)

    def trade(self, symbol: str, base: str, qty: float, price: float) -> None:
        self.positions, pnl = apply_fill(self.positions, symbol, base, qty, price)
        self.realized += pnl


def _fits(room: _Room, inst: Instrument, qty: float, mark: float) -> float:
    """The largest part of `qty` (same sign) this venue can add and stay at or under its alert level."""

    def ok(x: float) -> bool:
        return room.figures_after(inst.symbol, inst.base, x, mark).utilization <= room.alert_utilization

    if ok(qty):
        return qty
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2.0
        if ok(qty * mid):
            lo = mid
        else:
            hi = mid
    return qty * lo


def plan_orders(
    spec: HedgeSpec,
    trades: tuple[Trade, ...],
    holdings: Mapping[str, float],
    *,
    books: Mapping[str, Book | None],
    snapshots: Mapping[str, VenueSnapshot | None],
    alert_utilization: Mapping[str, float],
    trigger: str,
    leg_start: int = 0,
) -> Plan:
    """Orders for `trades`; `books` holds a book per instrument key that may be traded (None: unreachable)."""
    p = _Planner(
        spec, books, snapshots, alert_utilization, trigger=trigger, leg=leg_start, held=dict(holdings)
    )
    last_placed = 0.0  # what the previous trade placed (signed): a matched leg takes no more than that
    for t in trades:
        last_placed = p.trade(t, last_placed)
    return Plan(tuple(p.orders), p.needs, p.im_added(), p.unplaced, tuple(p.notes))


class _Planner:
    """One `plan_orders` call: the orders, notes and margin rooms built up trade by trade."""

    def __init__(
        self,
        spec: HedgeSpec,
        books: Mapping[str, Book | None],
        snapshots: Mapping[str, VenueSnapshot | None],
        alert_utilization: Mapping[str, float],
        *,
        trigger: str,
        leg: int,
        held: dict[str, float],
    ) -> None:
        self.spec = spec
        self.books = books
        self.snapshots = snapshots
        self.alert_utilization = alert_utilization
        self.trigger = trigger
        self.leg = leg
        self.held = held
        self.orders: list[OrderAction] = []
        self.notes: list[str] = []
        self.needs: dict[str, float] = {}
        self.rooms: dict[str, _Room] = {}
        self.unplaced = 0.0

    def room(self, venue: str) -> _Room | None:
        if venue not in self.rooms:
            snap = self.snapshots.get(venue)
            if snap is None:
                return None
            self.rooms[venue] = _Room(snap, self.alert_utilization.get(venue, 1.0), snap.positions)
        return self.rooms[venue]

    def emit(self, inst: Instrument, qty: float, t: Trade, book: Book, *, reduce_only: bool) -> float:
        """An order of `qty` (rounded down to the step) on `inst`; the signed size placed."""
        side = "buy" if qty > 0 else "sell"
        size = round_step(abs(qty), inst.qty_step)
        if size <= 0:
            return 0.0
        _, avg = walk(book, side, float(size))
        self.orders.append(
            OrderAction(
                program=self.spec.name,
                venue=inst.venue,
                symbol=inst.symbol,
                side=side,
                qty=size,
                reduce_only=reduce_only,
                reason=t.reason,
                trigger=self.trigger,
                leg=self.leg,
                est_price=avg,
                est_slippage_bps=slippage_bps(book, side, avg),
                note=t.note,
            )
        )
        self.leg += 1
        signed = float(size) if qty > 0 else -float(size)
        self.held[inst.key] = self.held.get(inst.key, 0.0) + signed
        r = self.room(inst.venue)
        if r is not None:
            r.trade(inst.symbol, inst.base, signed, book.mid)
        return signed

    def liquid(self, book: Book, side: str, qty: float, urgent: bool) -> float:
        if urgent:
            return qty
        cap = max_qty_within(book, side, self.spec.max_slippage_bps)
        return min(qty, cap)

    def trade(self, t: Trade, last_placed: float) -> float:
        """Plan one trade: reduce opposing holdings, then add within liquidity and headroom. What it placed."""
        order = t.instruments or tuple(i.key for i in self.spec.instruments)
        insts = [self.spec.instrument(k) for k in order]
        dust = min(i.qty_step for i in insts)  # less than the finest step cannot be traded anywhere
        wanted = t.qty
        if t.match_previous:  # the second leg of a rotation: only as much as the first leg placed
            wanted = math.copysign(min(abs(t.qty), abs(last_placed)), t.qty)
        left = round(wanted, 9)  # sizes are tracked to 1e-9: float noise must not eat a step
        start = left
        side = "buy" if left > 0 else "sell"
        left = self.reduce(t, insts, left, side)
        if abs(left) < dust:
            return start - left
        if t.reduce_only:
            self.unplaced += left
            return start - left
        left, starved = self.add(t, insts, left, side)
        if abs(left) >= dust:
            self.unplaced += left
            if starved:
                self.im_need(*starved[0])
        return start - left

    def reduce(self, t: Trade, insts: list[Instrument], left: float, side: str) -> float:
        """1. Shrink holdings that oppose the trade, least preferred first; what is left of it."""
        for inst in reversed(insts):
            h = self.held.get(inst.key, 0.0)
            book = self.books.get(inst.key)
            if abs(left) <= EPS or book is None or h * left >= 0 or abs(h) <= EPS:
                continue
            want = min(abs(left), abs(h))
            take = self.liquid(book, side, want, t.urgent)
            if take < want - EPS:
                self.notes.append(f"{inst.key}: reduction capped at {take:g} of {want:g} by max_slippage_bps")
            # reduce-only at the venue only when the venue's own position shrinks by it: another owner on
            # the other side of a shared position would make the venue refuse (or cut) a reduce-only order
            r = self.room(inst.venue)
            net = sum(p.qty for p in r.positions if p.symbol == inst.symbol) if r is not None else 0.0
            venue_reduces = net * h > 0 and take <= abs(net) + EPS
            placed = self.emit(inst, math.copysign(take, left), t, book, reduce_only=venue_reduces)
            left = round(left - placed, 9)
        return left

    def add(
        self, t: Trade, insts: list[Instrument], left: float, side: str
    ) -> tuple[float, list[tuple[Instrument, float]]]:
        """2. Add on instruments in order, within liquidity and margin headroom; what is left, and what
        each instrument could not take for want of margin."""
        starved: list[tuple[Instrument, float]] = []
        for inst in insts:
            if abs(left) <= EPS:
                break
            book = self.books.get(inst.key)
            r = self.room(inst.venue)
            if book is None or r is None:
                self.notes.append(f"{inst.key}: unavailable; trying the next instrument")
                continue
            take = self.liquid(book, side, abs(left), t.urgent)
            if take < abs(left) - EPS:
                self.notes.append(
                    f"{inst.key}: {abs(left):g} would slip past {self.spec.max_slippage_bps:g} bps; "
                    f"capped at {take:g}"
                )
            signed = math.copysign(take, left)
            fits = _fits(r, inst, signed, book.mid)
            if abs(fits) < abs(signed) - EPS:
                self.notes.append(
                    f"{inst.key}: {abs(signed):g} would push {inst.venue} over its alert utilization; "
                    f"{abs(fits):g} fits"
                )
                starved.append((inst, signed - fits))
            left = round(left - self.emit(inst, fits, t, book, reduce_only=False), 9)
        return left, starved

    def im_need(self, inst: Instrument, extra: float) -> None:
        """The initial margin `extra` more on `inst` would take: treasury tops the venue up by it first."""
        book = self.books.get(inst.key)
        mark = book.mid if book is not None else 0.0
        r = self.room(inst.venue)
        if r is not None:
            before = r.figures_after(inst.symbol, inst.base, 0.0, mark)
            after = r.figures_after(inst.symbol, inst.base, extra, mark)
            self.needs[inst.venue] = self.needs.get(inst.venue, 0.0) + max(0.0, after.im - before.im)

    def im_added(self) -> dict[str, float]:
        """Initial margin this cycle's orders add, per venue (so treasury does not sweep it away)."""
        added: dict[str, float] = {}
        for venue, r in self.rooms.items():
            sn = r.snap
            im_before = figures(sn.collateral, sn.positions, sn.prices, sn.haircuts, sn.params).im
            im_after = figures(sn.collateral, r.positions, sn.prices, sn.haircuts, sn.params).im
            if im_after > im_before:
                added[venue] = im_after - im_before
        return added
