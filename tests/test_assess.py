"""The per-venue assessment: one rule per field, and the one top-up rule `decide` and `stress` share."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.core.actions import IntentStatus, TransferKind
from bot.core.assess import (
    SWEEP_MIN_FRACTION,
    SWEEP_MM_MARGIN,
    assess_figures,
    assess_venue,
)
from bot.core.decide import decide
from bot.core.margin import Figures, figures
from bot.core.numbers import round_up, to_decimal
from bot.core.policy import Level, Regime
from bot.core.stress import NOW_SCENARIO, assess_scenario
from bot.core.world import AccountSnapshot, VenueSnapshot
from tests.builders import NOW, VPOL, intent, policy, route, snapshot, world

ROUTES = (route("buf-to-v1"),)
HORIZON = NOW + 60.0


def _own(s: VenueSnapshot) -> Figures:
    return figures(s.collateral, s.positions, s.prices, s.haircuts, s.params)


def test_the_figures_are_the_venues_own_where_it_reports_them_else_computed() -> None:
    """A snapshot with reported figures is judged on them; without, on `margin.figures` of the snapshot."""
    s = snapshot(usdt=1_500_000)
    assert assess_venue(s, VPOL, Regime.NORMAL).figures == _own(s)
    reported = Figures(1_000_000.0, 500_000.0, 50_000.0, 0.5, 0.05)
    assert assess_venue(replace(s, reported=reported), VPOL, Regime.NORMAL).figures is reported


def test_the_level_follows_the_alert_and_derisk_levels_of_the_observed_figures() -> None:
    """u 60% is ok, u 90% is alert (≥ 80%), m ≥ 75% is critical."""
    assert assess_venue(snapshot(usdt=1_500_000), VPOL, Regime.NORMAL).level is Level.OK
    assert assess_venue(snapshot(usdt=1_000_000), VPOL, Regime.NORMAL).level is Level.ALERT
    assert assess_venue(snapshot(usdt=190_000), VPOL, Regime.NORMAL).level is Level.CRITICAL


def test_the_band_is_the_regimes() -> None:
    """The normal band in normal times, the high-vol band in high vol."""
    s = snapshot()
    assert assess_venue(s, VPOL, Regime.NORMAL).band == VPOL.normal
    assert assess_venue(s, VPOL, Regime.HIGH_VOL).band == VPOL.high_vol


def test_the_buffer_counts_top_ups_in_flight_or_unknown_but_not_requests() -> None:
    """A submitted or unknown-outcome top-up counts toward the buffer; one pending approval does not."""
    s = snapshot(usdt=1_000_000)  # IM 900k
    flying = (
        intent("buf-to-v1", "200000"),
        intent("buf-to-v1", "100000", status=IntentStatus.UNKNOWN, ident="i2"),
        intent("buf-to-v1", "500000", status=IntentStatus.PENDING_APPROVAL, ident="i3"),
    )
    a = assess_venue(s, VPOL, Regime.NORMAL, flying)
    assert a.incoming_usd == 300_000.0
    assert a.buffer == 1.0 - 900_000 / 1_300_000


def test_the_top_up_need_brings_the_buffer_to_target_only_below_min() -> None:
    """Below min: IM / (1 − target) − equity − incoming; at or above min: nothing."""
    low = assess_venue(snapshot(usdt=1_000_000), VPOL, Regime.NORMAL)  # buffer 10% < 20%
    assert low.below_min
    assert low.topup_usd == pytest.approx(900_000 / 0.7 - 1_000_000)
    inside = assess_venue(snapshot(usdt=1_500_000), VPOL, Regime.NORMAL)  # buffer 40%
    assert not inside.below_min
    assert inside.topup_usd == 0.0


def test_reserved_initial_margin_is_sized_for_but_not_observed() -> None:
    """The IM a waiting hedge reserves enlarges the need; the observed figures and level stay the venue's."""
    s = snapshot(usdt=1_300_000)  # IM 900k: buffer 30.8%, inside the band
    a = assess_venue(s, VPOL, Regime.NORMAL, reserved_im=200_000.0)
    assert a.figures == _own(s)
    assert a.sizing.im == 1_100_000.0
    assert a.topup_usd == pytest.approx(1_100_000 / 0.7 - 1_300_000)


def test_the_sweepable_excess_is_above_target_only_above_max() -> None:
    """Buffer above max: equity above what IM needs at target; inside the band: nothing."""
    s = snapshot(usdt=4_000_000)  # IM 900k: buffer 77.5% > 60%
    a = assess_venue(s, VPOL, Regime.NORMAL)
    assert a.sweep_usd == pytest.approx(4_000_000 - 900_000 / 0.7)
    assert assess_venue(snapshot(usdt=1_500_000), VPOL, Regime.NORMAL).sweep_usd == 0.0


def test_the_sweepable_excess_stops_short_of_the_mm_margin_and_min_equity() -> None:
    """The excess never takes m to 90% of alert_mm_ratio, nor equity under min_equity_usd."""
    f = Figures(4_000_000.0, 900_000.0, 1_000_000.0, 0.225, 0.25)
    band = VPOL.normal
    by_mm = assess_figures("v1", f, VPOL, band, prices={}, haircuts={})
    assert by_mm.sweep_usd == pytest.approx(4_000_000 - 1_000_000 / (VPOL.alert_mm_ratio * SWEEP_MM_MARGIN))
    floor = replace(VPOL, min_equity_usd=3_500_000.0)
    by_floor = assess_figures("v1", replace(f, mm=10_000.0), floor, band, prices={}, haircuts={})
    assert by_floor.sweep_usd == pytest.approx(500_000.0)


def test_a_sweepable_excess_under_one_percent_of_equity_waits() -> None:
    """Capped to under 1% of equity by min_equity_usd, the excess is 0 (no churn)."""
    f = Figures(4_000_000.0, 900_000.0, 10_000.0, 0.225, 0.0025)
    floor = replace(VPOL, min_equity_usd=4_000_000.0 - SWEEP_MIN_FRACTION * 4_000_000.0 + 1.0)
    assert assess_figures("v1", f, floor, VPOL.normal, prices={}, haircuts={}).sweep_usd == 0.0


def test_nothing_is_sweepable_while_anything_is_open_for_the_venue() -> None:
    """An open intent of any kind holds the sweep back."""
    sweep = intent("v1-to-buf", "1000", kind=TransferKind.SWEEP, status=IntentStatus.APPROVED)
    assert assess_venue(snapshot(usdt=4_000_000), VPOL, Regime.NORMAL, (sweep,)).sweep_usd == 0.0


def test_a_venue_at_its_derisk_level_needs_derisking_unless_a_top_up_lands_in_time() -> None:
    """m ≥ 75% is a de-risk need; 2M submitted on a route settling within the wait rescues it, unless the
    route is slower than the wait."""
    s = snapshot(usdt=190_000)  # MM 145k: m 76%
    assert assess_venue(s, VPOL, Regime.NORMAL, routes=ROUTES, horizon=HORIZON).derisk
    flying = (intent("buf-to-v1", "2000000", created_at=NOW),)
    rescued = assess_venue(s, VPOL, Regime.NORMAL, flying, routes=ROUTES, horizon=HORIZON)
    assert rescued.landing_usd == 2_000_000.0
    assert not rescued.derisk
    slow = (replace(ROUTES[0], settle_seconds=600.0),)
    assert assess_venue(s, VPOL, Regime.NORMAL, flying, routes=slow, horizon=HORIZON).derisk


def test_no_derisk_need_without_positions_or_below_the_level() -> None:
    """Nothing to reduce, or m under the de-risk level: no need."""
    assert not assess_venue(snapshot(usdt=1_500_000), VPOL, Regime.NORMAL).derisk
    bare = snapshot(usdt=0.0, qty=0.0)
    assert not assess_venue(bare, VPOL, Regime.NORMAL).derisk


def test_the_decision_carries_each_fresh_venues_assessment_and_its_derisk_need() -> None:
    """`decision.assessments[v]` for every venue with fresh data; `derisk_venues` names those to de-risk,
    counting this cycle's automatic top-up that lands in time."""
    snaps: dict[str, VenueSnapshot | None] = {
        "v1": snapshot(usdt=190_000),
        "v2": snapshot("v2", usdt=1_500_000),
        "v3": None,
    }
    pol = policy((route("buf-to-v1"),), venues=("v1", "v2", "v3"), auto="5000000", daily_auto="9000000")
    d = decide(world(snaps), pol)
    assert set(d.assessments) == {"v1", "v2"}
    assert d.assessments["v1"].level is Level.CRITICAL
    assert d.derisk_venues == ()  # the allowed top-up (60 s route) lands within the 60 s wait
    assert d.assessments["v1"].landing_usd > 0.0
    slow = replace(pol, routes=(replace(route("buf-to-v1"), settle_seconds=600.0),))
    assert decide(world(snaps), slow).derisk_venues == ("v1",)


def test_the_assessment_is_frozen() -> None:
    """An assessment cannot be changed once made."""
    a = assess_venue(snapshot(), VPOL, Regime.NORMAL)
    with pytest.raises(FrozenInstanceError):
        a.topup_usd = 1.0  # type: ignore[misc]
    assert replace(a, derisk=True).derisk


books = st.fixed_dictionaries(
    {
        "usdt": st.floats(min_value=10_000, max_value=5_000_000),
        "qty": st.floats(min_value=-300, max_value=300).filter(lambda q: abs(q) > 0.01),
        "price": st.floats(min_value=20_000, max_value=120_000),
        "entry": st.floats(min_value=20_000, max_value=120_000),
        "in_flight": st.sampled_from([0, 0, 50_000, 400_000]),
    }
)


@settings(max_examples=300, deadline=None)
@given(books, st.sampled_from(list(Regime)))
def test_stress_and_decide_size_the_same_top_up(book: dict[str, float], regime: Regime) -> None:
    """On one snapshot, stress's unshocked top-up is decide's (rounded up to the dollar), and decide plans
    legs for at least that much exactly when stress says one is needed."""
    in_flight = book.pop("in_flight")
    snap = snapshot(**book)
    f = _own(snap)
    assume(f.mm_ratio < 1.0)  # at m ≥ 1 stress asks for more: what brings m under 1
    intents = (intent("buf-to-v1", str(in_flight)),) if in_flight else ()
    pol = policy((route("buf-to-v1", max_amount="50000000", daily_limit="100000000"),))
    balances = {"buffer": {"USDT": Decimal(500_000_000)}}
    d = decide(world({"v1": snap}, regime=regime, intents=intents, balances=balances), pol)
    need = d.assessments["v1"].topup_usd
    accounts = {"buffer": AccountSnapshot("buffer", "buffer", NOW, balances["buffer"])}
    sc = assess_scenario(
        NOW_SCENARIO, {"v1": f}, pol, accounts, regime, intents=intents, now=NOW, snapshots={"v1": snap}
    )
    stressed = sc.venues[0].topup_usd
    assert stressed == round_up(to_decimal(need), Decimal(1))
    assert (stressed > 0) == (need > 0)
    if need >= 1_000:  # the route's min_amount: decide's legs carry at least the need, to the target
        planned = float(sum((p.action.amount for p in d.actions), Decimal(0)))
        assert planned >= need
        target = d.assessments["v1"].band.target
        assert f.im / (f.equity + in_flight + planned) <= 1.0 - target + 1e-9


CORE = Path(__file__).resolve().parents[1] / "bot" / "core"
