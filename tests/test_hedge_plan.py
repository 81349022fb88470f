"""The hedge planner's two pure steps: which books it asks for, planning with the books that came, and the
ledger changes (bookkeeping, resume, stop rules) returned as data for the shell to write."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal

import pytest

import strategies
from bot.core.gate import Gate, TradingGate
from bot.core.hedge import HedgeInputs, HedgeSpec, Instrument, OrderReason, StopRule, Trade
from bot.core.hedge_book import HedgeState
from bot.core.hedge_plan import (
    FUNDING_PERIOD_SECONDS,
    LedgerEvent,
    Prepared,
    Program,
    Proposer,
    Seen,
    book_keys,
    books_wanted,
    external_reductions,
    plan_hedges,
    prepare,
    resume,
    stop_rules,
)
from bot.core.margin import MarginParams, build_tiers
from bot.core.world import AccountSnapshot, VenueSnapshot
from bot.venues.paper_orders import BookShape, synthetic_book

NOW = 1_770_000_000.0
PERIOD = int(NOW // FUNDING_PERIOD_SECONDS)
MARK = 60_000.0
SYM = "BTC/USDT:USDT"
A = Instrument("v1", SYM)
B = Instrument("v2", SYM)
TIERS = build_tiers([(1_000_000, 0.005), (5_000_000, 0.01), (None, 0.025)])
DEEP = synthetic_book(MARK, BookShape(), 1.0)
ACTIVE, REDUCING, HALTED = Gate(TradingGate.ACTIVE), Gate(TradingGate.REDUCING), Gate(TradingGate.HALTED)


def spec(name: str = "h1", **kw: object) -> HedgeSpec:
    base: dict[str, object] = {
        "name": name,
        "asset": "BTC",
        "strategy": "dynamic_band",
        "exposure": 10.0,
        "target_delta": 0.0,
        "band": 0.5,
        "min_trade": 0.01,
        "max_slippage_bps": 5.0,
        "instruments": (A, B),
    }
    base.update(kw)
    return HedgeSpec(**base)  # type: ignore[arg-type]


def venue(name: str, *, funding: float = 0.0, price: float = MARK) -> VenueSnapshot:
    return VenueSnapshot(
        name,
        NOW,
        {"USDT": 10_000_000.0},
        (),
        {"BTC": price},
        {},
        MarginParams("cross", TIERS, 0.1),
        funding={SYM: funding},
    )


def seen(
    snaps: Mapping[str, VenueSnapshot | None] | None = None,
    *,
    accounts: Mapping[str, AccountSnapshot | None] | None = None,
    changes: Mapping[str, tuple[str | None, str]] | None = None,
) -> Seen:
    snapshots = snaps if snaps is not None else {"v1": venue("v1"), "v2": venue("v2")}
    return Seen(NOW, snapshots, accounts or {}, {"v1": 0.8, "v2": 0.8}, changes or {})


def steady(holdings: Mapping[str, float] | None = None, **kw: object) -> HedgeState:
    """A ledger that took the config's exposure of 10 BTC at MARK and was charged funding this period."""
    held = dict(holdings or {})
    base: dict[str, object] = {
        "holdings": held,
        "entries": dict.fromkeys(held, MARK),
        "exposure_base": 10.0,
        "exposure_ref": MARK,
        "config_exposure": 10.0,
        "funding_period": PERIOD,
    }
    base.update(kw)
    return HedgeState(**base)  # type: ignore[arg-type]


def run(
    *programs: Program, s: Seen | None = None, gate: Gate = ACTIVE, strategy: object = strategies.get
) -> Prepared:
    return prepare(
        programs,
        s or seen(),
        marks={A.key: MARK, B.key: MARK},
        prices={"BTC": MARK},
        gate=gate,
        strategy=strategy,  # type: ignore[arg-type]
    )


class Raising:
    def propose(self, inputs: HedgeInputs) -> tuple[Trade, ...]:
        raise ZeroDivisionError("bad arithmetic")


class Unwinding:
    """Proposes one reduce-only trade and one plain one."""

    def propose(self, inputs: HedgeInputs) -> tuple[Trade, ...]:
        return (
            Trade(1.0, OrderReason.UNWIND, instruments=(A.key,), reduce_only=True),
            Trade(-5.0, OrderReason.REBALANCE, instruments=(B.key,)),
        )


def registry(s: Proposer) -> object:
    return lambda _name: s


# --- which books are asked for ------------------------------------------------------------------------------


def test_a_program_out_of_band_asks_for_the_books_of_its_ranked_instruments() -> None:
    """Net delta +10 against a band of 0.5: the strategy trades, and the books of both instruments are asked."""
    p = run(Program(spec(), steady()))
    assert p.programs[0].trades
    assert p.books == (A, B)


def test_a_program_in_band_asks_for_no_book() -> None:
    """Hedged to target: no trade, no book."""
    p = run(Program(spec(), steady({A.key: -10.0})))
    assert p.programs[0].trades == ()
    assert p.books == ()


def test_no_book_is_asked_on_a_venue_that_is_stale_or_halted() -> None:
    """v2 did not answer (or is halted: its snapshot is None): only v1's book is asked."""
    p = run(Program(spec(), steady()), s=seen({"v1": venue("v1"), "v2": None}))
    assert p.programs[0].books == (A.key, B.key)  # the planner still tries both, in rank order
    assert p.books == (A,)


def test_a_stopped_program_asks_only_for_the_books_it_unwinds() -> None:
    """Stopped with a holding on v2 only: one reduce-only urgent trade there, and only v2's book."""
    p = run(Program(spec(), steady({B.key: -4.0}, stopped=True, stop_reason="max loss")))
    (t,) = p.programs[0].trades
    assert (t.qty, t.instruments, t.reduce_only, t.urgent, t.reason) == (4.0, (B.key,), True, True, "stop")
    assert p.books == (B,)


def test_books_shared_by_two_programs_are_asked_once() -> None:
    """Two programs on the same instruments: each book is read once."""
    p = run(Program(spec("h1"), steady()), Program(spec("h2"), steady()))
    assert [bool(x.trades) for x in p.programs] == [True, True]
    assert p.books == (A, B)


def test_while_the_gate_is_halted_no_book_is_asked_but_the_ledger_is_kept() -> None:
    """The startup gate: no trades (not even a stop unwind), but bookkeeping and stop rules still run."""
    losing = spec(stop=StopRule(max_loss_usd=100.0))
    st = steady({A.key: -10.0}, realized=-1_000.0)
    p = run(Program(losing, st), gate=HALTED)
    (prog,) = p.programs
    assert p.books == ()
    assert prog.trades == ()
    assert [w.event for w in prog.writes] == [LedgerEvent.STOPPED]
    assert prog.state.stopped


def test_a_program_with_an_order_of_unknown_outcome_asks_for_nothing() -> None:
    """Busy: it holds still; its ledger steps still run."""
    p = run(Program(spec(), steady(), busy=True))
    assert p.books == ()
    assert p.programs[0].trades == ()


def test_while_reducing_only_reduce_only_trades_ask_for_books() -> None:
    """The whole bot halted: the strategy's plain trade is dropped, its reduce-only one kept."""
    p = run(Program(spec(), steady({A.key: -2.0})), gate=REDUCING, strategy=registry(Unwinding()))
    assert [t.reduce_only for t in p.programs[0].trades] == [True]
    assert p.books == (A,)


def test_book_keys_are_the_trades_own_instruments_or_the_rank_each_once() -> None:
    """A trade naming its instrument asks for that one; one without asks for the program's rank."""
    s = spec()
    assert book_keys(s, (Trade(1.0, OrderReason.REBALANCE, instruments=(B.key,)),)) == (B.key,)
    both = (Trade(1.0, OrderReason.REBALANCE, instruments=(B.key,)), Trade(1.0, OrderReason.REBALANCE))
    assert book_keys(s, both) == (B.key, A.key)


def test_books_wanted_skips_programs_without_trades() -> None:
    """A program that was not priced or does not trade contributes no book."""
    p = run(Program(spec(), steady()), s=seen({"v1": None, "v2": None}))
    assert books_wanted(p.programs, {}) == ()


# --- planning with the books that came ------------------------------------------------------------------------


def test_a_missing_book_passes_the_trade_to_the_next_instrument() -> None:
    """v1's read failed (absent) or came back None: the whole trade goes to v2."""
    p = run(Program(spec(), steady()))
    for books in ({B.key: DEEP}, {A.key: None, B.key: DEEP}):
        planned = plan_hedges(p, books, seen())
        assert [(o.venue, o.side, o.qty) for o in planned.orders] == [("v2", "sell", Decimal("10.000"))]
        assert planned.traded == {"h1": 10.0}


def test_with_no_book_nothing_is_placed_and_the_program_is_warned() -> None:
    """No book at all: no order, a hedge_capped warning, nothing counted as a trade."""
    p = run(Program(spec(), steady()))
    planned = plan_hedges(p, {}, seen())
    assert planned.orders == ()
    assert planned.traded == {}
    assert [a.kind for a in planned.alerts] == ["hedge_capped"]
    assert "not placed this cycle" in planned.alerts[0].message


def test_legs_are_numbered_across_the_programs_of_a_cycle() -> None:
    """Two programs each placing one order: legs 0 and 1, so their intent ids differ."""
    p = run(Program(spec("h1"), steady()), Program(spec("h2"), steady()))
    planned = plan_hedges(p, {A.key: DEEP, B.key: DEEP}, seen())
    assert [(o.program, o.leg) for o in planned.orders] == [("h1", 0), ("h2", 1)]
    assert len({o.intent_id for o in planned.orders}) == 2


def test_the_alerts_of_both_steps_come_in_program_order() -> None:
    """h1 unpriced (stale) then h2 capped: the cycle's alerts follow the programs."""
    eth = spec("h1", asset="ETH")
    p = run(Program(eth, steady()), Program(spec("h2"), steady()))
    planned = plan_hedges(p, {}, seen())
    assert [(a.venue, a.kind) for a in planned.alerts] == [
        ("hedge:h1", "hedge_stale"),
        ("hedge:h2", "hedge_capped"),
    ]


def test_margin_the_orders_use_is_counted_for_treasury() -> None:
    """The initial margin an order adds is reported per venue, for the sweep not to take it."""
    p = run(Program(spec(), steady()))
    planned = plan_hedges(p, {A.key: DEEP, B.key: DEEP}, seen())
    assert planned.im_needs.get("v1", 0.0) > 0.0


# --- ledger changes and stop rules as data ----------------------------------------------------------------------


def test_an_unpriced_program_is_left_alone() -> None:
    """No fresh price for its asset anywhere: a hedge_stale warning and nothing else (no write, no resume)."""
    p = run(Program(spec(asset="ETH"), steady(), resume_by="alice"))
    (prog,) = p.programs
    assert prog.price is None
    assert prog.writes == ()
    assert not prog.resumed
    assert [a.kind for a in prog.alerts] == ["hedge_stale"]


def test_a_new_ledger_takes_the_config_exposure_then_its_first_funding_period() -> None:
    """Exposure first (from the config, at the price), then the funding period: two writes in that order."""
    p = run(Program(spec(), HedgeState()))
    (prog,) = p.programs
    assert [w.event for w in prog.writes] == [LedgerEvent.EXPOSURE, LedgerEvent.FUNDING]
    assert prog.writes[0].data == {"qty": 10.0, "price": MARK, "from": "config"}
    assert prog.state.exposure_base == 10.0
    assert prog.state.funding_period == PERIOD


def test_an_exposure_account_balance_change_is_a_write() -> None:
    """The account holds 12 BTC: the exposure becomes 12, written with the account's name."""
    acct = AccountSnapshot("treasury-btc", "cold", NOW, {"BTC": Decimal(12)})
    p = run(Program(spec(exposure_account="treasury-btc"), steady()), s=seen(accounts={"treasury-btc": acct}))
    (w,) = p.programs[0].writes
    assert (w.event, w.data["qty"], w.data["from"]) == (LedgerEvent.EXPOSURE, 12.0, "treasury-btc")


def test_funding_waits_while_a_venue_holding_the_hedge_does_not_answer() -> None:
    """A new period, but v2 (holding the hedge) is silent: no charge this cycle."""
    st = steady({B.key: -10.0}, funding_period=PERIOD - 1)
    p = run(Program(spec(), st), s=seen({"v1": venue("v1"), "v2": None}))
    assert p.programs[0].writes == ()
    p = run(Program(spec(), st))
    assert [w.event for w in p.programs[0].writes] == [LedgerEvent.FUNDING]


def test_the_loss_rule_stops_the_program_as_data() -> None:
    """Running cost past max_loss_usd: a STOPPED write with the reason and the stopped ledger; under it: None."""
    s = spec(stop=StopRule(max_loss_usd=100.0))
    losing = steady({A.key: -10.0}, realized=-1_000.0)
    got = stop_rules(s, losing, MARK, {A.key: MARK}, NOW)
    assert got is not None
    write, alert = got
    assert write.event is LedgerEvent.STOPPED
    assert write.state.stopped
    assert write.stopped == write.state.stop_reason
    assert "exceeds max_loss_usd 100" in write.stopped
    assert write.data == {"reason": write.stopped}
    assert (alert.kind, alert.severity) == ("hedge_stopped", "critical")
    assert stop_rules(s, steady({A.key: -10.0}, realized=-50.0), MARK, {A.key: MARK}, NOW) is None


def test_the_funding_drag_rule_stops_the_program_as_data() -> None:
    """Funding paid at 30 bps/day against a limit of 10: stopped, the reason names the drag."""
    s = spec(stop=StopRule(max_funding_drag_bps_per_day=10.0))
    st = steady({A.key: -10.0}, funding_charges=((NOW - 60.0, 30.0),))
    got = stop_rules(s, st, MARK, {A.key: MARK}, NOW)
    assert got is not None
    assert "funding drag 30.0 bps/day" in got[0].state.stop_reason


def test_a_stopped_program_is_not_stopped_again() -> None:
    """The rules are for running programs: a stopped one yields no write."""
    s = spec(stop=StopRule(max_loss_usd=100.0))
    st = steady({A.key: -10.0}, realized=-1_000.0, stopped=True, stop_reason="before")
    assert stop_rules(s, st, MARK, {A.key: MARK}, NOW) is None


def test_a_stop_is_written_before_the_unwind_is_planned() -> None:
    """Within one prepare: the STOPPED write, then the unwind trade and its alert."""
    s = spec(stop=StopRule(max_loss_usd=100.0))
    p = run(Program(s, steady({A.key: -10.0}, realized=-1_000.0)))
    (prog,) = p.programs
    assert [w.event for w in prog.writes] == [LedgerEvent.STOPPED]
    assert [t.reason for t in prog.trades] == [OrderReason.STOP]
    assert [a.kind for a in prog.alerts] == ["hedge_stopped", "hedge_stopped"]


def test_a_strategy_that_raises_stops_its_program_and_trades_nothing() -> None:
    """The error's text is the stop reason; the program asks for no book."""
    p = run(Program(spec(), steady()), strategy=registry(Raising()))
    (prog,) = p.programs
    (w,) = prog.writes
    assert w.stopped == "strategy dynamic_band raised ZeroDivisionError: bad arithmetic"
    assert prog.trades == ()
    assert p.books == ()
    assert prog.state.stopped


def test_a_resume_counts_the_loss_limit_from_the_cost_now() -> None:
    """Resumed at a running cost of 1,000: loss_base 1,000, the stop reason cleared; a running program: None."""
    s = spec(stop=StopRule(max_loss_usd=100.0))
    stopped = steady({A.key: -10.0}, realized=-1_000.0, stopped=True, stop_reason="max loss")
    w = resume(s, stopped, MARK, {A.key: MARK}, by="alice")
    assert w is not None
    assert w.event is LedgerEvent.RESUMED
    assert w.data == {"by": "alice"}
    assert not w.state.stopped
    assert w.state.loss_base == pytest.approx(1_000.0)
    assert resume(s, steady(), MARK, {}, by="alice") is None


def test_a_resumed_program_is_not_stopped_again_by_the_loss_it_was_resumed_at() -> None:
    """Resume, then the stop rules: the limit counts from the resume, so the program trades on."""
    s = spec(stop=StopRule(max_loss_usd=100.0))
    stopped = steady({A.key: -10.0}, realized=-1_000.0, stopped=True, stop_reason="max loss")
    p = run(Program(s, stopped, resume_by="alice"))
    (prog,) = p.programs
    assert [w.event for w in prog.writes] == [LedgerEvent.RESUMED]
    assert prog.resumed
    assert not prog.state.stopped
    assert p.resumed == frozenset({"h1"})


def test_holdings_a_venue_reduced_by_itself_are_cut_pro_rata_as_writes() -> None:
    """v1 went from -20 to -10 BTC: both programs holding -10 there keep -5 each, one write and alert each."""
    states = {"h1": steady({A.key: -10.0}), "h2": steady({A.key: -10.0})}
    specs = {"h1": spec("h1"), "h2": spec("h2")}
    change = {"v1": ('[["BTC/USDT:USDT",-20.0]]', '[["BTC/USDT:USDT",-10.0]]')}
    after, writes, alerts = external_reductions(specs, states, seen(changes=change), {}, {"BTC": 61_000.0})
    assert [st.holdings[A.key] for st in after.values()] == [-5.0, -5.0]
    assert [(w.program, w.event, w.venue, w.price) for w in writes] == [
        ("h1", LedgerEvent.HOLDING_REDUCED, "v1", 61_000.0),
        ("h2", LedgerEvent.HOLDING_REDUCED, "v1", 61_000.0),
    ]
    assert [a.kind for a in alerts] == ["hedge_holding", "hedge_holding"]


def test_prepare_is_deterministic_and_leaves_its_inputs_alone() -> None:
    """The same inputs give the same result; the programs' ledgers passed in are not changed."""
    st = steady()
    progs = (Program(spec(), st), Program(spec("h2"), HedgeState()))
    assert run(*progs) == run(*progs)
    assert progs[0].state is st
    assert dataclasses.asdict(st) == dataclasses.asdict(steady())


def test_plan_is_empty_for_books_when_nothing_trades() -> None:
    """No program trading: no order, no margin, no alert beyond the first step's."""
    p = run(Program(spec(), steady({A.key: -10.0})))
    planned = plan_hedges(p, {}, seen())
    assert planned.orders == ()
    assert planned.im_needs == {}
    assert planned.alerts == ()
