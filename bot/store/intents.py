"""Transfer intents: written before the venue is called, changed only through their lifecycle table.

`create` commits the intent, its audit record, its approval request (if people must decide) and its
notifications together before the venue is called; `transition` commits each result the same way. The new
status comes from the lifecycle table (`bot.core.lifecycle`) and is written with compare-and-set on the status
the caller read: a row that no longer has it is a lost race, returned as `Lost(actual)`, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from bot.core.actions import OPEN_STATUSES, IntentStatus, TransferAction, TransferKind
from bot.core.lifecycle import Applied, IntentEvent, Lost, intent_after
from bot.core.world import IntentView
from bot.errors import InvalidTransition
from bot.store.guards import already_recorded, finite, integrity
from bot.store.rows import ApprovalSpec, IntentRow, Note
from bot.store.tables import intents

if TYPE_CHECKING:
    from bot.store.repo import Store, Tx

# statements built once: parameters are passed at execution, so each compiles once and is cached
_INSERT_INTENT = insert(intents)
# compare-and-set: the row changes only if it still has the status the caller read
_CAS_INTENT = update(intents).where(
    intents.c.id == bindparam("i_id"), intents.c.status == bindparam("i_expected")
)
_INTENT_STATUS = select(intents.c.status).where(intents.c.id == bindparam("i_id"))
# what an intent's transition does to its approval request, if it has one
_APPROVAL_AFTER = {
    IntentEvent.APPROVED: "approved",
    IntentEvent.REJECTED: "rejected",
    IntentEvent.EXPIRED: "expired",
    IntentEvent.WITHDRAWN: "expired",
}
# the statuses an intent is recorded with: what the table allows from `proposed`
_CREATED = {
    IntentStatus.PENDING_APPROVAL: IntentEvent.REQUESTED_APPROVAL,
    IntentStatus.APPROVED: IntentEvent.ALLOWED,
}


class IntentRepo:
    """`store.intents`: the `intents` table; approval requests through `store.approvals`, in the same
    transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(
        self,
        action: TransferAction,
        *,
        fee: Decimal,
        status: IntentStatus,
        automatic: bool,
        verdict: str,
        ts: float,
        approval: ApprovalSpec | None = None,
        notes: Iterable[Note] = (),
        break_glass: bool = False,
    ) -> bool:
        """Commit the intent with its audit record; False when the same intent already exists.

        The same id with different parameters is an IntegrityError: a key is never reused for another move.
        `status` is what the lifecycle allows from `proposed` (pending_approval or approved), else
        InvalidTransition. `break_glass` marks a move sent before approval at the de-risk level.
        """
        if status not in _CREATED:
            raise InvalidTransition(f"intent proposed -> recorded as {status.value}")
        initial = intent_after(IntentStatus.PROPOSED, _CREATED[status])
        row = self._row(
            action, fee, initial, automatic=automatic, break_glass=break_glass, verdict=verdict, ts=ts
        )
        try:
            with self._store.transaction() as tx:
                tx.conn.execute(_INSERT_INTENT, row)  # the primary key refuses a second intent with this id
                data = _created(action, initial, verdict)
                if break_glass:
                    data["break_glass"] = True
                tx.audit(ts, "intent.created", data, action.venue)
                if approval is not None:
                    self._store.approvals.request(tx, action, approval, ts)
                tx.notes(ts, notes)
        except SAIntegrityError as e:
            # the id exists (recorded earlier, or by another writer just now): the same move is a no-op,
            # the same key with other parameters is refused
            with self._store.reading() as conn:
                already_recorded(conn, intents, action.intent_id, action.params_hash, what="intent", error=e)
            return False
        return True

    def _row(
        self,
        action: TransferAction,
        fee: Decimal,
        initial: IntentStatus,
        *,
        automatic: bool,
        break_glass: bool,
        verdict: str,
        ts: float,
    ) -> dict[str, Any]:
        return {
            "id": action.intent_id,
            "kind": action.kind.value,
            "venue": action.venue,
            "route": action.route,
            "source": action.source,
            "destination": action.destination,
            "asset": action.asset,
            "amount": action.amount,
            "fee": fee,
            "usd": action.usd,
            "address": action.address,
            "params_hash": action.params_hash,
            "status": initial.value,
            "automatic": automatic,
            "break_glass": break_glass,
            "created_at": ts,
            "updated_at": ts,
            "reason": action.reason,
            "verdict": verdict,
            "utilization_before": finite(action.utilization_before),
            "utilization_after": finite(action.utilization_after),
            "config_hash": self._store.config_hash,
        }

    def transition(
        self,
        intent_id: str,
        event: IntentEvent,
        *,
        expected: IntentStatus,
        ts: float,
        venue: str | None = None,
        data: dict[str, Any] | None = None,
        notes: Iterable[Note] = (),
        venue_ref: str | None = None,
        error: str | None = None,
        settled_at: float | None = None,
    ) -> Applied[IntentStatus] | Lost[IntentStatus]:
        """Apply `event` to an intent that had `expected` when the caller read it: the new status from the
        lifecycle table, its audit record (from, to, event) and notifications in one transaction.

        `Lost(actual)` when the row no longer has `expected` (a person or another writer changed it first):
        nothing is written, the caller reloads. An event the table lacks for `expected` is InvalidTransition.
        """
        new = intent_after(expected, event)
        values: dict[str, Any] = {"status": new.value, "updated_at": ts}
        payload: dict[str, Any] = {
            "intent": intent_id,
            "status": new.value,
            "from": expected.value,
            "event": event.value,
            **(data or {}),
        }
        if venue_ref is not None:
            values["venue_ref"] = payload["venue_ref"] = venue_ref
        if error is not None:
            values["error"] = payload["error"] = error
        if new is IntentStatus.SUBMITTED:
            values["submitted_at"] = ts
        if new is IntentStatus.CONFIRMED:
            values["settled_at"] = settled_at if settled_at is not None else ts
        with integrity(f"intent {intent_id} {event.value}"), self._store.transaction() as tx:
            done = self.compare_and_set(tx, intent_id, expected, values)
            if isinstance(done, Lost):
                return done
            if event in _APPROVAL_AFTER:
                self._store.approvals.close(tx, intent_id, _APPROVAL_AFTER[event], ts)
            tx.audit(ts, f"intent.{new.value}", payload, venue)
            tx.notes(ts, notes)
        return Applied(new)

    def compare_and_set(
        self, tx: Tx, intent_id: str, expected: IntentStatus, values: dict[str, Any]
    ) -> Applied[IntentStatus] | Lost[IntentStatus]:
        """UPDATE … WHERE id = :id AND status = :expected, inside the caller's transaction."""
        params = {"i_id": intent_id, "i_expected": expected.value, **values}
        if tx.conn.execute(_CAS_INTENT, params).rowcount:
            return Applied(IntentStatus(values["status"]))
        actual = tx.conn.execute(_INTENT_STATUS, {"i_id": intent_id}).scalar_one_or_none()
        return Lost(None if actual is None else IntentStatus(actual))

    def mark_sending(self, intent_id: str, ts: float) -> bool:
        """Commit that a person-approved intent is about to be sent (a restart then knows it may have gone).

        Compare-and-set: False, with nothing written, when the intent is no longer `approved` or is already
        marked (a person resolved it meanwhile): it must not be sent.
        """
        with self._store.transaction() as tx:
            done = tx.conn.execute(
                update(intents)
                .where(
                    intents.c.id == intent_id,
                    intents.c.status == IntentStatus.APPROVED.value,
                    intents.c.sending_at.is_(None),
                )
                .values(sending_at=ts, updated_at=ts)
            ).rowcount
            if not done:
                return False
            tx.audit(ts, "intent.sending", {"intent": intent_id}, None)
        return True

    # --- reads ---------------------------------------------------------------------------------------------
    def load(self, since: float) -> list[IntentView]:
        """Open intents, and every intent created after `since` (they count against rolling budgets)."""
        q = (
            select(intents)
            .where((intents.c.status.in_([s.value for s in OPEN_STATUSES])) | (intents.c.created_at > since))
            .order_by(intents.c.created_at, intents.c.id)
        )
        with self._store.reading() as conn:
            return [_view(r) for r in conn.execute(q)]

    def get(self, intent_id: str) -> IntentView | None:
        with self._store.reading() as conn:
            row = conn.execute(select(intents).where(intents.c.id == intent_id)).first()
            return None if row is None else _view(row)

    def rows(self) -> list[IntentRow]:
        """Every intent, oldest first, with every column."""
        with self._store.reading() as conn:
            q = select(intents).order_by(intents.c.created_at, intents.c.id)
            return [IntentRow.of(r) for r in conn.execute(q)]

    def count(self) -> int:
        with self._store.reading() as conn:
            return int(conn.execute(select(func.count()).select_from(intents)).scalar_one())

    def ids_starting(self, prefix: str, limit: int = 5) -> list[str]:
        """A few intent ids that start with `prefix`, in order."""
        q = select(intents.c.id).where(intents.c.id.startswith(prefix, autoescape=True))
        with self._store.reading() as conn:
            return [str(r[0]) for r in conn.execute(q.order_by(intents.c.id).limit(limit))]


def _created(action: TransferAction, initial: IntentStatus, verdict: str) -> dict[str, Any]:
    """The `intent.created` audit record's data."""
    return {
        "intent": action.intent_id,
        "kind": action.kind.value,
        "route": action.route,
        "asset": action.asset,
        "amount": str(action.amount),
        "usd": str(action.usd),
        "source": action.source,
        "destination": action.destination,
        "address": action.address,
        "status": initial.value,
        "params_hash": action.params_hash,
        "verdict": verdict,
        "reason": action.reason,
        "utilization_before": finite(action.utilization_before),
        "utilization_after": finite(action.utilization_after),
    }


def _view(r: Any) -> IntentView:
    return IntentView(
        id=r.id,
        kind=TransferKind(r.kind),
        venue=r.venue,
        route=r.route,
        asset=r.asset,
        amount=r.amount,
        fee=r.fee,
        usd=r.usd,
        status=IntentStatus(r.status),
        created_at=r.created_at,
        automatic=bool(r.automatic),
        settled_at=r.settled_at,
        acknowledged=r.venue_ref is not None,
        sending=r.sending_at is not None,
        break_glass=bool(r.break_glass),
    )
