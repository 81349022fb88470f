"""Approving and rejecting a request, the same way for the command line, scenario events and the web.

The vote is applied under a row lock with its audit record (`ApprovalRepo.vote`), refused attempts included;
the running bot is told to reload its intents, and sends an approved move at its next cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.approvals import Counted, Refused, Request, Vote
from bot.engine.killswitch import KillSwitch
from bot.notify import note
from bot.service.identity import SecretSource, authenticated
from bot.settings import Settings
from bot.store.repo import Store
from bot.store.rows import Note


@dataclass(frozen=True, slots=True)
class VoteResult:
    """What a vote did: counted (the request's status after it) or refused (why); `request` as it was before
    the vote, None when there is no such request."""

    outcome: Counted | Refused
    request: Request | None


def vote(
    s: Settings,
    store: Store,
    request_id: str,
    *,
    by: str,
    approve: bool,
    secret: SecretSource,
    now: float,
    reason: str = "",
) -> VoteResult:
    """A person's vote: a name that is not an approver, or a wrong secret, is a refused (and audited) vote."""
    result, req = cast_vote(
        store,
        request_id,
        approver=by,
        approve=approve,
        authenticated=authenticated(s, by, secret),
        now=now,
        desk=s.bot.desk,
        reason=reason,
    )
    return VoteResult(result, req)


def oldest_pending(store: Store) -> str | None:
    """The id of the oldest pending request, if any."""
    pending = [a for a in store.approvals.rows() if a.status == "pending"]
    return min(pending, key=lambda a: (a.created_at, a.id)).id if pending else None


def cast_vote(
    store: Store,
    request_id: str,
    *,
    approver: str,
    approve: bool,
    authenticated: bool,
    now: float,
    desk: str,
    reason: str = "",
    expected_hash: str | None = None,
) -> tuple[Counted | Refused, Request | None]:
    """Apply one vote; `expected_hash` pins the exact move the approver was shown (default: the stored one)."""

    def notes(result: Counted | Refused, req: Request) -> list[Note]:
        return _notes(result, req, approver=approver, approve=approve, reason=reason, desk=desk)

    row = store.approvals.get(request_id)
    params_hash = expected_hash or (row.params_hash if row else "")
    ballot = Vote(approver, approve, params_hash, authenticated, reason)
    result, req = store.approvals.vote(request_id, ballot, now, notes_for=notes)
    if isinstance(result, Counted):
        KillSwitch(store, poll_seconds=0, desk=desk).mark_intents_changed(
            now, by=approver, intent_id=request_id
        )
    return result, req


def _notes(
    result: Counted | Refused, req: Request, *, approver: str, approve: bool, reason: str, desk: str
) -> list[Note]:
    verb = "approval" if approve else "rejection"
    if isinstance(result, Refused):
        return [
            note(
                "warning",
                "approval",
                f"{verb} of request {req.id} by {approver} refused: {result.reason}",
                desk=desk,
            )
        ]
    if result.status == "approved":
        msg = f"request {req.id} approved by {', '.join(result.approvers)}: it goes at the next cycle"
    elif result.status == "rejected":
        msg = f"request {req.id} rejected by {approver}" + (f": {reason}" if reason else "")
    else:
        msg = f"request {req.id} approved by {approver} ({len(result.approvers)} of {req.quorum})"
    return [note("warning" if result.status == "rejected" else "info", "approval", msg, desk=desk)]
