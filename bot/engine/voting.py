"""Casting an approval vote, the same way for the command line and for scenario events.

The vote is applied under a row lock with its audit record (`Store.vote`); the running bot is told to
reload its intents, and sends an approved move at its next cycle.
"""

from __future__ import annotations

import hashlib
import hmac

from bot.core.approvals import Counted, Refused, Request, Vote
from bot.engine.killswitch import KillSwitch
from bot.notify import note
from bot.store.repo import Note, Store


def secret_matches(secret: str | None, configured_sha256: str | None) -> bool:
    """The approver's secret hashes to the sha256 in config (constant-time compare; no secret, no match)."""
    if not secret or not configured_sha256:
        return False
    return hmac.compare_digest(hashlib.sha256(secret.encode()).hexdigest(), configured_sha256)


def oldest_pending(store: Store) -> str | None:
    pending = [a for a in store.approval_rows() if a["status"] == "pending"]
    return min(pending, key=lambda a: (a["created_at"], a["id"]))["id"] if pending else None


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

    row = next((a for a in store.approval_rows() if a["id"] == request_id), None)
    params_hash = expected_hash or (row["params_hash"] if row else "")
    vote = Vote(approver, approve, params_hash, authenticated, reason)
    result, req = store.vote(request_id, vote, now, notes_for=notes)
    if isinstance(result, Counted):
        KillSwitch(store, poll_seconds=0, desk=desk).mark_intents_changed(
            now, by=approver, intent_id=request_id
        )
    return result, req
