"""The paper exchange survives a restart of `marginbot run`: what is in flight is still in flight."""

from __future__ import annotations

import json

from bot.app import build, open_store
from bot.engine.clock import SimClock
from bot.venues import paper_state
from bot.venues.base import TransferState
from tests.harness import START, make_bot, paper_settings


async def test_a_restored_exchange_carries_transfers_and_balances_over(sqlite_url: str) -> None:
    """Saved and restored, the exchange still has the top-up in flight, and it settles as before."""
    s = paper_settings()
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    await w.bot.cycle()
    saved = json.dumps(paper_state.dump(w.exchange))
    fresh = build(s, open_store(s, sqlite_url), clock, send_notifications=False).exchange
    paper_state.restore(fresh, json.loads(saved))
    assert fresh.accounts == w.exchange.accounts
    assert fresh.books["okx-main"].collateral == w.exchange.books["okx-main"].collateral
    (t,) = fresh.transfers.values()
    assert t.state is TransferState.PENDING
    clock.advance(31)
    fresh.advance()
    assert t.state is TransferState.SETTLED
    assert fresh.total_collateral("USDT") == w.exchange.total_collateral("USDT")


async def test_old_settled_transfers_are_not_kept(sqlite_url: str) -> None:
    """A week after it settled, a transfer is no longer saved, so the state does not grow without end."""
    s = paper_settings()
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    await w.bot.cycle()
    clock.advance(8 * 86_400)
    w.exchange.advance()
    assert paper_state.dump(w.exchange)["transfers"] == []
