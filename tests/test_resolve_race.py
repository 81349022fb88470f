"""Property: a person's `resolve` and the bot's reconciliation race on the same unknown intent.

The person reads the intent (as `marginbot resolve` does) and writes it through `bot.service.resolutions`, each at
one of three points around the bot's reconciling cycle: before it, while the bot awaits the venue's lookup (it
has read the intent already), or after it. Whatever the interleaving and whatever the venue answers, the first
committed decision stands: the loser gets `Lost` and writes nothing, every recorded transition starts where the
previous one ended (no overwrite), the intent is decided once, and the transfer happened at most once.

On the code before the lifecycle tables this failed at once: the bot read `unknown`, alice resolved it `failed`
during the lookup, then reconciliation wrote `submitted` over her decision (audit: unknown → failed → submitted).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from bot.core.actions import IntentStatus
from bot.core.hedge import OrderStatus
from bot.core.lifecycle import RESOLUTIONS, Applied, IntentEvent, Lost, resolvable
from bot.core.world import IntentView
from bot.engine.clock import SimClock
from bot.engine.killswitch import INTENTS
from bot.service.resolutions import resolve_intent, resolve_order
from bot.store import audit as chain
from bot.store.db import make_engine
from bot.store.intents import IntentRepo
from bot.store.repo import Store
from bot.store.tables import notifications
from bot.venues.base import OrderReceipt, OrderRequest, TransferReceipt, TransferRequest, TransferState
from tests.conftest import PAPER
from tests.harness import START, make_bot, paper_settings
from tests.test_hedge_engine import BTC_OKX, _holding, _rows, _step, _venue_qty, hedging

ROUTE = "okx-funding-to-okx"
LAG = 60.0
BEFORE, DURING, AFTER = 0, 1, 2  # the person's read and write, around the bot's reconciling cycle
POINTS = [(r, w) for r in (BEFORE, DURING, AFTER) for w in (BEFORE, DURING, AFTER) if r <= w]
ANSWERS = ["pending", "settled", "failed", "absent", "ambiguous"]  # what the venue's lookup will say
DECIDED = {"confirmed", "failed"}


@dataclass
class DuringLookup:
    """The bot's transfer port, with the person acting while the bot awaits the lookup of `intent_id`."""

    inner: Any
    intent_id: str
    hook: Callable[[], None]

    async def submit(self, req: TransferRequest) -> TransferReceipt:
        return await self.inner.submit(req)

    async def lookup(self, req: TransferRequest) -> TransferReceipt | None:
        answer = await self.inner.lookup(req)
        if req.client_id == self.intent_id:
            self.hook()
        return answer


@dataclass
class Person:
    """alice at the command line, in another process: her own connection to the store."""

    store: Store
    intent_id: str
    outcome: str
    seen: IntentView | None = None
    result: Applied[IntentStatus] | Lost[IntentStatus] | None = None
    store_had: IntentStatus | None = None  # what the store held when she wrote

    def read(self) -> None:
        self.seen = self.store.intents.get(self.intent_id)

    def write(self, now: float) -> None:
        assert self.seen is not None
        if not resolvable(self.seen.status):  # the command refuses a decided intent (exit 1), nothing written
            return
        current = self.store.intents.get(self.intent_id)
        self.store_had = None if current is None else current.status
        self.result = resolve_intent(
            self.store, self.seen, self.outcome, by="alice", reason="checked", now=now, desk="t"
        )


async def _race(tmp: str, answer: str, outcome: str, read_at: int, write_at: int) -> None:
    url = f"sqlite:///{Path(tmp) / 'race.db'}"
    s = paper_settings(reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, url, clock)
    if answer == "absent":
        w.exchange.server_error(ROUTE, 1)  # refused before any effect: the venue never has it
    else:
        w.exchange.timeout_after_effect(ROUTE, 1)  # done at the venue, the answer lost
    await w.bot.cycle()
    (intent_id,) = [r.id for r in w.store.intents.rows() if r.status == "unknown"]
    if answer == "failed":
        w.exchange.transfers[intent_id].state = TransferState.FAILED
    elif answer == "ambiguous":
        t = w.exchange.transfers[intent_id]
        t.req = type(t.req)(**{**{f: getattr(t.req, f) for f in t.req.__dataclass_fields__}, "amount": 1})
    person = Person(Store(make_engine(url, create=False), config_hash=s.config_hash), intent_id, outcome)

    def act(point: int) -> None:
        if read_at == point:
            person.read()
        if write_at == point:
            person.write(clock.now())

    clock.advance({"settled": 31.0, "absent": LAG + 1}.get(answer, 5.0))
    w.exchange.advance()
    act(BEFORE)
    w.bot.reconciler.transfers = DuringLookup(w.bot.reconciler.transfers, intent_id, lambda: act(DURING))  # type: ignore[assignment]
    await w.bot.cycle()
    w.bot.reconciler.transfers = w.bot.reconciler.transfers.inner  # type: ignore[attr-defined]
    act(AFTER)
    for seconds in (5.0, LAG + 1):  # the bot goes on: nothing it does later reopens the decision
        clock.advance(seconds)
        w.exchange.advance()
        await w.bot.cycle()
    _check(w, person, intent_id)
    person.store.engine.dispose()
    w.store.engine.dispose()


def _check(w: Any, person: Person, intent_id: str) -> None:
    verified = chain.verify(w.store.engine)
    assert verified.ok, verified
    records = [
        r["data"]
        for r in chain.rows(w.store.engine)
        if r["kind"].startswith("intent.") and r["data"].get("intent") == intent_id and "status" in r["data"]
    ]
    # every transition starts where the previous one ended: nothing was overwritten
    assert [d.get("from") for d in records[1:]] == [d["status"] for d in records[:-1]], records
    final = w.store.intents.get(intent_id).status.value
    assert records[-1]["status"] == final
    # decided once, and that first decision stands
    decisions = [d for d in records if d["status"] in DECIDED]
    assert len(decisions) == 1, records
    assert decisions[0] is records[-1]
    resolutions = [d for d in records if str(d.get("event", "")).startswith("resolved_")]
    if isinstance(person.result, Applied):
        assert resolutions == [decisions[0]]
        assert final == person.outcome
    else:
        assert resolutions == []
    if isinstance(person.result, Lost):  # she was told what the store held instead, and wrote nothing
        assert person.result.actual is not None
        assert person.result.actual is person.store_had
        assert person.result.actual is not person.seen.status  # type: ignore[union-attr]
    # the bot's own view agrees with the store (a loser reloads), and the money moved at most once
    cached = {i.id: i.status.value for i in w.bot._intent_tuple}  # the bot's cache
    assert cached.get(intent_id, final) == final
    assert all(n == 1 for n in Counter(w.exchange.effects).values())


@given(
    answer=st.sampled_from(ANSWERS),
    outcome=st.sampled_from(["confirmed", "failed"]),
    points=st.sampled_from(POINTS),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_resolve_racing_reconciliation_never_overwrites_the_first_decision(
    answer: str, outcome: str, points: tuple[int, int]
) -> None:
    """Whatever the interleaving of alice's read and write around the bot's reconciliation, and whatever the
    venue answers, the first committed decision stands, the loser writes nothing, and money moved at most once."""
    with tempfile.TemporaryDirectory(prefix="marginbot-race-") as tmp:
        asyncio.run(_race(tmp, answer, outcome, *points))


@dataclass
class OrderLookupHook:
    """The hedge engine's order port, with a person acting while the bot awaits one order's lookup."""

    inner: Any
    hook: Callable[[], None]

    async def order_book(self, venue: str, symbol: str) -> Any:
        return await self.inner.order_book(venue, symbol)

    async def place(self, req: OrderRequest) -> OrderReceipt:
        return await self.inner.place(req)

    async def lookup_order(self, req: OrderRequest) -> OrderReceipt | None:
        answer = await self.inner.lookup_order(req)
        self.hook()
        return answer


async def test_an_order_resolved_during_its_lookup_is_booked_once(sqlite_url: str) -> None:
    """alice records the fill while the bot looks the order up: the bot's own adoption loses, it books her fill
    from the store instead, and the reload her command asks for does not book it a second time."""
    s = hedging("btc-options", reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    w.exchange.matching.timeouts_after_fill["okx-main"] = 1
    (lost,) = (await w.bot.cycle()).orders
    assert lost.status is OrderStatus.UNKNOWN
    person = Store(make_engine(sqlite_url, create=False), config_hash=s.config_hash)
    seen = person.orders.get(lost.order.id)
    assert seen is not None
    results: list[Any] = []

    def alice() -> None:
        if not results:
            results.append(
                resolve_order(
                    person,
                    seen,
                    OrderStatus.FILLED,
                    filled=Decimal(40),
                    avg_price=59_990.0,
                    by="alice",
                    reason="okx order history",
                    now=clock.now(),
                    desk="t",
                )
            )

    port = w.bot.hedger.desk_orders.port
    w.bot.hedger.desk_orders.port = OrderLookupHook(port, alice)
    w.bot.kill.poll_seconds = 0
    await _step(w, clock)
    w.bot.hedger.desk_orders.port = port
    await _step(w, clock)
    await _step(w, clock)
    assert results == [Applied(OrderStatus.FILLED)]
    assert [r.status for r in _rows(w.store)] == ["filled"]
    assert _holding(w, "btc-options", *BTC_OKX) == pytest.approx(-40.0)  # once, not twice
    assert _venue_qty(w, *BTC_OKX) == pytest.approx(-40.0)
    kinds = [
        (r["kind"], r["data"].get("event"))
        for r in chain.rows(w.store.engine)
        if r["kind"].startswith("order.") and r["data"].get("id") == lost.order.id
    ]
    assert kinds == [
        ("order.created", None),
        ("order.unknown", "outcome_lost"),
        ("order.filled", "resolved_filled"),
    ]
    assert chain.verify(w.store.engine).ok
    person.engine.dispose()


class ReconciledFirst(Store):
    """The store as `marginbot resolve` opens it, with the bot's reconciliation committing between the
    command's read and its write (the interleaving a person cannot time by hand)."""

    bot_store: Store

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.intents = _ReconciledFirstIntents(self)


class _ReconciledFirstIntents(IntentRepo):
    def transition(self, intent_id: str, event: IntentEvent, **kw: Any) -> Any:
        if event in RESOLUTIONS:
            ReconciledFirst.bot_store.intents.transition(
                intent_id, IntentEvent.FOUND_PENDING, expected=IntentStatus.UNKNOWN, ts=START + 10
            )
        return super().transition(intent_id, event, **kw)


async def test_the_command_line_says_a_lost_resolve_changed_meanwhile(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`resolve` that loses its race exits 1 with "is now submitted, changed meanwhile", and writes nothing."""
    s = paper_settings(reconcile_lag_seconds=LAG)
    w = await make_bot(s, sqlite_url, SimClock(START))
    w.exchange.timeout_after_effect(ROUTE, 1)
    await w.bot.cycle()
    (intent_id,) = [r.id for r in w.store.intents.rows() if r.status == "unknown"]
    ReconciledFirst.bot_store = w.store
    monkeypatch.setattr("bot.app.Store", ReconciledFirst)
    monkeypatch.setenv("MARGINBOT_APPROVER_SECRET", "paper-alice")
    args = ["resolve", intent_id, "--as", "alice", "--outcome", "failed", "--reason", "not in OKX history"]
    result = CliRunner().invoke(app, [*args, "--config", str(PAPER), "--db", sqlite_url])
    assert result.exit_code == 1, result.output
    assert f"intent {intent_id} is now submitted, changed meanwhile; nothing was written" in result.output
    assert w.store.intents.get(intent_id).status is IntentStatus.SUBMITTED  # type: ignore[union-attr]
    assert not [r for r in chain.rows(w.store.engine) if r["data"].get("resolved_by")]
    assert w.store.flags.get(INTENTS) is None  # the bot is not told to reload: nothing changed


@dataclass
class DuringSubmit:
    """The bot's transfer port, with a person acting while the venue call is out."""

    inner: Any
    hook: Callable[[str], None]

    async def submit(self, req: TransferRequest) -> TransferReceipt:
        answer = await self.inner.submit(req)
        self.hook(req.client_id)
        return answer

    async def lookup(self, req: TransferRequest) -> TransferReceipt | None:
        return await self.inner.lookup(req)


async def test_a_send_result_after_a_resolve_is_kept_aside_and_paged(sqlite_url: str) -> None:
    """alice closes the approved intent while the bot's call is out: the venue's `sent` loses, her `failed`
    stands, and the bot audits what the venue said with a critical page to compare the two."""
    s = paper_settings()
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    person = Store(make_engine(sqlite_url, create=False), config_hash=s.config_hash)
    results: list[Any] = []

    def alice(intent_id: str) -> None:
        seen = person.intents.get(intent_id)
        assert seen is not None
        results.append(resolve_intent(person, seen, "failed", by="alice", reason="x", now=START, desk="t"))

    w.bot.executor.transfers = DuringSubmit(w.bot.executor.transfers, alice)  # type: ignore[assignment]
    first = await w.bot.cycle()
    (out,) = first.outcomes
    assert results == [Applied(IntentStatus.FAILED)]
    assert out.status is None  # nothing of the bot's was recorded
    assert w.store.intents.get(out.intent_id).status is IntentStatus.FAILED  # type: ignore[union-attr]
    assert (
        w.bot._intents[out.intent_id].status is IntentStatus.FAILED
    )  # the bot's cache took the store's word
    (race,) = [r for r in chain.rows(w.store.engine) if r["kind"] == "intent.race_lost"]
    assert race["data"] == {
        "intent": out.intent_id,
        "event": "sent",
        "expected": "approved",
        "actual": "failed",
        "venue_ref": "paper-1",
    }
    with w.store.engine.connect() as conn:
        pages = [r.title for r in conn.execute(select(notifications.c.title, notifications.c.severity))]
    assert any("was recorded failed by a person while the bot sent it" in t for t in pages)
    assert chain.verify(w.store.engine).ok
    person.engine.dispose()
