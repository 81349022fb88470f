"""The store: every write is one transaction that carries its audit record and its notifications.

Money-moving writes follow intent → audit → call → result: `create_intent` commits the intent, its audit
record and its notifications together before the venue is called; `transition_intent` commits the result
the same way. An audit insert that fails rolls the whole transaction back.

A status changes only through `transition_intent` (and `vote`, for the approvers' decision): the new status comes
from the lifecycle table (`bot.core.lifecycle`) and is written with compare-and-set on the status the caller
read. A row that no longer has it is a lost race, returned as `Lost(actual)`: nothing is written.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from bot.core.actions import OPEN_STATUSES, IntentStatus, TransferAction, TransferKind
from bot.core.approvals import Counted, Refused, Request, Vote, cast
from bot.core.lifecycle import Applied, IntentEvent, Lost, intent_after
from bot.core.world import IntentView
from bot.errors import IntegrityError, InvalidTransition
from bot.store import audit as chain
from bot.store.orders import OrderRecords, already_recorded
from bot.store.tables import approvals, audit, flags, intents, notifications, orders, venue_status

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}

# statements built once: parameters are passed at execution, so each compiles once and is cached
_INSERT_NOTE = insert(notifications)
_INSERT_INTENT = insert(intents)
# compare-and-set: the row changes only if it still has the status the caller read
_CAS_INTENT = update(intents).where(
    intents.c.id == bindparam("i_id"), intents.c.status == bindparam("i_expected")
)
_INTENT_STATUS = select(intents.c.status).where(intents.c.id == bindparam("i_id"))
_DECIDE_APPROVAL = update(approvals).where(
    approvals.c.intent_id == bindparam("a_intent"), approvals.c.status == "pending"
)
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
_UPDATE_STATE = update(venue_status).where(venue_status.c.venue == bindparam("v_venue"))
_INSERT_STATE = insert(venue_status)


@dataclass(frozen=True, slots=True)
class Note:
    """A notification to enqueue in the outbox with the write it belongs to."""

    severity: str
    kind: str
    title: str
    body: str
    venue: str | None = None
    asset: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalSpec:
    quorum: int
    eligible: tuple[str, ...]
    reason: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class VenueFigures:
    venue: str
    state: str
    since: float
    observed_at: float | None
    equity: float | None
    im: float | None
    mm: float | None
    utilization: float | None
    mm_ratio: float | None


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


class Store(OrderRecords):
    def __init__(self, engine: Engine, *, config_hash: str | None = None, min_severity: str = "info") -> None:
        self.engine = engine
        self.config_hash = config_hash
        self.min_rank = SEVERITY_RANK[min_severity]
        # "pending" notifications wait in the outbox for delivery; a simulation's are written "simulated",
        # which no outbox ever picks up (see bot/store/purpose.py)
        self.note_status = "pending"
        self.flags_version = 0  # bumped by every flag this process sets, so cached readers know to re-read

    # --- helpers -----------------------------------------------------------------------------------
    def _read(self) -> Connection:
        """A connection for reading: no write lock on SQLite."""
        return self.engine.connect().execution_options(readonly=True)

    def _audit(self, conn: Connection, ts: float, kind: str, data: dict[str, Any], venue: str | None) -> None:
        chain.append(conn, ts=ts, kind=kind, data=data, venue=venue, config_hash=self.config_hash)

    def _notes(self, conn: Connection, ts: float, notes: Iterable[Note]) -> None:
        rows = [
            {
                "created_at": ts,
                "severity": n.severity,
                "kind": n.kind,
                "venue": n.venue,
                "asset": n.asset,
                "title": n.title,
                "body": n.body,
                "status": self.note_status,
                "attempts": 0,
                "delivered": "[]",
                "next_attempt_at": ts,
            }
            for n in notes
            if SEVERITY_RANK[n.severity] >= self.min_rank
        ]
        if rows:
            conn.execute(_INSERT_NOTE, rows)

    # --- audit and alerts --------------------------------------------------------------------------
    def record(
        self, ts: float, events: Sequence[tuple[str, str | None, dict[str, Any]]], notes: Iterable[Note] = ()
    ) -> None:
        """Append several audit events (kind, venue, data) and their notifications in one transaction."""
        with _integrity("audit record"), self.engine.begin() as conn:
            for kind, venue, data in events:
                self._audit(conn, ts, kind, data, venue)
            self._notes(conn, ts, notes)

    def record_transitions(
        self,
        ts: float,
        changes: Sequence[tuple[str, str, str, str]],
        notes: Iterable[Note] = (),
        *,
        events: Sequence[tuple[str, str | None, dict[str, Any]]] = (),
    ) -> None:
        """Persist venue state changes (venue, before, trigger, after), one audit record each, with other events."""
        with self.engine.begin() as conn:
            for kind, venue, data in events:
                self._audit(conn, ts, kind, data, venue)
            for venue, before, trigger, after in changes:
                self._audit(
                    conn, ts, "venue.transition", {"from": before, "trigger": trigger, "to": after}, venue
                )
                params = {"v_venue": venue, "state": after, "since": ts, "updated_at": ts}
                if not conn.execute(_UPDATE_STATE, params).rowcount:
                    conn.execute(
                        _INSERT_STATE, {"venue": venue, "state": after, "since": ts, "updated_at": ts}
                    )
            self._notes(conn, ts, notes)

    # --- intents -----------------------------------------------------------------------------------
    def create_intent(
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
        intent_id = action.intent_id
        row = {
            "id": intent_id,
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
            "utilization_before": _finite(action.utilization_before),
            "utilization_after": _finite(action.utilization_after),
            "config_hash": self.config_hash,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(_INSERT_INTENT, row)  # the primary key refuses a second intent with this id
                data = {
                    "intent": intent_id,
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
                    "utilization_before": _finite(action.utilization_before),
                    "utilization_after": _finite(action.utilization_after),
                }
                if break_glass:
                    data["break_glass"] = True
                self._audit(conn, ts, "intent.created", data, action.venue)
                if approval is not None:
                    conn.execute(
                        insert(approvals).values(
                            id=intent_id,
                            intent_id=intent_id,
                            params_hash=action.params_hash,
                            status="pending",
                            quorum=approval.quorum,
                            eligible=json.dumps(list(approval.eligible)),
                            approvers="[]",
                            reason=approval.reason,
                            created_at=ts,
                            expires_at=approval.expires_at,
                        )
                    )
                    self._audit(
                        conn,
                        ts,
                        "approval.requested",
                        {
                            "request": intent_id,
                            "quorum": approval.quorum,
                            "eligible": list(approval.eligible),
                            "expires_at": chain.iso(approval.expires_at),
                            "reason": approval.reason,
                        },
                        action.venue,
                    )
                self._notes(conn, ts, notes)
        except SAIntegrityError as e:
            # the id exists (recorded earlier, or by another writer just now): the same move is a no-op,
            # the same key with other parameters is refused
            with self._read() as conn:
                already_recorded(conn, intents, intent_id, action.params_hash, what="intent", error=e)
            return False
        return True

    def transition_intent(
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
        with _integrity(f"intent {intent_id} {event.value}"), self.engine.begin() as conn:
            done = self._cas_intent(conn, intent_id, expected, values)
            if isinstance(done, Lost):
                return done
            if event in _APPROVAL_AFTER:
                conn.execute(
                    _DECIDE_APPROVAL,
                    {"a_intent": intent_id, "status": _APPROVAL_AFTER[event], "decided_at": ts},
                )
            self._audit(conn, ts, f"intent.{new.value}", payload, venue)
            self._notes(conn, ts, notes)
        return Applied(new)

    def _cas_intent(
        self, conn: Connection, intent_id: str, expected: IntentStatus, values: dict[str, Any]
    ) -> Applied[IntentStatus] | Lost[IntentStatus]:
        """UPDATE … WHERE id = :id AND status = :expected, inside the caller's transaction."""
        if conn.execute(_CAS_INTENT, {"i_id": intent_id, "i_expected": expected.value, **values}).rowcount:
            return Applied(IntentStatus(values["status"]))
        actual = conn.execute(_INTENT_STATUS, {"i_id": intent_id}).scalar_one_or_none()
        return Lost(None if actual is None else IntentStatus(actual))

    def load_intents(self, since: float) -> list[IntentView]:
        """Open intents, and every intent created after `since` (they count against rolling budgets)."""
        q = (
            select(intents)
            .where((intents.c.status.in_([s.value for s in OPEN_STATUSES])) | (intents.c.created_at > since))
            .order_by(intents.c.created_at, intents.c.id)
        )
        with self._read() as conn:
            return [_view(r) for r in conn.execute(q)]

    def vote(
        self,
        request_id: str,
        vote: Vote,
        ts: float,
        *,
        notes_for: Callable[[Counted | Refused, Request], list[Note]],
    ) -> tuple[Counted | Refused, Request | None]:
        """Apply one approval vote under row locks: the request, its intent and an audit record move together.

        Every attempt, counted or refused, is an audit record with its reason. The intent is locked before its
        request, in the order `transition_intent` takes them (an expiry updates the intent, then the request).
        """
        with _integrity(f"vote on {request_id}"), self.engine.begin() as conn:
            owner = conn.execute(select(approvals.c.intent_id).where(approvals.c.id == request_id)).first()
            intent = None
            if owner is not None:
                intent = conn.execute(
                    select(intents.c.venue, intents.c.status)
                    .where(intents.c.id == owner.intent_id)
                    .with_for_update()
                ).one()
            row = conn.execute(
                select(approvals).where(approvals.c.id == request_id).with_for_update()
            ).first()
            if row is None or intent is None:
                missing = Refused(f"no approval request {request_id!r}")
                self._audit(
                    conn,
                    ts,
                    "approval.refused",
                    {"request": request_id, "by": vote.approver, "reason": missing.reason},
                    None,
                )
                return missing, None
            venue = intent.venue
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
            data: dict[str, Any] = {
                "request": request_id,
                "by": vote.approver,
                "decision": "approve" if vote.approve else "reject",
            }
            if isinstance(result, Refused):
                self._audit(conn, ts, "approval.refused", {**data, "reason": result.reason}, venue)
            else:
                conn.execute(
                    update(approvals)
                    .where(approvals.c.id == request_id)
                    .values(
                        approvers=json.dumps(list(result.approvers)),
                        status=result.status,
                        decided_at=ts if result.status != "pending" else None,
                    )
                )
                self._audit(
                    conn,
                    ts,
                    "approval.vote",
                    {
                        **data,
                        "reason": vote.reason,
                        "status": result.status,
                        "approvers": list(result.approvers),
                    },
                    venue,
                )
                if result.status in ("approved", "rejected"):
                    event = IntentEvent(result.status)
                    expected = IntentStatus.PENDING_APPROVAL
                    new = intent_after(expected, event)
                    done = self._cas_intent(
                        conn, row.intent_id, expected, {"status": new.value, "updated_at": ts}
                    )
                    if isinstance(done, Lost):  # both rows are locked: this cannot happen
                        raise IntegrityError(f"intent {row.intent_id} changed under its row lock")
                    self._audit(
                        conn,
                        ts,
                        f"intent.{new.value}",
                        {
                            "intent": row.intent_id,
                            "status": new.value,
                            "from": expected.value,
                            "event": event.value,
                            "approvers": list(result.approvers),
                        },
                        venue,
                    )
            self._notes(conn, ts, notes_for(result, req))
            return result, req

    def mark_sending(self, intent_id: str, ts: float) -> bool:
        """Commit that a person-approved intent is about to be sent (a restart then knows it may have gone).

        Compare-and-set: False, with nothing written, when the intent is no longer `approved` or is already
        marked (a person resolved it meanwhile): it must not be sent.
        """
        with self.engine.begin() as conn:
            done = conn.execute(
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
            self._audit(conn, ts, "intent.sending", {"intent": intent_id}, None)
        return True

    def get_intent(self, intent_id: str) -> IntentView | None:
        with self._read() as conn:
            row = conn.execute(select(intents).where(intents.c.id == intent_id)).first()
            return None if row is None else _view(row)

    def approval_expiries(self) -> dict[str, float]:
        with self._read() as conn:
            q = select(approvals.c.intent_id, approvals.c.expires_at).where(approvals.c.status == "pending")
            return {r.intent_id: r.expires_at for r in conn.execute(q)}

    def intent_rows(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(select(intents).order_by(intents.c.created_at, intents.c.id))
            ]

    def ids_starting(self, prefix: str, limit: int = 5) -> dict[str, list[str]]:
        """Ids of approval requests, intents and orders that start with `prefix` (a few of each)."""
        out: dict[str, list[str]] = {}
        with self._read() as conn:
            for kind, col in (("approval", approvals.c.id), ("intent", intents.c.id), ("order", orders.c.id)):
                q = select(col).where(col.startswith(prefix, autoescape=True)).order_by(col).limit(limit)
                out[kind] = [str(r[0]) for r in conn.execute(q)]
        return out

    def approval_rows(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            q = select(approvals).order_by(approvals.c.created_at, approvals.c.id)
            return [dict(r._mapping) for r in conn.execute(q)]

    # --- venue status --------------------------------------------------------------------------------
    def venue_states(self) -> dict[str, str]:
        with self._read() as conn:
            return {
                r.venue: r.state for r in conn.execute(select(venue_status.c.venue, venue_status.c.state))
            }

    def save_figures(self, rows: Sequence[VenueFigures], ts: float) -> None:
        """Telemetry for `marginbot status`: not audited (the decisions built on it are)."""
        with self.engine.begin() as conn:
            for r in rows:
                values = {
                    "state": r.state,
                    "observed_at": r.observed_at,
                    "equity": _finite(r.equity),
                    "im": _finite(r.im),
                    "mm": _finite(r.mm),
                    "utilization": _finite(r.utilization),
                    "mm_ratio": _finite(r.mm_ratio),
                    "updated_at": ts,
                }
                done = conn.execute(
                    update(venue_status).where(venue_status.c.venue == r.venue).values(**values)
                ).rowcount
                if not done:
                    conn.execute(insert(venue_status).values(venue=r.venue, since=r.since, **values))

    def status_rows(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            return [
                dict(r._mapping) for r in conn.execute(select(venue_status).order_by(venue_status.c.venue))
            ]

    # --- notifications outbox ------------------------------------------------------------------------
    def due_notifications(self, now: float, limit: int = 50) -> list[dict[str, Any]]:
        q = (
            select(notifications)
            .where(notifications.c.status == "pending", notifications.c.next_attempt_at <= now)
            .order_by(notifications.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def notification_sent(self, note_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(notifications).where(notifications.c.id == note_id).values(status="sent"))

    def notification_retry(
        self,
        note_id: int,
        *,
        attempts: int,
        next_at: float,
        error: str,
        give_up: bool,
        delivered: Sequence[int] = (),
    ) -> None:
        """Record a failed delivery: when to try again, and which destinations already have the message."""
        with self.engine.begin() as conn:
            conn.execute(
                update(notifications)
                .where(notifications.c.id == note_id)
                .values(
                    attempts=attempts,
                    next_attempt_at=next_at,
                    last_error=error[:500],
                    delivered=json.dumps(list(delivered)),
                    status="failed" if give_up else "pending",
                )
            )

    def notification_count(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(notifications)).scalar_one())

    # --- flags and counts ----------------------------------------------------------------------------
    def audit_count(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(audit)).scalar_one())

    def get_flag(self, key: str) -> str | None:
        with self._read() as conn:
            row = conn.execute(select(flags.c.value).where(flags.c.key == key)).first()
            return None if row is None else str(row.value)

    def flags_with_prefix(self, prefix: str) -> dict[str, str]:
        with self._read() as conn:
            q = select(flags.c.key, flags.c.value).where(flags.c.key.startswith(prefix, autoescape=True))
            return {r.key: str(r.value) for r in conn.execute(q)}

    def set_flag(
        self,
        key: str,
        value: str | None,
        ts: float,
        *,
        events: Sequence[tuple[str, str | None, dict[str, Any]]] = (),
        notes: Iterable[Note] = (),
    ) -> None:
        """Set (or, with None, clear) a persisted flag, with its audit records and notifications."""
        with _integrity(f"flag {key}"), self.engine.begin() as conn:
            conn.execute(delete(flags).where(flags.c.key == key))
            if value is not None:
                conn.execute(insert(flags).values(key=key, value=value, updated_at=ts))
            for kind, venue, data in events:
                self._audit(conn, ts, kind, data, venue)
            self._notes(conn, ts, notes)
        self.flags_version += 1

    def put_blob(self, key: str, value: str, ts: float) -> None:
        """Unaudited state kept for convenience (the paper exchange between runs); never money decisions."""
        with self.engine.begin() as conn:
            conn.execute(delete(flags).where(flags.c.key == key))
            conn.execute(insert(flags).values(key=key, value=value, updated_at=ts))

    # --- positions seen, to notice what changed while the bot was down -------------------------------------
    def known_positions(self) -> dict[str, str]:
        with self._read() as conn:
            q = select(venue_status.c.venue, venue_status.c.positions).where(
                venue_status.c.positions.is_not(None)
            )
            return {r.venue: str(r.positions) for r in conn.execute(q)}

    def save_positions(self, venue: str, positions: str, ts: float, *, changed_from: str | None) -> None:
        """Remember a venue's positions; a change seen while running is an audit record."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(venue_status)
                .where(venue_status.c.venue == venue)
                .values(positions=positions, updated_at=ts)
            ).rowcount
            if not done:
                conn.execute(
                    insert(venue_status).values(
                        venue=venue, state="stale", since=ts, positions=positions, updated_at=ts
                    )
                )
            if changed_from is not None:
                self._audit(
                    conn, ts, "venue.positions_changed", {"from": changed_from, "to": positions}, venue
                )


@contextlib.contextmanager
def _integrity(what: str) -> Iterator[None]:
    """Translate the database's integrity errors into ours, once, at the store's edge."""
    try:
        yield
    except SAIntegrityError as e:
        raise IntegrityError(f"{what} could not be recorded: {e.orig}") from e


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
