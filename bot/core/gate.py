"""The trading gate: what orders (hedges and de-risking) may go out this cycle. Pure.

Computed once per cycle from the kill switch, the startup gate and the halted venues:

    startup gate open  kill switch   gate        orders
    no                 any           halted      none: no hedge order (not even a stop unwind), no de-risk
    yes                on            reducing    reduce-only only: stop unwinds, reduce-only strategy trades,
                                                 de-risk; a batch holding a plain order is held whole
    yes                off           active      all
    a halted venue (by a person, an IP ban, a liquidation found at start): no order there, whatever the gate

Bookkeeping and stop rules run in every state; the gate only says what may be sent. Transfers have their own
inputs (`World.halted`, `World.moves_allowed`): the gate is about orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot.core.hedge import OrderAction


class TradingGate(StrEnum):
    ACTIVE = "active"  # trades freely
    REDUCING = "reducing"  # only reduce-only orders (the whole bot is halted)
    HALTED = "halted"  # nothing (the startup gate: open intents or orders not yet reconciled)


@dataclass(frozen=True, slots=True)
class Gate:
    """The bot's gate and the venues halted one by one."""

    state: TradingGate = TradingGate.ACTIVE
    halted_venues: frozenset[str] = frozenset()

    def at(self, venue: str) -> TradingGate:
        """The gate on one venue: a halted venue is halted whatever the bot's gate says."""
        return TradingGate.HALTED if venue in self.halted_venues else self.state

    @property
    def trades(self) -> bool:
        """Whether hedge programs may trade at all (else: bookkeeping and stop rules only)."""
        return self.state is not TradingGate.HALTED

    @property
    def reduce_only(self) -> bool:
        """Whether strategies' trades are limited to the reduce-only ones."""
        return self.state is TradingGate.REDUCING

    def admit(self, orders: Sequence[OrderAction]) -> tuple[OrderAction, ...]:
        """The orders that may be sent: none on a halted venue; while reducing, the batch only if every order in
        it is reduce-only (the legs of one cycle's plan build on each other: one plain leg holds them all)."""
        if self.state is TradingGate.HALTED:
            return ()
        allowed = tuple(o for o in orders if o.venue not in self.halted_venues)
        if self.state is TradingGate.REDUCING and not all(o.reduce_only for o in allowed):
            return ()
        return allowed


def trading_gate(
    *, kill_switch: bool, startup_open: bool, halted_venues: frozenset[str] = frozenset()
) -> Gate:
    """This cycle's gate: the startup gate first (nothing until everything open is reconciled), then the kill
    switch (a halted bot may only reduce)."""
    if not startup_open:
        state = TradingGate.HALTED
    elif kill_switch:
        state = TradingGate.REDUCING
    else:
        state = TradingGate.ACTIVE
    return Gate(state, frozenset(halted_venues))
