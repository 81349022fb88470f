"""The hedge engine's shell: keeps each program's ledger, asks its strategy, fetches books, sends orders.

Per cycle, after the venues are observed:
  1. bookkeeping   exposure changes (config, account balance), funding at 8 h boundaries, holdings the
                   venue no longer shows (a de-risk or a liquidation), each persisted when it changes
  2. stop rules    running cost or funding drag beyond the program's limits -> stopped (persisted, critical)
                   and unwound with reduce-only orders; it stays stopped until `marginbot resume-hedge`
  3. strategy      a pure function of frozen inputs; one that raises stops its program (StrategyError)
  4. planning      books for the instruments a trade may use, then `plan_orders` (pure)
The orders are sent after the cycle's transfers (see `Bot.cycle`). A program with an order of unknown
outcome does not trade until that order is reconciled. While the bot is halted only reduce-only orders
(stop unwinds, de-risk) are sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from bot.core.decide import Alert
from bot.core.execution import Book, plan_orders
from bot.core.hedge import (
    HedgeInputs,
    HedgeSpec,
    OrderAction,
    OrderReason,
    OrderStatus,
    OrderView,
    Quote,
    Trade,
)
from bot.core.hedge_book import HedgeState, stop_reason
from bot.core.lifecycle import Lost, OrderEvent
from bot.core.world import AccountSnapshot, VenueSnapshot
from bot.engine.orders import OrderDesk, OrderOutcome
from bot.engine.positions import PositionWatch, parse
from bot.errors import StrategyError
from bot.notify import note
from bot.store.orders import LedgerUpdate
from bot.store.repo import Note, Store
from bot.venues.base import OrderPort
from strategies import get as get_strategy

log = structlog.get_logger("marginbot.hedger")

FUNDING_PERIOD_SECONDS = 8 * 3600
EPS = 1e-9


@dataclass(frozen=True, slots=True)
class HedgePlan:
    orders: tuple[OrderAction, ...] = ()
    im_needs: Mapping[str, float] = dataclasses.field(default_factory=dict)
    alerts: tuple[Alert, ...] = ()
    resumed: frozenset[str] = frozenset()  # resume requests applied this cycle (their flags may be cleared)


@dataclass(frozen=True, slots=True)
class Seen:
    """What this cycle's observation says about the venues, for the hedge engine."""

    now: float
    snapshots: Mapping[str, VenueSnapshot | None]  # fresh and not halted, else None
    accounts: Mapping[str, AccountSnapshot | None]
    alert_utilization: Mapping[str, float]
    changes: Mapping[str, tuple[str | None, str]] = dataclasses.field(default_factory=dict)
    # venue -> (positions before, after) that changed by themselves since the last look (canonical JSON)


class Hedger:
    def __init__(
        self, specs: tuple[HedgeSpec, ...], store: Store, port: OrderPort, *, desk: str, lag_seconds: float
    ):
        self.specs = {s.name: s for s in specs}
        self.store = store
        self.desk = desk
        self.desk_orders = OrderDesk(store, port, desk=desk, lag_seconds=lag_seconds)
        self.port = port
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
        stored = self.store.ledgers()
        self.states = {
            n: HedgeState.from_json(stored[n]) if n in stored else HedgeState() for n in self.specs
        }
        self.open = {}
        for stored_order in self.store.open_orders():
            o = stored_order
            if o.status is OrderStatus.APPROVED:
                done = self.store.transition_order(
                    o.id,
                    OrderEvent.RESTART_UNKNOWN,
                    expected=o.status,
                    ts=now,
                    venue=o.venue,
                    data={"reconciled": "the bot stopped between recording the order and the venue's answer"},
                )
                if isinstance(done, Lost):  # changed meanwhile: the store's word; only unknown stays open
                    fresh = self.store.get_order(o.id)
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
        self.open = {o.id: o for o in self.store.open_orders() if o.status is OrderStatus.UNKNOWN}
        for oid, o in before.items():
            if oid not in self.open:
                self._book_resolved(o, now)
        self._hold()

    def _book_resolved(self, o: OrderView, now: float) -> None:
        """An open order someone else closed (a person's `resolve`): it leaves the open set, and the fill they
        recorded, if any, is counted in the program's ledger once."""
        self.open.pop(o.id, None)
        self.unreconciled.discard(o.id)
        row = self.store.order_row(o.id)
        if row is None or not row["filled"]:
            return
        filled = float(row["filled"])
        signed = filled if o.side == "buy" else -filled
        ledgers, positions = self.on_fill(o, signed, float(row["avg_price"] or 0.0), float(row["fee"] or 0.0))
        for u in ledgers:
            self.store.save_ledger(
                u, now, events=[("hedge.ledger", o.venue, {"program": u.name, "resolved_order": o.id})]
            )
        if positions is not None:
            self.store.save_positions(o.venue, positions, now, changed_from=None)

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
        self.store.save_ledger(
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
            return self._scale(o.key, before, before + signed, price), positions
        if o.program not in self.states:
            return [], positions
        self.states[o.program] = self.states[o.program].fill(o.key, signed, price, fee)
        return [self._ledger(o.program)], positions

    def _scale(self, key: str, before: float, after: float, price: float | None) -> list[LedgerUpdate]:
        """The venue's position on `key` went from `before` to `after` (closed at `price`): shrink the holdings
        that share it, realizing the PnL of what they lost."""
        if abs(before) <= EPS or (abs(after) >= abs(before) and after * before > 0):
            return []  # nothing was there to shrink, or the venue's side did not shrink
        factor = after / before if before != 0.0 and after * before > 0 else 0.0
        out = []
        for name, st in self.states.items():
            h = st.holdings.get(key, 0.0)
            # the venue's side shrinks pro rata; a venue that holds nothing any more holds nothing for anyone
            if abs(h) > EPS and (h * before > 0 or abs(after) <= EPS):
                self.states[name] = st.scale_holding(key, factor, price)
                out.append(self._ledger(name))
        return out

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

    def _price(self, spec: HedgeSpec, seen: Seen) -> float | None:
        for inst in spec.instruments:
            s = seen.snapshots.get(inst.venue)
            if s is not None and spec.asset in s.prices:
                return s.prices[spec.asset]
        for s in seen.snapshots.values():
            if s is not None and spec.asset in s.prices:
                return s.prices[spec.asset]
        return None

    def _bookkeeping(self, spec: HedgeSpec, seen: Seen, price: float) -> list[Alert]:
        name, now = spec.name, seen.now
        st = self.states[name]
        alerts: list[Alert] = []
        if st.config_exposure != spec.exposure:
            st = dataclasses.replace(
                st.set_exposure(spec, spec.exposure, price), config_exposure=spec.exposure
            )
            self.states[name] = st
            self._save(name, now, "hedge.exposure", {"qty": spec.exposure, "price": price, "from": "config"})
        if spec.exposure_account is not None:
            acct = seen.accounts.get(spec.exposure_account)
            if acct is not None:
                qty = float(acct.balances.get(spec.asset, 0))
                if abs(qty - st.exposure_base) > EPS:
                    st = st.set_exposure(spec, qty, price)
                    self.states[name] = st
                    self._save(
                        name,
                        now,
                        "hedge.exposure",
                        {"qty": qty, "price": price, "from": spec.exposure_account},
                    )
        period = int(now // FUNDING_PERIOD_SECONDS)
        rates: dict[str, float] = {}
        unread = False  # a venue holding this program's hedge did not answer: charge when it does
        for inst in spec.instruments:
            s = seen.snapshots.get(inst.venue)
            if s is not None:
                rates[inst.key] = s.funding.get(inst.symbol, 0.0)
            elif abs(st.holdings.get(inst.key, 0.0)) > EPS:
                unread = True
        if st.funding_period != period and not unread:
            charged = st.charge_funding(period, now, self.marks, rates)
            self.states[name] = st = charged
            self._save(
                name, now, "hedge.funding", {"period": period, "funding_to_date": round(st.funding, 6)}
            )
        return alerts

    def _external(self, seen: Seen) -> list[Alert]:
        """A position the venue reduced by itself (a liquidation, a manual close) leaves the ledgers pro rata.

        A symbol with an order of unknown outcome shows no change here (the watch holds it); once the order is
        classified, the change is what the venue shows beyond its fill.
        """
        alerts: list[Alert] = []
        for venue, (before_json, after_json) in seen.changes.items():
            before, after = parse(before_json), parse(after_json)
            for symbol in set(before) | set(after):
                key = f"{venue}|{symbol}"
                owners = [n for n, st in self.states.items() if abs(st.holdings.get(key, 0.0)) > EPS]
                if not owners:
                    continue
                snap = seen.snapshots.get(venue)
                base = symbol.split("/", 1)[0]
                mark = snap.prices.get(base) if snap is not None else None
                price = mark if mark is not None else self.marks.get(key)
                updates = self._scale(key, before.get(symbol, 0.0), after.get(symbol, 0.0), price)
                for u in updates:
                    self.store.save_ledger(
                        u,
                        seen.now,
                        events=[("hedge.holding_reduced", venue, {"program": u.name, "instrument": key})],
                    )
                    alerts.append(
                        Alert(
                            "hedge_holding",
                            "warning",
                            f"hedge:{u.name}",
                            self.specs[u.name].asset,
                            f"hedge {u.name}: {venue} reduced {symbol} from {before.get(symbol, 0.0):g} to "
                            f"{after.get(symbol, 0.0):g} by itself; the program's share is cut pro rata",
                        )
                    )
        return alerts

    def _stop(self, name: str, reason: str, now: float) -> Alert:
        self.states[name] = self.states[name].stop(reason)
        spec = self.specs[name]
        msg = f"hedge {name} STOPPED: {reason}; unwinding with reduce-only orders"
        self._save(
            name,
            now,
            "hedge.stopped",
            {"reason": reason},
            [
                note(
                    "critical",
                    "hedge_stopped",
                    msg,
                    desk=self.desk,
                    venue=f"hedge:{name}",
                    asset=spec.asset,
                    detail=f"it stays stopped until `marginbot resume-hedge {name} --as NAME`",
                )
            ],
        )
        return Alert("hedge_stopped", "critical", f"hedge:{name}", spec.asset, msg)

    def _inputs(self, spec: HedgeSpec, seen: Seen, price: float) -> HedgeInputs:
        st = self.states[spec.name]
        quotes = {}
        for inst in spec.instruments:
            s = seen.snapshots.get(inst.venue)
            mark = s.prices.get(inst.base) if s is not None else None
            quotes[inst.key] = Quote(
                mark=mark if mark is not None else self.marks.get(inst.key, price),
                funding_8h=s.funding.get(inst.symbol, 0.0) if s is not None else 0.0,
                available=s is not None and mark is not None,
            )
        return HedgeInputs(
            spec=spec,
            now=seen.now,
            exposure=st.exposure(spec, price),
            holdings=dict(st.holdings),
            quotes=quotes,
            hedged_exposure=st.hedged_exposure,
            recent_trades=st.trades,
        )

    async def plan(
        self, seen: Seen, *, may_trade: bool, reduce_only: bool, resumes: Mapping[str, str] | None = None
    ) -> HedgePlan:
        """This cycle's hedge orders. `may_trade` False (startup gate): bookkeeping only.

        `resumes` (program -> who) are applied once the program's price is known, so that its loss limit
        counts from the cost at that moment; the ones applied are returned in `HedgePlan.resumed`.
        """
        resumed: set[str] = set()
        self._planned = {}
        alerts: list[Alert] = []
        orders: list[OrderAction] = []
        needs: dict[str, float] = {}
        for spec in self.specs.values():
            for inst in spec.instruments:
                s = seen.snapshots.get(inst.venue)
                if s is not None and inst.base in s.prices:
                    self.marks[inst.key] = s.prices[inst.base]
        alerts.extend(self._external(seen))
        for spec in self.specs.values():
            name = spec.name
            price = self._price(spec, seen)
            if price is None:
                alerts.append(
                    Alert(
                        "hedge_stale", "warning", f"hedge:{name}", spec.asset, f"hedge {name}: no fresh price"
                    )
                )
                continue
            self.prices[spec.asset] = price
            alerts.extend(self._bookkeeping(spec, seen, price))
            if resumes and name in resumes:
                self.resume(name, seen.now, by=resumes[name])
                resumed.add(name)
            st = self.states[name]
            if not st.stopped:
                why = stop_reason(spec, st, st.cost(spec, price, self.marks), seen.now)
                if why is not None:
                    alerts.append(self._stop(name, why, seen.now))
                    st = self.states[name]
            if not may_trade or any(o.program == name for o in self.open.values()):
                continue
            inputs = self._inputs(spec, seen, price)
            if st.stopped:
                trades: tuple[Trade, ...] = tuple(
                    Trade(
                        -q,
                        OrderReason.STOP,
                        instruments=(k,),
                        reduce_only=True,
                        urgent=True,
                        note=st.stop_reason,
                    )
                    for k, q in st.holdings.items()
                    if abs(q) > EPS
                )
                if trades:
                    alerts.append(
                        Alert(
                            "hedge_stopped",
                            "critical",
                            f"hedge:{name}",
                            spec.asset,
                            f"hedge {name} STOPPED: {st.stop_reason}",
                        )
                    )
            else:
                try:
                    trades = get_strategy(spec.strategy).propose(inputs)
                except Exception as e:  # a strategy that raises stops its own program, nothing else
                    err = StrategyError(f"strategy {spec.strategy} raised {type(e).__name__}: {e}")
                    alerts.append(self._stop(name, str(err), seen.now))
                    continue
                if reduce_only:
                    trades = tuple(t for t in trades if t.reduce_only)
                dev = abs(inputs.deviation)
                if dev > spec.band and not trades and inputs.at_trade_cap:
                    alerts.append(
                        Alert(
                            "hedge_cap",
                            "warning",
                            f"hedge:{name}",
                            spec.asset,
                            f"hedge {name}: net delta {inputs.net_delta:+.4f} outside its band, "
                            f"but {spec.max_trades_per_hour} trades this hour reached the cap",
                        )
                    )
            if not trades:
                continue
            books: dict[str, Book | None] = {}
            for t in trades:
                for key in t.instruments or tuple(i.key for i in spec.instruments):
                    if key in books:
                        continue
                    inst = spec.instrument(key)
                    books[key] = None
                    if seen.snapshots.get(inst.venue) is None:
                        continue
                    try:
                        books[key] = await self.port.order_book(inst.venue, inst.symbol)
                    except Exception as e:  # an unreachable book: the instrument is skipped this cycle
                        log.debug("order book read failed", instrument=key, error=type(e).__name__)
            plan = plan_orders(
                spec,
                trades,
                st.holdings,
                books=books,
                snapshots=seen.snapshots,
                alert_utilization=seen.alert_utilization,
                trigger=f"{seen.now:.3f}",
                leg_start=len(orders),
            )
            orders.extend(plan.orders)
            # what the orders add and what a waiting hedge still needs both count as used margin for treasury
            for venue, extra in (*plan.im_needs.items(), *plan.im_added.items()):
                needs[venue] = needs.get(venue, 0.0) + extra
            if plan.orders and not st.stopped:
                self._planned[name] = inputs.exposure  # counted as a trade once something fills
            if abs(plan.unplaced) > EPS:
                why = "; ".join(plan.notes) or "no instrument available"
                kind = "hedge_margin" if plan.im_needs else "hedge_capped"
                extra_note = " (top-up requested first)" if plan.im_needs else ""
                alerts.append(
                    Alert(
                        kind,
                        "warning",
                        f"hedge:{name}",
                        spec.asset,
                        f"hedge {name}: {abs(plan.unplaced):g} {spec.asset} not placed this cycle{extra_note}: {why}",
                    )
                )
        return HedgePlan(tuple(orders), needs, tuple(alerts), frozenset(resumed))

    # --- telemetry ---------------------------------------------------------------------------------------
    def summaries(self) -> list[tuple[str, float | None, float | None]]:
        out = []
        for name in self.specs:
            u = self._ledger(name)
            out.append((name, u.net_delta, u.loss))
        return out

    def resume(self, name: str, now: float, *, by: str) -> bool:
        st = self.states.get(name)
        if st is None or not st.stopped:
            return False
        loss = self._ledger(name).loss
        self.states[name] = st.resume(loss if loss is not None else st.loss_base)
        self._save(name, now, "hedge.resumed", {"by": by})
        return True
