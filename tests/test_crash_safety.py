"""Crash at every step of a money move: after a restart from the database, at most one transfer happened."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from bot.core.actions import IntentStatus
from bot.core.lifecycle import IntentEvent, intent_after
from bot.engine.clock import SimClock
from bot.store import audit as chain
from bot.store.db import make_engine
from bot.store.intents import IntentRepo
from bot.store.repo import Store
from bot.venues.base import TransferReceipt, TransferRequest
from bot.venues.paper import PaperExchange, PaperTransfers
from tests.harness import START, SimulatedCrash, make_bot, paper_settings


class CrashingStore(Store):
    """A store whose process dies at one chosen point around a write."""

    def __init__(self, engine: Any, point: str, **kw: Any) -> None:
        super().__init__(engine, **kw)
        self.point = point
        self.intents = CrashingIntents(self, point)


class CrashingIntents(IntentRepo):
    """The intents of a `CrashingStore`."""

    def __init__(self, store: Store, point: str) -> None:
        super().__init__(store)
        self.point = point

    def create(self, action: Any, **kw: Any) -> bool:
        created = super().create(action, **kw)
        if self.point == "after intent insert":
            raise SimulatedCrash(self.point)
        return created

    def transition(self, intent_id: str, event: IntentEvent, **kw: Any) -> Any:
        status = intent_after(kw["expected"], event)
        if self.point == "after response, before the result commit" and status is IntentStatus.SUBMITTED:
            raise SimulatedCrash(self.point)
        done = super().transition(intent_id, event, **kw)
        if (self.point == "after the result commit" and status is IntentStatus.SUBMITTED) or (
            self.point == "after the confirmation commit" and status is IntentStatus.CONFIRMED
        ):
            raise SimulatedCrash(self.point)
        return done


@dataclass
class CrashingTransfers:
    """The process dies while the venue call is out: the venue did the transfer, nobody heard the answer."""

    inner: PaperTransfers

    async def submit(self, req: TransferRequest) -> TransferReceipt:
        await self.inner.submit(req)
        raise SimulatedCrash("after send")

    async def lookup(self, req: TransferRequest) -> TransferReceipt | None:
        return await self.inner.lookup(req)


POINTS = [
    "after intent insert",
    "after send",
    "after response, before the result commit",
    "after the result commit",
    "after the confirmation commit",
    "after notify",
]


@pytest.mark.parametrize("point", POINTS)
async def test_a_crash_at_any_step_moves_the_money_at_most_once(point: str, sqlite_url: str) -> None:
    """Kill the bot at `point`, restart it from the database: one transfer in all, and the books balance."""
    s = paper_settings()
    clock = SimClock(START)
    engine = make_engine(sqlite_url)
    store = CrashingStore(engine, point, config_hash=s.config_hash)
    w = await make_bot(s, sqlite_url, clock, store=store)
    exchange: PaperExchange = w.exchange
    before = exchange.total_collateral("USDT")
    if point == "after send":
        crashing = CrashingTransfers(PaperTransfers(exchange))
        w.bot.transfers = w.bot.executor.transfers = crashing  # type: ignore[assignment]
    crashed = False
    for _ in range(3):  # the crash comes in the first cycles (a confirmation needs the transfer to settle)
        try:
            await w.bot.cycle()
        except SimulatedCrash:
            crashed = True
            break
        clock.advance(31)
        exchange.advance()
    if point == "after notify":
        crashed = True  # the cycle and its notifications went through; the process dies now
    assert crashed, f"no crash happened at {point!r}"

    # a new process: a plain store on the same database, the same exchange (it never stopped); 20 minutes
    # cover the consistency lag of an intent the venue never saw and a 10-minute withdrawal on another route
    for _ in range(40):
        clock.advance(30)
        exchange.advance()
        w2 = await make_bot(s, sqlite_url, clock, exchange=exchange)
        await w2.bot.cycle()
    effects = Counter(exchange.effects)
    assert len(effects) == 1, f"{point}: transfers made {list(effects.elements())}"
    assert max(effects.values()) == 1
    rows = w2.store.intents.rows()
    assert [r.status for r in rows if r.status == "confirmed"] == ["confirmed"]
    assert all(r.status in ("confirmed", "failed") for r in rows)
    assert exchange.total_collateral("USDT") + exchange.fees_paid.get("USDT", 0) == before
    assert chain.verify(w2.store.engine).ok
    assert w2.bot.gate_open


class RecordingSender:
    def __init__(self) -> None:
        self.titles: list[str] = []

    async def send(self, title: str, body: str, severity: str) -> None:
        self.titles.append(title)


async def test_notifications_written_before_a_crash_are_delivered_by_the_next_process(
    sqlite_url: str,
) -> None:
    """The outbox lives in the database: what the dead process queued, the new one sends."""
    from bot.notify import OutboxWorker

    s = paper_settings()
    clock = SimClock(START)
    store = CrashingStore(make_engine(sqlite_url), "after the result commit", config_hash=s.config_hash)
    w = await make_bot(s, sqlite_url, clock, store=store)
    with pytest.raises(SimulatedCrash):
        await w.bot.cycle()
    fresh = Store(make_engine(sqlite_url), config_hash=s.config_hash)
    sender = RecordingSender()
    sent = await OutboxWorker(fresh, sender).flush(clock.now())
    assert sent >= 1
    assert any("submitted" in t for t in sender.titles)
    assert await OutboxWorker(fresh, sender).flush(clock.now() + 1) == 0  # each delivered once


async def test_a_crash_after_the_approval_is_consumed_sends_it_once(sqlite_url: str) -> None:
    """Quorum reached, then the bot dies before sending: the next process sends it, once."""
    import time

    from bot.service.approvals import cast_vote, oldest_pending

    s = paper_settings(okx_usdt=500_000)
    clock = SimClock(time.time())
    w = await make_bot(s, sqlite_url, clock)
    await w.bot.cycle()
    rid = oldest_pending(w.store)
    assert rid is not None
    for who in ("alice", "bob"):
        cast_vote(w.store, rid, approver=who, approve=True, authenticated=True, now=clock.now(), desk="t")
    # the process dies here, before its next cycle; a new one starts
    for _ in range(3):
        clock.advance(40)
        w.exchange.advance()
        w2 = await make_bot(s, sqlite_url, clock, exchange=w.exchange)
        await w2.bot.cycle()
    assert Counter(w.exchange.effects) == Counter({rid: 1})
