"""A Hypothesis state machine over the hedge engine: prices, exposures, order faults, thin books, clock,
crashes at the order call and after a fill commit, restarts, halts and resumes.

The bot is built from config/hedging.toml over the paper exchange, whose client order ids are free again
once an order is done (as on venues that refuse a duplicate id only among open orders): a repeat would trade
twice. After every step: each order intent has at most one fill at the venue, and every order the venue saw
was recorded as an intent first; while no order is of unknown outcome, the programs' ledgers add up to the
venue's positions on their instruments; while the whole bot is halted only reduce-only orders are created;
no order is created for a program (or, de-risking, on a venue) with an older order of unknown outcome; the
audit chain verifies; and no order is left `approved` once a cycle has completed in a running process.

The paths it found broken are replayed step by step at the end (a restart while an unknown order's fill is
already visible at the venue, a liquidation next to an unknown order, a crash at the order call on a venue
whose history lags, a liquidation of the symbol of an unknown order that then fails, or whose lost fill is
then adopted); the machine no longer steers around them. Its example database is not kept in git, so every
path it finds is pinned here as a plain test.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bot.app import Wired, build
from bot.engine.clock import SimClock
from bot.settings import Settings
from bot.store import audit as chain
from bot.store.db import make_engine
from bot.venues.base import OrderReceipt, OrderRequest
from bot.venues.paper import PaperExchange, PaperOrders
from tests.harness import START, SimulatedCrash
from tests.test_hedge_engine import CrashAfterFill, CrashingOrders, _step, hedging

LAGS = (15.0, 60.0)
SETTINGS: dict[float, Settings] = {lag: hedging(reconcile_lag_seconds=lag) for lag in LAGS}
VENUES = ("okx-main", "bybit-main", "binance-pm")
BOOKS = sorted({(i.venue, i.symbol) for h in SETTINGS[LAGS[0]].hedges for i in h.instruments})
TRADER_LONG = "binance-pm|BTC/USDT:USDT"  # a trader's own long, no program's
EXPOSURES = [(p, q) for p in ("btc-options",) for q in (20.0, 36.0, 40.0, 46.0, 60.0)] + [
    ("eth-inventory", q) for q in (800.0, 1450.0, 1500.0, 2300.0)
]
ASSET = {"btc-options": "BTC", "eth-inventory": "ETH"}


class LaxVenue(PaperOrders):
    """A venue that frees a client order id once its order is done (IOC orders are done at once), so a repeat
    of the same id trades again, and whose order history shows an order only `history_lag` seconds after it
    was placed (its consistency lag, shorter than the bot's reconcile lag)."""

    def __init__(self, x: PaperExchange, history_lag: float) -> None:
        super().__init__(x)
        self.x = x
        self.history_lag = history_lag

    async def place(self, req: OrderRequest) -> OrderReceipt:
        self._m.orders.pop(req.client_id, None)
        return await super().place(req)

    async def lookup_order(self, req: OrderRequest) -> OrderReceipt | None:
        found = await super().lookup_order(req)
        if found is not None and self.x.now() - found.ts < self.history_lag:
            return None
        return found


class ThinsUnderTheOrder:
    """The book of the next order thins to `depth` after the planner read it, just before the order lands."""

    def __init__(self, inner: Any, x: Any, depth: float) -> None:
        self.inner = inner
        self.x = x
        self.depth: float | None = depth

    async def order_book(self, venue: str, symbol: str) -> Any:
        return await self.inner.order_book(venue, symbol)

    async def place(self, req: OrderRequest) -> OrderReceipt:
        if self.depth is not None:
            self.x.set_liquidity(req.venue, req.symbol, self.depth)
            self.depth = None
        return await self.inner.place(req)

    async def lookup_order(self, req: OrderRequest) -> OrderReceipt | None:
        return await self.inner.lookup_order(req)


class OrderMachine(RuleBasedStateMachine):
    @initialize(lag=st.sampled_from(LAGS), history_lag=st.sampled_from([0.0, 10.0]))
    def setup(self, lag: float, history_lag: float) -> None:
        """A started bot over a fresh SQLite store, before its first cycle (nothing hedged yet)."""
        self.tmp = tempfile.TemporaryDirectory(prefix="marginbot-om-")
        self.url = f"sqlite:///{Path(self.tmp.name) / 'om.db'}"
        self.loop = asyncio.new_event_loop()
        self.clock = SimClock(START)
        self.s = SETTINGS[lag]
        self.history_lag = history_lag
        self.halted_orders: list[str] = []  # orders created while the whole bot was halted, not reduce-only
        self.orders_over_unknown: list[str] = []  # orders created next to an older one of unknown outcome
        self.cycled = False  # the last thing that happened was a cycle that completed in a running process
        self.crash_armed = False  # the next order call kills the process
        self.thinning: ThinsUnderTheOrder | None = None
        self.steer_around_known_bugs = False  # the three paths once steered around are fixed (tests below)
        self.w = self._start(exchange=None)
        self.x = self.w.exchange

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.close()
            self.store.engine.dispose()
            self.tmp.cleanup()

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def _start(self, exchange: PaperExchange | None) -> Wired:
        """A process: its store over the database, a bot over the exchange, started (startup reconciliation)."""
        store = CrashAfterFill(make_engine(self.url), config_hash=self.s.config_hash)
        w = build(
            self.s, store, self.clock, exchange=exchange, send_notifications=False, figures_every_seconds=None
        )
        assert w.bot.hedger is not None
        w.bot.hedger.port = w.bot.hedger.desk_orders.port = LaxVenue(w.exchange, self.history_lag)
        self.store = store
        self._run(w.bot.start())
        return w

    def _restart(self) -> None:
        """A new process: a new store over the same database, a new bot over the same exchange."""
        self.store.engine.dispose()
        self.w = self._start(exchange=self.x)
        self.cycled = False
        self.crash_armed = False
        self.thinning = None

    def _one_cycle(self, seconds: float) -> bool:
        """One cycle; False when the process died in it. Records orders created while the bot was halted, and
        orders created for a program (or, de-risking, on a venue) whose earlier order was of unknown outcome."""
        store = self.store
        halted = store.flags.get("ctl:halt") is not None
        known = {r.id for r in store.orders.rows()}
        try:
            self._run(_step(self.w, self.clock, seconds))
            ok = True
        except SimulatedCrash:
            ok = False
        rows = store.orders.rows()
        new = [r for r in rows if r.id not in known]
        # still unknown after the cycle: it was unknown when the cycle planned (reconciliation runs first)
        unknown = [r for r in rows if r.status == "unknown"]
        for n in new:
            if halted and not n.reduce_only:
                self.halted_orders.append(f"order {n.id} ({n.reason}) created while halted")
            for u in unknown:
                same = n.program == u.program if n.program else n.venue == u.venue
                if same and u.created_at < n.created_at:
                    self.orders_over_unknown.append(f"order {n.id} created while {u.id} was unknown")
        self.cycled = ok
        return ok

    def _cycle(self, seconds: float = 5.0) -> None:
        """A cycle; when the process dies in it, a new one is started and runs its first cycle."""
        if not self._one_cycle(seconds):
            self._not_a_known_bug(self._restart_counts_a_fill_twice())
            self._restart()
            assert self._one_cycle(5.0), "the restarted process died in its first cycle"

    def _not_a_known_bug(self, known_bug: bool) -> None:
        """Drop the example at a path that runs into a known bug (each one pinned by an xfail test below)."""
        if self.steer_around_known_bugs:
            assume(not known_bug)

    def _restart_counts_a_fill_twice(self) -> bool:
        """Once a bug, now fixed (test_a_fill_the_venue_showed_before_a_restart_is_counted_once): an unknown order
        whose venue was observed since it was placed; a restart now would count its fill twice."""
        bot = self.w.bot
        assert bot.hedger is not None
        return any(bot.watch.seen_since(o.venue, o.created_at) for o in bot.hedger.open.values())

    # --- what the world does (then the bot runs a cycle) ------------------------------------------------
    @rule(
        asset=st.sampled_from(["BTC", "ETH"]),
        pct=st.sampled_from([-0.03, -0.012, -0.004, 0.004, 0.012, 0.03]),
    )
    def price_moves(self, asset: str, pct: float) -> None:
        """BTC or ETH moves a little; btc-options' delta moves with it (gamma)."""
        self.x.market.shock(asset, pct)
        self._cycle()

    @rule(change=st.sampled_from(EXPOSURES))
    def exposure_changes(self, change: tuple[str, float]) -> None:
        """A program's exposure is set from outside (the `exposure` event)."""
        name, qty = change
        price = self.x.market.prices[ASSET[name]]
        self.w.bot.hedger.set_exposure(name, qty, self.clock.now(), price=price)
        self._cycle()

    @rule(venue=st.sampled_from(VENUES), fault=st.sampled_from(["timeout", "5xx"]))
    def arm_fault(self, venue: str, fault: str) -> None:
        """The venue's next order loses its answer after the fill (timeout) or gets a 502 before the book."""
        m = self.x.matching
        knob = m.timeouts_after_fill if fault == "timeout" else m.server_errors
        knob[venue] = knob.get(venue, 0) + 1
        self._cycle()

    @rule(book=st.sampled_from(BOOKS), depth=st.sampled_from([0.005, 0.05, 1.0]))
    def book_depth_changes(self, book: tuple[str, str], depth: float) -> None:
        """A book thins (orders fill partially) or recovers its depth."""
        self.x.set_liquidity(*book, depth)
        self._cycle()

    @precondition(lambda self: self.thinning is None or self.thinning.depth is None)
    @rule(depth=st.sampled_from([0.002, 0.01]))
    def book_thins_under_the_next_order(self, depth: float) -> None:
        """The next order finds its book thinner than planned and fills partially."""
        desk = self.w.bot.hedger.desk_orders
        self.thinning = ThinsUnderTheOrder(desk.port, self.x, depth)
        desk.port = self.thinning  # type: ignore[assignment]
        self._cycle()

    @rule(venue=st.sampled_from(VENUES))
    def venue_liquidates(self, venue: str) -> None:
        """The venue closes every position of the account at mark, by itself (a liquidation)."""
        # once a bug, now fixed (test_a_liquidation_next_to_an_unknown_order_leaves_the_ledgers)
        self._not_a_known_bug(any(o.venue == venue for o in self.w.bot.hedger.open.values()))
        book = self.x.books[venue]
        self.x._liquidate(book, self.clock.now(), self.x.figures(book).equity)
        self._cycle()

    @rule(seconds=st.sampled_from([5.0, 20.0, 65.0, 700.0]))
    def time_passes(self, seconds: float) -> None:
        """The clock moves on (past a reconciliation lag, or not) and the bot runs a cycle."""
        self._cycle(seconds)

    # --- crashes, restarts and the kill switch ------------------------------------------------------------
    @precondition(lambda self: not self.crash_armed)
    @rule(after=st.booleans())
    def crash_at_the_order_call(self, after: bool) -> None:
        """The next order call kills the process, before the order left or after it filled unheard."""
        desk = self.w.bot.hedger.desk_orders
        desk.port = CrashingOrders(desk.port, after=after)  # type: ignore[arg-type]
        self.crash_armed = True
        self._cycle()

    @precondition(lambda self: not self.store.armed)
    @rule()
    def crash_after_a_fill_commit(self) -> None:
        """The process dies right after the next fill and its ledger are committed."""
        self.store.armed = True
        self._cycle()

    @precondition(lambda self: not (self.steer_around_known_bugs and self._restart_counts_a_fill_twice()))
    @rule()
    def restart(self) -> None:
        """The process stops between cycles and is rebuilt from the database; the exchange carries on."""
        self._restart()

    @precondition(lambda self: self.store.flags.get("ctl:halt") is None)
    @rule()
    def halt(self) -> None:
        """A person halts the whole bot."""
        self.w.bot.kill.halt(self.clock.now(), by="dana", reason="order machine")

    @precondition(lambda self: bool(self.store.flags.with_prefix("ctl:halt")))
    @rule()
    def resume(self) -> None:
        """A person resumes the whole bot and every venue the bot halted by itself."""
        kill = self.w.bot.kill
        for key in self.store.flags.with_prefix("ctl:halt"):
            venue = key[len("ctl:halt:") :] if key.startswith("ctl:halt:") else None
            kill.resume(self.clock.now(), by="alice", venue=venue)

    # --- invariants -----------------------------------------------------------------------------------------
    @invariant()
    def one_effect_per_order_intent(self) -> None:
        """No client order id traded twice, and each one that traded is a recorded order intent."""
        fills = Counter(self.x.matching.fills)
        assert all(n == 1 for n in fills.values()), fills
        ids = {r.id for r in self.store.orders.rows()}
        assert set(fills) <= ids, set(fills) - ids

    @invariant()
    def intent_before_effect(self) -> None:
        """Every order the venue has seen has an order row."""
        ids = {r.id for r in self.store.orders.rows()}
        seen = set(self.x.matching.orders)
        assert seen <= ids, seen - ids

    @invariant()
    def ledgers_match_venues_when_nothing_is_unknown(self) -> None:
        """With no order of unknown outcome, each instrument's holdings across programs equal the venue's."""
        hedger = self.w.bot.hedger
        if hedger.open:
            return
        for spec in hedger.specs.values():
            for inst in spec.instruments:
                if inst.key == TRADER_LONG:
                    continue
                owned = sum(s.holdings.get(inst.key, 0.0) for s in hedger.states.values())
                book = self.x.books[inst.venue]
                held = sum(p.qty for p in book.positions if p.symbol == inst.symbol)
                assert abs(owned - held) <= 1e-9, (inst.key, owned, held)

    @invariant()
    def only_reduce_only_while_halted(self) -> None:
        """No order that is not reduce-only was created while the whole bot was halted."""
        assert not self.halted_orders, self.halted_orders

    @invariant()
    def no_order_over_an_unknown_one(self) -> None:
        """No order was created for a program (or, de-risking, on a venue) with an older unknown order."""
        assert not self.orders_over_unknown, self.orders_over_unknown

    @invariant()
    def audit_chain_verifies(self) -> None:
        """The hash chain of the audit trail is intact."""
        assert chain.verify(self.store.engine).ok

    @invariant()
    def nothing_left_approved_after_a_cycle(self) -> None:
        """Once a cycle has completed in a running process no order row is still `approved`."""
        if self.cycled:
            left = [r.id for r in self.store.orders.rows() if r.status == "approved"]
            assert not left, left


# About 0.4 s an example: 50 keep `make test` within its budget. The paths pinned below turned up about once in
# 500 examples, which is a hunt, not a CI run: `MARGINBOT_ORDER_MACHINE_EXAMPLES=500 pytest
# tests/test_order_machine.py`, and pin what it finds as a replay below (the example database is not in git).
EXAMPLES = int(os.environ.get("MARGINBOT_ORDER_MACHINE_EXAMPLES", "50"))
OrderMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_order_machine = OrderMachine.TestCase


# --- paths the machine found broken, now fixed: the shrunk examples, replayed step by step ---------------


def _machine(lag: float, history_lag: float) -> OrderMachine:
    m = OrderMachine()
    m.setup(lag=lag, history_lag=history_lag)
    m.steer_around_known_bugs = False
    return m


def test_a_fill_the_venue_showed_before_a_restart_is_counted_once() -> None:
    """okx-main shows btc-options' -40 BTC before its history shows the order; after a restart it is adopted."""
    m = _machine(lag=15.0, history_lag=10.0)
    try:
        m.arm_fault(venue="okx-main", fault="timeout")  # btc-options sells 40 BTC; the answer is lost
        m.time_passes(seconds=5.0)  # the venue shows -40 BTC, its order history not yet: still unknown
        m.restart()
        m.time_passes(seconds=5.0)  # the lookup finds the fill and adopts it
        assert not m.w.bot.hedger.open
        m.ledgers_match_venues_when_nothing_is_unknown()  # btc-options holds -20 on okx-main, the venue -40
    finally:
        m.teardown()


def test_a_liquidation_next_to_an_unknown_order_leaves_the_ledgers() -> None:
    """okx-main is liquidated while btc-options' first order there is unknown (a 502); eth-inventory's hedge
    there is gone, but its ledger keeps it after the unknown order fails."""
    m = _machine(lag=60.0, history_lag=0.0)
    try:
        m.arm_fault(venue="okx-main", fault="5xx")  # btc-options' sell is unknown, eth-inventory's fills
        m.venue_liquidates(venue="okx-main")
        m.time_passes(seconds=65.0)  # the 502'd order is failed at the lag; nothing is unknown any more
        assert not m.w.bot.hedger.open
        m.ledgers_match_venues_when_nothing_is_unknown()
    finally:
        m.teardown()


def test_a_crash_at_the_order_call_does_not_halt_the_venue_when_its_history_lags() -> None:
    """The rebalance that filled before the crash is the only change on okx-main: no venue halt."""
    m = _machine(lag=60.0, history_lag=10.0)
    try:
        m.time_passes(seconds=5.0)  # hedged
        m.crash_at_the_order_call(after=True)
        m.price_moves(asset="BTC", pct=0.03)  # btc-options rebalances on okx-main; the process dies there
        m.time_passes(seconds=5.0)  # the fill is adopted
        assert [r.status for r in m.store.orders.rows()].count("unknown") == 0
        m.ledgers_match_venues_when_nothing_is_unknown()
        assert not m.store.flags.with_prefix("ctl:halt")
    finally:
        m.teardown()


def test_a_liquidation_found_next_to_an_order_lost_in_a_crash_cuts_the_ledger_once_the_order_fails() -> None:
    """okx-main liquidates btc-options' -40 BTC while its buy of 20, lost in a crash at the order call, is
    unknown; once that order fails, the liquidation cuts btc-options' holding (the ledger held -20 BTC against
    the venue's +20 after the next rebalance).

    The machine's shrunk path: setup (lag 15, history lag 0) → crash after a fill commit → crash at the order
    call (before the order leaves) → btc-options' exposure 20 → okx-main liquidates → crash after a fill commit.
    """
    m = _machine(lag=15.0, history_lag=0.0)
    try:
        m.crash_after_a_fill_commit()  # hedged: btc-options -40 on okx-main; a restart
        m.crash_at_the_order_call(after=False)
        m.exposure_changes(change=("btc-options", 20.0))  # the buy of 20 dies at the call; restart: unknown
        m.venue_liquidates(venue="okx-main")  # BTC -40 -> 0 next to the unknown order: held back
        m.ledgers_match_venues_when_nothing_is_unknown()
        m.crash_after_a_fill_commit()  # the order fails at the lag; btc-options rebalances; a restart
        assert not m.w.bot.hedger.open
        m.ledgers_match_venues_when_nothing_is_unknown()
        m.time_passes(seconds=5.0)
        m.ledgers_match_venues_when_nothing_is_unknown()
        m.one_effect_per_order_intent()
    finally:
        m.teardown()


def test_a_liquidation_seen_before_a_lost_fill_is_found_cuts_that_fill() -> None:
    """btc-options' first sell of 40 fills but its answer is lost; okx-main liquidates before its history shows
    the order; once adopted, the fill is cut by the liquidation (the ledger kept -40 against the venue's 0)."""
    m = _machine(lag=60.0, history_lag=10.0)
    try:
        m.arm_fault(venue="okx-main", fault="timeout")  # btc-options sells 40 BTC; the answer is lost
        m.venue_liquidates(venue="okx-main")  # the venue closes it (and eth-inventory's hedge) at mark
        m.time_passes(seconds=5.0)  # the history shows the fill: adopted
        assert not m.w.bot.hedger.open
        m.ledgers_match_venues_when_nothing_is_unknown()
        m.time_passes(seconds=5.0)
        m.ledgers_match_venues_when_nothing_is_unknown()
    finally:
        m.teardown()


def test_a_liquidation_held_back_by_an_unknown_order_survives_a_restart() -> None:
    """As above with a restart between the liquidation and the order's failure: what the bot held back is in
    the store, so the new process cuts btc-options' holding, and halts okx-main (found at its first look)."""
    m = _machine(lag=15.0, history_lag=0.0)
    try:
        m.time_passes(seconds=5.0)  # hedged: btc-options -40 on okx-main
        m.crash_at_the_order_call(after=False)
        m.exposure_changes(change=("btc-options", 20.0))  # the buy of 20 dies at the call; restart: unknown
        m.venue_liquidates(venue="okx-main")  # BTC -40 -> 0 next to the unknown order: held back
        m.restart()
        m.time_passes(seconds=20.0)  # the order fails at the lag; the liquidation reaches the ledger
        assert not m.w.bot.hedger.open
        m.ledgers_match_venues_when_nothing_is_unknown()
        assert m.store.flags.with_prefix("ctl:halt:okx-main")
        m.time_passes(seconds=5.0)
        m.ledgers_match_venues_when_nothing_is_unknown()
    finally:
        m.teardown()
