"""The execution planner (books, slippage, splits, margin headroom, rounding) and de-risk planning."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.approvals import Allowed
from bot.core.decide import decide
from bot.core.derisk import landing_usd, plan_derisk, reductions
from bot.core.execution import Book, Plan, max_qty_within, plan_orders, round_step, slippage_bps, walk
from bot.core.hedge import HedgeSpec, Instrument, OrderReason, Trade
from bot.core.margin import MarginParams, Position, build_tiers, figures
from bot.core.world import VenueSnapshot
from bot.venues.paper_orders import BookShape, apply_fill, synthetic_book
from tests.builders import NOW, VPOL, intent, policy, route, snapshot, world

TIERS = build_tiers([(1_000_000, 0.005), (5_000_000, 0.01), (None, 0.025)])
MARK = 60_000.0
SYM = "BTC/USDT:USDT"
A = Instrument("v1", SYM)
B = Instrument("v2", SYM)
SPEC = HedgeSpec("h1", "BTC", "dynamic_band", 10.0, 0.0, 0.5, 0.01, 5.0, (A, B))
DEEP = synthetic_book(MARK, BookShape(), 1.0)  # 3.33 BTC a level; 5 bps holds 18.18 BTC a side
THIN = synthetic_book(MARK, BookShape(), 0.1)  # 5 bps holds 1.818 BTC a side
RICH = 10_000_000.0


def venue(name: str, usdt: float = RICH, positions: tuple[Position, ...] = ()) -> VenueSnapshot:
    return VenueSnapshot(
        name, NOW, {"USDT": usdt}, positions, {"BTC": MARK}, {}, MarginParams("cross", TIERS, 0.1)
    )


def plan(
    *trades: Trade,
    holdings: dict[str, float] | None = None,
    books: dict[str, Book | None] | None = None,
    snaps: dict[str, VenueSnapshot | None] | None = None,
    trigger: str = "1770000000.000",
) -> Plan:
    return plan_orders(
        SPEC,
        trades,
        holdings or {},
        books=books if books is not None else {A.key: DEEP, B.key: DEEP},
        snapshots=snaps if snaps is not None else {"v1": venue("v1"), "v2": venue("v2")},
        alert_utilization={"v1": 0.8, "v2": 0.8},
        trigger=trigger,
    )


def rebalance(qty: float, **kw: object) -> Trade:
    return Trade(qty, OrderReason.REBALANCE, note="test", **kw)  # type: ignore[arg-type]


def placed(p: Plan) -> list[tuple[str, str, Decimal, bool]]:
    return [(o.venue, o.side, o.qty, o.reduce_only) for o in p.orders]


# --- book arithmetic ----------------------------------------------------------------------------------------

HAND = Book(bids=((99.0, 1.0), (98.0, 2.0)), asks=((101.0, 1.0), (102.0, 2.0), (105.0, 1.0)))


def test_walk_fills_level_by_level_at_the_average_price() -> None:
    """A buy of 2 takes 1 at 101 and 1 at 102: average 101.5; a sell of 3 averages (99 + 2×98)/3."""
    assert walk(HAND, "buy", 2.0) == pytest.approx((2.0, 101.5))
    assert walk(HAND, "sell", 3.0) == pytest.approx((3.0, 295.0 / 3.0))


def test_walk_fills_partially_when_the_book_is_too_thin() -> None:
    """An order larger than the book fills what the book holds, at that part's average."""
    filled, avg = walk(HAND, "buy", 10.0)
    assert filled == pytest.approx(4.0)
    assert avg == pytest.approx((101.0 + 204.0 + 105.0) / 4.0)


def test_slippage_is_signed_against_the_mid() -> None:
    """Slippage is how far the average is worse than mid, in bps, on both sides."""
    assert HAND.mid == 100.0
    assert slippage_bps(HAND, "buy", 101.0) == pytest.approx(100.0)
    assert slippage_bps(HAND, "sell", 99.0) == pytest.approx(100.0)
    assert slippage_bps(HAND, "sell", 101.0) == pytest.approx(-100.0)


@settings(max_examples=200, deadline=None)
@given(
    side=st.sampled_from(["buy", "sell"]),
    depth=st.floats(0.05, 5.0, allow_nan=False),
    max_bps=st.floats(0.6, 30.0, allow_nan=False),
)
def test_max_qty_within_is_the_largest_order_within_the_slippage_cap(
    side: str, depth: float, max_bps: float
) -> None:
    """The size max_qty_within gives slips at most max_bps; 1% more slips past it (book permitting)."""
    book = synthetic_book(MARK, BookShape(), depth)
    q = max_qty_within(book, side, max_bps)
    filled, avg = walk(book, side, q)
    assert filled == pytest.approx(q)
    assert slippage_bps(book, side, avg) <= max_bps + 1e-6
    total = sum(size for _, size in book.side(side))
    if q < total * 0.99:
        _, worse = walk(book, side, q * 1.01)
        assert slippage_bps(book, side, worse) > max_bps


def test_round_step_rounds_down_exactly() -> None:
    """Sizes round down to the step, in exact decimals."""
    assert round_step(1.23456, 0.001) == Decimal("1.234")
    assert round_step(0.3, 0.1) == Decimal("0.3")
    assert round_step(0.0009, 0.001) == 0


# --- plan_orders --------------------------------------------------------------------------------------------


def test_a_liquid_trade_is_one_order_on_the_first_instrument() -> None:
    """Within liquidity the whole trade is one order on the first ranked instrument, tagged with the program."""
    p = plan(rebalance(-5.0))
    (o,) = p.orders
    assert (o.program, o.venue, o.symbol, o.side, o.qty) == ("h1", "v1", SYM, "sell", Decimal("5.000"))
    assert o.reason is OrderReason.REBALANCE
    assert not o.reduce_only
    assert 0.0 < o.est_slippage_bps <= 5.0
    assert p.unplaced == 0.0
    assert p.im_needs == {}


def test_intent_ids_are_deterministic_and_depend_on_the_trigger() -> None:
    """The same inputs plan the same intent ids; another cycle's trigger gives other ids."""
    ids = [o.intent_id for o in plan(rebalance(-25.0)).orders]
    assert len(ids) == 2
    assert len(set(ids)) == 2
    assert ids == [o.intent_id for o in plan(rebalance(-25.0)).orders]
    assert set(ids).isdisjoint(o.intent_id for o in plan(rebalance(-25.0), trigger="1770000005.000").orders)


def test_a_trade_past_the_slippage_cap_is_split_to_the_next_instrument() -> None:
    """25 BTC on a book that holds 18.18 within 5 bps: the capped part on v1, the rest on v2."""
    p = plan(rebalance(-25.0))
    first, second = p.orders
    assert (first.venue, first.qty) == ("v1", round_step(max_qty_within(DEEP, "sell", 5.0), 0.001))
    assert first.est_slippage_bps <= 5.0 + 1e-6
    assert second.venue == "v2"
    assert abs(float(first.qty + second.qty) - 25.0) <= 0.001 + 1e-9  # within one step (see the xfail below)
    assert any("slip past" in n for n in p.notes)


def test_split_orders_add_up_to_the_whole_trade() -> None:
    """A split trade is placed in full: the orders add up to the 25 BTC asked for (or the rest is unplaced)."""
    p = plan(rebalance(-25.0))
    assert sum(o.qty for o in p.orders) - Decimal(str(round(abs(p.unplaced), 9))) == Decimal("25.000")


def test_what_no_book_can_hold_is_unplaced() -> None:
    """When every book is thin, each takes its capped share and the rest is reported unplaced."""
    p = plan(rebalance(-25.0), books={A.key: THIN, B.key: THIN})
    assert placed(p) == [("v1", "sell", Decimal("1.818"), False), ("v2", "sell", Decimal("1.818"), False)]
    assert p.unplaced == pytest.approx(-25.0 + 2 * 1.818)


def test_urgent_trades_take_the_book_as_it_is() -> None:
    """An urgent trade ignores max_slippage_bps: the whole size goes on the first instrument."""
    p = plan(rebalance(-25.0, urgent=True), books={A.key: THIN, B.key: THIN})
    assert placed(p) == [("v1", "sell", Decimal("25.000"), False)]
    assert p.orders[0].est_slippage_bps > 5.0
    assert p.unplaced == 0.0


@pytest.mark.parametrize(
    ("books", "snaps"),
    [
        ({A.key: None, B.key: DEEP}, None),
        (None, {"v1": None, "v2": venue("v2")}),
    ],
    ids=["no-book", "no-snapshot"],
)
def test_an_unreachable_instrument_is_skipped(
    books: dict[str, Book | None] | None, snaps: dict[str, VenueSnapshot | None] | None
) -> None:
    """With no book or no venue snapshot, the first instrument is skipped and the next takes the trade."""
    p = plan(rebalance(-5.0), books=books, snaps=snaps)
    assert placed(p) == [("v2", "sell", Decimal("5.000"), False)]
    assert any("unavailable" in n for n in p.notes)


def test_margin_headroom_cuts_an_order_and_the_next_venue_takes_the_rest() -> None:
    """v1 (50k USDT, alert 80%) fits 6.66 BTC of IM; the rest goes to v2 and nothing is asked for."""
    p = plan(rebalance(-10.0), snaps={"v1": venue("v1", 50_000.0), "v2": venue("v2")})
    first, second = p.orders
    assert (first.venue, second.venue) == ("v1", "v2")
    assert 6.6 <= float(first.qty) <= 6.667
    v1 = venue("v1", 50_000.0)
    after = figures(v1.collateral, (Position(SYM, "BTC", -float(first.qty), MARK),), v1.prices, {}, v1.params)
    assert after.utilization <= 0.8
    assert p.im_needs == {}


def test_when_no_venue_has_headroom_the_first_one_asks_for_initial_margin() -> None:
    """Nothing fits anywhere: nothing is ordered, the trade is unplaced and v1's IM need is reported in USD."""
    p = plan(rebalance(-10.0), snaps={"v1": venue("v1", 0.0), "v2": venue("v2", 0.0)})
    assert p.orders == ()
    assert p.unplaced == pytest.approx(-10.0)
    assert list(p.im_needs) == ["v1"]
    assert p.im_needs["v1"] == pytest.approx(60_000.0)  # 10 BTC × 60k × 10%


def test_margin_headroom_holds_when_the_venue_position_is_under_water() -> None:
    """Adding to a short that is 100k under water keeps the venue at or under its alert utilization."""
    v1 = venue("v1", 300_000.0, (Position(SYM, "BTC", -10.0, 50_000.0),))  # equity 200k, IM 60k
    deep = synthetic_book(MARK, BookShape(), 100.0)
    p = plan(rebalance(-30.0), books={A.key: deep, B.key: DEEP}, snaps={"v1": v1, "v2": venue("v2")})
    positions, collateral = v1.positions, v1.collateral["USDT"]
    for o in p.orders:
        if o.venue == "v1":  # filled as the paper venue fills: weighted entry, realized PnL into collateral
            positions, realized = apply_fill(positions, o.symbol, "BTC", o.signed, MARK)
            collateral += realized
    assert figures({"USDT": collateral}, positions, v1.prices, {}, v1.params).utilization <= 0.8


def held_on_venues(v1: float, v2: float) -> dict[str, VenueSnapshot | None]:
    """Venues that show the positions the ledger holds (what reduce-only orders are checked against)."""
    return {
        "v1": venue("v1", positions=(Position(A.symbol, "BTC", v1, MARK),) if v1 else ()),
        "v2": venue("v2", positions=(Position(B.symbol, "BTC", v2, MARK),) if v2 else ()),
    }


def test_an_opposite_trade_reduces_holdings_first_least_preferred_first() -> None:
    """Buying 6 against holdings of −2 (v1) and −3 (v2): reduce v2 by 3, v1 by 2, then add 1 on v1."""
    p = plan(rebalance(6.0), holdings={A.key: -2.0, B.key: -3.0}, snaps=held_on_venues(-2.0, -3.0))
    assert placed(p) == [
        ("v2", "buy", Decimal("3.000"), True),
        ("v1", "buy", Decimal("2.000"), True),
        ("v1", "buy", Decimal("1.000"), False),
    ]
    assert [o.leg for o in p.orders] == [0, 1, 2]


def test_a_reduce_only_trade_never_adds() -> None:
    """A reduce-only trade larger than the holding reduces it and reports the rest as unplaced."""
    p = plan(
        Trade(5.0, OrderReason.UNWIND, reduce_only=True),
        holdings={A.key: -2.0},
        snaps=held_on_venues(-2.0, 0),
    )
    assert placed(p) == [("v1", "buy", Decimal("2.000"), True)]
    assert p.orders[0].reason is OrderReason.UNWIND
    assert p.unplaced == pytest.approx(3.0)


def test_a_reduction_is_not_reduce_only_when_the_venue_net_position_is_on_the_other_side() -> None:
    """A program short 2 on v1 where another owner's long makes the venue net +8: its buy-back is a plain order."""
    p = plan(rebalance(2.0), holdings={A.key: -2.0}, snaps=held_on_venues(8.0, 0))
    assert placed(p) == [("v1", "buy", Decimal("2.000"), False)]


def test_a_rotation_opens_no_more_than_it_closed() -> None:
    """The second leg of a rotation (match_previous) is cut to what the first leg placed in a thin book."""
    thin = synthetic_book(MARK, BookShape(level_usd=6_000.0), 1.0)  # 0.1 BTC a level
    p = plan(
        Trade(5.0, OrderReason.UNWIND, instruments=(A.key,), reduce_only=True),
        Trade(-5.0, OrderReason.REBALANCE, instruments=(B.key,), match_previous=True),
        holdings={A.key: -5.0},
        books={A.key: thin, B.key: DEEP},
        snaps=held_on_venues(-5.0, 0),
    )
    closed = sum(o.qty for o in p.orders if o.venue == "v1")
    opened = sum(o.qty for o in p.orders if o.venue == "v2")
    assert Decimal(0) < closed < Decimal(5)
    assert opened == closed


def test_quantities_round_down_to_the_step_and_dust_is_not_unplaced() -> None:
    """−1.23456 BTC becomes a 1.234 sell; the 0.00056 below the step is not reported as unplaced."""
    p = plan(rebalance(-1.23456))
    assert placed(p) == [("v1", "sell", Decimal("1.234"), False)]
    assert p.unplaced == 0.0


def test_a_coarser_step_is_respected_per_instrument() -> None:
    """On an instrument with a 0.1 step, 1.25 BTC is ordered as 1.2 and the rest goes to the next one."""
    spec = dataclasses.replace(SPEC, instruments=(dataclasses.replace(A, qty_step=0.1), B))
    p = plan_orders(
        spec,
        (rebalance(-1.25),),
        {},
        books={A.key: DEEP, B.key: DEEP},
        snapshots={"v1": venue("v1"), "v2": venue("v2")},
        alert_utilization={},
        trigger="t",
    )
    assert placed(p) == [("v1", "sell", Decimal("1.2"), False), ("v2", "sell", Decimal("0.050"), False)]


def test_im_added_reports_the_initial_margin_the_orders_add() -> None:
    """A 5 BTC order at 60k on a 10% IM venue adds 30,000 USD of IM there, nothing elsewhere."""
    p = plan(rebalance(-5.0))
    assert dict(p.im_added) == {"v1": pytest.approx(30_000.0)}


# --- de-risk ------------------------------------------------------------------------------------------------


def _ratio_after(snap: VenueSnapshot, trades: dict[str, float]) -> float:
    """Liquidation ratio once `trades` fill at the mark, as the paper venue fills them."""
    positions, collateral = snap.positions, dict(snap.collateral)
    for symbol, qty in trades.items():
        base = symbol.split("/", 1)[0]
        positions, realized = apply_fill(positions, symbol, base, qty, snap.prices[base])
        collateral["USDT"] = collateral.get("USDT", 0.0) + realized
    return figures(collateral, positions, snap.prices, snap.haircuts, snap.params).mm_ratio


def test_reductions_bring_the_ratio_under_target() -> None:
    """A short at 80.6% liquidation ratio is bought back just enough to go under 49%."""
    snap = snapshot(usdt=180_000.0)
    r = reductions(snap, 0.0, 0.49)
    assert r["BTC/USDT:USDT"] > 0  # buying back a short
    assert _ratio_after(snap, r) < 0.49
    assert r["BTC/USDT:USDT"] <= 150.0 * 0.3 + 1e-9  # not more than needed (10% steps)


def test_offsetting_pairs_are_reduced_together_first() -> None:
    """A long and a short in one underlying are cut together, leaving net delta unchanged."""
    pair = (Position("BTC/USDT:USDT", "BTC", 60.0, MARK), Position("BTC/USD:BTC", "BTC", -100.0, MARK))
    snap = dataclasses.replace(snapshot(usdt=200_000.0), positions=pair)  # m = 101k / 200k = 50.5%
    r = reductions(snap, 0.0, 0.49)
    assert r["BTC/USDT:USDT"] < 0 < r["BTC/USD:BTC"]
    assert sum(r.values()) == pytest.approx(0.0)
    assert _ratio_after(snap, r) < 0.49


def test_reductions_count_top_ups_landing_in_time() -> None:
    """Equity about to land shrinks the reduction needed."""
    snap = snapshot(usdt=180_000.0)
    assert reductions(snap, 100_000.0, 0.49)["BTC/USDT:USDT"] < reductions(snap, 0.0, 0.49)["BTC/USDT:USDT"]


def test_reductions_of_a_losing_position_still_reach_the_target() -> None:
    """A short 750k under water is cut enough that, with the loss realized, m ends under target."""
    snap = snapshot(usdt=930_000.0, entry=55_000.0)  # equity 180k, m 80.6%
    assert _ratio_after(snap, reductions(snap, 0.0, 0.49)) < 0.49


ROUTES = (route("buf-to-v1"), route("buf-to-v2", venue="v2"))


def _derisk_world(**kw: object):  # type: ignore[no-untyped-def]
    return world({"v1": snapshot(usdt=180_000.0), "v2": snapshot("v2")}, **kw)  # type: ignore[arg-type]


def test_plan_derisk_cuts_only_the_venue_at_its_derisk_level() -> None:
    """v1 at m 80.6% ≥ 75% with its top-up awaiting approval gets reduce-only DERISK buys; v2 gets none."""
    pol = policy(ROUTES, venues=("v1", "v2"))
    w = _derisk_world()
    d = decide(w, pol)
    plan_ = plan_derisk(w, pol, d)
    assert plan_.orders
    assert {o.venue for o in plan_.orders} == {"v1"}
    for o in plan_.orders:
        assert (o.program, o.side, o.reduce_only, o.reason) == (None, "buy", True, OrderReason.DERISK)
    assert [a.kind for a in plan_.alerts] == ["derisk_orders"]
    bought = {o.symbol: float(o.qty) for o in plan_.orders}
    assert _ratio_after(snapshot(usdt=180_000.0), bought) < VPOL.alert_mm_ratio


def test_plan_derisk_acts_at_exactly_the_derisk_level_and_not_below() -> None:
    """m equal to derisk_mm_ratio is de-risked; a level a hair above m is not."""
    w = _derisk_world()
    base = policy(ROUTES, venues=("v1", "v2"))
    m = decide(w, base).observed["v1"].mm_ratio  # type: ignore[union-attr]
    for level, expect in ((m, True), (m + 1e-9, False)):
        pol = dataclasses.replace(
            base, venues={**base.venues, "v1": dataclasses.replace(VPOL, derisk_mm_ratio=level)}
        )
        assert bool(plan_derisk(w, pol, decide(w, pol)).orders) is expect


def test_plan_derisk_waits_for_an_allowed_top_up_that_lands_in_time() -> None:
    """An automatic top-up allowed this cycle and settling within derisk_wait_seconds rescues the venue."""
    pol = policy(ROUTES, venues=("v1", "v2"), auto="5000000", daily_auto="10000000")
    w = _derisk_world()
    d = decide(w, pol)
    assert any(isinstance(p.verdict, Allowed) and p.action.venue == "v1" for p in d.actions)
    assert landing_usd(w, pol, d, "v1") > 1_000_000.0
    assert plan_derisk(w, pol, d).orders == ()


def test_plan_derisk_counts_in_flight_top_ups_only_if_they_settle_in_time() -> None:
    """A 1M top-up in flight rescues v1 on a 60 s route, but not on a route that settles in 600 s."""
    w = _derisk_world(intents=(intent("buf-to-v1", "1000000"),))
    fast = policy(ROUTES, venues=("v1", "v2"))
    assert plan_derisk(w, fast, decide(w, fast)).orders == ()
    slow = policy((dataclasses.replace(ROUTES[0], settle_seconds=600.0), ROUTES[1]), venues=("v1", "v2"))
    assert landing_usd(w, slow, decide(w, slow), "v1") == 0.0
    assert plan_derisk(w, slow, decide(w, slow)).orders


def test_plan_derisk_leaves_busy_venues_alone() -> None:
    """A venue with an order of unknown outcome is not de-risked: what it holds is not known."""
    pol = policy(ROUTES, venues=("v1", "v2"))
    w = _derisk_world()
    assert plan_derisk(w, pol, decide(w, pol), busy=frozenset({"v1"})).orders == ()
