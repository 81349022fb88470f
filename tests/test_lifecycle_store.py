"""Status changes in the store: one method per aggregate, compare-and-set on the status the caller read, a lost
race as a result that writes nothing; break-glass as a column, added to an older store by `upgrade`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from bot.core.actions import IntentStatus, TransferAction
from bot.core.approvals import Allowed, Vote
from bot.core.decide import Planned
from bot.core.hedge import OrderAction, OrderReason, OrderStatus
from bot.core.lifecycle import Applied, IntentEvent, Lost, OrderEvent
from bot.engine.clock import SimClock
from bot.errors import InvalidTransition, StoreMissing
from bot.store import audit as chain
from bot.store.db import make_engine, upgrade
from bot.store.repo import Store
from bot.store.rows import ApprovalSpec, LedgerUpdate, Note
from bot.store.tables import hedges, notifications
from tests.harness import START, make_bot, paper_settings
from tests.test_store import T0, _action, _create, _intent_row

NOTE = Note("warning", "resolved", "okx-main: resolved", "by alice", venue="okx-main")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(notifications)).scalar_one()
    return chain.verify(engine).records, int(n)


def _unknown(store: Store) -> str:
    a = _action()
    assert _create(store, a)
    lost = store.intents.transition(
        a.intent_id, IntentEvent.OUTCOME_LOST, expected=IntentStatus.APPROVED, ts=T0 + 1, venue="okx-main"
    )
    assert lost == Applied(IntentStatus.UNKNOWN)
    return a.intent_id


def test_a_stale_expected_status_loses_and_writes_nothing(engine: Engine) -> None:
    """The bot read `unknown`; a person resolved it `failed`; the bot's `found_pending` is Lost(failed), and the
    row, the audit trail and the outbox are as the person left them."""
    store = Store(engine)
    intent_id = _unknown(store)
    resolved = store.intents.transition(
        intent_id,
        IntentEvent.RESOLVED_FAILED,
        expected=IntentStatus.UNKNOWN,
        ts=T0 + 2,
        venue="okx-main",
        data={"resolved_by": "alice"},
        notes=[NOTE],
    )
    assert resolved == Applied(IntentStatus.FAILED)
    before = _counts(engine)
    stale = store.intents.transition(
        intent_id,
        IntentEvent.FOUND_PENDING,
        expected=IntentStatus.UNKNOWN,
        ts=T0 + 3,
        venue="okx-main",
        venue_ref="okx-1",
        notes=[NOTE],
    )
    assert stale == Lost(IntentStatus.FAILED)
    assert _counts(engine) == before
    row = _intent_row(engine, intent_id)
    assert (row.status, row.venue_ref, row.updated_at) == ("failed", None, T0 + 2)
    last = list(chain.rows(engine))[-1]
    assert last["kind"] == "intent.failed"
    assert {k: last["data"][k] for k in ("from", "status", "event")} == {
        "from": "unknown",
        "status": "failed",
        "event": "resolved_failed",
    }


def test_a_missing_intent_is_lost_with_no_status(engine: Engine) -> None:
    """A transition of an id the store does not hold writes nothing and says so."""
    store = Store(engine)
    assert store.intents.transition(
        "f" * 32, IntentEvent.SENT, expected=IntentStatus.APPROVED, ts=T0, venue="okx-main"
    ) == Lost(None)
    assert chain.verify(engine).records == 0


def test_an_event_the_table_lacks_raises_before_any_write(engine: Engine) -> None:
    """InvalidTransition (a programming error) is raised before the row is touched."""
    store = Store(engine)
    intent_id = _unknown(store)
    before = _counts(engine)
    with pytest.raises(InvalidTransition, match="unknown -> sent"):
        store.intents.transition(intent_id, IntentEvent.SENT, expected=IntentStatus.UNKNOWN, ts=T0 + 2)
    with pytest.raises(InvalidTransition):
        _create(store, _action(leg=1), status=IntentStatus.SUBMITTED)
    assert _counts(engine) == before
    assert _intent_row(engine, intent_id).status == "unknown"


def _pending(store: Store) -> str:
    a = _action()
    spec = ApprovalSpec(quorum=1, eligible=("alice",), reason="large", expires_at=T0 + 600)
    assert _create(store, a, status=IntentStatus.PENDING_APPROVAL, automatic=False, approval=spec)
    return a.intent_id


def test_an_expiry_after_a_quorum_loses_and_the_approval_stands(engine: Engine) -> None:
    """The bot's stale `expired` after alice approved is Lost(approved): request and intent stay approved."""
    store = Store(engine)
    intent_id = _pending(store)
    params = _intent_row(engine, intent_id).params_hash
    result, _ = store.approvals.vote(
        intent_id, Vote("alice", True, params, True), T0 + 5, notes_for=lambda r, q: []
    )
    assert getattr(result, "status", None) == "approved"
    expired = store.intents.transition(
        intent_id, IntentEvent.EXPIRED, expected=IntentStatus.PENDING_APPROVAL, ts=T0 + 600
    )
    assert expired == Lost(IntentStatus.APPROVED)
    assert store.approvals.rows()[0].status == "approved"
    assert store.intents.get(intent_id).status is IntentStatus.APPROVED  # type: ignore[union-attr]


def test_a_vote_after_a_withdrawal_is_refused(engine: Engine) -> None:
    """A request the bot withdrew (its intent expired with it) takes no more votes, and the refusal is audited."""
    store = Store(engine)
    intent_id = _pending(store)
    params = _intent_row(engine, intent_id).params_hash
    withdrawn = store.intents.transition(
        intent_id, IntentEvent.WITHDRAWN, expected=IntentStatus.PENDING_APPROVAL, ts=T0 + 5
    )
    assert withdrawn == Applied(IntentStatus.EXPIRED)
    assert store.approvals.rows()[0].status == "expired"
    result, _ = store.approvals.vote(
        intent_id, Vote("alice", True, params, True), T0 + 6, notes_for=lambda r, q: []
    )
    assert type(result).__name__ == "Refused"
    assert list(chain.rows(engine))[-1]["kind"] == "approval.refused"
    assert store.intents.get(intent_id).status is IntentStatus.EXPIRED  # type: ignore[union-attr]


def test_an_approved_intent_resolved_meanwhile_is_not_marked_for_sending(engine: Engine) -> None:
    """mark_sending is compare-and-set too: an intent a person closed is never sent."""
    store = Store(engine)
    intent_id = _pending(store)
    params = _intent_row(engine, intent_id).params_hash
    store.approvals.vote(intent_id, Vote("alice", True, params, True), T0 + 5, notes_for=lambda r, q: [])
    resolved = store.intents.transition(
        intent_id, IntentEvent.RESOLVED_FAILED, expected=IntentStatus.APPROVED, ts=T0 + 6
    )
    assert resolved == Applied(IntentStatus.FAILED)
    assert store.intents.mark_sending(intent_id, T0 + 7) is False
    assert _intent_row(engine, intent_id).sending_at is None


# --- orders ------------------------------------------------------------------------------------------------
def _order(store: Store) -> OrderAction:
    a = OrderAction(
        program="btc-options",
        venue="okx-main",
        symbol="BTC/USDT:USDT",
        side="sell",
        qty=Decimal(40),
        reduce_only=False,
        reason=OrderReason.REBALANCE,
        trigger="t0",
        leg=0,
        est_price=60_000.0,
        est_slippage_bps=1.0,
    )
    assert store.orders.create(a, T0)
    return a


def _ledger(name: str) -> LedgerUpdate:
    return LedgerUpdate(name, json.dumps({"h": 1}), -40.0, 0.0, 5.0, 0.0, False, "")


def test_an_order_fill_that_lost_its_race_is_never_counted(engine: Engine) -> None:
    """The bot's reconciliation finds the fill after a person resolved the order `failed`: Lost(failed), and the
    fill's effects (ledger, expected positions) are not even computed."""
    store = Store(engine)
    a = _order(store)
    assert store.orders.transition(
        a.intent_id, OrderEvent.OUTCOME_LOST, expected=OrderStatus.APPROVED, ts=T0 + 1, venue="okx-main"
    ) == Applied(OrderStatus.UNKNOWN)
    assert store.orders.transition(
        a.intent_id, OrderEvent.RESOLVED_FAILED, expected=OrderStatus.UNKNOWN, ts=T0 + 2, venue="okx-main"
    ) == Applied(OrderStatus.FAILED)
    before = _counts(engine)
    called: list[str] = []

    def effects() -> tuple[list[LedgerUpdate], str | None]:
        called.append("effects")
        return [_ledger("btc-options")], "[]"

    stale = store.orders.transition(
        a.intent_id,
        OrderEvent.FILLED,
        expected=OrderStatus.UNKNOWN,
        ts=T0 + 3,
        venue="okx-main",
        filled=Decimal(40),
        avg_price=60_000.0,
        effects=effects,
    )
    assert stale == Lost(OrderStatus.FAILED)
    assert called == []
    assert _counts(engine) == before
    row = store.orders.row(a.intent_id)
    assert row is not None
    assert (row.status, row.filled) == ("failed", None)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(hedges)).scalar_one() == 0


def test_an_order_fill_is_recorded_with_its_effects(engine: Engine) -> None:
    """An applied fill commits the ledger its effects return, with an order.<to> record (from, to, event)."""
    store = Store(engine)
    a = _order(store)
    done = store.orders.transition(
        a.intent_id,
        OrderEvent.FILLED,
        expected=OrderStatus.APPROVED,
        ts=T0 + 1,
        venue="okx-main",
        filled=Decimal(40),
        avg_price=60_000.0,
        effects=lambda: ([_ledger("btc-options")], None),
    )
    assert done == Applied(OrderStatus.FILLED)
    assert store.ledgers.states() == {"btc-options": json.dumps({"h": 1})}
    kinds = [(r["kind"], r["data"].get("from"), r["data"].get("event")) for r in chain.rows(engine)]
    assert kinds == [
        ("order.created", None, None),
        ("order.filled", "approved", "filled"),
        ("hedge.ledger", None, None),
    ]
    with pytest.raises(InvalidTransition, match="filled -> filled"):
        store.orders.transition(a.intent_id, OrderEvent.FILLED, expected=OrderStatus.FILLED, ts=T0, venue="x")


# --- one unit of work across repositories --------------------------------------------------------------------
def test_a_fill_whose_ledger_cannot_be_written_leaves_the_order_as_it_was(engine: Engine) -> None:
    """The order's result, its ledger and the venue's expected positions share one transaction: when the
    ledger write fails after the order row and its audit record, none of them is kept."""
    store = Store(engine)
    a = _order(store)
    before = _counts(engine)
    bad = LedgerUpdate("btc-options", None, 0.0, 0.0, 1.0, 0.0, False, "")  # type: ignore[arg-type]
    with pytest.raises(SAIntegrityError):  # NOT NULL
        store.orders.transition(
            a.intent_id,
            OrderEvent.FILLED,
            expected=OrderStatus.APPROVED,
            ts=T0 + 1,
            venue="okx-main",
            filled=Decimal(40),
            avg_price=60_000.0,
            effects=lambda: ([bad], "[]"),
        )
    row = store.orders.row(a.intent_id)
    assert row is not None
    assert (row.status, row.filled) == (OrderStatus.APPROVED, None)
    assert store.ledgers.states() == {}
    assert store.figures.positions() == {}
    assert _counts(engine) == before
    assert chain.verify(engine).ok


def _ledger_and_positions(store: Store, *, die: bool) -> None:
    with store.transaction() as tx:
        store.ledgers.put(tx, _ledger("btc-options"), T0)
        store.figures.expect_positions(tx, "okx-main", "[]", T0)
        tx.audit(T0, "test.both", {}, None)
        if die:
            raise RuntimeError("the process dies before the commit")


def test_repositories_share_one_transaction(engine: Engine) -> None:
    """Writes of two repositories inside `store.transaction()` commit together, or roll back together."""
    store = Store(engine)
    with pytest.raises(RuntimeError):
        _ledger_and_positions(store, die=True)
    assert (store.ledgers.states(), store.figures.positions(), store.audit.count()) == ({}, {}, 0)
    _ledger_and_positions(store, die=False)
    assert (list(store.ledgers.states()), store.figures.positions(), store.audit.count()) == (
        ["btc-options"],
        {"okx-main": "[]"},
        1,
    )


def test_reads_return_typed_rows(engine: Engine) -> None:
    """Rows come back typed: statuses as their enums, money as Decimal, an approval's lists as tuples."""
    store = Store(engine)
    spec = ApprovalSpec(quorum=2, eligible=("alice", "bob"), reason="large", expires_at=T0 + 60)
    a = _action()
    assert _create(store, a, status=IntentStatus.PENDING_APPROVAL, automatic=False, approval=spec)
    (intent,) = store.intents.rows()
    assert (intent.status, intent.kind, intent.amount) == (IntentStatus.PENDING_APPROVAL, a.kind, a.amount)
    assert isinstance(intent.amount, Decimal)
    (request,) = store.approvals.rows()
    assert (request.eligible, request.approvers, request.status) == (("alice", "bob"), (), "pending")
    assert store.approvals.get(a.intent_id) == request
    o = _order(store)
    (order,) = store.orders.rows()
    assert (order.id, order.status, order.reason, order.qty) == (
        o.intent_id,
        OrderStatus.APPROVED,
        OrderReason.REBALANCE,
        Decimal(40),
    )
    assert store.ids_starting(a.intent_id[:6]) == {
        "approval": [a.intent_id],
        "intent": [a.intent_id],
        "order": [],
    }


# --- break-glass as data -------------------------------------------------------------------------------------
def test_break_glass_is_a_column_not_the_verdict_text(engine: Engine) -> None:
    """The flag is what was stored, whatever the verdict says."""
    store = Store(engine)
    assert _create(store, _action(leg=0), verdict="break-glass: at the de-risk level", break_glass=True)
    assert _create(store, _action(leg=1), verdict="break-glass in the text only")
    assert _create(store, _action(leg=2), verdict="within auto limit", break_glass=True)
    flags = {i.id: i.break_glass for i in store.intents.load(0)}
    assert sorted(flags.values()) == [False, True, True]
    assert flags[_action(leg=1).intent_id] is False


def _old_store(url: str) -> None:
    """A store made before the break_glass column: the column dropped, two rows written by the older release."""
    eng = make_engine(url)
    store = Store(eng)
    assert _create(store, _action(leg=0), verdict="break-glass: at the de-risk level")
    assert _create(store, _action(leg=1), verdict="within auto limit")
    with eng.begin() as conn:
        conn.execute(text("ALTER TABLE intents DROP COLUMN break_glass"))
    eng.dispose()


def test_an_older_store_gets_the_column_once_with_its_old_flags(db_url: str) -> None:
    """Opening an older store to write adds the column, sets it from the old verdicts once; again is a no-op."""
    _old_store(db_url)
    eng = make_engine(db_url)  # the bot's open (create): upgrades
    try:
        flags = {i.id: i.break_glass for i in Store(eng).intents.load(0)}
        assert flags == {_action(leg=0).intent_id: True, _action(leg=1).intent_id: False}
        assert upgrade(eng) == []  # idempotent
        assert chain.verify(eng).ok
    finally:
        eng.dispose()


def test_a_command_that_writes_upgrades_an_older_store(db_url: str) -> None:
    """`resolve` and the other writing commands open with create=False: they upgrade too."""
    _old_store(db_url)
    eng = make_engine(db_url, create=False)
    try:
        flags = {i.id: i.break_glass for i in Store(eng).intents.load(0)}
        assert flags == {_action(leg=0).intent_id: True, _action(leg=1).intent_id: False}
    finally:
        eng.dispose()


def test_a_read_only_open_of_an_older_store_says_to_upgrade(sqlite_url: str) -> None:
    """`status` never writes: on an older store it exits 2 naming the missing column and what upgrades it."""
    _old_store(sqlite_url)
    with pytest.raises(StoreMissing, match=r"older marginbot \(no intents.break_glass column\)"):
        make_engine(sqlite_url, create=False, readonly=True)
    raw = create_engine(sqlite_url)
    with raw.connect() as conn:
        cols = [r[1] for r in conn.execute(text("PRAGMA table_info(intents)"))]
    raw.dispose()
    assert "break_glass" not in cols  # nothing was written


async def test_the_executor_stores_break_glass_from_the_verdict_flag(sqlite_url: str) -> None:
    """A move the rules allow as break-glass is stored with the flag, whatever its texts say; the cache and a
    reload from the store agree."""
    w = await make_bot(paper_settings(), sqlite_url, SimClock(START))
    r = w.bot.routes["okx-funding-to-okx"]
    action = TransferAction(
        kind=r.kind,
        venue=r.venue,
        route=r.name,
        source=r.source,
        destination=r.destination,
        asset=r.asset,
        amount=Decimal(1000),
        usd=Decimal(1000),
        address=r.address,
        trigger="a plain trigger",
        leg=0,
        reason="a plain reason",
        utilization_before=0.9,
        utilization_after=0.89,
    )
    out = await w.bot.executor.execute(Planned(action, Allowed("no magic words", break_glass=True)), START)
    assert out.status is IntentStatus.SUBMITTED
    assert out.view is not None
    assert out.view.break_glass is True
    assert w.store.intents.get(action.intent_id).break_glass is True  # type: ignore[union-attr]
