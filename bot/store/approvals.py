"""Approval requests: recorded with their intent, decided by votes under row locks.

A request is written in its intent's transaction (`IntentRepo.create`) and closed by its intent's transition
(expired, withdrawn). A vote (`vote`) moves the request, its intent and an audit record together; every attempt,
counted or refused, is an audit record with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update

from bot.core.actions import IntentStatus, TransferAction
from bot.core.approvals import Counted, Refused, Request, Vote, cast
from bot.core.lifecycle import IntentEvent, Lost, intent_after
from bot.errors import IntegrityError
from bot.store import audit as chain
from bot.store.guards import integrity
from bot.store.rows import ApprovalRow, ApprovalSpec, Note
from bot.store.tables import approvals, intents

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from bot.store.repo import Store, Tx

_CLOSE = update(approvals).where(
    approvals.c.intent_id == bindparam("a_intent"), approvals.c.status == "pending"
)

NotesFor = Callable[[Counted | Refused, Request], list[Note]]


class ApprovalRepo:
    """`store.approvals`: the `approvals` table; a decided vote moves its intent through `store.intents`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def request(self, tx: Tx, action: TransferAction, spec: ApprovalSpec, ts: float) -> None:
        """Record the approval request for `action`'s intent inside the intent's transaction."""
        intent_id = action.intent_id
        tx.conn.execute(
            insert(approvals).values(
                id=intent_id,
                intent_id=intent_id,
                params_hash=action.params_hash,
                status="pending",
                quorum=spec.quorum,
                eligible=json.dumps(list(spec.eligible)),
                approvers="[]",
                reason=spec.reason,
                created_at=ts,
                expires_at=spec.expires_at,
            )
        )
        data = {
            "request": intent_id,
            "quorum": spec.quorum,
            "eligible": list(spec.eligible),
            "expires_at": chain.iso(spec.expires_at),
            "reason": spec.reason,
        }
        tx.audit(ts, "approval.requested", data, action.venue)

    def close(self, tx: Tx, intent_id: str, status: str, ts: float) -> None:
        """Inside the intent's transition: its pending request, if any, takes `status`."""
        tx.conn.execute(_CLOSE, {"a_intent": intent_id, "status": status, "decided_at": ts})

    def vote(
        self, request_id: str, vote: Vote, ts: float, *, notes_for: NotesFor
    ) -> tuple[Counted | Refused, Request | None]:
        """Apply one approval vote under row locks: the request, its intent and an audit record move together.

        Every attempt, counted or refused, is an audit record with its reason. The intent is locked before its
        request, in the order `IntentRepo.transition` takes them (an expiry updates the intent, then the
        request).
        """
        with integrity(f"vote on {request_id}"), self._store.transaction() as tx:
            locked = _lock(tx.conn, request_id)
            if locked is None:
                missing = Refused(f"no approval request {request_id!r}")
                data = {"request": request_id, "by": vote.approver, "reason": missing.reason}
                tx.audit(ts, "approval.refused", data, None)
                return missing, None
            row, intent = locked
            req = Request(
                id=row.id,
                params_hash=row.params_hash,
                status=row.status,
                quorum=row.quorum,
                eligible=tuple(json.loads(row.eligible)),
                approvers=tuple(json.loads(row.approvers)),
                expires_at=row.expires_at,
            )
            result = cast(req, vote, ts)
            if isinstance(result, Counted) and intent.status != IntentStatus.PENDING_APPROVAL.value:
                # the request is open but its intent has moved on: it binds nothing any more
                result = Refused(f"the intent is {intent.status}: this request binds nothing")
            self._count(tx, row, vote, result, venue=intent.venue, ts=ts)
            tx.notes(ts, notes_for(result, req))
            return result, req

    def _count(
        self, tx: Tx, row: Any, vote: Vote, result: Counted | Refused, *, venue: str, ts: float
    ) -> None:
        """Audit the attempt; a counted vote updates the request `row`, and a decided one its intent."""
        data: dict[str, Any] = {
            "request": row.id,
            "by": vote.approver,
            "decision": "approve" if vote.approve else "reject",
        }
        if isinstance(result, Refused):
            tx.audit(ts, "approval.refused", {**data, "reason": result.reason}, venue)
            return
        tx.conn.execute(
            update(approvals)
            .where(approvals.c.id == row.id)
            .values(
                approvers=json.dumps(list(result.approvers)),
                status=result.status,
                decided_at=ts if result.status != "pending" else None,
            )
        )
        vote_data = {
            **data,
            "reason": vote.reason,
            "status": result.status,
            "approvers": list(result.approvers),
        }
        tx.audit(ts, "approval.vote", vote_data, venue)
        if result.status in ("approved", "rejected"):
            event = IntentEvent(result.status)
            self._decide_intent(tx, row.intent_id, event, result.approvers, venue=venue, ts=ts)

    def _decide_intent(
        self, tx: Tx, intent_id: str, event: IntentEvent, approvers: tuple[str, ...], *, venue: str, ts: float
    ) -> None:
        expected = IntentStatus.PENDING_APPROVAL
        new = intent_after(expected, event)
        done = self._store.intents.compare_and_set(
            tx, intent_id, expected, {"status": new.value, "updated_at": ts}
        )
        if isinstance(done, Lost):  # both rows are locked: this cannot happen
            raise IntegrityError(f"intent {intent_id} changed under its row lock")
        data = {
            "intent": intent_id,
            "status": new.value,
            "from": expected.value,
            "event": event.value,
            "approvers": list(approvers),
        }
        tx.audit(ts, f"intent.{new.value}", data, venue)

    # --- reads ---------------------------------------------------------------------------------------------
    def expiries(self) -> dict[str, float]:
        """When each pending request expires, by intent id."""
        with self._store.reading() as conn:
            q = select(approvals.c.intent_id, approvals.c.expires_at).where(approvals.c.status == "pending")
            return {r.intent_id: r.expires_at for r in conn.execute(q)}

    def get(self, request_id: str) -> ApprovalRow | None:
        with self._store.reading() as conn:
            r = conn.execute(select(approvals).where(approvals.c.id == request_id)).first()
            return None if r is None else ApprovalRow.of(r)

    def rows(self) -> list[ApprovalRow]:
        """Every request, oldest first."""
        with self._store.reading() as conn:
            q = select(approvals).order_by(approvals.c.created_at, approvals.c.id)
            return [ApprovalRow.of(r) for r in conn.execute(q)]

    def ids_starting(self, prefix: str, limit: int = 5) -> list[str]:
        """A few request ids that start with `prefix`, in order."""
        q = select(approvals.c.id).where(approvals.c.id.startswith(prefix, autoescape=True))
        with self._store.reading() as conn:
            return [str(r[0]) for r in conn.execute(q.order_by(approvals.c.id).limit(limit))]


def _lock(conn: Connection, request_id: str) -> tuple[Any, Any] | None:
    """The request and its intent (venue, status) under row locks, the intent first; None when either is
    missing."""
    owner = conn.execute(select(approvals.c.intent_id).where(approvals.c.id == request_id)).first()
    intent = None
    if owner is not None:
        intent = conn.execute(
            select(intents.c.venue, intents.c.status).where(intents.c.id == owner.intent_id).with_for_update()
        ).one()
    row = conn.execute(select(approvals).where(approvals.c.id == request_id).with_for_update()).first()
    if row is None or intent is None:
        return None
    return row, intent
