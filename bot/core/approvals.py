"""The approval policy for one proposed move: Allowed | NeedsApproval(reason) | Denied(reason).

Refusals are results, not exceptions: the engine turns them into audit records and notifications.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Allowed:
    reason: str = "within automatic limits"
    break_glass: bool = False  # sent before approval at the de-risk level (stored as a flag on the intent)


@dataclass(frozen=True, slots=True)
class NeedsApproval:
    reason: str
    quorum: int
    approvers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Denied:
    reason: str


Verdict = Allowed | NeedsApproval | Denied


@dataclass(frozen=True, slots=True)
class Rule:
    """An override: approvals of moves on this route, or from this bucket, need `quorum` of `approvers`."""

    quorum: int
    approvers: tuple[str, ...]
    bucket: str | None = None
    route: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    auto_limit_usd: Decimal
    daily_auto_limit_usd: Decimal
    approvers: tuple[str, ...]
    quorum: int
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    break_glass_usd: Decimal | None = None


def evaluate(
    policy: ApprovalPolicy,
    *,
    route: str,
    bucket: str,
    usd: Decimal,
    amount: Decimal,
    max_amount: Decimal,
    route_remaining: Decimal,
    auto_spent_24h: Decimal,
) -> Verdict:
    """Judge one move: hard limits deny, soft limits ask for a quorum, the rest runs automatically."""
    if not amount.is_finite() or amount <= 0 or not usd.is_finite() or usd < 0:
        return Denied(f"invalid amount {amount}")
    if amount > max_amount:
        return Denied(f"amount {amount} above the route's per-transfer limit {max_amount}")
    if amount > route_remaining:
        return Denied(f"amount {amount} above the route's remaining 24 h limit {route_remaining}")
    quorum, approvers = policy.quorum, policy.approvers
    for rule in policy.rules:  # ordered, most restrictive first: the first match sets quorum and group
        if (rule.route is not None and rule.route == route) or (
            rule.bucket is not None and rule.bucket == bucket
        ):
            quorum, approvers = rule.quorum, rule.approvers
            break
    if bucket == "emergency":
        return NeedsApproval("the emergency bucket always needs approval", quorum, approvers)
    if usd > policy.auto_limit_usd:
        return NeedsApproval(
            f"{usd} USD above the automatic limit {policy.auto_limit_usd}", quorum, approvers
        )
    if auto_spent_24h + usd > policy.daily_auto_limit_usd:
        return NeedsApproval(
            f"automatic moves in 24 h would reach {auto_spent_24h + usd} USD, above {policy.daily_auto_limit_usd}",
            quorum,
            approvers,
        )
    return Allowed()


# --- deciding a request: pure rules for one vote -----------------------------------------------------------
BOT_NAME = "marginbot"  # the requester: it can never approve
BREAK_GLASS = "break-glass"  # the verdict text of a move sent before approval at the de-risk level


@dataclass(frozen=True, slots=True)
class Request:
    """An approval request as stored: it binds one exact move by its parameter hash."""

    id: str
    params_hash: str
    status: str  # pending | approved | rejected | expired
    quorum: int
    eligible: tuple[str, ...]
    approvers: tuple[str, ...]  # who has approved so far, in order
    expires_at: float


@dataclass(frozen=True, slots=True)
class Vote:
    approver: str
    approve: bool  # False: reject
    params_hash: str  # the move the approver was shown
    authenticated: bool  # the approver's secret matched its configured hash
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Counted:
    """The vote counts; `status` is the request's status after it (pending, approved or rejected)."""

    status: str
    approvers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


def cast(request: Request, vote: Vote, now: float) -> Counted | Refused:
    """Apply one vote to a request, or say why it does not count. Every attempt is audited by the caller."""
    if vote.approver == BOT_NAME:
        return Refused("the bot requested this move and can never approve it")
    if not vote.authenticated:
        return Refused(f"{vote.approver}: secret does not match")
    if vote.approver not in request.eligible:
        return Refused(f"{vote.approver} is not an approver for this request ({', '.join(request.eligible)})")
    if request.status != "pending":
        return Refused(f"request is {request.status}: votes are single use and a decided request is closed")
    if now >= request.expires_at:
        return Refused("request has expired")
    if vote.params_hash != request.params_hash:
        return Refused("the move changed since it was shown: this approval does not bind it")
    if vote.approver in request.approvers:
        return Refused(f"{vote.approver} has already approved: an approver counts once")
    if not vote.approve:
        return Counted("rejected", request.approvers)
    approvers = (*request.approvers, vote.approver)
    return Counted("approved" if len(set(approvers)) >= request.quorum else "pending", approvers)
