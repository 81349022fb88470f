"""The approval policy for one proposed move: Allowed | NeedsApproval(reason) | Denied(reason).

Refusals are results, not exceptions: the engine turns them into audit records and notifications.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Allowed:
    reason: str = "within automatic limits"


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
