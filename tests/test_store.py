"""The store: intents with their audit records and notifications in one transaction, exact money, the outbox."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from bot.core.actions import IntentStatus, TransferAction, TransferKind
from bot.core.lifecycle import Applied, IntentEvent
from bot.errors import IntegrityError
from bot.store import audit as chain
from bot.store.db import make_engine
from bot.store.repo import Store
from bot.store.rows import ApprovalSpec, Note
from bot.store.tables import approvals, audit, audit_head, intents, notifications
from tests.conftest import wait_for_blocked_writers

T0 = 1_772_323_200.0  # 2026-03-01T00:00:00Z


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _action(**changes: Any) -> TransferAction:
    """A hand-written top-up of 125,000 USDT from the buffer account to okx-main."""
    base = TransferAction(
        kind=TransferKind.TOPUP,
        venue="okx-main",
        route="buffer-to-okx",
        source="treasury-buffer",
        destination="okx-main",
        asset="USDT",
        amount=Decimal("125000"),
        usd=Decimal("125000.00"),
        address="TXYZtreasuryWhitelisted01",
        trigger="okx-main u=0.8312 @1772323200",
        leg=0,
        reason="buffer 16.9% < min 20%: top up to target 30%",
        utilization_before=0.8312,
        utilization_after=0.70,
    )
    return dataclasses.replace(base, **changes)


def _create(store: Store, action: TransferAction, **kw: Any) -> bool:
    args: dict[str, Any] = {
        "fee": Decimal("1"),
        "status": IntentStatus.APPROVED,
        "automatic": True,
        "verdict": "within auto limit",
        "ts": T0,
    }
    args.update(kw)
    return store.intents.create(action, **args)


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _intent_row(engine: Engine, intent_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(intents).where(intents.c.id == intent_id)).first()


def _step_head_back(engine: Engine) -> None:
    """Corrupt the chain head so that the next append collides with the newest record's primary key."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_head SET seq = seq - 1 WHERE id = 1"))


NOTES = [
    Note("info", "transfer", "okx-main: top-up requested", "125000 USDT", venue="okx-main", asset="USDT"),
    Note("warning", "utilization", "okx-main: u 83%", "above alert 80%", venue="okx-main"),
    Note("critical", "derisk", "okx-main: m 76%", "de-risk level", venue="okx-main"),
]


# --- create_intent ---------------------------------------------------------------------------------------
def test_create_intent_commits_intent_audit_and_notes(engine: Engine) -> None:
    """create_intent writes the intent row, one intent.created audit record and its notifications together."""
    store = Store(engine, config_hash="cfg1")
    a = _action()
    assert _create(store, a, notes=NOTES[:2]) is True
    row = _intent_row(engine, a.intent_id)
    assert row is not None
    assert (row.status, row.params_hash, row.amount, row.fee) == (
        "approved",
        a.params_hash,
        Decimal("125000"),
        Decimal("1"),
    )
    assert row.config_hash == "cfg1"
    recs = list(chain.rows(engine))
    assert [r["kind"] for r in recs] == ["intent.created"]
    assert recs[0]["venue"] == "okx-main"
    assert recs[0]["data"]["intent"] == a.intent_id
    assert recs[0]["data"]["amount"] == "125000"
    assert recs[0]["data"]["params_hash"] == a.params_hash
    assert _count(engine, notifications) == 2
    assert chain.verify(engine).ok


def test_create_intent_with_approval_writes_request(engine: Engine) -> None:
    """An intent that needs approval also writes its pending approval and an approval.requested record."""
    store = Store(engine)
    a = _action(amount=Decimal("900000"), usd=Decimal("900000"))
    spec = ApprovalSpec(
        quorum=2, eligible=("alice", "bob", "carol"), reason="above auto limit", expires_at=T0 + 1800
    )
    assert _create(store, a, status=IntentStatus.PENDING_APPROVAL, automatic=False, approval=spec)
    (ap,) = store.approvals.rows()
    assert (ap.intent_id, ap.status, ap.quorum, ap.params_hash) == (
        a.intent_id,
        "pending",
        2,
        a.params_hash,
    )
    assert store.approvals.expiries() == {a.intent_id: T0 + 1800}
    assert [r["kind"] for r in chain.rows(engine)] == ["intent.created", "approval.requested"]


def test_create_intent_again_is_a_no_op(engine: Engine) -> None:
    """Creating the same action a second time returns False and writes no row, record or notification."""
    store = Store(engine)
    a = _action()
    assert _create(store, a, notes=NOTES) is True
    before = (_count(engine, intents), _count(engine, audit), _count(engine, notifications))
    assert _create(store, a, ts=T0 + 5, notes=NOTES) is False
    assert (_count(engine, intents), _count(engine, audit), _count(engine, notifications)) == before
    assert _intent_row(engine, a.intent_id).created_at == T0


def test_same_intent_id_with_other_amount_is_rejected(engine: Engine) -> None:
    """The same intent id with a different amount raises IntegrityError and leaves the first intent untouched."""
    store = Store(engine)
    first = _action()
    other = _action(amount=Decimal("125001"), usd=Decimal("125001"))
    assert other.intent_id == first.intent_id
    assert other.params_hash != first.params_hash
    assert _create(store, first)
    audit_before = _count(engine, audit)
    with pytest.raises(IntegrityError):
        _create(store, other, ts=T0 + 1, notes=NOTES)
    assert _intent_row(engine, first.intent_id).amount == Decimal("125000")
    assert _count(engine, audit) == audit_before
    assert _count(engine, notifications) == 0


def test_same_intent_id_with_other_address_is_rejected(engine: Engine) -> None:
    """The same intent id with a different withdrawal address raises IntegrityError."""
    store = Store(engine)
    assert _create(store, _action())
    with pytest.raises(IntegrityError):
        _create(store, _action(address="TAttackerAddress999"))


def test_other_leg_is_a_separate_intent(engine: Engine) -> None:
    """A second leg of the same trigger has its own id and is recorded alongside the first."""
    store = Store(engine)
    assert _create(store, _action(leg=0))
    assert _create(store, _action(leg=1, amount=Decimal("50000"), usd=Decimal("50000")))
    assert _count(engine, intents) == 2
    assert chain.verify(engine).records == 2


# --- atomicity -----------------------------------------------------------------------------------------
def test_audit_failure_rolls_back_the_intent(engine: Engine) -> None:
    """When the audit append fails inside create_intent, neither the intent nor its notifications are written."""
    store = Store(engine)
    store.audit.record(T0, [("bot.started", None, {"pid": 1}), ("venue.observed", "okx-main", {"u": 0.83})])
    _step_head_back(engine)
    a = _action()
    with pytest.raises(IntegrityError):
        _create(store, a, notes=NOTES)
    assert _intent_row(engine, a.intent_id) is None
    assert _count(engine, intents) == 0
    assert _count(engine, notifications) == 0
    assert _count(engine, audit) == 2


def test_audit_failure_rolls_back_the_approval(engine: Engine) -> None:
    """When the approval's audit append fails, the intent, the approval and the first record all roll back."""
    store = Store(engine)
    store.audit.record(T0, [("bot.started", None, {"pid": 1})])
    a = _action()
    # make record 3 collide: head says 1 → intent.created is 2, approval.requested would be 3
    store.audit.record(T0, [("filler", None, {}), ("filler", None, {})])
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_head SET seq = 1 WHERE id = 1"))
        conn.execute(text("DELETE FROM audit WHERE seq = 2"))
    spec = ApprovalSpec(quorum=2, eligible=("alice", "bob"), reason="large", expires_at=T0 + 60)
    with pytest.raises(IntegrityError):
        _create(store, a, status=IntentStatus.PENDING_APPROVAL, automatic=False, approval=spec)
    assert _intent_row(engine, a.intent_id) is None
    assert _count(engine, approvals) == 0
    with engine.connect() as conn:
        assert [r.seq for r in conn.execute(select(audit.c.seq).order_by(audit.c.seq))] == [1, 3]


def test_audit_failure_rolls_back_a_status_change(engine: Engine) -> None:
    """When the audit append fails inside transition_intent, the intent keeps its previous status."""
    store = Store(engine)
    a = _action()
    assert _create(store, a)
    _step_head_back(engine)
    with pytest.raises((IntegrityError, SAIntegrityError)):
        store.intents.transition(
            a.intent_id,
            IntentEvent.SENT,
            expected=IntentStatus.APPROVED,
            ts=T0 + 1,
            venue="okx-main",
            venue_ref="tx1",
        )
    row = _intent_row(engine, a.intent_id)
    assert (row.status, row.venue_ref, row.submitted_at) == ("approved", None, None)


def test_audit_failure_rolls_back_recorded_notes(engine: Engine) -> None:
    """When an audit append fails inside record, the notifications of that write are not queued."""
    store = Store(engine)
    store.audit.record(T0, [("bot.started", None, {"pid": 1})])
    _step_head_back(engine)
    with pytest.raises((IntegrityError, SAIntegrityError)):
        store.audit.record(T0 + 1, [("alert", "okx-main", {"u": 0.83})], NOTES)
    assert _count(engine, notifications) == 0


def test_transition_intent_records_the_transition(engine: Engine) -> None:
    """transition_intent updates the row and appends one intent.<status> record (from, to, event) carrying the
    venue reference."""
    store = Store(engine)
    a = _action()
    assert _create(store, a)
    sent = store.intents.transition(
        a.intent_id,
        IntentEvent.SENT,
        expected=IntentStatus.APPROVED,
        ts=T0 + 1,
        venue="okx-main",
        venue_ref="okx-77",
    )
    settled = store.intents.transition(
        a.intent_id,
        IntentEvent.VENUE_CONFIRMED,
        expected=IntentStatus.SUBMITTED,
        ts=T0 + 601,
        venue="okx-main",
    )
    assert (sent, settled) == (Applied(IntentStatus.SUBMITTED), Applied(IntentStatus.CONFIRMED))
    row = _intent_row(engine, a.intent_id)
    assert (row.status, row.venue_ref, row.submitted_at, row.settled_at) == (
        "confirmed",
        "okx-77",
        T0 + 1,
        T0 + 601,
    )
    recs = list(chain.rows(engine))
    assert [r["kind"] for r in recs] == ["intent.created", "intent.submitted", "intent.confirmed"]
    assert recs[1]["data"] == {
        "intent": a.intent_id,
        "status": "submitted",
        "from": "approved",
        "event": "sent",
        "venue_ref": "okx-77",
    }
    assert chain.verify(engine).ok


# --- money -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "amount",
    [
        Decimal("1234567.123456789012345678"),
        Decimal("0.000000000000000001"),
        Decimal("12345678901.123456789012345678"),  # a meme-coin balance at 18 decimals: 29 digits
        Decimal("99999999999999999999.999999999999999999"),  # the largest NUMERIC(38, 18)
        Decimal("0.1"),
        Decimal("125000.50"),
    ],
    ids=str,
)
def test_money_round_trips_exactly(engine: Engine, amount: Decimal) -> None:
    """Amount, fee and usd come back from the intents table equal to the Decimal written, on both databases."""
    store = Store(engine)
    a = _action(amount=amount, usd=amount)
    assert _create(store, a, fee=amount)
    row = _intent_row(engine, a.intent_id)
    assert isinstance(row.amount, Decimal)
    assert (row.amount, row.fee, row.usd) == (amount, amount, amount)
    (view,) = store.intents.load(since=T0 - 1)
    assert view.amount == amount


@pytest.mark.parametrize("amount", [Decimal("250000"), Decimal("1000000"), Decimal("10")], ids=str)
def test_whole_amount_reads_back_in_plain_notation(engine: Engine, amount: Decimal) -> None:
    """A whole amount reads back with the same plain decimal text it was written with, never as 2.5E+5."""
    store = Store(engine)
    a = _action(amount=amount, usd=amount)
    assert _create(store, a)
    row = _intent_row(engine, a.intent_id)
    assert str(row.amount) == str(amount)


# --- concurrency -----------------------------------------------------------------------------------------
def test_concurrent_duplicate_create_gives_one_intent(engine: Engine) -> None:
    """Two writers creating the same intent at once: one gets True, the other False, and nothing raises."""
    store = Store(engine)
    store.audit.record(T0, [("bot.started", None, {"pid": 1})])
    a = _action()
    results: list[bool] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            results.append(_create(store, a))
        except BaseException as e:
            errors.append(e)

    with engine.connect() as holder:
        trans = holder.begin()  # SQLite: BEGIN IMMEDIATE holds the write lock
        holder.execute(select(audit_head.c.seq).where(audit_head.c.id == 1).with_for_update())
        threads = [threading.Thread(target=writer) for _ in range(2)]
        for t in threads:
            t.start()
        wait_for_blocked_writers(engine, 2)
        trans.commit()
    for t in threads:
        t.join(timeout=60)
    assert not errors, f"a duplicate create raised: {errors[0]!r}" if errors else ""
    assert sorted(results) == [False, True]
    assert _count(engine, intents) == 1
    res = chain.verify(engine)
    assert res.ok, res.problem
    assert res.records == 2


# --- notification outbox -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("min_severity", "kept"),
    [
        ("info", ["info", "warning", "critical"]),
        ("warning", ["warning", "critical"]),
        ("critical", ["critical"]),
    ],
)
def test_outbox_keeps_notes_at_or_above_min_severity(
    engine: Engine, min_severity: str, kept: list[str]
) -> None:
    """record queues only the notifications whose severity is at or above the store's min_severity."""
    store = Store(engine, min_severity=min_severity)
    store.audit.record(T0, [("alert", "okx-main", {"u": 0.83})], NOTES)
    rows = store.outbox.due(T0)
    assert [r.severity for r in rows] == kept
    assert all(r.status == "pending" and r.attempts == 0 for r in rows)
    assert store.audit.count() == 1


def test_create_intent_filters_notes_by_min_severity(engine: Engine) -> None:
    """create_intent queues only its notifications at or above min_severity, and the intent is still written."""
    store = Store(engine, min_severity="warning")
    a = _action()
    assert _create(store, a, notes=NOTES)
    assert [r.severity for r in store.outbox.due(T0)] == ["warning", "critical"]
    assert _intent_row(engine, a.intent_id) is not None


def test_notes_below_min_severity_write_no_outbox_rows(engine: Engine) -> None:
    """A write whose notes are all below min_severity leaves the outbox empty but still records its audit event."""
    store = Store(engine, min_severity="critical")
    store.audit.record(T0, [("alert", "okx-main", {"u": 0.81})], NOTES[:2])
    assert store.outbox.count() == 0
    assert store.audit.count() == 1
