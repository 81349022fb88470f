"""The approval policy and the voting rules, at their boundaries."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.core.approvals import (
    BOT_NAME,
    Allowed,
    ApprovalPolicy,
    Counted,
    Denied,
    NeedsApproval,
    Refused,
    Request,
    Rule,
    Vote,
    cast,
    evaluate,
)
from bot.core.numbers import AmountError, parse_amount

POLICY = ApprovalPolicy(
    auto_limit_usd=Decimal(250_000),
    daily_auto_limit_usd=Decimal(1_000_000),
    approvers=("alice", "bob", "carol"),
    quorum=2,
    rules=(Rule(3, ("alice", "bob", "carol"), bucket="emergency"), Rule(1, ("carol",), route="small-route")),
)
STEP = Decimal("0.01")


def _eval(
    usd: str,
    *,
    bucket: str = "buffer",
    route: str = "r",
    spent: str = "0",
    max_amount: str = "2000000",
    remaining: str = "5000000",
):  # type: ignore[no-untyped-def]
    return evaluate(
        POLICY,
        route=route,
        bucket=bucket,
        usd=Decimal(usd),
        amount=Decimal(usd),
        max_amount=Decimal(max_amount),
        route_remaining=Decimal(remaining),
        auto_spent_24h=Decimal(spent),
    )


def test_exactly_at_the_automatic_limit_runs() -> None:
    """A move of exactly auto_limit_usd runs without approval."""
    assert isinstance(_eval("250000"), Allowed)


def test_one_step_above_the_automatic_limit_needs_a_quorum() -> None:
    """One cent above the limit waits for two of the three approvers."""
    v = _eval(str(Decimal(250_000) + STEP))
    assert isinstance(v, NeedsApproval)
    assert (v.quorum, v.approvers) == (2, ("alice", "bob", "carol"))


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_zero_and_negative_moves_are_denied(bad: str) -> None:
    """A zero or negative amount is denied outright, never sent for approval."""
    assert isinstance(_eval(bad), Denied)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_moves_are_denied(bad: str) -> None:
    """NaN and infinities are denied."""
    assert isinstance(
        evaluate(
            POLICY,
            route="r",
            bucket="buffer",
            usd=Decimal(bad),
            amount=Decimal(bad),
            max_amount=Decimal(10),
            route_remaining=Decimal(10),
            auto_spent_24h=Decimal(0),
        ),
        Denied,
    )


@pytest.mark.parametrize("text", ["1,000", "1e308", "100.001"])
def test_malformed_or_too_precise_amounts_never_reach_the_policy(text: str) -> None:
    """'1,000', absurd magnitudes and more decimals than the step allows are refused at parsing."""
    with pytest.raises(AmountError):
        parse_amount(text, step=STEP)


def test_route_hard_limits_deny() -> None:
    """Above the route's per-transfer or remaining daily limit, a move is denied, not queued."""
    assert isinstance(_eval("100", max_amount="99"), Denied)
    assert isinstance(_eval("100", remaining="99.99"), Denied)


def test_the_daily_automatic_budget_at_its_edge() -> None:
    """Automatic moves may fill the 24 h budget exactly; one cent more needs approval."""
    assert isinstance(_eval("200000", spent="800000"), Allowed)
    assert isinstance(_eval("200000.01", spent="800000"), NeedsApproval)


def test_the_emergency_bucket_always_needs_its_own_quorum() -> None:
    """Even one dollar from the emergency bucket needs approval, by the bucket rule's quorum of three."""
    v = _eval("1", bucket="emergency")
    assert isinstance(v, NeedsApproval)
    assert v.quorum == 3


def test_a_route_rule_sets_the_quorum_and_group() -> None:
    """A route rule replaces the default quorum and approver group for that route."""
    v = _eval("300000", route="small-route")
    assert isinstance(v, NeedsApproval)
    assert (v.quorum, v.approvers) == (1, ("carol",))


# --- votes -------------------------------------------------------------------------------------------------
REQ = Request(
    id="req1",
    params_hash="h1",
    status="pending",
    quorum=2,
    eligible=("alice", "bob", "carol"),
    approvers=(),
    expires_at=1000.0,
)


def _vote(approver: str = "alice", *, approve: bool = True, h: str = "h1", ok: bool = True) -> Vote:
    return Vote(approver, approve, h, ok)


def test_quorum_of_distinct_approvers_approves() -> None:
    """The first approval counts, the second distinct one approves the request."""
    first = cast(REQ, _vote("alice"), 10.0)
    assert first == Counted("pending", ("alice",))
    second = cast(_with(REQ, approvers=("alice",)), _vote("bob"), 11.0)
    assert second == Counted("approved", ("alice", "bob"))


def _with(req: Request, **kw: object) -> Request:
    import dataclasses

    return dataclasses.replace(req, **kw)  # type: ignore[arg-type]


def test_the_bot_can_never_approve() -> None:
    """Self-approval by the requester is refused, whatever its credentials."""
    assert isinstance(cast(_with(REQ, eligible=(BOT_NAME, "alice")), _vote(BOT_NAME), 10.0), Refused)


def test_a_duplicate_approver_counts_once() -> None:
    """alice approving twice does not make a quorum of two."""
    r = cast(_with(REQ, approvers=("alice",)), _vote("alice"), 10.0)
    assert isinstance(r, Refused)
    assert "counts once" in r.reason


def test_an_approver_not_in_the_list_is_refused() -> None:
    """Someone outside the request's approver group cannot vote on it."""
    assert isinstance(cast(REQ, _vote("mallory"), 10.0), Refused)


def test_a_wrong_secret_is_refused() -> None:
    """An approver whose secret did not match is refused."""
    r = cast(REQ, _vote("alice", ok=False), 10.0)
    assert isinstance(r, Refused)
    assert "secret" in r.reason


def test_an_approval_after_expiry_is_refused() -> None:
    """At or after expires_at, votes no longer count."""
    assert isinstance(cast(REQ, _vote(), 1000.0), Refused)
    assert isinstance(cast(REQ, _vote(), 999.99), Counted)


def test_an_approval_of_a_changed_move_does_not_bind() -> None:
    """An approval given for other parameters (a re-sized amount) is refused."""
    r = cast(REQ, _vote(h="h-other"), 10.0)
    assert isinstance(r, Refused)
    assert "changed" in r.reason


def test_a_used_approval_cannot_be_replayed_on_a_decided_request() -> None:
    """Once approved (or rejected), a request takes no more votes: approvals are single use."""
    for status in ("approved", "rejected", "expired"):
        assert isinstance(cast(_with(REQ, status=status), _vote("carol"), 10.0), Refused)


def test_a_single_rejection_ends_the_request_even_before_quorum() -> None:
    """One rejection, even after one approval, rejects the request."""
    r = cast(_with(REQ, approvers=("alice",)), _vote("bob", approve=False), 10.0)
    assert r == Counted("rejected", ("alice",))
