"""decide(): the treasury policy as a pure function, case by case."""

from decimal import Decimal

from bot.core.actions import IntentStatus, TransferKind
from bot.core.approvals import Allowed, NeedsApproval
from bot.core.decide import decide
from bot.core.fsm import Trigger, VenueState
from bot.core.policy import Regime
from tests.builders import NOW, intent, policy, route, snapshot, world

ROUTES = (
    route("buf-to-v1"),
    route("em-to-v1", source="emergency", bucket="emergency"),
    route("v1-to-buf", kind=TransferKind.SWEEP),
)
POLICY = policy(ROUTES)
BAL = {"buffer": {"USDT": Decimal(50_000_000)}, "emergency": {"USDT": Decimal(50_000_000)}}
BUCKETS = {"emergency": "emergency"}


def _decide(snap, **kw):  # type: ignore[no-untyped-def]
    pol = kw.pop("pol", POLICY)
    kw.setdefault("balances", BAL)
    kw.setdefault("buckets", BUCKETS)
    return decide(world({"v1": snap}, **kw), pol)


def test_inside_the_band_nothing_moves() -> None:
    """A 60% utilization (40% buffer) is inside the 20–60% band: no action, no alert."""
    d = _decide(snapshot(usdt=1_500_000))
    assert d.actions == ()
    assert d.alerts == ()


def test_a_buffer_below_min_tops_up_to_target_automatically() -> None:
    """Buffer 10% < 20%: one top-up from the buffer bucket restores 30%, within the automatic limit."""
    d = _decide(snapshot(usdt=1_000_000))  # IM 900k: u = 90%
    assert len(d.actions) == 1
    p = d.actions[0]
    assert p.action.route == "buf-to-v1"
    assert p.action.kind is TransferKind.TOPUP
    assert p.action.amount == Decimal("285714.29")  # 900k / 0.7 − 1M, rounded up to the cent
    assert isinstance(p.verdict, Allowed)
    assert p.action.utilization_after < 0.70 + 1e-9 < p.action.utilization_before
    assert [t.trigger for t in d.transitions] == [Trigger.TRANSFER_IN_FLIGHT]
    assert {a.kind for a in d.alerts} == {"utilization"}


def test_a_top_up_above_the_automatic_limit_waits_for_approval() -> None:
    """A 600k top-up above the 500k automatic limit becomes a request, and the venue awaits approval."""
    d = _decide(snapshot(usdt=685_714))
    p = d.actions[0]
    assert isinstance(p.verdict, NeedsApproval)
    assert p.verdict.quorum == 2
    assert d.transitions[0].after is VenueState.AWAITING_APPROVAL


def test_emergency_bucket_always_needs_approval() -> None:
    """When only the emergency bucket can pay, even a small top-up waits for humans."""
    d = _decide(snapshot(usdt=1_100_000), balances={"buffer": {}, "emergency": {"USDT": Decimal(9_000_000)}})
    assert [p.action.route for p in d.actions] == ["em-to-v1"]
    assert isinstance(d.actions[0].verdict, NeedsApproval)


def test_transfers_in_flight_are_counted_not_doubled() -> None:
    """A top-up already on its way that restores the band stops a second one."""
    inflight = intent("buf-to-v1", "300000")
    d = _decide(snapshot(usdt=1_000_000), intents=(inflight,))
    assert d.actions == ()
    assert d.transitions[0].after is VenueState.TOPPING_UP


def test_a_partial_in_flight_top_up_is_completed_not_repeated() -> None:
    """With 100k already on its way, only the rest is asked for."""
    d = _decide(snapshot(usdt=1_000_000), intents=(intent("buf-to-v1", "100000"),))
    assert d.actions[0].action.amount == Decimal("185714.29")


def test_no_new_request_while_one_awaits_approval() -> None:
    """A pending request for the venue holds further top-ups."""
    pending = intent("buf-to-v1", "700000", status=IntentStatus.PENDING_APPROVAL, automatic=False)
    d = _decide(snapshot(usdt=600_000), intents=(pending,))
    assert d.actions == ()
    assert d.transitions[0].after is VenueState.AWAITING_APPROVAL


def test_an_unknown_outcome_blocks_its_route_and_pages() -> None:
    """A transfer of unknown outcome blocks its route (the next one carries the need) and raises a critical alert."""
    unknown = intent("buf-to-v1", "1000", status=IntentStatus.UNKNOWN)
    d = _decide(snapshot(usdt=1_000_000), intents=(unknown,))
    assert all(p.action.route != "buf-to-v1" for p in d.actions)
    assert any(a.kind == "unknown_intent" and a.severity == "critical" for a in d.alerts)


def test_stale_data_is_never_decided_on() -> None:
    """Data older than max_data_age_seconds: no action, venue stale, a warning."""
    d = _decide(snapshot(usdt=500_000, ts=NOW - 31))
    assert d.actions == ()
    assert d.transitions[0].after is VenueState.STALE
    assert [a.kind for a in d.alerts] == ["stale"]


def test_an_unreachable_venue_is_stale() -> None:
    """No snapshot at all is treated like stale data."""
    d = decide(world({"v1": None}), POLICY)
    assert d.actions == ()
    assert d.transitions[0].after is VenueState.STALE


def test_excess_is_swept_down_to_target_within_the_automatic_budget() -> None:
    """Buffer 70% > 60%: sweep back toward 30%, no more than the automatic limit in one go."""
    d = _decide(snapshot(usdt=3_000_000))  # u = 30%: excess above target is 1,714,285
    assert len(d.actions) == 1
    a = d.actions[0].action
    assert a.kind is TransferKind.SWEEP
    assert a.route == "v1-to-buf"
    assert a.amount == Decimal(500_000)
    assert isinstance(d.actions[0].verdict, Allowed)


def test_no_sweep_while_anything_is_open_for_the_venue() -> None:
    """Sweeps wait until the venue has nothing in flight, so money never ping-pongs."""
    d = _decide(snapshot(usdt=3_000_000), intents=(intent("buf-to-v1", "1000"),))
    assert d.actions == ()


def test_high_vol_regime_raises_the_band() -> None:
    """A 40% buffer is fine in normal times but below the 40–80% high-vol band's target once it dips."""
    assert _decide(snapshot(usdt=1_450_000)).actions == ()
    d = _decide(snapshot(usdt=1_450_000), regime=Regime.HIGH_VOL)
    assert d.actions[0].action.amount == Decimal(350_000)  # 900k / 0.5 − 1.45M


def test_critical_liquidation_ratio_is_a_critical_alert_and_state() -> None:
    """m ≥ derisk_mm_ratio puts the venue in `critical` with a critical alert."""
    d = _decide(snapshot(usdt=180_000))  # MM 145k / 180k = 80%
    assert d.transitions[0].after is VenueState.CRITICAL
    assert any(a.kind == "derisk" and a.severity == "critical" for a in d.alerts)


def test_a_halted_bot_moves_nothing() -> None:
    """With the kill switch on, every venue goes to `halted` and no action is proposed."""
    w = world({"v1": snapshot(usdt=500_000)}, balances=BAL)
    halted = type(w)(**{**{f: getattr(w, f) for f in w.__dataclass_fields__}, "halted": True})
    d = decide(halted, POLICY)
    assert d.actions == ()
    assert d.transitions[0].after is VenueState.HALTED


def test_the_same_trigger_decided_twice_has_the_same_intent_id() -> None:
    """Idempotency keys derive from the observation, so deciding it again yields the same ids."""
    snap = snapshot(usdt=1_000_000)
    assert [p.action.intent_id for p in _decide(snap).actions] == [
        p.action.intent_id for p in _decide(snap).actions
    ]
    later = snapshot(usdt=1_000_000, ts=NOW + 5)
    assert (
        _decide(later, now=NOW + 5).actions[0].action.intent_id != _decide(snap).actions[0].action.intent_id
    )


def test_automatic_top_ups_still_go_while_a_request_waits() -> None:
    """A pending emergency request does not hold a top-up the buffer bucket can make automatically."""
    pending = intent("em-to-v1", "100000", status=IntentStatus.PENDING_APPROVAL, automatic=False)
    d = _decide(snapshot(usdt=1_000_000), intents=(pending,))
    assert [p.action.route for p in d.actions] == ["buf-to-v1"]
    assert isinstance(d.actions[0].verdict, Allowed)


def _glass_policy(amount: str = "100000"):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(
        POLICY, approvals=dataclasses.replace(POLICY.approvals, break_glass_usd=Decimal(amount))
    )


def test_break_glass_sends_a_capped_move_at_the_derisk_level_while_approval_waits() -> None:
    """At m ≥ de-risk with the top-up waiting for people, up to break_glass_usd goes at once, with a page."""
    d = _decide(snapshot(usdt=180_000), pol=_glass_policy())  # m = 145k / 180k = 80%
    requests = [p for p in d.actions if not p.action.trigger.startswith("break-glass")]
    assert any(isinstance(p.verdict, NeedsApproval) for p in requests)  # the full top-up still asks people
    glass = [p for p in d.actions if p.action.trigger.startswith("break-glass")]
    assert len(glass) == 1
    assert isinstance(glass[0].verdict, Allowed)
    assert glass[0].action.usd <= Decimal(100_000)
    assert any(a.kind == "break_glass" and a.severity == "critical" for a in d.alerts)


def test_break_glass_goes_once_per_waiting_request() -> None:
    """While its break-glass move is on record, no second one is sent for the same waiting request."""
    pending = intent(
        "buf-to-v1", "1000000", status=IntentStatus.PENDING_APPROVAL, automatic=False, ident="p1"
    )
    glass = intent("buf-to-v1", "100000", created_at=NOW + 1, ident="g1")
    glass = type(glass)(**{**{f: getattr(glass, f) for f in glass.__dataclass_fields__}, "break_glass": True})
    d = _decide(
        snapshot(usdt=180_000, ts=NOW + 5), pol=_glass_policy(), intents=(pending, glass), now=NOW + 5
    )
    assert not [p for p in d.actions if p.action.trigger.startswith("break-glass")]


def test_no_break_glass_below_the_derisk_level() -> None:
    """Waiting for approval at an ordinary breach is not an emergency: nothing goes before approval."""
    d = _decide(snapshot(usdt=685_714), pol=_glass_policy())
    assert not [p for p in d.actions if p.action.trigger.startswith("break-glass")]


def test_the_automatic_budget_is_not_freed_by_a_backwards_clock() -> None:
    """Automatic moves stamped after `now` (the clock stepped back) still use the 24 h automatic budget."""
    pol = _glass_policy()
    import dataclasses

    tight = dataclasses.replace(
        pol, approvals=dataclasses.replace(pol.approvals, daily_auto_limit_usd=Decimal(500_000))
    )
    later = intent("buf-to-v1", "400000", status=IntentStatus.CONFIRMED, created_at=NOW + 3600, venue="other")
    d = _decide(snapshot(usdt=1_000_000), pol=tight, intents=(later,))
    assert isinstance(d.actions[0].verdict, NeedsApproval)  # 285k more would exceed the 500k daily budget
    old = intent("buf-to-v1", "400000", status=IntentStatus.CONFIRMED, created_at=NOW - 86_400, venue="other")
    assert isinstance(
        _decide(snapshot(usdt=1_000_000), pol=tight, intents=(old,)).actions[0].verdict, Allowed
    )


def test_break_glass_respects_what_this_cycle_already_uses_of_a_route() -> None:
    """An automatic leg and a break-glass move on one route never exceed its 24 h limit together."""
    import dataclasses

    routes = (route("a", max_amount="200000", daily_limit="250000"), route("b", fee="1"))
    pol = dataclasses.replace(
        policy(routes),
        approvals=dataclasses.replace(policy(routes).approvals, break_glass_usd=Decimal(100_000)),
    )
    d = _decide(snapshot(usdt=180_000), pol=pol)
    on_a = sum((p.action.amount for p in d.actions if p.action.route == "a"), Decimal(0))
    assert any(p.action.trigger.startswith("break-glass") for p in d.actions)
    assert on_a <= Decimal(250_000)
