"""`marginbot intents` and `marginbot approvals`: the open intents and the approval requests, JSON-ready and as
lines for people. Reads only."""

from __future__ import annotations

from typing import Any

from bot.cli_text import iso, pct
from bot.core.actions import OPEN_STATUSES
from bot.store.repo import Store
from bot.store.rows import ApprovalRow, IntentRow

# unknown outcomes first, then in flight, then awaiting approval
_URGENCY = {"unknown": 0, "approved": 1, "submitted": 2, "pending_approval": 3, "proposed": 4}


def open_intents(store: Store) -> list[dict[str, Any]]:
    """Open intents, most urgent first, then oldest first."""
    rows = [r for r in store.intents.rows() if r.status in OPEN_STATUSES]
    rows.sort(key=lambda r: (_URGENCY.get(r.status.value, 9), r.created_at))
    return [
        {
            "id": r.id,
            "status": r.status.value,
            "kind": r.kind.value,
            "venue": r.venue,
            "route": r.route,
            "asset": r.asset,
            "amount": format(r.amount, "f"),
            "usd": format(r.usd, "f"),
            "created_at": iso(r.created_at),
            "venue_ref": r.venue_ref,
            "error": r.error,
        }
        for r in rows
    ]


def intent_lines(out: list[dict[str, Any]]) -> list[str]:
    if not out:
        return ["no open intents"]
    return [
        f"{r['id']}  {r['status']:<16} {r['kind']:<5} {r['amount']} {r['asset']} via {r['route']} "
        f"({r['venue']}) since {r['created_at']}" + (f"  last error: {r['error']}" if r["error"] else "")
        for r in out
    ]


def approval_list(store: Store) -> list[dict[str, Any]]:
    """Every approval request, pending first, then newest first, with the move it binds."""
    intents = {r.id: r for r in store.intents.rows()}
    rows = sorted(store.approvals.rows(), key=lambda a: (a.status != "pending", -a.created_at))
    return [_approval(a, intents.get(a.intent_id)) for a in rows]


def _approval(a: ApprovalRow, i: IntentRow | None) -> dict[str, Any]:
    return {
        "id": a.id,
        "status": a.status,
        "venue": None if i is None else i.venue,
        "route": None if i is None else i.route,
        "kind": None if i is None else i.kind.value,
        "asset": None if i is None else i.asset,
        "amount": None if i is None else format(i.amount, "f"),
        "usd": None if i is None else format(i.usd, "f"),
        "destination": None if i is None else i.destination,
        "address": None if i is None else i.address,
        "quorum": a.quorum,
        "eligible": list(a.eligible),
        "approvers": list(a.approvers),
        "reason": a.reason,
        "utilization_before": None if i is None else i.utilization_before,
        "utilization_after": None if i is None else i.utilization_after,
        "created_at": iso(a.created_at),
        "expires_at": iso(a.expires_at),
        "decided_at": None if a.decided_at is None else iso(a.decided_at),
        "params_hash": a.params_hash,
    }


def approval_lines(out: list[dict[str, Any]]) -> list[str]:
    if not out:
        return ["no approval requests"]
    return [
        f"{r['id']}  {r['status']:<9} {r['kind']} {r['amount']} {r['asset']} via {r['route']} → "
        f"{r['venue']} ({pct(r['utilization_before']).strip()} → {pct(r['utilization_after']).strip()}); "
        f"{len(r['approvers'])}/{r['quorum']} of {', '.join(r['eligible'])}"
        + (f" [{', '.join(r['approvers'])}]" if r["approvers"] else "")
        + f"; expires {r['expires_at']}; why: {r['reason']}"
        for r in out
    ]
