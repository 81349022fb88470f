"""The fault cases of a money move, each on its own: the bot never re-sends on a guess, and fails closed."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import select

from bot.app import build
from bot.core.actions import IntentStatus
from bot.engine.clock import SimClock
from bot.engine.killswitch import HALT, KillSwitch
from bot.store.db import make_engine
from bot.store.flags import FlagRepo
from bot.store.intents import IntentRepo
from bot.store.repo import Store
from bot.store.tables import notifications
from bot.venues.paper import PaperTransfers
from tests.harness import START, make_bot, paper_settings

ROUTE = "okx-funding-to-okx"


def _statuses(store: Store) -> list[tuple[str, str]]:
    return [(r.route, r.status) for r in store.intents.rows()]


async def _step(w: Any, clock: SimClock, seconds: float = 5) -> Any:
    clock.advance(seconds)
    w.exchange.advance()
    return await w.bot.cycle()


async def test_a_5xx_before_the_effect_is_unknown_then_failed_after_the_lag(sqlite_url: str) -> None:
    """A 502 leaves the outcome unknown: nothing is re-sent on that route; absent past the lag, it fails."""
    s = paper_settings(reconcile_lag_seconds=60)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    w.exchange.server_error(ROUTE, 1)
    first = await w.bot.cycle()
    assert [o.status for o in first.outcomes] == [IntentStatus.UNKNOWN]
    assert w.exchange.effects == []
    await _step(w, clock, 30)  # within the lag: still unknown, counted as in flight, nothing new sent
    assert _statuses(w.store) == [(ROUTE, "unknown")]
    assert w.exchange.effects == []
    await _step(w, clock, 31)  # past the lag: the venue never saw it
    assert (ROUTE, "failed") in _statuses(w.store)


async def test_not_found_for_a_while_after_creation_is_not_failure(sqlite_url: str) -> None:
    """A venue that shows a new transfer only after 40 s: the unknown intent waits, then is adopted."""
    s = paper_settings(reconcile_lag_seconds=120)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    w.exchange.not_found_seconds = 40
    w.exchange.timeout_after_effect(ROUTE, 1)
    await w.bot.cycle()
    for _ in range(7):  # 35 s of "not found"
        await _step(w, clock)
        assert _statuses(w.store) == [(ROUTE, "unknown")]
    await _step(w, clock, 10)
    assert _statuses(w.store) == [(ROUTE, "confirmed")]
    assert len(w.exchange.effects) == 1


async def test_an_answer_without_status_is_unknown_and_then_adopted(sqlite_url: str) -> None:
    """A malformed answer (no status field) is unknown, never failed; the lookup adopts the venue's record."""
    s = paper_settings()
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    w.exchange.malformed_answer(ROUTE, 1)
    first = await w.bot.cycle()
    assert [o.status for o in first.outcomes] == [IntentStatus.UNKNOWN]
    await _step(w, clock)
    assert _statuses(w.store) == [(ROUTE, "submitted")]
    assert len(w.exchange.effects) == 1


async def test_a_lookup_that_contradicts_the_intent_is_ambiguous_and_pages(sqlite_url: str) -> None:
    """The venue shows another amount for our client id: the intent stays unknown, the route blocked, a page."""
    s = paper_settings()
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    w.exchange.timeout_after_effect(ROUTE, 1)
    await w.bot.cycle()
    (t,) = w.exchange.transfers.values()
    t.req = type(t.req)(
        **{**{f: getattr(t.req, f) for f in t.req.__dataclass_fields__}, "amount": t.req.amount + 1}
    )
    result = await _step(w, clock)
    assert _statuses(w.store)[0] == (ROUTE, "unknown")
    assert all(o.intent_id != t.req.client_id for o in result.outcomes)
    with w.store.engine.connect() as conn:
        bodies = [
            r.body
            for r in conn.execute(select(notifications.c.body, notifications.c.severity))
            if r.severity == "critical"
        ]
    assert any("marginbot resolve" in b for b in bodies)


async def test_a_balance_read_before_the_last_transfer_gets_no_second_top_up(sqlite_url: str) -> None:
    """The top-up has settled but the venue's balance is still the old one: the bot waits instead of doubling."""
    s = paper_settings()
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    await w.bot.cycle()  # top-up of 285,714 USDT on the 30 s internal route
    clock.advance(25)
    w.exchange.stale("okx-main", 3600)  # the venue's data stops updating before the transfer lands
    result = await _step(w, clock, 6)  # settles now; the balance seen is from before
    assert _statuses(w.store) == [(ROUTE, "confirmed")]
    assert result.outcomes == ()
    assert w.bot.states["okx-main"].value == "stale"
    assert len(w.exchange.effects) == 1


async def test_halt_is_honoured_within_one_cycle_and_resume_lifts_it(sqlite_url: str) -> None:
    """A halt written by another process stops the next cycle's moves; a resume lets them go again."""
    s = paper_settings()
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    other = Store(make_engine(sqlite_url), config_hash=s.config_hash)  # the CLI, in another process
    KillSwitch(other, poll_seconds=0, desk="treasury").halt(clock.now(), by="dana", reason="drill")
    halted = await w.bot.cycle()
    assert halted.outcomes == ()
    assert set(w.bot.states.values()) == {w.bot.states["okx-main"]}
    assert w.bot.states["okx-main"].value == "halted"
    assert halted.observed["okx-main"] is not None  # still watched while halted
    KillSwitch(other, poll_seconds=0, desk="treasury").resume(clock.now(), by="alice")
    resumed = await _step(w, clock)
    assert [o.status for o in resumed.outcomes] == [IntentStatus.SUBMITTED]


class BrokenFlags(FlagRepo):
    def with_prefix(self, prefix: str) -> dict[str, str]:
        raise RuntimeError("disk I/O error")


class BrokenFlagsStore(Store):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.flags = BrokenFlags(self)


async def test_a_kill_switch_that_cannot_be_read_halts(sqlite_url: str) -> None:
    """If the kill switch read raises, the bot treats it as on: it halts itself, persists why, and pages."""
    s = paper_settings()
    clock = SimClock(START)
    store = BrokenFlagsStore(make_engine(sqlite_url), config_hash=s.config_hash)
    w = await make_bot(s, sqlite_url, clock, store=store)
    result = await w.bot.cycle()
    assert result.outcomes == ()
    assert w.bot.states["okx-main"].value == "halted"
    reason = json.loads(store.flags.get(HALT) or "{}")["reason"]
    assert reason.startswith("fail-closed: reading the kill switch raised RuntimeError")


class BrokenPolicy(dict):  # type: ignore[type-arg]
    def items(self):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("a bug in the risk checks")


async def test_risk_checks_that_raise_halt_the_bot(sqlite_url: str) -> None:
    """An exception inside decide() moves nothing and leaves the bot halted, persisted across a restart."""
    s = paper_settings()
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    w.bot.policy = dataclasses.replace(w.bot.policy, venues=BrokenPolicy(w.bot.policy.venues))
    result = await w.bot.cycle()
    assert result.outcomes == ()
    assert "fail-closed: the risk checks raised ZeroDivisionError" in (w.store.flags.get(HALT) or "")
    w2 = await make_bot(paper_settings(), sqlite_url, clock, exchange=w.exchange)
    again = await _step(w2, clock)
    assert again.outcomes == ()
    assert w2.bot.states["okx-main"].value == "halted"


class BrokenStatusIntents(IntentRepo):
    def transition(self, *a: Any, **kw: Any) -> Any:
        if (kw.get("data") or {}).get("reconciled"):
            raise RuntimeError("constraint failed")
        return super().transition(*a, **kw)


class BrokenStatusStore(Store):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.intents = BrokenStatusIntents(self)


async def test_reconciliation_that_raises_halts_the_bot(sqlite_url: str) -> None:
    """A failure while reconciling halts the bot rather than deciding on an unreconciled book."""
    s = paper_settings()
    clock = SimClock(START)
    store = BrokenStatusStore(make_engine(sqlite_url), config_hash=s.config_hash)
    w = await make_bot(s, sqlite_url, clock, store=store)
    await w.bot.cycle()
    clock.advance(31)
    w.exchange.advance()  # the transfer settles: reconciling it will try to record "confirmed"
    result = await w.bot.cycle()
    assert result.outcomes == ()
    assert "fail-closed: reconciliation raised RuntimeError" in (store.flags.get(HALT) or "")


async def test_a_liquidation_while_the_bot_was_down_is_found_at_start(sqlite_url: str) -> None:
    """Positions that changed while the bot was down: that venue is halted at start, with a critical alert."""
    s = paper_settings(okx_usdt=1_500_000)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    await w.bot.cycle()
    # the bot is down; BTC rallies 60% and the short is liquidated
    w.exchange.market.shock("BTC", 0.60)
    clock.advance(60)
    w.exchange.advance()
    assert [q.venue for q in w.exchange.liquidations] == ["okx-main"]
    w.exchange.market.shock("BTC", -0.375)
    w2 = await make_bot(s, sqlite_url, clock, exchange=w.exchange)
    result = await _step(w2, clock)
    assert w2.bot.states["okx-main"].value == "halted"
    assert w2.bot.states["bybit-main"].value != "halted"
    assert result.outcomes == ()
    flag = json.loads(w2.store.flags.get(f"{HALT}:okx-main") or "{}")
    assert "positions changed while the bot was down" in flag["reason"]
    with w2.store.engine.connect() as conn:
        assert any(
            r.severity == "critical" and "okx-main" in r.title
            for r in conn.execute(select(notifications.c.title, notifications.c.severity))
        )


async def test_an_unreachable_venue_at_start_keeps_the_gate_shut(sqlite_url: str) -> None:
    """With an unknown intent that cannot be looked up, no money moves anywhere until it is reconciled."""
    s = paper_settings(okx_usdt=1_500_000)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    w.exchange.books["bybit-main"].collateral["USDT"] -= 300_000  # bybit will need a top-up
    w.exchange.books["bybit-main"].refresh()
    w.exchange.timeout_after_effect("buffer-to-bybit", 1)
    await w.bot.cycle()
    assert _statuses(w.store) == [("buffer-to-bybit", "unknown")]

    class Down:
        async def submit(self, req: Any) -> Any:
            raise AssertionError("nothing may be sent while the gate is shut")

        async def lookup(self, req: Any) -> Any:
            raise ConnectionError("venue unreachable")

    # restart while the venue cannot be reached: the start-up lookups fail
    w2 = build(s, w.store, clock, exchange=w.exchange, send_notifications=False, figures_every_seconds=None)
    w2.bot.transfers = w2.bot.executor.transfers = w2.bot.reconciler.transfers = Down()  # type: ignore[assignment]
    await w2.bot.start()
    assert not w2.bot.gate_open
    w2.exchange.books["okx-main"].collateral["USDT"] -= 600_000  # okx now needs a top-up too
    w2.exchange.books["okx-main"].refresh()
    result = await _step(w2, clock)
    assert result.outcomes == ()
    assert any(a.kind == "startup_gate" for a in result.raised)
    # the venue answers again: the intent is found, the gate opens, the okx top-up goes
    w2.bot.transfers = w2.bot.executor.transfers = w2.bot.reconciler.transfers = PaperTransfers(w.exchange)
    opened = await _step(w2, clock)
    assert w2.bot.gate_open
    assert [o.status for o in opened.outcomes] == [IntentStatus.SUBMITTED]
