"""The built-in paper venue: a simulated exchange with margin accounts, treasury wallets and transfers.

One `PaperExchange` holds the whole simulated world (venues, treasury accounts, transfers in flight,
liquidations); `PaperVenue`, `PaperAccount` and `PaperTransfers` are the ports the engine sees. It
simulates linear perpetuals marked to the `Market`, maintenance margin by the venue's model, funding
every 8 hours, transfers that settle after the route's `settle_seconds`, liquidation when the
liquidation ratio reaches 1 (positions closed at mark with a 1% fee), and faults: outages, stale data,
transfer freezes and timeouts after the effect. Orders and order books are in `paper_orders`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from bot.core.assets import STABLES
from bot.core.execution import Book
from bot.core.margin import (
    Figures,
    MarginParams,
    Position,
    build_tiers,
    collateral_value,
    figures_on,
    scale_params,
)
from bot.core.numbers import to_decimal
from bot.core.world import AccountSnapshot, VenueSnapshot
from bot.errors import TransferRefused, UnknownOutcome, VenueUnavailable
from bot.settings import Settings, VenueModel
from bot.sim.market import Market
from bot.venues.base import OrderReceipt, OrderRequest, TransferReceipt, TransferRequest, TransferState
from bot.venues.paper_orders import BookShape, PaperMatching, take

FUNDING_PERIOD_SECONDS = 8 * 3600
LIQUIDATION_FEE = 0.01


@dataclass(frozen=True, slots=True)
class Liquidation:
    venue: str
    ts: float
    equity_before: float
    fee: float


@dataclass(slots=True)
class PaperBook:
    """One venue's margin account inside the paper exchange."""

    name: str
    collateral: dict[str, Decimal]
    positions: tuple[Position, ...]
    haircuts: dict[str, float]
    base_params: MarginParams
    params: MarginParams
    funding: dict[str, float]
    default_funding: float
    shape: BookShape = field(default_factory=BookShape)
    symbols: set[str] = field(default_factory=set)  # symbols whose funding rate the venue quotes
    funding_view: dict[str, float] = field(default_factory=dict)
    collateral_view: dict[str, float] = field(default_factory=dict)
    outage_until: float = float("-inf")
    stale_until: float = float("-inf")
    stale_snapshot: VenueSnapshot | None = None
    version: int = 0
    cached: tuple[int, int, Figures] | None = None  # (market version, book version, figures)
    margin_factor: float = 1.0
    cash: float | None = None

    def refresh(self) -> None:
        """After any change: rebuild the float view the snapshots share (copy on write) and drop the cache."""
        self.collateral_view = {a: float(q) for a, q in self.collateral.items()}
        self.funding_view = {s: self.funding.get(s, self.default_funding) for s in sorted(self.symbols)}
        self.version += 1
        self.cash = None  # the collateral's value, kept by the exchange while no price can move it


@dataclass(slots=True)
class PaperTransfer:
    req: TransferRequest
    submitted_at: float
    settle_at: float
    state: TransferState
    ref: str
    settled_at: float | None = None


def _params(v: VenueModel) -> MarginParams:
    assert v.paper is not None
    p = v.paper
    return MarginParams(
        model=v.margin_model,
        tiers=build_tiers([(None if t.up_to is None else float(t.up_to), t.rate) for t in p.mm_tiers]),
        im_rate=p.im_rate,
        im_multiplier=p.im_multiplier,
        pm_min_rate=p.pm_min_rate,
        pm_shocks=tuple(p.pm_shocks),
    )


class PaperExchange:
    """The simulated world behind every paper venue and paper account."""

    def __init__(self, settings: Settings, market: Market, clock: Callable[[], float]) -> None:
        self.market = market
        self.now = clock
        self.books: dict[str, PaperBook] = {}
        hedged: dict[str, set[str]] = {}
        for h in settings.hedges:
            for inst in h.instruments:
                hedged.setdefault(inst.venue, set()).add(inst.symbol)
        for v in settings.venues:
            if v.kind != "paper" or v.paper is None:
                continue
            params = _params(v)
            book = PaperBook(
                name=v.name,
                collateral=dict(v.paper.collateral),
                positions=tuple(
                    Position(p.symbol, p.base, p.qty, p.entry) for p in v.paper.positions if p.qty != 0
                ),
                haircuts=dict(v.paper.haircuts),
                base_params=params,
                params=params,
                funding={},
                default_funding=v.paper.funding_rate_8h,
                shape=BookShape(
                    levels=v.paper.book_levels,
                    step_bps=v.paper.book_step_bps,
                    level_usd=float(v.paper.book_level_usd),
                    spread_bps=v.paper.spread_bps,
                    fee_bps=v.paper.taker_fee_bps,
                ),
                symbols={p.symbol for p in v.paper.positions} | hedged.get(v.name, set()),
            )
            book.refresh()
            self.books[v.name] = book
        self.accounts: dict[str, dict[str, Decimal]] = {
            a.name: dict(a.balances) for a in settings.accounts if a.kind == "paper"
        }
        self.buckets = {a.name: a.bucket for a in settings.accounts}
        self.transfers: dict[str, PaperTransfer] = {}
        self.pending: dict[str, PaperTransfer] = {}  # the transfers still in flight (settled ones leave it)
        self.frozen_until: dict[str, float] = {}
        self.timeouts_after_effect: dict[str, int] = {}
        self.server_errors: dict[str, int] = {}  # route -> calls answered 5xx before any effect
        self.malformed_answers: dict[
            str, int
        ] = {}  # route -> calls whose answer has no status (after effect)
        self.not_found_seconds = (
            0.0  # a new transfer is "not found" for this long (the venue's consistency lag)
        )
        # False models a venue with no client-id deduplication (Binance universal transfer): a repeat moves twice
        self.dedupe_client_ids = True
        self.effects: list[str] = []  # client id of every transfer applied, in order (one effect per entry)
        self.liquidations: list[Liquidation] = []
        self.fees_paid: dict[str, Decimal] = {}  # transfer fees per asset
        self.liquidation_fees: dict[str, Decimal] = {}  # per settlement asset
        self.last_funding_period: int | None = None
        self.matching = PaperMatching(self)

    # --- the world moving -------------------------------------------------------------------------
    def advance(self) -> None:
        """Settle due transfers, charge funding at 8 h boundaries, liquidate venues at m ≥ 1."""
        now = self.now()
        if self.pending:
            self._settle(now)
        period = int(now // FUNDING_PERIOD_SECONDS)
        if self.last_funding_period is None:
            self.last_funding_period = period
        elif period != self.last_funding_period:
            self.last_funding_period = period
            self._charge_funding()
        for book in self.books.values():
            if not book.positions:
                continue
            f = self.figures(book)
            if f.mm_ratio >= 1.0:
                self._liquidate(book, now, f.equity)

    def figures(self, book: PaperBook) -> Figures:
        """The venue's own margin figures, cached until a price or the book changes."""
        c = book.cached
        if c is not None and c[0] == self.market.version and c[1] == book.version:
            return c[2]
        prices = self.market.prices
        if book.cash is None:
            cash = collateral_value(book.collateral_view, prices, book.haircuts)
            if not any(a in prices or a not in STABLES for a in book.collateral_view):
                book.cash = cash  # stablecoins no market prices: worth 1 until the book changes
        else:
            cash = book.cash
        f = figures_on(cash, book.positions, prices, book.params)
        book.cached = (self.market.version, book.version, f)
        return f

    def _settle(self, now: float) -> None:
        for t in list(self.pending.values()):
            if t.state is not TransferState.PENDING:  # failed by a test or a fault: no longer in flight
                del self.pending[t.req.client_id]
                continue
            if t.settle_at > now:
                continue
            if self.frozen_until.get(t.req.destination, float("-inf")) > now:
                continue  # a frozen destination holds the transfer until it thaws
            t.state = TransferState.SETTLED
            t.settled_at = now
            del self.pending[t.req.client_id]
            self._credit(t.req.destination, t.req.asset, t.req.amount - t.req.fee)
            self.fees_paid[t.req.asset] = self.fees_paid.get(t.req.asset, Decimal(0)) + t.req.fee

    def _charge_funding(self) -> None:
        prices = self.market.prices
        for book in self.books.values():
            pay: dict[str, float] = {}
            for p in book.positions:
                rate = book.funding.get(p.symbol, book.default_funding)
                settle = _settle_asset(p.symbol)  # longs pay a positive rate, shorts receive it
                pay[settle] = pay.get(settle, 0.0) + p.qty * prices[p.base] * rate
            for settle, amount in pay.items():
                book.collateral[settle] = book.collateral.get(settle, Decimal(0)) - to_decimal(
                    round(amount, 6)
                )
            if pay:
                book.refresh()

    def _liquidate(self, book: PaperBook, now: float, equity: float) -> None:
        prices = self.market.prices
        fee = 0.0
        for p in book.positions:
            settle = _settle_asset(p.symbol)
            cost = abs(p.qty * prices[p.base]) * LIQUIDATION_FEE
            fee += cost
            fee_paid = to_decimal(round(cost, 6))
            realized = to_decimal(round(p.qty * (prices[p.base] - p.entry), 6)) - fee_paid
            book.collateral[settle] = book.collateral.get(settle, Decimal(0)) + realized
            self.liquidation_fees[settle] = self.liquidation_fees.get(settle, Decimal(0)) + fee_paid
        book.positions = ()
        book.refresh()
        self.liquidations.append(Liquidation(book.name, now, equity, fee))

    def _credit(self, name: str, asset: str, amount: Decimal) -> None:
        if name in self.books:
            book = self.books[name]
            book.collateral[asset] = book.collateral.get(asset, Decimal(0)) + amount
            book.refresh()
        else:
            bal = self.accounts.setdefault(name, {})
            bal[asset] = bal.get(asset, Decimal(0)) + amount

    def _balance(self, name: str, asset: str) -> Decimal:
        if name in self.books:
            return self.books[name].collateral.get(asset, Decimal(0))
        return self.accounts.get(name, {}).get(asset, Decimal(0))

    # --- scenario events ---------------------------------------------------------------------------
    def set_margin_factor(self, venue: str, factor: float) -> None:
        book = self.books[venue]
        book.margin_factor = factor
        book.params = scale_params(book.base_params, factor)
        book.refresh()

    def set_haircut(self, venue: str, asset: str, value: float) -> None:
        book = self.books[venue]
        book.haircuts = {**book.haircuts, asset: value}
        book.refresh()

    def set_funding(self, venue: str, symbol: str, rate_8h: float) -> None:
        book = self.books[venue]
        book.funding[symbol] = rate_8h
        book.symbols.add(symbol)
        book.refresh()

    def set_liquidity(self, venue: str, symbol: str, depth_factor: float) -> None:
        self.matching.depth[(venue, symbol)] = depth_factor

    def outage(self, venue: str, seconds: float) -> None:
        self.books[venue].outage_until = self.now() + seconds

    def stale(self, venue: str, seconds: float) -> None:
        book = self.books[venue]
        book.stale_until = self.now() + seconds
        book.stale_snapshot = self._snapshot(book)

    def freeze(self, name: str, seconds: float) -> None:
        self.frozen_until[name] = self.now() + seconds

    def timeout_after_effect(self, route: str, count: int) -> None:
        self.timeouts_after_effect[route] = self.timeouts_after_effect.get(route, 0) + count

    def server_error(self, route: str, count: int) -> None:
        self.server_errors[route] = self.server_errors.get(route, 0) + count

    def malformed_answer(self, route: str, count: int) -> None:
        self.malformed_answers[route] = self.malformed_answers.get(route, 0) + count

    # --- what the ports call -----------------------------------------------------------------------
    def _snapshot(self, book: PaperBook) -> VenueSnapshot:
        return VenueSnapshot(
            venue=book.name,
            ts=self.now(),
            collateral=book.collateral_view,
            positions=book.positions,
            prices=self.market.view(),
            haircuts=book.haircuts,
            params=book.params,
            reported=self.figures(book),
            funding=book.funding_view,
        )

    def snapshot(self, venue: str) -> VenueSnapshot:
        book = self.books[venue]
        now = self.now()
        if book.outage_until > now:
            raise VenueUnavailable(f"{venue}: paper venue outage")
        if book.stale_until > now and book.stale_snapshot is not None:
            return book.stale_snapshot
        return self._snapshot(book)

    def account_snapshot(self, account: str) -> AccountSnapshot:
        return AccountSnapshot(
            account, self.buckets.get(account, "trading"), self.now(), dict(self.accounts.get(account, {}))
        )

    def submit(self, req: TransferRequest) -> TransferReceipt:
        now = self.now()
        if take(self.server_errors, req.route):
            raise UnknownOutcome(f"{req.route}: HTTP 502 from the venue; the outcome is unknown")
        existing = self.transfers.get(req.client_id)
        if existing is not None and self.dedupe_client_ids:
            if existing.req != req:
                raise TransferRefused(f"client id {req.client_id} reused with different parameters")
            return self._receipt(existing)
        self._admit(req, now)
        self._credit(req.source, req.asset, -req.amount)
        self.effects.append(req.client_id)
        t = PaperTransfer(
            req, now, now + req.settle_seconds, TransferState.PENDING, f"paper-{len(self.effects)}"
        )
        self.transfers[req.client_id] = t
        self.pending[req.client_id] = t
        if req.settle_seconds <= 0:
            self._settle(now)
        if take(self.timeouts_after_effect, req.route):
            raise UnknownOutcome(f"{req.route}: request timed out after the transfer was accepted")
        if take(self.malformed_answers, req.route):
            return TransferReceipt(req.client_id, t.ref, None, req.amount, now)
        return self._receipt(t)

    def _admit(self, req: TransferRequest, now: float) -> None:
        """Refuse a transfer the venue would refuse: an end out, frozen, or the source short of funds."""
        for end in (req.source, req.destination):
            if end in self.books and self.books[end].outage_until > now:
                raise VenueUnavailable(f"{end}: paper venue outage")
            if self.frozen_until.get(end, float("-inf")) > now:
                raise TransferRefused(f"{end}: transfers frozen")
        if self._balance(req.source, req.asset) < req.amount:
            raise TransferRefused(f"{req.source}: insufficient {req.asset} for {req.amount}")

    def lookup(self, req: TransferRequest) -> TransferReceipt | None:
        t = self.transfers.get(req.client_id)
        if t is None:
            return None
        if self.now() - t.submitted_at < self.not_found_seconds:
            return None  # the venue has it, but its history does not show it yet
        return self._receipt(t)

    def _receipt(self, t: PaperTransfer) -> TransferReceipt:
        return TransferReceipt(t.req.client_id, t.ref, t.state, t.req.amount, t.submitted_at, t.settled_at)

    def total_collateral(self, asset: str) -> Decimal:
        """Collateral of `asset` across venues, accounts and transfers in flight (for conservation checks)."""
        total = sum((b.collateral.get(asset, Decimal(0)) for b in self.books.values()), Decimal(0))
        total += sum((a.get(asset, Decimal(0)) for a in self.accounts.values()), Decimal(0))
        total += sum(
            (
                t.req.amount
                for t in self.transfers.values()
                if t.state is TransferState.PENDING and t.req.asset == asset
            ),
            Decimal(0),
        )
        return total


def _settle_asset(symbol: str) -> str:
    return symbol.rsplit(":", 1)[-1]


class PaperVenue:
    def __init__(self, exchange: PaperExchange, name: str) -> None:
        self.name = name
        self._x = exchange

    async def snapshot(self) -> VenueSnapshot:
        return self._x.snapshot(self.name)

    def snapshot_now(self) -> VenueSnapshot:
        """The same read, answered at once (a local venue never waits): the bot calls it without a task."""
        return self._x.snapshot(self.name)


class PaperAccount:
    def __init__(self, exchange: PaperExchange, name: str) -> None:
        self.name = name
        self._x = exchange

    async def balances(self) -> AccountSnapshot:
        return self._x.account_snapshot(self.name)

    def balances_now(self) -> AccountSnapshot:
        return self._x.account_snapshot(self.name)


class PaperTransfers:
    def __init__(self, exchange: PaperExchange) -> None:
        self._x = exchange

    async def submit(self, req: TransferRequest) -> TransferReceipt:
        return self._x.submit(req)

    async def lookup(self, req: TransferRequest) -> TransferReceipt | None:
        return self._x.lookup(req)


class PaperOrders:
    def __init__(self, exchange: PaperExchange) -> None:
        self._m = exchange.matching

    async def order_book(self, venue: str, symbol: str) -> Book:
        return self._m.order_book(venue, symbol)

    async def place(self, req: OrderRequest) -> OrderReceipt:
        return self._m.place(req)

    async def lookup_order(self, req: OrderRequest) -> OrderReceipt | None:
        return self._m.lookup(req)
