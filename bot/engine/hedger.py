"""The hedge engine's shell: keeps each program's ledger, writes it, fetches books, sends orders.

Per cycle, after the venues are observed (`plan`), two pure steps (`bot.core.hedge_plan`) around one fetch:
  1. prepare     bookkeeping (exposure changes, funding at 8 h boundaries, holdings the venue no longer
                 shows), stop rules, strategies -> ledger writes as data, alerts, trades, the books they need
  2. the shell   writes the ledgers (a stop is paged), reads exactly those books at once, each under the
                 read deadline (one that does not come is None: its instrument is passed over)
  3. plan        trades + books + margin headroom -> orders, the margin treasury counts as used, alerts
The orders are sent after the cycle's transfers (see `Bot.cycle`), as the trading gate admits them
(`bot.core.gate`). A program with an order of unknown outcome does not trade until that order is reconciled;
a stopped one unwinds with reduce-only orders and stays stopped until `marginbot resume-hedge`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from bot.core.decide import Alert
from bot.core.execution import Book
from bot.core.gate import Gate
from bot.core.hedge import HedgeSpec, Instrument, OrderAction, OrderStatus, OrderView
from bot.core.hedge_book import HedgeState, scale_shared
from bot.core.hedge_plan import (
    LedgerWrite,
    Prepared,
    Program,
    Seen,
    fresh_marks,
    plan_hedges,
    prepare,
    stop_message,
)
from bot.core.lifecycle import Lost, OrderEvent
from bot.engine.orders import OrderDesk, OrderOutcome
from bot.engine.positions import PositionWatch
from bot.errors import StrategyError
from bot.notify import note
from bot.store.repo import Store
from bot.store.rows import LedgerUpdate, Note
from bot.venues.base import OrderPort
from strategies import get as get_strategy

__all__ = ["HedgePlan", "Hedger", "Seen"]

log = structlog.get_logger("marginbot.hedger")


@dataclass(frozen=True, slots=True)
class HedgePlan:
    orders: tuple[OrderAction, ...] = ()
    im_needs: Mapping[str, float] = dataclasses.field(default_factory=dict)
    alerts: tuple[Alert, ...] = ()
    resumed: frozenset[str] = frozenset()  # resume requests applied this cycle (their flags may be cleared)


class Hedger:
    def __init__(
        self,
        specs: tuple[HedgeSpec, ...],
        store: Store,
        port: OrderPort,
        *,
        desk: str,
        lag_seconds: float,
        read_deadline_seconds: float = 5.0,
    ):
        self.specs = {s.name: s for s in specs}
        self.store = store
        self.desk = desk
        self.desk_orders = OrderDesk(store, port, desk=desk, lag_seconds=lag_seconds)
        self.port = port
        self.read_deadline = read_deadline_seconds  # for order books, as for the venue reads
        self.states: dict[str, HedgeState] = {}
        self.open: dict[str, OrderView] = {}
        self.unreconciled: set[str] = set()
        self.prices: dict[str, float] = {}  # last mark per asset, for events between cycles
        self.marks: dict[str, float] = {}  # last mark per instrument key
        self.watch: PositionWatch | None = None  # the bot's, so that our own fills are expected
        self._planned: dict[str, float] = {}  # program -> exposure it traded against this cycle

    # --- lifecycle -------------------------------------------------------------------------------------
    def load(self, now: float) -> None:
        """Ledgers and open orders from the store; an order left `approved` by a dead process is unknown."""
        stored = self.store.ledgers.states()
        self.states = {
            n: HedgeState.from_json(stored[n]) if n in stored else HedgeState() for n in self.specs
        }
        self.open = {}
        for stored_order in self.store.orders.open():
            o = stored_order
            if o.status is OrderStatus.APPROVED:
                done = self.store.orders.transition(
                    o.id,
                    OrderEvent.RESTART_UNKNOWN,
                    expected=o.status,
                    ts=now,
                    venue=o.venue,
                    data={"reconciled": "the bot stopped between recording the order and the venue's answer"},
                )
                if isinstance(done, Lost):  # changed meanwhile: the store's word; only unknown stays open
                    fresh = self.store.orders.get(o.id)
                    if fresh is None or fresh.status is not OrderStatus.UNKNOWN:
                        continue
                    o = fresh
                else:
                    o = dataclasses.replace(o, status=done.status)
            self.open[o.id] = o
        self.unreconciled = set(self.open)
        self._hold()

    def reload_open(self, now: float) -> None:
        """A person may have resolved an order of unknown outcome: take the store's word for it, and count
        the fill they recorded in the program's ledger (the bot owns the ledgers; the command does not)."""
        before = self.open
        self.open = {o.id: o for o in self.store.orders.open() if o.status is OrderStatus.UNKNOWN}
        for oid, o in before.items():
            if oid not in self.open:
                self._book_resolved(o, now)
        self._hold()

    def _book_resolved(self, o: OrderView, now: float) -> None:
        """An open order someone else closed (a person's `resolve`): it leaves the open set, and the fill they
        recorded, if any, is counted in the program's ledger once."""
        self.open.pop(o.id, None)
        self.unreconciled.discard(o.id)
        row = self.store.orders.row(o.id)
        if row is None or not row.filled:
            return
        filled = float(row.filled)
        signed = filled if o.side == "buy" else -filled
        ledgers, positions = self.on_fill(o, signed, float(row.avg_price or 0.0), float(row.fee or 0.0))
        for u in ledgers:
            self.store.ledgers.save(
                u, now, events=[("hedge.ledger", o.venue, {"program": u.name, "resolved_order": o.id})]
            )
        if positions is not None:
            self.store.figures.save_positions(o.venue, positions, now, changed_from=None)

    def busy_symbols(self, venue: str) -> frozenset[str]:
        """Symbols with an order of unknown outcome on `venue`: only they may be explained by one."""
        return frozenset(o.symbol for o in self.open.values() if o.venue == venue)

    def _hold(self) -> None:
        """The watch holds each symbol with an order of unknown outcome at what the bot knew before it; once
        the last one there is classified, the venue is compared afresh, so a liquidation seen meanwhile reaches
        the ledgers (`_external`) on top of the order's fill."""
        if self.watch is not None:
            self.watch.hold({v: self.busy_symbols(v) for v in self.busy_venues})

    @property
    def busy_venues(self) -> frozenset[str]:
        """Venues with an order of unknown outcome: what they hold is not known."""
        if not self.open:
            return frozenset()
        return frozenset(o.venue for o in self.open.values())

    def _ledger(self, name: str, price: float | None = None) -> LedgerUpdate:
        spec, st = self.specs[name], self.states[name]
        price = price if price is not None else self.prices.get(spec.asset)
        net = st.net_delta(spec, price) if price is not None else None
        loss = st.cost(spec, price, self.marks).loss if price is not None else None
        return LedgerUpdate(
            name, st.to_json(), net, spec.target_delta, spec.band, loss, st.stopped, st.stop_reason
        )

    def _save(
        self, name: str, now: float, event: str, data: dict[str, object], notes: list[Note] | None = None
    ) -> None:
        self.store.ledgers.save(
            self._ledger(name), now, events=[(event, None, {"program": name, **data})], notes=notes or []
        )

    # --- fills -----------------------------------------------------------------------------------------
    def on_fill(
        self, o: OrderView, signed: float, price: float, fee: float
    ) -> tuple[list[LedgerUpdate], str | None]:
        """Our own fill: the venue's expected positions move, and the ledgers that own it change with them.

        A fill adopted by reconciliation is added to what the bot knew before the order: the watch held the
        order's symbol meanwhile, so no observation of the fill was taken in (nor counted twice).
        """
        w = self.watch
        before = w.held(o.venue, o.symbol) if w is not None else 0.0
        positions = w.expect(o.venue, o.symbol, signed) if w is not None else None
        if o.program is None:  # a de-risk order: the programs sharing the position give it up pro rata
            shrunk = scale_shared(self.states, o.key, before, before + signed, price)
            self.states.update(shrunk)
            return [self._ledger(n) for n in shrunk], positions
        if o.program not in self.states:
            return [], positions
        self.states[o.program] = self.states[o.program].fill(o.key, signed, price, fee)
        return [self._ledger(o.program)], positions

    async def reconcile(self, now: float) -> list[OrderOutcome]:
        out = []
        for o in list(self.open.values()):
            r = await self.desk_orders.reconcile(o, now, self.on_fill)
            if r is None:
                continue
            out.append(r)
            if r.lost and r.classified:  # a person resolved it while the bot looked: book theirs
                self._book_resolved(o, now)
            elif r.classified:
                self.open.pop(o.id, None)
                self.unreconciled.discard(o.id)
        self._hold()
        return out

    async def send(self, orders: tuple[OrderAction, ...], now: float) -> list[OrderOutcome]:
        out = []
        filled: set[str] = set()
        for a in orders:
            r = await self.desk_orders.execute(a, now, self.on_fill)
            if r is None:
                continue
            out.append(r)
            if r.lost and r.classified:  # someone else recorded its result first: book theirs
                self._book_resolved(r.order, now)
            elif r.status is OrderStatus.UNKNOWN:
                self.open[r.order.id] = r.order
                self._hold()
            if r.filled > 0 and r.order.program in self._planned:
                filled.add(r.order.program)
        for name in sorted(filled):
            self._count_trade(name, now)
        return out

    def _count_trade(self, name: str, now: float) -> None:
        """A trade that filled counts against the cap; the exposure counts as hedged once delta is in band
        (a partial fill or a failed leg leaves a `static` program free to finish the job)."""
        spec, st = self.specs[name], self.states[name]
        exposure = self._planned.pop(name)
        price = self.prices.get(spec.asset)
        in_band = price is not None and abs(st.net_delta(spec, price) - spec.target_delta) <= spec.band
        self.states[name] = st.traded(now, exposure if in_band else None)
        self._save(name, now, "hedge.traded", {"trades": self.states[name].trade_count, "in_band": in_band})

    # --- the cycle's planning ----------------------------------------------------------------------------
    def set_exposure(self, name: str, qty: float, now: float, *, price: float | None = None) -> None:
        """An exposure change from outside (the `exposure` scenario event), from the last known price on
        (or `price`, before the bot has seen one); it replaces the config's figure for good."""
        spec = self.specs[name]
        price = self.prices.get(spec.asset, price)
        if price is None:
            raise StrategyError(f"hedge {name}: no price for {spec.asset} yet; cannot take a new exposure")
        st = self.states[name].set_exposure(spec, qty, price)
        self.states[name] = dataclasses.replace(st, config_exposure=spec.exposure)
        self._save(name, now, "hedge.exposure", {"qty": qty, "price": price})

    async def plan(self, seen: Seen, *, gate: Gate, resumes: Mapping[str, str] | None = None) -> HedgePlan:
        """This cycle's hedge orders, in two pure steps (`bot.core.hedge_plan`) around the book reads.

        The gate says whether programs trade (halted: bookkeeping and stop rules only) and whether only
        reduce-only trades are kept (reducing). `resumes` (program -> who) are applied once the program's
        price is known, so that its loss limit counts from the cost at that moment; the ones applied are
        returned in `HedgePlan.resumed`.
        """
        self._planned = {}
        self.marks.update(fresh_marks(self.specs.values(), seen.snapshots))
        programs = tuple(
            Program(
                spec,
                self.states[name],
                busy=any(o.program == name for o in self.open.values()),
                resume_by=resumes.get(name) if resumes else None,
            )
            for name, spec in self.specs.items()
        )
        prepared = prepare(
            programs, seen, marks=self.marks, prices=self.prices, gate=gate, strategy=get_strategy
        )
        self._write(prepared, seen.now)
        books = await self._books(prepared.books)
        planned = plan_hedges(prepared, books, seen)
        self._planned = dict(planned.traded)
        return HedgePlan(planned.orders, planned.im_needs, planned.alerts, prepared.resumed)

    def _write(self, prepared: Prepared, now: float) -> None:
        """The first step's ledger changes, in the order they were made; each program's price is kept."""
        for w in prepared.writes:
            self._apply(w, now)
        for p in prepared.programs:
            if p.price is not None:
                self.prices[p.spec.asset] = p.price
            for w in p.writes:
                self._apply(w, now)

    def _apply(self, w: LedgerWrite, now: float) -> None:
        self.states[w.program] = w.state
        notes = [] if w.stopped is None else [self._stop_note(w.program, w.stopped)]
        self.store.ledgers.save(
            self._ledger(w.program, w.price),
            now,
            events=[(w.event.value, w.venue, {"program": w.program, **w.data})],
            notes=notes,
        )

    def _stop_note(self, name: str, reason: str) -> Note:
        return note(
            "critical",
            "hedge_stopped",
            stop_message(name, reason),
            desk=self.desk,
            venue=f"hedge:{name}",
            asset=self.specs[name].asset,
            detail=f"it stays stopped until `marginbot resume-hedge {name} --as NAME`",
        )

    async def _books(self, wanted: Sequence[Instrument]) -> dict[str, Book | None]:
        """The books the first step named, read at once, each under the read deadline."""
        if not wanted:
            return {}
        if len(wanted) == 1:
            got = [await self._book(wanted[0])]
        else:
            got = list(await asyncio.gather(*(self._book(i) for i in wanted)))
        return {i.key: b for i, b in zip(wanted, got, strict=True)}

    async def _book(self, inst: Instrument) -> Book | None:
        """One book; a read that fails or misses the deadline is None (the instrument is skipped this cycle)."""
        try:
            async with asyncio.timeout(self.read_deadline):
                return await self.port.order_book(inst.venue, inst.symbol)
        except TimeoutError:
            log.warning(
                "order book read cut off at the deadline", instrument=inst.key, deadline=self.read_deadline
            )
        except Exception as e:  # an unreachable book: the instrument is skipped this cycle
            log.debug("order book read failed", instrument=inst.key, error=type(e).__name__)
        return None

    # --- telemetry ---------------------------------------------------------------------------------------
    def summaries(self) -> list[tuple[str, float | None, float | None]]:
        out = []
        for name in self.specs:
            u = self._ledger(name)
            out.append((name, u.net_delta, u.loss))
        return out
