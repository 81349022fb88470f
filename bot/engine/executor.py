"""The executor: a planned move becomes a durable intent, then a venue call, then a recorded result.

    Allowed        -> intent `approved` (automatic) + audit, committed  -> submit -> `submitted` | `failed` | `unknown`
    NeedsApproval  -> intent `pending_approval` + approval request + audit, committed; nothing is sent
    Denied         -> an audit record and a critical notification; nothing is sent

The client id sent to the venue is the intent id, stable across retries and restarts. Every result is a
transition of the intent's lifecycle (`bot.core.lifecycle`) from `approved`; if a person resolved the intent
meanwhile (a lost race), their record stands: the bot reloads it, and records and pages what the venue said.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from decimal import Decimal

import structlog

from bot.core.actions import IntentStatus, TransferAction
from bot.core.approvals import Allowed, Denied, NeedsApproval
from bot.core.decide import Planned
from bot.core.lifecycle import IntentEvent, Lost
from bot.core.world import IntentView, RouteSpec
from bot.errors import (
    KeyRejected,
    RateLimited,
    TransferRefused,
    UnknownOutcome,
    VenueBanned,
    VenueUnavailable,
)
from bot.notify import note
from bot.store.repo import Store
from bot.store.rows import ApprovalSpec
from bot.venues.base import TransferPort, TransferReceipt, TransferRequest

log = structlog.get_logger("marginbot.executor")


def request_for(
    route: RouteSpec, *, intent_id: str, amount: Decimal, created_at: float | None = None
) -> TransferRequest:
    return TransferRequest(
        client_id=intent_id,
        route=route.name,
        source=route.source,
        destination=route.destination,
        asset=route.asset,
        amount=amount,
        method=route.method,
        network=route.network,
        address=route.address,
        fee=route.fee,
        settle_seconds=route.settle_seconds,
        created_at=created_at,
        tag=route.tag,
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    intent_id: str
    # None: nothing recorded (denied, a duplicate of an existing intent, or a race lost to a person)
    status: IntentStatus | None
    receipt: TransferReceipt | None = None
    view: IntentView | None = None  # the intent as recorded, for the bot's cache


def _view(a: TransferAction, fee: Decimal, status: IntentStatus, now: float, automatic: bool) -> IntentView:
    return IntentView(
        id=a.intent_id,
        kind=a.kind,
        venue=a.venue,
        route=a.route,
        asset=a.asset,
        amount=a.amount,
        fee=fee,
        usd=a.usd,
        status=status,
        created_at=now,
        automatic=automatic,
    )


@dataclass(frozen=True, slots=True)
class _Call:
    """One venue call for a committed intent."""

    intent_id: str
    venue: str
    req: TransferRequest
    now: float
    what: str


@dataclass(frozen=True, slots=True)
class _Result:
    """What a venue call's answer means: the lifecycle event, and the notification that says so."""

    event: IntentEvent
    severity: str
    kind: str
    message: str
    detail: str
    error: str | None = None


def _failure(e: Exception, intent_id: str) -> _Result:
    """A venue call that raised: refused or unreachable (nothing moved), else unknown (never re-sent)."""
    if isinstance(e, TransferRefused):  # nothing moved
        return _Result(IntentEvent.REFUSED, "critical", "transfer_failed", "refused", str(e), str(e))
    if isinstance(e, VenueUnavailable | RateLimited | VenueBanned | KeyRejected):  # refused at the door
        return _Result(
            IntentEvent.REFUSED, "critical", "transfer_failed", "not sent, venue unreachable", str(e), str(e)
        )
    # UnknownOutcome, or anything unexpected: it may have happened, so never re-send
    if not isinstance(e, UnknownOutcome):
        log.error("unexpected error from transfer submit", intent=intent_id, error=type(e).__name__)
    return _Result(
        IntentEvent.OUTCOME_LOST,
        "critical",
        "unknown_intent",
        "outcome unknown; route blocked",
        "it will be looked up at the venue before anything else moves",
        f"{type(e).__name__}: {e}",
    )


def _pct(x: float) -> str:
    return "∞" if x == float("inf") else f"{x * 100:.1f}%"


class Executor:
    def __init__(
        self,
        store: Store,
        transfers: TransferPort,
        routes: dict[str, RouteSpec],
        *,
        desk: str,
        expires_minutes: float,
    ) -> None:
        self.store = store
        self.transfers = transfers
        self.routes = routes
        self.desk = desk
        self.expires_seconds = expires_minutes * 60.0
        self.last_submitted_at: float | None = None  # perf_counter when the venue last accepted a transfer

    async def execute(self, planned: Planned, now: float) -> Outcome:
        a = planned.action
        route = self.routes[a.route]
        what = (
            f"{a.kind.value} {a.amount} {a.asset} {a.source} → {a.destination} via {a.route} "
            f"({a.venue} {_pct(a.utilization_before)} → {_pct(a.utilization_after)})"
        )
        v = planned.verdict
        if isinstance(v, Denied):
            # the alert for it is raised (and deduplicated) with the cycle's other alerts
            self.store.audit.record(
                now,
                [
                    (
                        "intent.denied",
                        a.venue,
                        {
                            "intent": a.intent_id,
                            "route": a.route,
                            "asset": a.asset,
                            "amount": str(a.amount),
                            "reason": v.reason,
                        },
                    )
                ],
            )
            return Outcome(a.intent_id, None)
        if isinstance(v, NeedsApproval):
            expires = now + self.expires_seconds
            created = self.store.intents.create(
                a,
                fee=route.fee,
                status=IntentStatus.PENDING_APPROVAL,
                automatic=False,
                verdict=v.reason,
                ts=now,
                approval=ApprovalSpec(v.quorum, v.approvers, v.reason, expires),
                notes=[
                    note(
                        "warning",
                        "approval",
                        f"{a.venue}: approval needed for {what}",
                        desk=self.desk,
                        venue=a.venue,
                        asset=a.asset,
                        detail=f"request {a.intent_id}; why: {v.reason}; needs {v.quorum} of "
                        f"{', '.join(v.approvers) or '(no approvers configured)'}; "
                        f"expires in {self.expires_seconds / 60:.0f} min; reason: {a.reason}",
                    )
                ],
            )
            if not created:
                return Outcome(a.intent_id, None)
            status = IntentStatus.PENDING_APPROVAL
            return Outcome(a.intent_id, status, view=_view(a, route.fee, status, now, automatic=False))
        assert isinstance(v, Allowed)
        created = self.store.intents.create(
            a,
            fee=route.fee,
            status=IntentStatus.APPROVED,
            automatic=True,
            verdict=v.reason,
            ts=now,
            break_glass=v.break_glass,
        )
        if not created:
            return Outcome(a.intent_id, None)  # the same trigger was already handled: one intent, one effect
        out = await self.submit(
            a.intent_id, a.venue, request_for(route, intent_id=a.intent_id, amount=a.amount), now, what
        )
        if out.status is None:  # a lost race: `out.view` is the intent as the store now has it
            return out
        view = _view(a, route.fee, out.status, now, automatic=True)
        view = dataclasses.replace(view, break_glass=v.break_glass)
        if out.receipt is not None:
            view = dataclasses.replace(view, acknowledged=True)
        return dataclasses.replace(out, view=view)

    async def send_approved(self, intent: IntentView, now: float) -> Outcome:
        """Send a move its approvers have approved: marked as being sent (committed) first, then called.

        An intent that is no longer `approved` when it is marked (a person resolved it) is not sent."""
        route = self.routes[intent.route]
        if not self.store.intents.mark_sending(intent.id, now):
            return Outcome(intent.id, None, view=self.store.intents.get(intent.id))
        what = f"{intent.kind.value} {intent.amount} {intent.asset} via {intent.route} (approved)"
        out = await self.submit(
            intent.id, intent.venue, request_for(route, intent_id=intent.id, amount=intent.amount), now, what
        )
        if out.status is None:
            return out
        view = dataclasses.replace(
            intent, status=out.status, sending=True, acknowledged=out.receipt is not None
        )
        return dataclasses.replace(out, view=view)

    async def submit(
        self, intent_id: str, venue: str, req: TransferRequest, now: float, what: str
    ) -> Outcome:
        """Call the venue for a committed intent and record what came back."""
        call = _Call(intent_id, venue, req, now, what)
        try:
            receipt = await self.transfers.submit(req)
            self.last_submitted_at = time.perf_counter()
        except Exception as e:  # classified by what it says about the money: see `_failure`
            return self._record(call, _failure(e, intent_id))
        if receipt.state is None:  # an answer with no usable status: it may or may not have happened
            result = _Result(
                IntentEvent.OUTCOME_LOST,
                "critical",
                "unknown_intent",
                "outcome unknown; route blocked",
                "the answer carried no status; it will be looked up",
                error="the venue's answer carried no status",
            )
            return self._record(call, result, receipt)
        sent = _Result(IntentEvent.SENT, "info", "transfer", "submitted", f"venue ref {receipt.venue_ref}")
        return self._record(call, sent, receipt)

    def _record(self, call: _Call, r: _Result, receipt: TransferReceipt | None = None) -> Outcome:
        """The venue's answer as a transition from `approved`, with its notification."""
        ref = None if receipt is None else receipt.venue_ref
        done = self.store.intents.transition(
            call.intent_id,
            r.event,
            expected=IntentStatus.APPROVED,
            ts=call.now,
            venue=call.venue,
            venue_ref=ref,
            error=r.error,
            notes=[
                note(
                    r.severity,
                    r.kind,
                    f"{call.venue}: {call.what} {r.message}",
                    desk=self.desk,
                    venue=call.venue,
                    asset=call.req.asset,
                    detail=f"intent {call.intent_id}: {r.detail}",
                )
            ],
        )
        if isinstance(done, Lost):
            return self._lost(call, r.event, done, ref)
        return Outcome(call.intent_id, done.status, receipt)

    def _lost(
        self, call: _Call, event: IntentEvent, lost: Lost[IntentStatus], venue_ref: str | None
    ) -> Outcome:
        """The intent changed while the venue was called (a person resolved it): their record stands. What the
        venue said is kept in the audit trail, and a person is paged to compare the two."""
        intent_id, venue, req, now, what = call.intent_id, call.venue, call.req, call.now, call.what
        actual = "missing" if lost.actual is None else lost.actual.value
        log.warning("intent changed while it was sent", intent=intent_id, on=event.value, now_is=actual)
        self.store.audit.record(
            now,
            [
                (
                    "intent.race_lost",
                    venue,
                    {"intent": intent_id, "event": event.value, "expected": "approved", "actual": actual}
                    | ({"venue_ref": venue_ref} if venue_ref is not None else {}),
                )
            ],
            [
                note(
                    "critical",
                    "unknown_intent",
                    f"{venue}: {what} was recorded {actual} by a person while the bot sent it",
                    desk=self.desk,
                    venue=venue,
                    asset=req.asset,
                    detail=f"intent {intent_id}: the venue's answer was '{event.value}'"
                    + (f" (ref {venue_ref})" if venue_ref else "")
                    + f"; the store keeps '{actual}'. Check the venue's history for this client id.",
                )
            ],
        )
        return Outcome(intent_id, None, view=self.store.intents.get(intent_id))
