"""Orders on the paper venue: a synthetic order book around the mark, market orders immediate-or-cancel.

The book has `book_levels` levels a side, `book_step_bps` apart, starting `spread_bps / 2` from the mark,
each holding `book_level_usd` × depth factor of notional (the `liquidity` scenario event scales the
factor per symbol). An order walks the book; what the book cannot hold is cancelled (a partial fill).
Fills move the position (weighted entry on adds; realized PnL into the settlement collateral on
reductions) and charge `taker_fee_bps`. Reduce-only orders are cut to the position they reduce and
refused when there is none. An order that would take utilization past 100% is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.core.execution import Book, apply_fill, walk
from bot.core.margin import figures
from bot.core.numbers import to_decimal
from bot.errors import OrderRefused, UnknownOutcome, VenueUnavailable
from bot.venues.base import OrderReceipt, OrderRequest

if TYPE_CHECKING:
    from bot.venues.paper import PaperBook, PaperExchange


def take(counter: dict[str, int], key: str) -> bool:
    """Consume one armed fault for `key`, if any."""
    left = counter.get(key, 0)
    if left > 0:
        counter[key] = left - 1
        return True
    return False


@dataclass(frozen=True, slots=True)
class BookShape:
    levels: int = 20
    step_bps: float = 2.0
    level_usd: float = 200_000.0
    spread_bps: float = 1.0
    fee_bps: float = 5.0


@dataclass(slots=True)
class PaperOrder:
    req: OrderRequest
    receipt: OrderReceipt


def synthetic_book(mark: float, shape: BookShape, depth_factor: float) -> Book:
    half = shape.spread_bps / 2.0
    size = shape.level_usd * depth_factor / mark if mark > 0 else 0.0
    asks = tuple((mark * (1 + (half + k * shape.step_bps) / 10_000.0), size) for k in range(shape.levels))
    bids = tuple((mark * (1 - (half + k * shape.step_bps) / 10_000.0), size) for k in range(shape.levels))
    return Book(bids=bids, asks=asks)


class PaperMatching:
    """The order side of the paper exchange."""

    def __init__(self, exchange: PaperExchange) -> None:
        self.x = exchange
        self.orders: dict[str, PaperOrder] = {}
        self.depth: dict[tuple[str, str], float] = {}  # (venue, symbol) -> depth factor
        self.timeouts_after_fill: dict[str, int] = {}  # venue -> orders whose answer is lost after the fill
        self.server_errors: dict[str, int] = {}  # venue -> orders answered 5xx before reaching the book
        self.fees_paid: dict[str, Decimal] = {}  # per settlement asset
        self.realized: dict[str, Decimal] = {}  # PnL realized by fills, per settlement asset
        self.fills: list[str] = []  # client id of every order that traded (one effect per entry)

    def _book_of(self, venue: str) -> PaperBook:
        book = self.x.books.get(venue)
        if book is None:
            raise OrderRefused(f"{venue}: no such paper venue")
        if book.outage_until > self.x.now():
            raise VenueUnavailable(f"{venue}: paper venue outage")
        return book

    def order_book(self, venue: str, symbol: str) -> Book:
        book = self._book_of(venue)
        base = symbol.split("/", 1)[0]
        mark = self.x.market.prices.get(base)
        if mark is None:
            raise OrderRefused(f"{venue}: no market for {symbol}")
        return synthetic_book(mark, book.shape, self.depth.get((venue, symbol), 1.0))

    def place(self, req: OrderRequest) -> OrderReceipt:
        if take(self.server_errors, req.venue):
            raise UnknownOutcome(f"{req.venue}: HTTP 502 on create_order; the outcome is unknown")
        existing = self.orders.get(req.client_id)
        if existing is not None:
            if existing.req != req:
                raise OrderRefused(f"client order id {req.client_id} reused with different parameters")
            return existing.receipt
        book = self._book_of(req.venue)
        ob = self.order_book(req.venue, req.symbol)
        base = req.symbol.split("/", 1)[0]
        settle = req.symbol.rsplit(":", 1)[-1]
        held = sum(p.qty for p in book.positions if p.symbol == req.symbol)
        qty = float(req.qty)
        sign = 1.0 if req.side == "buy" else -1.0
        if req.reduce_only:
            if held == 0.0 or (held > 0) == (sign > 0):
                raise OrderRefused(
                    f"{req.venue}: reduce-only {req.side} {req.symbol} would not reduce a position"
                )
            qty = min(qty, abs(held))
        filled, avg = walk(ob, req.side, qty)
        filled = float(Decimal(repr(filled)).quantize(Decimal("1e-9")))
        now = self.x.now()
        fee = 0.0
        if filled > 0:
            positions, realized = apply_fill(book.positions, req.symbol, base, sign * filled, avg)
            if not req.reduce_only:
                f = figures(book.collateral_view, positions, self.x.market.prices, book.haircuts, book.params)
                if f.utilization > 1.0:
                    raise OrderRefused(
                        f"{req.venue}: insufficient margin for {req.side} {filled:g} {req.symbol}"
                    )
            fee = filled * avg * book.shape.fee_bps / 10_000.0
            fee_d = to_decimal(round(fee, 6))
            realized_d = to_decimal(round(realized, 6))
            book.positions = positions
            book.collateral[settle] = book.collateral.get(settle, Decimal(0)) + realized_d - fee_d
            self.realized[settle] = self.realized.get(settle, Decimal(0)) + realized_d
            book.symbols.add(req.symbol)
            book.refresh()
            self.fees_paid[settle] = self.fees_paid.get(settle, Decimal(0)) + fee_d
            self.fills.append(req.client_id)
        receipt = OrderReceipt(
            req.client_id,
            f"paper-order-{len(self.orders) + 1}",
            Decimal(repr(filled)),
            avg,
            fee,
            now,
        )
        self.orders[req.client_id] = PaperOrder(req, receipt)
        if take(self.timeouts_after_fill, req.venue):
            raise UnknownOutcome(f"{req.venue}: create_order timed out after the order reached the book")
        return receipt

    def lookup(self, req: OrderRequest) -> OrderReceipt | None:
        o = self.orders.get(req.client_id)
        return None if o is None else o.receipt
