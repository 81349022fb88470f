"""The executor: a planned move becomes a durable intent, then a venue call, then a recorded result.

    Allowed        -> intent `approved` (automatic) + audit, committed  -> submit -> `submitted` | `failed` | `unknown`
    NeedsApproval  -> intent `pending_approval` + approval request + audit, committed; nothing is sent
    Denied         -> an audit record and a critical notification; nothing is sent

The client id sent to the venue is the intent id, stable across retries and restarts.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from decimal import Decimal

import structlog

from bot.core.actions import IntentStatus, TransferAction
from bot.core.approvals import BREAK_GLASS, Allowed, Denied, NeedsApproval
from bot.core.decide import Planned
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
from bot.store.repo import ApprovalSpec, Store
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
    status: IntentStatus | None  # None: nothing recorded (denied, or a duplicate of an existing intent)
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
            self.store.record(
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
            created = self.store.create_intent(
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
        created = self.store.create_intent(
            a, fee=route.fee, status=IntentStatus.APPROVED, automatic=True, verdict=v.reason, ts=now
        )
        if not created:
            return Outcome(a.intent_id, None)  # the same trigger was already handled: one intent, one effect
        out = await self.submit(
            a.intent_id, a.venue, request_for(route, intent_id=a.intent_id, amount=a.amount), now, what
        )
        assert out.status is not None
        view = _view(a, route.fee, out.status, now, automatic=True)
        view = dataclasses.replace(view, break_glass=v.reason.startswith(BREAK_GLASS))
        if out.receipt is not None:
            view = dataclasses.replace(view, acknowledged=True)
        return dataclasses.replace(out, view=view)

    async def send_approved(self, intent: IntentView, now: float) -> Outcome:
        """Send a move its approvers have approved: marked as being sent (committed) first, then called."""
        route = self.routes[intent.route]
        self.store.mark_sending(intent.id, now)
        what = f"{intent.kind.value} {intent.amount} {intent.asset} via {intent.route} (approved)"
        out = await self.submit(
            intent.id, intent.venue, request_for(route, intent_id=intent.id, amount=intent.amount), now, what
        )
        assert out.status is not None
        view = dataclasses.replace(
            intent, status=out.status, sending=True, acknowledged=out.receipt is not None
        )
        return dataclasses.replace(out, view=view)

    async def submit(
        self, intent_id: str, venue: str, req: TransferRequest, now: float, what: str
    ) -> Outcome:
        """Call the venue for a committed intent and record what came back."""

        def record(
            status: IntentStatus,
            severity: str,
            kind: str,
            message: str,
            detail: str,
            *,
            error: str | None = None,
            receipt: TransferReceipt | None = None,
        ) -> Outcome:
            ref = None if receipt is None else receipt.venue_ref
            self.store.set_intent_status(
                intent_id,
                status,
                now,
                venue=venue,
                venue_ref=ref,
                error=error,
                notes=[
                    note(
                        severity,
                        kind,
                        f"{venue}: {what} {message}",
                        desk=self.desk,
                        venue=venue,
                        asset=req.asset,
                        detail=f"intent {intent_id}: {detail}",
                    )
                ],
            )
            return Outcome(intent_id, status, receipt)

        try:
            receipt = await self.transfers.submit(req)
            self.last_submitted_at = time.perf_counter()
        except TransferRefused as e:  # nothing moved
            return record(IntentStatus.FAILED, "critical", "transfer_failed", "refused", str(e), error=str(e))
        except (
            VenueUnavailable,
            RateLimited,
            VenueBanned,
            KeyRejected,
        ) as e:  # refused at the door: nothing moved
            return record(
                IntentStatus.FAILED,
                "critical",
                "transfer_failed",
                "not sent, venue unreachable",
                str(e),
                error=str(e),
            )
        except (
            Exception
        ) as e:  # UnknownOutcome, or anything unexpected: it may have happened, so never re-send
            if not isinstance(e, UnknownOutcome):
                log.error("unexpected error from transfer submit", intent=intent_id, error=type(e).__name__)
            return record(
                IntentStatus.UNKNOWN,
                "critical",
                "unknown_intent",
                "outcome unknown; route blocked",
                "it will be looked up at the venue before anything else moves",
                error=f"{type(e).__name__}: {e}",
            )
        if receipt.state is None:  # an answer with no usable status: it may or may not have happened
            return record(
                IntentStatus.UNKNOWN,
                "critical",
                "unknown_intent",
                "outcome unknown; route blocked",
                "the answer carried no status; it will be looked up",
                error="the venue's answer carried no status",
                receipt=receipt,
            )
        return record(
            IntentStatus.SUBMITTED,
            "info",
            "transfer",
            "submitted",
            f"venue ref {receipt.venue_ref}",
            receipt=receipt,
        )
