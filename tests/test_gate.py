"""The trading gate: one state per cycle from the startup gate, the kill switch and the halted venues."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.core.gate import Gate, TradingGate, trading_gate
from bot.core.hedge import OrderAction, OrderReason


def order(venue: str = "v1", *, reduce_only: bool = True, leg: int = 0) -> OrderAction:
    return OrderAction(
        "h1",
        venue,
        "BTC/USDT:USDT",
        "buy",
        Decimal("1.000"),
        reduce_only,
        OrderReason.STOP,
        "1.000",
        leg,
        1.0,
        0.0,
    )


@pytest.mark.parametrize(
    ("startup_open", "kill_switch", "state"),
    [
        (True, False, TradingGate.ACTIVE),
        (True, True, TradingGate.REDUCING),
        (False, False, TradingGate.HALTED),
        (False, True, TradingGate.HALTED),
    ],
)
def test_the_gate_follows_the_startup_gate_then_the_kill_switch(
    startup_open: bool, kill_switch: bool, state: TradingGate
) -> None:
    """Open intents or orders not yet reconciled: halted; else the kill switch on: reducing; else active."""
    assert trading_gate(kill_switch=kill_switch, startup_open=startup_open).state is state


def test_active_trades_freely() -> None:
    """Active: programs trade, every trade is kept, every order goes out."""
    g = trading_gate(kill_switch=False, startup_open=True)
    batch = (order(reduce_only=True), order(reduce_only=False, leg=1))
    assert g.trades
    assert not g.reduce_only
    assert g.admit(batch) == batch


def test_reducing_sends_only_a_reduce_only_batch() -> None:
    """Reducing: programs trade reduce-only; a batch of reduce-only orders goes, one with a plain order is held."""
    g = trading_gate(kill_switch=True, startup_open=True)
    reducing = (order(), order("v2", leg=1))
    assert g.trades
    assert g.reduce_only
    assert g.admit(reducing) == reducing
    assert g.admit((order(), order(reduce_only=False, leg=1))) == ()


def test_halted_sends_nothing() -> None:
    """Halted (the startup gate): programs keep their books and stop rules but trade nothing; no order goes."""
    g = trading_gate(kill_switch=False, startup_open=False)
    assert not g.trades
    assert g.admit((order(),)) == ()


@pytest.mark.parametrize("kill_switch", [False, True])
def test_a_halted_venue_gets_no_order_whatever_the_gate(kill_switch: bool) -> None:
    """v2 halted: its orders are dropped, v1's go (the kill switch on or off)."""
    g = trading_gate(kill_switch=kill_switch, startup_open=True, halted_venues=frozenset({"v2"}))
    assert g.at("v2") is TradingGate.HALTED
    assert g.at("v1") is g.state
    assert g.admit((order("v1"), order("v2", leg=1))) == (order("v1"),)


def test_the_default_gate_is_active_with_no_halted_venue() -> None:
    """A gate built without inputs trades freely everywhere."""
    assert Gate() == Gate(TradingGate.ACTIVE, frozenset())
    assert Gate().at("anywhere") is TradingGate.ACTIVE
