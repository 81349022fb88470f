"""The hedge engine inside the bot: orders of unknown outcome, crashes, stops, de-risk and the audit trail.

Every test drives a bot built over the paper exchange from config/hedging.toml on a SimClock; failure
cases come first, then the happy paths.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

import strategies
from bot.app import Wired
from bot.core.hedge import OrderAction, OrderReason, OrderStatus
from bot.core.lifecycle import Applied, OrderEvent
from bot.core.margin import Position
from bot.engine.clock import SimClock
from bot.errors import IntegrityError, OrderRefused
from bot.settings import Settings, load_settings, settings_from_dict
from bot.store import audit as chain
from bot.store.db import make_engine
from bot.store.orders import OrderRepo
from bot.store.repo import Store
from bot.store.rows import OrderRow
from bot.store.tables import notifications
from bot.venues.base import OrderReceipt, OrderRequest
from bot.venues.paper import PaperOrders
from tests.conftest import ROOT
from tests.harness import START, SimulatedCrash, make_bot

HEDGING = ROOT / "config" / "hedging.toml"
BTC_OKX = ("okx-main", "BTC/USDT:USDT")
LAG = 60.0


def hedging(*keep: str, edit: Any = None, **bot: Any) -> Settings:
    """config/hedging.toml, keeping only the named hedge programs (all when none), with [bot] overrides."""
    if not keep and edit is None and not bot:
        return load_settings(HEDGING)
    data = tomllib.loads(HEDGING.read_text())
    if keep:
        data["hedges"] = [h for h in data["hedges"] if h["name"] in keep]
    data["bot"].update(bot)
    if edit is not None:
        edit(data)
    return settings_from_dict(data)


async def _step(w: Wired, clock: SimClock, seconds: float = 5) -> Any:
    clock.advance(seconds)
    w.exchange.advance()
    return await w.bot.cycle()


def _venue_qty(w: Wired, venue: str, symbol: str) -> float:
    return sum(p.qty for p in w.exchange.books[venue].positions if p.symbol == symbol)


def _holding(w: Wired, program: str, venue: str, symbol: str) -> float:
    return w.bot.hedger.states[program].holdings.get(f"{venue}|{symbol}", 0.0)


def _ledgers_match_venues(w: Wired) -> None:
    """Each instrument's venue position equals what the programs' ledgers hold on it (no other owner here)."""
    for spec in w.bot.hedger.specs.values():
        for inst in spec.instruments:
            owned = sum(st.holdings.get(inst.key, 0.0) for st in w.bot.hedger.states.values())
            if inst.key == "binance-pm|BTC/USDT:USDT":
                continue  # the trader's own long lives there
            assert owned == pytest.approx(_venue_qty(w, inst.venue, inst.symbol), abs=1e-9), inst.key


def _rows(store: Store) -> list[OrderRow]:
    return store.orders.rows()


def _audit(store: Store) -> list[dict[str, Any]]:
    return list(chain.rows(store.engine))


def _critical(store: Store, kind: str) -> list[str]:
    with store.engine.connect() as conn:
        q = select(notifications.c.title).where(
            notifications.c.severity == "critical", notifications.c.kind == kind
        )
        return [r.title for r in conn.execute(q)]


class LaggingLookup:
    """The venue's order history does not show orders while `hidden` (its consistency lag)."""

    def __init__(self, w: Wired) -> None:
        self.real = w.exchange.matching.lookup
        self.hidden = True
        w.exchange.matching.lookup = self  # type: ignore[method-assign]

    def __call__(self, req: OrderRequest) -> OrderReceipt | None:
        return None if self.hidden else self.real(req)


class CrashingOrders:
    """The process dies at the venue call: before the order leaves, or after it filled but unheard."""

    def __init__(self, inner: PaperOrders, *, after: bool) -> None:
        self.inner = inner
        self.after = after

    async def order_book(self, venue: str, symbol: str) -> Any:
        return await self.inner.order_book(venue, symbol)

    async def place(self, req: OrderRequest) -> OrderReceipt:
        if self.after:
            await self.inner.place(req)
        raise SimulatedCrash("at the venue call")

    async def lookup_order(self, req: OrderRequest) -> OrderReceipt | None:
        return await self.inner.lookup_order(req)


class CrashAfterFill(Store):
    """The process dies right after a fill and its ledger were committed."""

    armed = False

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.orders = _CrashAfterFillOrders(self)


class _CrashAfterFillOrders(OrderRepo):
    def __init__(self, store: CrashAfterFill) -> None:
        super().__init__(store)
        self.owner = store

    def transition(self, order_id: str, event: OrderEvent, **kw: Any) -> Any:
        done = super().transition(order_id, event, **kw)
        if self.owner.armed and done == Applied(OrderStatus.FILLED):
            raise SimulatedCrash("after the fill commit")
        return done


async def _crash_at_the_venue_call(s: Settings, url: str, clock: SimClock, *, after: bool) -> Wired:
    w = await make_bot(s, url, clock)
    w.bot.hedger.desk_orders.port = CrashingOrders(PaperOrders(w.exchange), after=after)  # type: ignore[assignment]
    with pytest.raises(SimulatedCrash):
        await w.bot.cycle()
    return w


# --- orders of unknown outcome --------------------------------------------------------------------------


async def test_a_fill_whose_answer_is_lost_is_unknown_then_adopted_once(db_url: str) -> None:
    """A timeout after the fill leaves the order unknown; the next lookup adopts the fill exactly once."""
    s = hedging("btc-options", reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, db_url, clock)
    w.exchange.matching.timeouts_after_fill["okx-main"] = 1
    first = await w.bot.cycle()
    (lost,) = first.orders
    assert lost.status is OrderStatus.UNKNOWN
    assert [r.status for r in _rows(w.store)] == ["unknown"]
    assert w.bot.hedger.states["btc-options"].holdings == {}  # nothing counted on a guess
    await _step(w, clock)
    assert [(r.id, r.status) for r in _rows(w.store)] == [(lost.order.id, "filled")]
    assert Counter(w.exchange.matching.fills) == Counter({lost.order.id: 1})
    assert _holding(w, "btc-options", *BTC_OKX) == pytest.approx(-40.0)
    assert _venue_qty(w, *BTC_OKX) == pytest.approx(-40.0)
    await _step(w, clock)
    assert len(_rows(w.store)) == 1  # adopted, never re-sent


class ThinningOrders(PaperOrders):
    """The book the planner saw is gone by the time the order arrives (depth falls to 0.5%)."""

    def __init__(self, w: Wired) -> None:
        super().__init__(w.exchange)
        self.x = w.exchange

    async def place(self, req: OrderRequest) -> OrderReceipt:
        self.x.set_liquidity(req.venue, req.symbol, 0.005)
        return await super().place(req)


async def test_a_partial_fill_whose_answer_is_lost_is_adopted_as_partial(db_url: str) -> None:
    """The book thins before the order lands and the answer times out: the lookup adopts the partial fill once."""
    s = hedging("btc-options", reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, db_url, clock)
    w.bot.hedger.desk_orders.port = ThinningOrders(w)
    w.exchange.matching.timeouts_after_fill["okx-main"] = 1
    first = await w.bot.cycle()
    (lost,) = first.orders
    assert lost.status is OrderStatus.UNKNOWN
    await _step(w, clock)
    row = next(r for r in _rows(w.store) if r.id == lost.order.id)
    assert row.status == "partially_filled"
    assert Decimal(0) < row.filled < row.qty
    assert Counter(w.exchange.matching.fills)[lost.order.id] == 1
    okx_fills = sum(float(r.filled or 0) for r in _rows(w.store) if r.venue == "okx-main")
    assert _holding(w, "btc-options", *BTC_OKX) == pytest.approx(_venue_qty(w, *BTC_OKX))
    assert _holding(w, "btc-options", *BTC_OKX) == pytest.approx(-okx_fills)  # each fill counted once


async def test_a_fill_seen_before_its_lookup_finds_it_is_counted_once(sqlite_url: str) -> None:
    """While the venue's history lags, the unknown program holds still; once adopted, ledger equals venue."""
    s = hedging("btc-options", reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    lookup = LaggingLookup(w)
    w.exchange.matching.timeouts_after_fill["okx-main"] = 1
    (lost,) = (await w.bot.cycle()).orders
    w.exchange.market.shock("BTC", 0.05)  # the program would rebalance now if it were free to
    for _ in range(2):
        result = await _step(w, clock)
        assert result.orders == ()
        assert [r.status for r in _rows(w.store)] == ["unknown"]
    lookup.hidden = False
    raised = [a.kind for _ in range(3) for a in (await _step(w, clock)).raised]
    assert Counter(w.exchange.matching.fills)[lost.order.id] == 1
    assert _holding(w, "btc-options", *BTC_OKX) == pytest.approx(_venue_qty(w, *BTC_OKX))
    assert "hedge_holding" not in raised  # our own fill is no reduction "by the venue itself"


async def test_a_5xx_is_unknown_then_failed_only_after_the_lag(db_url: str) -> None:
    """A 502 before the book: unknown, nothing traded meanwhile, failed at the lag, then a new intent trades."""
    s = hedging("btc-options", reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, db_url, clock)
    w.exchange.matching.server_errors["okx-main"] = 1
    (lost,) = (await w.bot.cycle()).orders
    assert lost.status is OrderStatus.UNKNOWN
    w.exchange.market.shock("BTC", 0.05)  # the program wants to trade, but its order is unknown
    while clock.now() + 5 - START < LAG:
        result = await _step(w, clock)
        assert result.orders == ()
        assert [r.status for r in _rows(w.store)] == ["unknown"]
    result = await _step(w, clock)
    assert clock.now() - START == LAG
    rows = {r.id: r for r in _rows(w.store)}
    assert rows[lost.order.id].status == "failed"
    (retry,) = result.orders
    assert retry.order.id != lost.order.id
    assert retry.status is OrderStatus.FILLED
    assert w.exchange.matching.fills == [retry.order.id]
    assert _holding(w, "btc-options", *BTC_OKX) == pytest.approx(_venue_qty(w, *BTC_OKX))


async def test_a_static_program_retries_a_hedge_that_failed(sqlite_url: str) -> None:
    """btc-treasury's first hedge is lost to a 502 and fails at the lag; the program hedges again."""
    s = hedging("btc-treasury", reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    w.exchange.matching.server_errors["binance-pm"] = 1
    await w.bot.cycle()
    for _ in range(16):
        await _step(w, clock)
    assert [r.status for r in _rows(w.store)].count("failed") == 1
    assert _holding(w, "btc-treasury", "binance-pm", "BTC/USDC:USDC") == pytest.approx(-12.0)


# --- crashes and restarts -------------------------------------------------------------------------------


@pytest.mark.parametrize("after", [False, True], ids=["before the venue call", "after the venue call"])
async def test_a_crash_at_the_venue_call_gates_every_move_until_the_order_is_reconciled(
    db_url: str, after: bool
) -> None:
    """The intent left `approved` is unknown after a restart; nothing moves until it is classified; one fill."""
    s = hedging(reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await _crash_at_the_venue_call(s, db_url, clock, after=after)
    (crashed,) = _rows(w.store)
    assert crashed.status == "approved"
    clock.advance(5)
    w.exchange.advance()
    w2 = await make_bot(s, db_url, clock, exchange=w.exchange)
    kinds = [a["kind"] for a in _audit(w2.store) if a["data"].get("id") == crashed.id]
    if after:  # the startup lookup found the fill: adopted before any cycle
        assert kinds == ["order.created", "order.unknown", "order.filled"]
        assert w2.bot.gate_open
    else:
        assert kinds == ["order.created", "order.unknown"]
        transfers = len(w2.store.intents.rows())
        w.exchange.freeze("binance-pm", 3600)
        w.exchange.set_margin_factor("binance-pm", 1.7)  # m ≈ 82%: de-risk is due, but held by the gate
        while clock.now() - START < LAG:  # not found, but within the venue's consistency lag
            assert not w2.bot.gate_open
            result = await w2.bot.cycle()
            assert (result.orders, result.outcomes) == ((), ())
            assert ("startup_gate", "*", None) in w2.bot.alerts.active
            clock.advance(5)
            w.exchange.advance()
        assert len(w2.store.intents.rows()) == transfers  # no transfer either while the gate was shut
        result = await w2.bot.cycle()
        assert w2.bot.gate_open
        reasons = {o.order.reason for o in result.orders}  # the programs trade again, with new intents
        assert reasons == {OrderReason.REBALANCE, OrderReason.DERISK}
        assert {r.id: r.status for r in _rows(w2.store)}[crashed.id] == "failed"
    for _ in range(3):
        await _step(w2, clock)
    fills = Counter(w.exchange.matching.fills)
    assert max(fills.values()) == 1
    assert fills[crashed.id] == (1 if after else 0)
    assert not w2.store.flags.with_prefix("ctl:halt")
    _ledgers_match_venues(w2)


async def test_a_resolve_elsewhere_does_not_open_the_gate_on_unknown_orders(sqlite_url: str) -> None:
    """A person resolving some transfer intent (ctl:intents bumped) leaves the gate shut for unknown orders."""
    s = hedging(reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await _crash_at_the_venue_call(s, sqlite_url, clock, after=False)
    clock.advance(5)
    w.exchange.advance()
    w2 = await make_bot(s, sqlite_url, clock, exchange=w.exchange)
    assert not w2.bot.gate_open
    transfers = len(w2.store.intents.rows())
    w2.bot.kill.mark_intents_changed(clock.now(), by="alice", intent_id="some-other-intent")
    result = await _step(w2, clock)
    assert [r.status for r in _rows(w2.store)] == ["unknown"]
    assert not w2.bot.gate_open
    assert result.outcomes == ()
    assert len(w2.store.intents.rows()) == transfers


@pytest.mark.parametrize("later", [False, True], ids=["first cycle", "later cycle"])
async def test_a_crash_right_after_a_fill_does_not_halt_the_venue_after_restart(
    db_url: str, later: bool
) -> None:
    """Our own recorded fill is expected after a restart: no 'changed while down' halt, ledgers = venues."""
    s = hedging(reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    store = CrashAfterFill(make_engine(db_url), config_hash=s.config_hash)
    w = await make_bot(s, db_url, clock, store=store)
    if later:
        await w.bot.cycle()
        w.exchange.market.shock("BTC", 0.05)  # btc-options rebalances on okx-main next cycle
        clock.advance(5)
        w.exchange.advance()
    store.armed = True
    with pytest.raises(SimulatedCrash):
        await w.bot.cycle()
    clock.advance(5)
    w.exchange.advance()
    w2 = await make_bot(s, db_url, clock, exchange=w.exchange)
    for _ in range(3):
        result = await w2.bot.cycle()
        assert all(a.kind != "hedge_holding" for a in result.raised)
        clock.advance(5)
        w.exchange.advance()
    assert w2.store.flags.with_prefix("ctl:halt") == {}
    assert not any(a["kind"] == "halt" for a in _audit(w2.store))
    assert max(Counter(w.exchange.matching.fills).values()) == 1
    _ledgers_match_venues(w2)


async def test_a_liquidation_while_down_is_noticed_on_a_venue_that_started_flat(sqlite_url: str) -> None:
    """okx-main (flat at start, hedged since) is liquidated while the bot is down: halted, its ledgers cut, and
    the hedge re-placed on the backup instrument."""
    s = hedging(reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    for _ in range(3):
        await _step(w, clock)
    book = w.exchange.books["okx-main"]
    w.exchange._liquidate(book, clock.now(), w.exchange.figures(book).equity)
    w2 = await make_bot(s, sqlite_url, clock, exchange=w.exchange)
    await _step(w2, clock)
    assert "ctl:halt:okx-main" in w2.store.flags.with_prefix("ctl:halt")
    for name in ("btc-options", "eth-inventory"):  # their okx hedges are gone; the backup may carry them now
        assert not any(k.startswith("okx-main|") for k in w2.bot.hedger.states[name].holdings)
    assert w2.bot.hedger.states["btc-options"].holdings == {"bybit-main|BTC/USDT:USDT": -40.0}


# --- idempotency ----------------------------------------------------------------------------------------


async def test_the_same_order_intent_twice_has_one_row_and_one_effect(db_url: str) -> None:
    """Sending one intent twice records and trades once; its client id with other parameters is refused."""
    s = hedging("btc-options")
    clock = SimClock(START)
    w = await make_bot(s, db_url, clock)
    a = OrderAction(
        program="btc-options",
        venue="okx-main",
        symbol="BTC/USDT:USDT",
        side="sell",
        qty=Decimal("1.5"),
        reduce_only=False,
        reason=OrderReason.REBALANCE,
        trigger="manual",
        leg=0,
        est_price=60_000.0,
        est_slippage_bps=0.0,
    )
    (first,) = await w.bot.hedger.send((a,), clock.now())
    assert first.status is OrderStatus.FILLED
    assert await w.bot.hedger.send((a,), clock.now()) == []
    assert [r.id for r in _rows(w.store)] == [a.intent_id]
    assert w.exchange.matching.fills == [a.intent_id]
    assert _holding(w, "btc-options", *BTC_OKX) == pytest.approx(-1.5)
    bigger = dataclasses.replace(a, qty=Decimal("3"))
    assert bigger.intent_id == a.intent_id
    with pytest.raises(IntegrityError, match="different parameters"):
        w.store.orders.create(bigger, clock.now())
    req = OrderRequest(a.intent_id, a.venue, a.symbol, a.side, Decimal("3"), False)
    with pytest.raises(OrderRefused, match="reused with different parameters"):
        w.exchange.matching.place(req)
    same = OrderRequest(a.intent_id, a.venue, a.symbol, a.side, a.qty, False)
    assert w.exchange.matching.place(same).filled == Decimal("1.5")  # the venue's answer, not a new fill
    assert w.exchange.matching.fills == [a.intent_id]
    assert _venue_qty(w, *BTC_OKX) == pytest.approx(-1.5)


# --- stop rules -----------------------------------------------------------------------------------------


async def _stopped_by_max_loss(url: str) -> tuple[Wired, SimClock, Settings]:
    """btc-options hedged, then BTC +25%: its short gamma costs ~375k, over max_loss_usd 250k."""
    s = hedging("btc-options")
    clock = SimClock(START)
    w = await make_bot(s, url, clock)
    await w.bot.cycle()
    w.exchange.market.shock("BTC", 0.25)
    result = await _step(w, clock)
    assert w.bot.hedger.states["btc-options"].stopped
    assert [(o.order.reason, o.order.reduce_only, o.status) for o in result.orders] == [
        (OrderReason.STOP, True, OrderStatus.FILLED)
    ]
    return w, clock, s


async def test_a_program_over_its_max_loss_is_stopped_unwound_and_stays_stopped(db_url: str) -> None:
    """Over max_loss_usd: stopped (persisted), holdings closed reduce-only, paged, still stopped after restart."""
    w, clock, s = await _stopped_by_max_loss(db_url)
    assert w.bot.hedger.states["btc-options"].holdings == {}
    assert _venue_qty(w, *BTC_OKX) == 0.0
    (row,) = w.store.ledgers.rows()
    assert row.stopped is True
    assert "max_loss_usd" in row.stop_reason
    assert any("btc-options STOPPED" in t for t in _critical(w.store, "hedge_stopped"))
    stops = [r for r in _rows(w.store) if r.reason == "stop"]
    assert [(r.side, r.reduce_only, r.status) for r in stops] == [("buy", True, "filled")]
    for _ in range(3):  # the exposure is now -10 BTC, outside the band: a running program would trade
        assert (await _step(w, clock)).orders == ()
    w2 = await make_bot(s, db_url, clock, exchange=w.exchange)
    for _ in range(2):
        assert (await _step(w2, clock)).orders == ()
    assert w2.bot.hedger.states["btc-options"].stopped
    assert len(_rows(w2.store)) == 2
    assert [a["kind"] for a in _audit(w2.store)].count("hedge.stopped") == 1  # kept, not stopped anew


async def test_a_resume_after_a_max_loss_stop_lets_the_program_hedge_again(sqlite_url: str) -> None:
    """alice resumes the stopped btc-options: at the next cycle it is running and rebalances its -10 BTC."""
    w, clock, _ = await _stopped_by_max_loss(sqlite_url)
    w.bot.kill.request_hedge_resume(clock.now(), program="btc-options", by="alice")
    result = await _step(w, clock)
    assert any(a["kind"] == "hedge.resumed" and a["data"]["by"] == "alice" for a in _audit(w.store))
    assert not w.bot.hedger.states["btc-options"].stopped
    assert [o.order.reason for o in result.orders] == [OrderReason.REBALANCE]


async def test_a_resume_after_a_funding_drag_stop_hedges_again(db_url: str) -> None:
    """eth-inventory stopped by funding drag stays stopped until alice's resume, then hedges again."""
    s = hedging("eth-inventory")
    clock = SimClock(START)
    w = await make_bot(s, db_url, clock)
    await w.bot.cycle()
    for venue in ("okx-main", "bybit-main"):
        w.exchange.set_funding(venue, "ETH/USDT:USDT", -0.0025)
    result = await _step(w, clock, 6400)  # past the 8 h funding boundary: 75 bps/day against 10
    assert w.bot.hedger.states["eth-inventory"].stopped
    assert [(o.order.reason, o.order.reduce_only) for o in result.orders] == [(OrderReason.STOP, True)]
    for venue in ("okx-main", "bybit-main"):
        w.exchange.set_funding(venue, "ETH/USDT:USDT", 0.0001)
    assert (await _step(w, clock)).orders == ()
    w.bot.kill.request_hedge_resume(clock.now(), program="eth-inventory", by="alice")
    result = await _step(w, clock)
    assert any(a["kind"] == "hedge.resumed" and a["data"]["by"] == "alice" for a in _audit(w.store))
    assert not w.bot.hedger.states["eth-inventory"].stopped
    assert w.store.ledgers.rows()[0].stopped is False
    assert result.orders  # it may split over both venues when a sweep left okx-main less headroom
    assert {(o.order.reason, o.status) for o in result.orders} == {
        (OrderReason.REBALANCE, OrderStatus.FILLED)
    }
    assert sum(w.bot.hedger.states["eth-inventory"].holdings.values()) == pytest.approx(-1500.0)
    _ledgers_match_venues(w)
    assert w.store.flags.with_prefix("ctl:resume-hedge") == {}


class Raising:
    name = "dynamic_band"

    def propose(self, inputs: Any) -> Any:
        raise RuntimeError("model blew up")


async def test_a_strategy_that_raises_stops_only_its_program(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dynamic_band raising stops btc-options alone; the other programs hedge and transfers still run."""
    monkeypatch.setitem(strategies.REGISTRY, "dynamic_band", Raising())
    s = hedging()
    clock = SimClock(START)
    w = await make_bot(s, db_url, clock)
    result = await w.bot.cycle()
    st = w.bot.hedger.states["btc-options"]
    assert st.stopped
    assert "RuntimeError: model blew up" in st.stop_reason
    assert {o.order.program for o in result.orders} == {"eth-inventory", "btc-treasury"}
    assert all(o.status is OrderStatus.FILLED for o in result.orders)
    assert result.outcomes  # the treasury's transfers went out in the same cycle
    assert w.store.flags.with_prefix("ctl:halt") == {}
    stopped = {r.name: r.stopped for r in w.store.ledgers.rows()}
    assert stopped == {"btc-options": True, "eth-inventory": False, "btc-treasury": False}
    assert (await _step(w, clock)).orders == ()


async def test_while_halted_only_a_stopped_programs_unwind_goes_out(db_url: str) -> None:
    """Halted: btc-treasury's rebalance waits while btc-options' reduce-only stop unwind is sent."""
    s = hedging()
    clock = SimClock(START)
    w = await make_bot(s, db_url, clock)
    await w.bot.cycle()
    w.bot.kill.halt(clock.now(), by="alice", reason="incident")
    w.exchange.accounts["treasury-btc"]["BTC"] = Decimal(20)  # btc-treasury wants to sell 8 more
    w.exchange.market.shock("BTC", 0.25)  # btc-options over its max loss
    result = await _step(w, clock)
    assert [(o.order.program, o.order.reason, o.order.reduce_only) for o in result.orders] == [
        ("btc-options", OrderReason.STOP, True)
    ]
    assert (await _step(w, clock)).orders == ()
    assert _holding(w, "btc-treasury", "binance-pm", "BTC/USDC:USDC") == pytest.approx(-12.0)
    w.bot.kill.resume(clock.now(), by="alice")
    result = await _step(w, clock)
    assert [(o.order.program, o.order.reason) for o in result.orders] == [
        ("btc-treasury", OrderReason.REBALANCE)
    ]
    assert _holding(w, "btc-treasury", "binance-pm", "BTC/USDC:USDC") == pytest.approx(-20.0)


# --- de-risk and reductions the venue makes by itself -----------------------------------------------------


async def test_a_venue_at_its_derisk_level_gets_reduce_only_orders_and_the_ledger_follows(
    db_url: str,
) -> None:
    """binance-pm at m ≥ 75% with transfers frozen: reduce-only de-risk orders bring m under the 50% alert."""
    s = hedging()
    clock = SimClock(START)
    w = await make_bot(s, db_url, clock)
    await w.bot.cycle()
    x, book = w.exchange, w.exchange.books["binance-pm"]
    before = _venue_qty(w, "binance-pm", "BTC/USDC:USDC")
    assert _holding(w, "btc-treasury", "binance-pm", "BTC/USDC:USDC") == pytest.approx(before) == -12.0
    x.freeze("binance-pm", 3600)  # no top-up can land
    x.set_margin_factor("binance-pm", 2.8)  # margin hike: m ≈ 87%, below liquidation
    assert 0.75 <= x.figures(book).mm_ratio < 1.0
    result = await _step(w, clock)
    derisk = [o for o in result.orders if o.order.reason is OrderReason.DERISK]
    assert derisk
    assert all(o.order.program is None and o.order.reduce_only for o in derisk)
    assert all(o.status is OrderStatus.FILLED and o.order.venue == "binance-pm" for o in derisk)
    rows = [r for r in _rows(w.store) if r.reason == "derisk"]
    assert len(rows) == len(derisk)
    assert all(r.program is None for r in rows)
    assert any(a.kind == "derisk_orders" for a in result.raised)
    assert x.figures(book).mm_ratio < 0.50
    assert not x.liquidations
    after = _venue_qty(w, "binance-pm", "BTC/USDC:USDC")
    assert abs(after) < abs(before)
    held = _holding(w, "btc-treasury", "binance-pm", "BTC/USDC:USDC")
    assert held == pytest.approx(-12.0 * after / before, abs=1e-9)  # pro rata: its share of the cut
    _ledgers_match_venues(w)


async def test_an_external_liquidation_takes_the_holdings_off_the_programs_there(db_url: str) -> None:
    """okx-main liquidated: btc-options and eth-inventory lose their holdings there, with hedge_holding alerts."""
    s = hedging()
    clock = SimClock(START)
    w = await make_bot(s, db_url, clock)
    await w.bot.cycle()
    w.bot.kill.halt(clock.now(), by="alice", reason="hold still so the ledgers can be read")
    book = w.exchange.books["okx-main"]
    w.exchange._liquidate(book, clock.now(), w.exchange.figures(book).equity)
    result = await _step(w, clock)
    states = w.bot.hedger.states
    assert states["btc-options"].holdings == {}
    assert states["eth-inventory"].holdings == {}
    assert states["btc-treasury"].holdings == {"binance-pm|BTC/USDC:USDC": pytest.approx(-12.0)}
    alerted = {a.venue for a in result.raised if a.kind == "hedge_holding"}
    assert alerted == {"hedge:btc-options", "hedge:eth-inventory"}
    reduced = {a["data"]["program"] for a in _audit(w.store) if a["kind"] == "hedge.holding_reduced"}
    assert reduced == {"btc-options", "eth-inventory"}
    stored = {r.name: r.state for r in w.store.ledgers.rows()}
    assert '"holdings":{}' in stored["btc-options"]
    assert w.store.flags.with_prefix("ctl:halt:") == {}  # seen while running: not a 'while down' halt


def _second_btc_program(exposure: float) -> Any:
    def edit(data: dict[str, Any]) -> None:
        desk = copy.deepcopy(data["hedges"][0])
        desk.update(name="btc-desk", exposure=exposure, gamma=0, instruments=[desk["instruments"][0]])
        data["hedges"] = [data["hedges"][0], desk]

    return edit


async def test_a_partial_reduction_of_a_shared_position_is_shared_pro_rata(sqlite_url: str) -> None:
    """Two programs short 40 and 20 BTC on one okx position; the venue halves it: 20 and 10 remain."""
    s = hedging(edit=_second_btc_program(20))
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    await w.bot.cycle()
    assert _venue_qty(w, *BTC_OKX) == pytest.approx(-60.0)
    w.bot.kill.halt(clock.now(), by="alice", reason="hold still")
    book = w.exchange.books["okx-main"]
    (p,) = book.positions
    book.positions = (Position(p.symbol, p.base, p.qty / 2, p.entry),)
    book.refresh()
    result = await _step(w, clock)
    assert _holding(w, "btc-options", *BTC_OKX) == pytest.approx(-20.0)
    assert _holding(w, "btc-desk", *BTC_OKX) == pytest.approx(-10.0)
    assert {a.venue for a in result.raised if a.kind == "hedge_holding"} == {
        "hedge:btc-options",
        "hedge:btc-desk",
    }


async def test_a_liquidation_clears_opposite_holdings_on_a_shared_position(sqlite_url: str) -> None:
    """btc-options short 40 and btc-desk long 10 share one okx position (-30); liquidated, both hold nothing."""
    s = hedging(edit=_second_btc_program(-10))
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    await w.bot.cycle()
    assert _venue_qty(w, *BTC_OKX) == pytest.approx(-30.0)
    w.bot.kill.halt(clock.now(), by="alice", reason="hold still")
    book = w.exchange.books["okx-main"]
    w.exchange._liquidate(book, clock.now(), w.exchange.figures(book).equity)
    await _step(w, clock)
    assert _holding(w, "btc-options", *BTC_OKX) == 0.0
    assert _holding(w, "btc-desk", *BTC_OKX) == 0.0


# --- the audit trail ------------------------------------------------------------------------------------


async def test_every_order_is_audited_as_created_before_its_result_and_the_chain_verifies(
    db_url: str,
) -> None:
    """Fills, a lost answer, a 502 and a stop: each order's `order.created` precedes its results; chain ok."""
    s = hedging(reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, db_url, clock)
    w.exchange.matching.timeouts_after_fill["okx-main"] = 1
    w.exchange.matching.server_errors["binance-pm"] = 1
    await w.bot.cycle()
    w.exchange.market.shock("BTC", 0.05)
    for _ in range(13):
        await _step(w, clock)
    w.exchange.market.shock("BTC", 0.25)  # btc-options stops and unwinds
    await _step(w, clock)
    rows = _rows(w.store)
    assert {r.status for r in rows} >= {"filled", "failed"}
    assert any(r.reason == "stop" for r in rows)
    trail = _audit(w.store)
    unknown: list[str] = []
    for r in rows:
        mine = [
            (a["seq"], a["kind"])
            for a in trail
            if a["kind"].startswith("order.") and a["data"].get("id") == r.id
        ]
        assert mine[0][1] == "order.created", r.id
        assert [k for _, k in mine].count("order.created") == 1
        assert len(mine) >= 2, f"{r.id} has no result record"
        assert mine[-1][1] == f"order.{r.status}"
        unknown.extend(k for _, k in mine if k == "order.unknown")
    assert len(unknown) == 2  # the lost answer and the 502, each looked up before its final record
    assert chain.verify(w.store.engine).ok
