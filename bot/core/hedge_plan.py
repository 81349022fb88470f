"""The hedge engine's decision, in two pure steps around one fetch by the shell (`bot.engine.hedger`).

    prepare(programs, seen, ...)          bookkeeping, stop rules and strategies, per program in config order:
                                          -> ledger writes (data), alerts, trades, and the order books those
                                             trades may walk (`Prepared.books`, named by `books_wanted`)
    (the shell writes the ledgers in order, then fetches exactly those books at once, each under a deadline)
    plan_hedges(prepared, books, seen)    trades + books + margin headroom -> orders (`plan_orders`), the margin
                                          treasury must count as used, and the alerts in program order

Per program, `prepare` does, in this order (each change of the ledger is a `LedgerWrite` the shell persists):
  price        the asset's fresh price (its instruments' venues first); none -> `hedge_stale`, nothing else
  bookkeeping  the config's exposure, an exposure account's balance, funding at 8 h boundaries
  resume       a person's `resume-hedge`, applied now so that the loss limit counts from this cost
  stop rules   running cost or funding drag past the program's limits -> stopped (`stop_rules`)
  trades       only if the gate lets programs trade and no order of the program's is of unknown outcome:
               a stopped program unwinds (reduce-only, urgent); else its strategy proposes (one that raises
               stops its program); while the gate is reducing only reduce-only trades are kept
Before the programs, positions a venue reduced by itself (a liquidation, a de-risk) shrink the holdings that
share them pro rata (`external_reductions`). A book that does not come (the venue is stale or halted, the read
failed or missed its deadline) is None: the planner passes that instrument over, as for an unreachable venue.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

from bot.core.decide import Alert
from bot.core.execution import Book, Plan, plan_orders
from bot.core.gate import Gate
from bot.core.hedge import HedgeInputs, HedgeSpec, Instrument, OrderAction, OrderReason, Quote, Trade
from bot.core.hedge_book import HedgeState, scale_shared, stop_reason
from bot.core.world import AccountSnapshot, VenueSnapshot

FUNDING_PERIOD_SECONDS = 8 * 3600
EPS = 1e-9


class Proposer(Protocol):
    def propose(self, inputs: HedgeInputs) -> tuple[Trade, ...]: ...


StrategyOf = Callable[[str], Proposer]  # the registry: a strategy's name -> the strategy


class LedgerEvent(StrEnum):
    EXPOSURE = "hedge.exposure"
    FUNDING = "hedge.funding"
    RESUMED = "hedge.resumed"
    STOPPED = "hedge.stopped"
    HOLDING_REDUCED = "hedge.holding_reduced"


@dataclass(frozen=True, slots=True)
class Seen:
    """What this cycle's observation says about the venues, for the hedge engine."""

    now: float
    snapshots: Mapping[str, VenueSnapshot | None]  # fresh and not halted, else None
    accounts: Mapping[str, AccountSnapshot | None]
    alert_utilization: Mapping[str, float]
    changes: Mapping[str, tuple[str | None, str]] = field(default_factory=dict)
    # venue -> (positions before, after) that changed by themselves since the last look (canonical JSON)


@dataclass(frozen=True, slots=True)
class Program:
    """One program as the planner takes it: its spec, its ledger, and what the shell knows about it."""

    spec: HedgeSpec
    state: HedgeState
    busy: bool = False  # an order of its is of unknown outcome: it holds still until that is classified
    resume_by: str | None = None  # a person asked to resume it


@dataclass(frozen=True, slots=True)
class LedgerWrite:
    """A program's new ledger and the audit event to write it with; the shell writes them in order."""

    program: str
    state: HedgeState
    price: float | None  # the asset price the ledger's figures (net delta, loss) are taken at
    event: LedgerEvent
    data: Mapping[str, object]
    venue: str | None = None

    @property
    def stopped(self) -> str | None:
        """The stop reason, for the write that stops the program (it is paged)."""
        return self.state.stop_reason if self.event is LedgerEvent.STOPPED else None


@dataclass(frozen=True, slots=True)
class Intended:
    """One program after `prepare`: its ledger, the writes that made it, and what it wants to trade."""

    spec: HedgeSpec
    state: HedgeState
    price: float | None  # None: no fresh price, nothing was done
    writes: tuple[LedgerWrite, ...] = ()
    alerts: tuple[Alert, ...] = ()
    trades: tuple[Trade, ...] = ()
    exposure: float = 0.0  # the exposure the trades hedge
    books: tuple[str, ...] = ()  # the instrument keys the trades may use, in the order they are tried
    resumed: bool = False  # a resume request was applied (its flag may be cleared)


@dataclass(frozen=True, slots=True)
class Prepared:
    writes: tuple[LedgerWrite, ...]  # holdings reduced by the venues, before every program's own writes
    alerts: tuple[Alert, ...]
    programs: tuple[Intended, ...]
    books: tuple[Instrument, ...]  # the books to fetch

    @property
    def resumed(self) -> frozenset[str]:
        return frozenset(p.spec.name for p in self.programs if p.resumed)


@dataclass(frozen=True, slots=True)
class Planned:
    orders: tuple[OrderAction, ...]
    im_needs: Mapping[str, float]  # venue -> initial margin treasury counts as used (orders + waiting hedges)
    alerts: tuple[Alert, ...]  # every hedge alert of the cycle, in program order
    traded: Mapping[str, float]  # program -> exposure it trades against (a trade once something fills)


# --- prices, marks, inputs ------------------------------------------------------------------------------
def fresh_marks(
    specs: Iterable[HedgeSpec], snapshots: Mapping[str, VenueSnapshot | None]
) -> dict[str, float]:
    """The mark of every instrument whose venue answered (instrument key -> price)."""
    out: dict[str, float] = {}
    for spec in specs:
        for inst in spec.instruments:
            s = snapshots.get(inst.venue)
            if s is not None and inst.base in s.prices:
                out[inst.key] = s.prices[inst.base]
    return out


def price_of(spec: HedgeSpec, snapshots: Mapping[str, VenueSnapshot | None]) -> float | None:
    """The asset's price: from the program's own venues first, then from any fresh venue."""
    for inst in spec.instruments:
        s = snapshots.get(inst.venue)
        if s is not None and spec.asset in s.prices:
            return s.prices[spec.asset]
    for s in snapshots.values():
        if s is not None and spec.asset in s.prices:
            return s.prices[spec.asset]
    return None


def hedge_inputs(
    spec: HedgeSpec, st: HedgeState, seen: Seen, marks: Mapping[str, float], price: float
) -> HedgeInputs:
    """The frozen inputs a strategy reads; an instrument whose venue did not answer keeps its last mark."""
    quotes = {}
    for inst in spec.instruments:
        s = seen.snapshots.get(inst.venue)
        mark = s.prices.get(inst.base) if s is not None else None
        quotes[inst.key] = Quote(
            mark=mark if mark is not None else marks.get(inst.key, price),
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


# --- holdings the venues reduced ------------------------------------------------------------------------
def _positions(text: str | None) -> dict[str, float]:
    """The watch's canonical positions (JSON, `bot.engine.positions.canonical`) as symbol -> qty."""
    return {} if text is None else {str(s): float(q) for s, q in json.loads(text)}


def external_reductions(
    specs: Mapping[str, HedgeSpec],
    states: Mapping[str, HedgeState],
    seen: Seen,
    marks: Mapping[str, float],
    prices: Mapping[str, float],
) -> tuple[dict[str, HedgeState], list[LedgerWrite], list[Alert]]:
    """A position the venue reduced by itself (a liquidation, a manual close) leaves the ledgers pro rata.

    A symbol with an order of unknown outcome shows no change here (the watch holds it); once the order is
    classified, the change is what the venue shows beyond its fill. Ledger figures are at the last known price.
    """
    states = dict(states)
    writes: list[LedgerWrite] = []
    alerts: list[Alert] = []
    for venue, (before_json, after_json) in seen.changes.items():
        before, after = _positions(before_json), _positions(after_json)
        for symbol in sorted(set(before) | set(after)):
            key = f"{venue}|{symbol}"
            if not any(abs(st.holdings.get(key, 0.0)) > EPS for st in states.values()):
                continue
            snap = seen.snapshots.get(venue)
            mark = snap.prices.get(symbol.split("/", 1)[0]) if snap is not None else None
            was, left = before.get(symbol, 0.0), after.get(symbol, 0.0)
            price = mark if mark is not None else marks.get(key)
            for name, st in scale_shared(states, key, was, left, price).items():
                states[name] = st
                spec = specs[name]
                writes.append(
                    LedgerWrite(
                        name,
                        st,
                        prices.get(spec.asset),
                        LedgerEvent.HOLDING_REDUCED,
                        {"instrument": key},
                        venue,
                    )
                )
                alerts.append(
                    _alert(
                        "hedge_holding",
                        "warning",
                        spec,
                        f"hedge {name}: {venue} reduced {symbol} from {was:g} to {left:g} by itself; "
                        "the program's share is cut pro rata",
                    )
                )
    return states, writes, alerts


# --- bookkeeping, resume, stop rules ----------------------------------------------------------------------
def bookkeeping(
    spec: HedgeSpec, st: HedgeState, seen: Seen, marks: Mapping[str, float], price: float
) -> tuple[HedgeState, list[LedgerWrite]]:
    """Exposure changes (the config's, an exposure account's balance) and funding at 8 h boundaries.

    A boundary passed while a venue holding this program's hedge did not answer is charged when it does.
    """
    name = spec.name
    writes: list[LedgerWrite] = []
    if st.config_exposure != spec.exposure:
        st = replace(st.set_exposure(spec, spec.exposure, price), config_exposure=spec.exposure)
        data = {"qty": spec.exposure, "price": price, "from": "config"}
        writes.append(LedgerWrite(name, st, price, LedgerEvent.EXPOSURE, data))
    acct = seen.accounts.get(spec.exposure_account) if spec.exposure_account is not None else None
    if acct is not None:
        qty = float(acct.balances.get(spec.asset, 0))
        if abs(qty - st.exposure_base) > EPS:
            st = st.set_exposure(spec, qty, price)
            data = {"qty": qty, "price": price, "from": spec.exposure_account}
            writes.append(LedgerWrite(name, st, price, LedgerEvent.EXPOSURE, data))
    period = int(seen.now // FUNDING_PERIOD_SECONDS)
    rates: dict[str, float] = {}
    unread = False
    for inst in spec.instruments:
        s = seen.snapshots.get(inst.venue)
        if s is not None:
            rates[inst.key] = s.funding.get(inst.symbol, 0.0)
        elif abs(st.holdings.get(inst.key, 0.0)) > EPS:
            unread = True
    if st.funding_period != period and not unread:
        st = st.charge_funding(period, seen.now, marks, rates)
        data = {"period": period, "funding_to_date": round(st.funding, 6)}
        writes.append(LedgerWrite(name, st, price, LedgerEvent.FUNDING, data))
    return st, writes


def resume(
    spec: HedgeSpec, st: HedgeState, price: float, marks: Mapping[str, float], *, by: str
) -> LedgerWrite | None:
    """A person resumed a stopped program: its loss limit counts from the cost now (None: it was running)."""
    if not st.stopped:
        return None
    resumed = st.resume(st.cost(spec, price, marks).loss)
    return LedgerWrite(spec.name, resumed, price, LedgerEvent.RESUMED, {"by": by})


def stop_message(name: str, reason: str) -> str:
    return f"hedge {name} STOPPED: {reason}; unwinding with reduce-only orders"


def stopping(spec: HedgeSpec, st: HedgeState, price: float, reason: str) -> tuple[LedgerWrite, Alert]:
    """Stop a program (persisted, paged): the write and the cycle's alert."""
    write = LedgerWrite(spec.name, st.stop(reason), price, LedgerEvent.STOPPED, {"reason": reason})
    return write, _alert("hedge_stopped", "critical", spec, stop_message(spec.name, reason))


def stop_rules(
    spec: HedgeSpec, st: HedgeState, price: float, marks: Mapping[str, float], now: float
) -> tuple[LedgerWrite, Alert] | None:
    """The loss and funding-drag rules of a running program: what stops it, or None."""
    if st.stopped:
        return None
    why = stop_reason(spec, st, st.cost(spec, price, marks), now)
    return None if why is None else stopping(spec, st, price, why)


# --- trades ----------------------------------------------------------------------------------------------
def unwind(st: HedgeState) -> tuple[Trade, ...]:
    """A stopped program's trades: every holding closed, reduce-only, taking the book as it is."""
    return tuple(
        Trade(-q, OrderReason.STOP, instruments=(k,), reduce_only=True, urgent=True, note=st.stop_reason)
        for k, q in st.holdings.items()
        if abs(q) > EPS
    )


def book_keys(spec: HedgeSpec, trades: Sequence[Trade]) -> tuple[str, ...]:
    """The instruments `trades` may use (a trade without its own list: the program's rank), each once."""
    keys: dict[str, None] = {}
    for t in trades:
        for key in t.instruments or tuple(i.key for i in spec.instruments):
            keys.setdefault(key)
    return tuple(keys)


def _proposed(
    spec: HedgeSpec, st: HedgeState, inputs: HedgeInputs, gate: Gate, strategy: StrategyOf
) -> tuple[tuple[Trade, ...], list[Alert], str | None]:
    """A running program's trades from its strategy (the error's text, if it raised), as the gate allows."""
    try:
        trades = strategy(spec.strategy).propose(inputs)
    except Exception as e:  # a strategy that raises stops its own program, nothing else
        return (), [], f"strategy {spec.strategy} raised {type(e).__name__}: {e}"
    if gate.reduce_only:
        trades = tuple(t for t in trades if t.reduce_only)
    alerts = []
    if abs(inputs.deviation) > spec.band and not trades and inputs.at_trade_cap:
        msg = (
            f"hedge {spec.name}: net delta {inputs.net_delta:+.4f} outside its band, "
            f"but {spec.max_trades_per_hour} trades this hour reached the cap"
        )
        alerts.append(_alert("hedge_cap", "warning", spec, msg))
    return trades, alerts, None


def _ledger_steps(
    p: Program, seen: Seen, marks: Mapping[str, float], price: float
) -> tuple[HedgeState, list[LedgerWrite], list[Alert]]:
    """Bookkeeping, a resume, then the stop rules: the ledger after them and the writes that made it."""
    st, writes = bookkeeping(p.spec, p.state, seen, marks, price)
    if p.resume_by is not None and (w := resume(p.spec, st, price, marks, by=p.resume_by)) is not None:
        st = w.state
        writes.append(w)
    alerts = []
    if (stop := stop_rules(p.spec, st, price, marks, seen.now)) is not None:
        st = stop[0].state
        writes.append(stop[0])
        alerts.append(stop[1])
    return st, writes, alerts


def intend(p: Program, seen: Seen, marks: Mapping[str, float], gate: Gate, strategy: StrategyOf) -> Intended:
    """One program's part of the first step: its ledger steps, then what it wants to trade."""
    spec = p.spec
    price = price_of(spec, seen.snapshots)
    if price is None:
        return Intended(
            spec,
            p.state,
            None,
            (),
            (_alert("hedge_stale", "warning", spec, f"hedge {spec.name}: no fresh price"),),
        )
    resumed = p.resume_by is not None
    st, writes, alerts = _ledger_steps(p, seen, marks, price)
    if not gate.trades or p.busy:
        return Intended(spec, st, price, tuple(writes), tuple(alerts), resumed=resumed)
    inputs = hedge_inputs(spec, st, seen, marks, price)
    if st.stopped:
        trades = unwind(st)
        if trades:
            alerts.append(
                _alert("hedge_stopped", "critical", spec, f"hedge {spec.name} STOPPED: {st.stop_reason}")
            )
    else:
        trades, more, error = _proposed(spec, st, inputs, gate, strategy)
        alerts.extend(more)
        if error is not None:
            write, alert = stopping(spec, st, price, error)
            return Intended(spec, write.state, price, (*writes, write), (*alerts, alert), resumed=resumed)
    return Intended(
        spec,
        st,
        price,
        tuple(writes),
        tuple(alerts),
        trades,
        inputs.exposure,
        book_keys(spec, trades),
        resumed,
    )


def books_wanted(
    programs: Sequence[Intended], snapshots: Mapping[str, VenueSnapshot | None]
) -> tuple[Instrument, ...]:
    """The order books the programs' trades may walk, each once; none on a venue that is stale or halted."""
    wanted: dict[str, Instrument] = {}
    for p in programs:
        for key in p.books:
            inst = p.spec.instrument(key)
            if key not in wanted and snapshots.get(inst.venue) is not None:
                wanted[key] = inst
    return tuple(wanted.values())


def prepare(
    programs: Sequence[Program],
    seen: Seen,
    *,
    marks: Mapping[str, float],
    prices: Mapping[str, float],
    gate: Gate,
    strategy: StrategyOf,
) -> Prepared:
    """The first step: ledger changes as data, alerts, each program's trades and the books they need.

    `marks` are the last marks per instrument key (this cycle's included); `prices` the last price per asset
    before this cycle (the figures of a holding reduced by a venue are taken at it).
    """
    specs = {p.spec.name: p.spec for p in programs}
    states, writes, alerts = external_reductions(
        specs, {p.spec.name: p.state for p in programs}, seen, marks, prices
    )
    intended = tuple(
        intend(replace(p, state=states[p.spec.name]), seen, marks, gate, strategy) for p in programs
    )
    return Prepared(tuple(writes), tuple(alerts), intended, books_wanted(intended, seen.snapshots))


# --- the second step -------------------------------------------------------------------------------------
def plan_hedges(prepared: Prepared, books: Mapping[str, Book | None], seen: Seen) -> Planned:
    """The second step: each program's trades against the books that came (a missing one is None) and the
    venues' margin headroom, legs numbered across the cycle; the alerts of both steps in program order."""
    orders: list[OrderAction] = []
    needs: dict[str, float] = {}
    alerts: list[Alert] = list(prepared.alerts)
    traded: dict[str, float] = {}
    for p in prepared.programs:
        alerts.extend(p.alerts)
        if not p.trades:
            continue
        plan = plan_orders(
            p.spec,
            p.trades,
            p.state.holdings,
            books={k: books.get(k) for k in p.books},
            snapshots=seen.snapshots,
            alert_utilization=seen.alert_utilization,
            trigger=f"{seen.now:.3f}",
            leg_start=len(orders),
        )
        orders.extend(plan.orders)
        # what the orders add and what a waiting hedge still needs both count as used margin for treasury
        for venue, extra in (*plan.im_needs.items(), *plan.im_added.items()):
            needs[venue] = needs.get(venue, 0.0) + extra
        if plan.orders and not p.state.stopped:
            traded[p.spec.name] = p.exposure
        if abs(plan.unplaced) > EPS:
            alerts.append(_unplaced(p.spec, plan))
    return Planned(tuple(orders), needs, tuple(alerts), traded)


def _unplaced(spec: HedgeSpec, plan: Plan) -> Alert:
    why = "; ".join(plan.notes) or "no instrument available"
    kind = "hedge_margin" if plan.im_needs else "hedge_capped"
    extra = " (top-up requested first)" if plan.im_needs else ""
    return _alert(
        kind,
        "warning",
        spec,
        f"hedge {spec.name}: {abs(plan.unplaced):g} {spec.asset} not placed this cycle{extra}: {why}",
    )


def _alert(kind: str, severity: str, spec: HedgeSpec, message: str) -> Alert:
    return Alert(kind, severity, f"hedge:{spec.name}", spec.asset, message)
