"""Route choice: bucket order, cost, splitting, and rolling 24 h limits."""

from decimal import Decimal

from bot.core.actions import IntentStatus
from bot.core.routing import plan_topup, route_remaining, route_spent_24h
from tests.builders import NOW, intent, route

RANK = {"buffer": 0, "trading": 1, "emergency": 2}
PRICES = {"USDT": 1.0}
FULL = {"buffer": {"USDT": Decimal(10_000_000)}, "emergency": {"USDT": Decimal(10_000_000)}}


def _plan(need: float, routes, remaining=None, available=None):  # type: ignore[no-untyped-def]
    remaining = remaining or {r.name: r.daily_limit for r in routes}
    return plan_topup(
        need, routes, prices=PRICES, haircuts={}, remaining=remaining, available=available or FULL, rank=RANK
    )


def test_buffer_bucket_is_drawn_before_emergency_even_when_dearer() -> None:
    """The emergency bucket is the last resort, whatever its fee."""
    cheap_emergency = route("em", source="emergency", bucket="emergency", fee="0")
    dear_buffer = route("buf", fee="5")
    legs, short = _plan(100_000, [cheap_emergency, dear_buffer])
    assert [leg.route.name for leg in legs] == ["buf"]
    assert short == 0


def test_cheapest_route_first_within_a_bucket() -> None:
    """Between two buffer routes the one with the lower fee carries the top-up."""
    legs, _ = _plan(100_000, [route("dear", fee="25"), route("cheap", fee="1")])
    assert legs[0].route.name == "cheap"


def test_top_up_is_grossed_up_for_fee_and_rounded_up_to_the_step() -> None:
    """The amount sent covers the fee and never falls short by rounding."""
    legs, _ = _plan(100_000.004, [route("r", fee="1", step="1")])
    assert legs[0].amount == Decimal(100_002)
    assert legs[0].delivered_usd >= 100_000.004


def test_split_over_routes_when_one_route_is_too_small() -> None:
    """A need above one route's per-transfer limit spills onto the next route."""
    legs, short = _plan(3_000_000, [route("a", max_amount="2000000"), route("b", fee="1")])
    assert [(leg.route.name, leg.amount) for leg in legs] == [
        ("a", Decimal(2_000_000)),
        ("b", Decimal("1000001.00")),
    ]
    assert short == 0


def test_rolling_daily_limit_caps_a_route_and_reports_the_shortfall() -> None:
    """A route with 400k left today carries 400k, and what no route can carry is reported short."""
    r = route("a", daily_limit="5000000")
    legs, short = _plan(1_000_000, [r], remaining={"a": Decimal(400_000)})
    assert legs[0].amount == Decimal(400_000)
    assert short == 600_000


def test_source_balance_caps_a_leg() -> None:
    """A route cannot send more than its source account holds."""
    legs, short = _plan(500_000, [route("a")], available={"buffer": {"USDT": Decimal(200_000)}})
    assert legs[0].amount == Decimal(200_000)
    assert short == 300_000


def test_a_route_whose_cap_is_below_its_minimum_is_skipped() -> None:
    """A leg smaller than the route's minimum is never planned."""
    legs, short = _plan(500, [route("a", min_amount="1000")], remaining={"a": Decimal(999)})
    assert legs == []
    assert short == 500


def test_in_flight_and_unknown_count_as_spent_failed_does_not() -> None:
    """Submitted and unknown moves use the daily limit; failed and expired ones do not."""
    intents = [intent("a", "100", status=s, ident=s.value) for s in IntentStatus]
    spent = route_spent_24h("a", intents, NOW)
    assert spent == Decimal(400)  # approved, submitted, unknown, confirmed


def test_the_24h_window_at_its_edges() -> None:
    """A move exactly 24 h old no longer counts; one a second younger still does."""
    r = route("a", daily_limit="1000")
    old = intent("a", "600", created_at=NOW - 86_400)
    young = intent("a", "300", created_at=NOW - 86_399, ident="i2")
    assert route_remaining(r, [old, young], NOW) == Decimal(700)


def test_a_backwards_clock_step_never_frees_budget() -> None:
    """Moves stamped after `now` (the clock jumped back) still count against the window."""
    r = route("a", daily_limit="1000")
    later = intent("a", "900", created_at=NOW + 3600)
    assert route_remaining(r, [later], NOW) == Decimal(100)
