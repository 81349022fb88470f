"""The paper venue's order side: synthetic books, IOC market orders, reduce-only, client ids, fees, faults, state."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bot.app import market_from_settings
from bot.engine.clock import SimClock
from bot.errors import OrderRefused, UnknownOutcome, VenueUnavailable
from bot.settings import Settings, load_settings
from bot.venues import paper_state
from bot.venues.base import OrderRequest
from bot.venues.paper import PaperExchange, PaperOrders
from bot.venues.paper_orders import BookShape, synthetic_book
from tests.conftest import ROOT

HEDGING = ROOT / "config" / "hedging.toml"
T0 = 1_772_409_600.0  # 2026-03-02T00:00:00Z, a funding boundary
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
MARK = 60_000.0  # config/hedging.toml [market] BTC; the paper market does not move unless advanced


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(HEDGING)


@pytest.fixture
def clock() -> SimClock:
    return SimClock(T0)


@pytest.fixture
def x(settings: Settings, clock: SimClock) -> PaperExchange:
    return PaperExchange(settings, market_from_settings(settings), clock.now)


def order(
    cid: str,
    side: str,
    qty: str,
    *,
    venue: str = "okx-main",
    symbol: str = BTC,
    reduce_only: bool = False,
) -> OrderRequest:
    return OrderRequest(cid, venue, symbol, side, Decimal(qty), reduce_only)


def state_of(x: PaperExchange, venue: str = "okx-main") -> tuple[object, ...]:
    """Everything an order may move, for 'nothing moved' checks."""
    m = x.matching
    book = x.books[venue]
    return (
        dict(book.collateral),
        book.positions,
        dict(m.fees_paid),
        dict(m.realized),
        list(m.fills),
        set(m.orders),
    )


def position(x: PaperExchange, venue: str = "okx-main", symbol: str = BTC) -> float:
    return sum(p.qty for p in x.books[venue].positions if p.symbol == symbol)


def bps(price: float, mark: float = MARK) -> float:
    return (price - mark) / mark * 10_000.0


# --- the synthetic book ------------------------------------------------------------------------------


def test_the_okx_book_has_forty_levels_a_side_two_bps_apart_around_a_one_bps_spread(
    x: PaperExchange,
) -> None:
    """okx-main's BTC book: 40 levels a side, best prices 0.5 bps from the mark, then 2 bps apart, 400k USD each."""
    ob = x.matching.order_book("okx-main", BTC)
    assert len(ob.asks) == 40
    assert len(ob.bids) == 40
    assert ob.mid == pytest.approx(MARK)
    assert bps(ob.asks[0][0]) == pytest.approx(0.5)
    assert bps(ob.bids[0][0]) == pytest.approx(-0.5)
    assert bps(ob.asks[0][0]) - bps(ob.bids[0][0]) == pytest.approx(1.0)  # spread_bps
    for k in range(40):
        assert bps(ob.asks[k][0]) == pytest.approx(0.5 + 2 * k)
        assert bps(ob.bids[k][0]) == pytest.approx(-(0.5 + 2 * k))
        assert ob.asks[k][1] == pytest.approx(400_000 / MARK)
        assert ob.bids[k][1] == pytest.approx(400_000 / MARK)


def test_each_venue_book_takes_its_own_level_size_and_the_mark_of_its_base(x: PaperExchange) -> None:
    """bybit-main's levels hold 300k USD (its book_level_usd) and the ETH book is centred on ETH's mark."""
    bybit = x.matching.order_book("bybit-main", BTC)
    assert bybit.asks[0][1] == pytest.approx(300_000 / MARK)
    eth = x.matching.order_book("okx-main", ETH)
    assert eth.mid == pytest.approx(3_000.0)
    assert eth.asks[0][1] == pytest.approx(400_000 / 3_000.0)


def test_synthetic_book_follows_its_shape() -> None:
    """A 3-level book with an 8 bps spread and 10 bps steps: levels at 4, 14, 24 bps, each level_usd × depth."""
    ob = synthetic_book(50_000.0, BookShape(levels=3, step_bps=10, level_usd=100_000, spread_bps=8), 0.5)
    assert [round(bps(p, 50_000.0), 9) for p, _ in ob.asks] == [4, 14, 24]
    assert [round(bps(p, 50_000.0), 9) for p, _ in ob.bids] == [-4, -14, -24]
    assert all(q == pytest.approx(1.0) for _, q in (*ob.asks, *ob.bids))  # 100k × 0.5 / 50k


# --- market orders walk the book -------------------------------------------------------------------


def test_a_market_buy_walks_the_book_and_pays_the_weighted_level_prices(x: PaperExchange) -> None:
    """Buying 10 BTC takes 6.67 at +0.5 bps and 3.33 at +2.5 bps: about 1.17 bps worse than mid."""
    r = x.matching.place(order("walk-buy", "buy", "10"))
    level = 400_000 / MARK
    expected = (level * 0.5 + (10 - level) * 2.5) / 10  # ≈ 1.1667 bps
    assert r.filled == Decimal(10)
    assert bps(r.avg_price) == pytest.approx(expected, abs=1e-6)
    assert position(x) == pytest.approx(10.0)


def test_a_market_sell_walks_the_bids(x: PaperExchange) -> None:
    """Selling 10 BTC fills below mid by the same 1.17 bps, and opens a 10 BTC short."""
    r = x.matching.place(order("walk-sell", "sell", "10"))
    level = 400_000 / MARK
    expected = (level * 0.5 + (10 - level) * 2.5) / 10
    assert bps(r.avg_price) == pytest.approx(-expected, abs=1e-6)
    assert position(x) == pytest.approx(-10.0)


def test_an_order_inside_the_first_level_fills_at_the_touch(x: PaperExchange) -> None:
    """A 1 BTC buy fills entirely at the best ask, half the spread above mid."""
    r = x.matching.place(order("touch", "buy", "1"))
    assert r.filled == Decimal(1)
    assert bps(r.avg_price) == pytest.approx(0.5)


def test_an_order_larger_than_the_book_fills_partially_and_the_rest_is_cancelled(x: PaperExchange) -> None:
    """Selling 200 BTC into bybit's half-depth 40 × 2.5 BTC bids fills 100 at 39.5 bps under mid; none rests."""
    x.set_liquidity("bybit-main", BTC, 0.5)
    before = x.matching.order_book("bybit-main", BTC)
    r = x.matching.place(order("big", "sell", "200", venue="bybit-main"))
    assert Decimal(0) < r.filled < Decimal(200)
    assert float(r.filled) == pytest.approx(100.0)
    assert bps(r.avg_price) == pytest.approx(-39.5)  # the mean of 0.5, 2.5, … 78.5 bps
    assert position(x, "bybit-main") == pytest.approx(-100.0)
    found = x.matching.lookup(order("big", "sell", "200", venue="bybit-main"))
    assert found == r
    assert x.matching.order_book("bybit-main", BTC) == before  # IOC: no resting remainder on the book


def test_an_order_that_would_take_utilization_past_100_percent_is_refused(x: PaperExchange) -> None:
    """Buying 300 BTC (18M notional, 1.8M initial margin) against 1.5M of collateral is refused; nothing moves."""
    x.set_liquidity("okx-main", BTC, 3.0)  # deep enough that the book itself is not the limit
    before = state_of(x)
    with pytest.raises(OrderRefused, match="insufficient margin"):
        x.matching.place(order("too-big", "buy", "300"))
    assert state_of(x) == before


# --- reduce-only -----------------------------------------------------------------------------------


def test_a_reduce_only_order_is_cut_to_the_position(x: PaperExchange) -> None:
    """With 3 BTC long, a reduce-only sell of 10 fills 3 and leaves the venue flat."""
    x.matching.place(order("open", "buy", "3"))
    r = x.matching.place(order("close", "sell", "10", reduce_only=True))
    assert r.filled == Decimal(3)
    assert x.books["okx-main"].positions == ()


def test_a_reduce_only_buy_shrinks_a_short(x: PaperExchange) -> None:
    """With 5 BTC short, a reduce-only buy of 2 leaves 3 short at the same entry."""
    opened = x.matching.place(order("short", "sell", "5"))
    r = x.matching.place(order("cover", "buy", "2", reduce_only=True))
    assert r.filled == Decimal(2)
    (p,) = x.books["okx-main"].positions
    assert p.qty == pytest.approx(-3.0)
    assert p.entry == pytest.approx(opened.avg_price)


def test_a_reduce_only_order_without_a_position_is_refused(x: PaperExchange) -> None:
    """On a flat venue a reduce-only order is refused and nothing moves."""
    before = state_of(x)
    with pytest.raises(OrderRefused, match="reduce-only"):
        x.matching.place(order("nothing", "sell", "1", reduce_only=True))
    assert state_of(x) == before
    assert x.matching.lookup(order("nothing", "sell", "1", reduce_only=True)) is None


def test_a_reduce_only_order_that_would_increase_the_position_is_refused(x: PaperExchange) -> None:
    """With 3 BTC long, a reduce-only buy is refused and the position stays at 3."""
    x.matching.place(order("long", "buy", "3"))
    before = state_of(x)
    with pytest.raises(OrderRefused, match="would not reduce"):
        x.matching.place(order("more", "buy", "1", reduce_only=True))
    assert state_of(x) == before
    assert position(x) == pytest.approx(3.0)


def test_a_reduce_only_order_looks_at_its_own_symbol_only(x: PaperExchange) -> None:
    """An ETH long on okx does not let a reduce-only BTC sell through."""
    x.matching.place(order("eth-long", "buy", "10", symbol=ETH))
    with pytest.raises(OrderRefused):
        x.matching.place(order("btc-ro", "sell", "1", reduce_only=True))
    assert position(x, symbol=BTC) == 0.0


# --- client ids ------------------------------------------------------------------------------------


def test_a_repeated_client_id_returns_the_same_receipt_and_moves_nothing_more(x: PaperExchange) -> None:
    """Sending the same order twice fills it once: the second answer is the first receipt."""
    first = x.matching.place(order("same", "buy", "2"))
    after_first = state_of(x)
    second = x.matching.place(order("same", "buy", "2"))
    assert second == first
    assert state_of(x) == after_first
    assert x.matching.fills == ["same"]
    assert position(x) == pytest.approx(2.0)


def test_a_client_id_reused_with_other_parameters_is_refused(x: PaperExchange) -> None:
    """The same client id with another size, side or flag raises OrderRefused and moves nothing."""
    x.matching.place(order("cid", "buy", "2"))
    before = state_of(x)
    for other in (
        order("cid", "buy", "3"),
        order("cid", "sell", "2"),
        order("cid", "buy", "2", venue="bybit-main"),
        order("cid", "buy", "2", reduce_only=True),
    ):
        with pytest.raises(OrderRefused, match="reused"):
            x.matching.place(other)
    assert state_of(x) == before
    assert state_of(x, "bybit-main")[1] == ()


# --- fees and realized PnL -------------------------------------------------------------------------


def test_the_taker_fee_leaves_the_settlement_collateral_and_is_counted(x: PaperExchange) -> None:
    """A 10 BTC buy on okx pays 5 bps of its notional out of USDT collateral, counted in fees_paid."""
    start = x.books["okx-main"].collateral["USDT"]
    r = x.matching.place(order("fee", "buy", "10"))
    fee = 10 * r.avg_price * 5 / 10_000
    assert r.fee == pytest.approx(fee)
    assert float(start - x.books["okx-main"].collateral["USDT"]) == pytest.approx(fee, abs=1e-6)
    assert x.matching.fees_paid == {"USDT": start - x.books["okx-main"].collateral["USDT"]}
    assert x.matching.realized.get("USDT", Decimal(0)) == 0


def test_each_venue_charges_its_own_taker_fee(x: PaperExchange) -> None:
    """bybit-main charges 5.5 bps (its taker_fee_bps), not okx's 5."""
    r = x.matching.place(order("fee-bybit", "sell", "4", venue="bybit-main"))
    assert r.fee == pytest.approx(4 * r.avg_price * 5.5 / 10_000)
    assert float(x.matching.fees_paid["USDT"]) == pytest.approx(r.fee, abs=1e-6)


def test_a_reduction_realizes_pnl_into_the_collateral(x: PaperExchange) -> None:
    """Long 10 BTC, price +2%, selling 4 realizes 4 × (exit − entry): into collateral and matching.realized."""
    opened = x.matching.place(order("long10", "buy", "10"))
    x.market.shock("BTC", 0.02)
    before = x.books["okx-main"].collateral["USDT"]
    fees_before = x.matching.fees_paid["USDT"]
    r = x.matching.place(order("sell4", "sell", "4", reduce_only=True))
    realized = 4 * (r.avg_price - opened.avg_price)
    assert realized > 4_000  # about 4 × 1,200 less the spread
    assert float(x.matching.realized["USDT"]) == pytest.approx(realized, abs=1e-5)
    fee = x.matching.fees_paid["USDT"] - fees_before
    assert x.books["okx-main"].collateral["USDT"] - before == x.matching.realized["USDT"] - fee
    (p,) = x.books["okx-main"].positions
    assert p.qty == pytest.approx(6.0)
    assert p.entry == pytest.approx(opened.avg_price)


def test_a_losing_short_cover_realizes_a_loss(x: PaperExchange) -> None:
    """Short 5 BTC, price +1%, covering all of it realizes a negative PnL of about 5 × 600."""
    opened = x.matching.place(order("short5", "sell", "5"))
    x.market.shock("BTC", 0.01)
    r = x.matching.place(order("cover5", "buy", "5", reduce_only=True))
    expected = -5 * (r.avg_price - opened.avg_price)
    assert expected < -2_900
    assert float(x.matching.realized["USDT"]) == pytest.approx(expected, abs=1e-5)
    assert x.books["okx-main"].positions == ()


# --- liquidity ------------------------------------------------------------------------------------


def test_the_liquidity_factor_thins_that_book_only(x: PaperExchange) -> None:
    """depth_factor 0.03 on okx BTC leaves 12k USD a level there; bybit BTC and okx ETH keep their depth."""
    x.set_liquidity("okx-main", BTC, 0.03)
    thin = x.matching.order_book("okx-main", BTC)
    assert all(q == pytest.approx(400_000 * 0.03 / MARK) for _, q in (*thin.asks, *thin.bids))
    assert [p for p, _ in thin.asks] == [
        p for p, _ in synthetic_book(MARK, x.books["okx-main"].shape, 1).asks
    ]
    assert x.matching.order_book("bybit-main", BTC).asks[0][1] == pytest.approx(300_000 / MARK)
    assert x.matching.order_book("okx-main", ETH).asks[0][1] == pytest.approx(400_000 / 3_000)


def test_a_thin_book_fills_less_and_worse(x: PaperExchange) -> None:
    """In a 3% book a 10 BTC buy fills only the 8 BTC the 40 levels hold, 39.5 bps over mid on average."""
    x.set_liquidity("okx-main", BTC, 0.03)
    r = x.matching.place(order("thin", "buy", "10"))
    assert float(r.filled) == pytest.approx(40 * 400_000 * 0.03 / MARK, abs=1e-8)
    assert bps(r.avg_price) == pytest.approx(39.5)


# --- faults ---------------------------------------------------------------------------------------


def test_an_outage_makes_books_and_orders_unavailable(x: PaperExchange, clock: SimClock) -> None:
    """While okx is out, its books and new orders raise VenueUnavailable and nothing moves; bybit still trades."""
    x.outage("okx-main", 600)
    before = state_of(x)
    with pytest.raises(VenueUnavailable):
        x.matching.order_book("okx-main", BTC)
    with pytest.raises(VenueUnavailable):
        x.matching.place(order("dark", "buy", "1"))
    assert state_of(x) == before
    assert x.matching.place(order("lit", "buy", "1", venue="bybit-main")).filled == Decimal(1)
    clock.advance(601)
    assert x.matching.place(order("dark", "buy", "1")).filled == Decimal(1)


def test_a_server_error_raises_unknown_outcome_before_any_effect(x: PaperExchange) -> None:
    """A 502 on create_order: UnknownOutcome, nothing filled, lookup finds nothing; the next send fills once."""
    x.matching.server_errors["okx-main"] = 1
    before = state_of(x)
    with pytest.raises(UnknownOutcome):
        x.matching.place(order("5xx", "buy", "2"))
    assert state_of(x) == before
    assert x.matching.lookup(order("5xx", "buy", "2")) is None
    r = x.matching.place(order("5xx", "buy", "2"))
    assert r.filled == Decimal(2)
    assert x.matching.fills == ["5xx"]


def test_a_timeout_after_the_fill_raises_unknown_outcome_and_lookup_finds_the_fill(x: PaperExchange) -> None:
    """The answer is lost after the fill: UnknownOutcome, the position moved, lookup returns the filled receipt."""
    x.matching.timeouts_after_fill["okx-main"] = 1
    with pytest.raises(UnknownOutcome):
        x.matching.place(order("lost", "sell", "3"))
    assert position(x) == pytest.approx(-3.0)
    found = x.matching.lookup(order("lost", "sell", "3"))
    assert found is not None
    assert found.filled == Decimal(3)
    assert found.done
    after = state_of(x)
    assert x.matching.place(order("lost", "sell", "3")) == found  # a re-send is recognised, not refilled
    assert state_of(x) == after


async def test_the_paper_orders_port_reports_the_same_faults(x: PaperExchange) -> None:
    """Through the PaperOrders port: a lost answer raises UnknownOutcome and lookup_order finds the fill."""
    port = PaperOrders(x)
    book = await port.order_book("bybit-main", BTC)
    assert book.mid == pytest.approx(MARK)
    x.matching.timeouts_after_fill["bybit-main"] = 1
    with pytest.raises(UnknownOutcome):
        await port.place(order("port", "buy", "1", venue="bybit-main"))
    found = await port.lookup_order(order("port", "buy", "1", venue="bybit-main"))
    assert found is not None
    assert found.filled == Decimal(1)
    assert await port.lookup_order(order("never-sent", "buy", "1", venue="bybit-main")) is None
    x.outage("bybit-main", 60)
    with pytest.raises(VenueUnavailable):
        await port.order_book("bybit-main", BTC)


# --- funding --------------------------------------------------------------------------------------


def test_funding_rates_are_quoted_per_symbol(x: PaperExchange) -> None:
    """set_funding changes one symbol's rate in the venue snapshot; other symbols and venues keep theirs."""
    assert x.snapshot("okx-main").funding == {BTC: 0.0001, ETH: 0.0001}
    x.set_funding("okx-main", ETH, -0.002)
    assert x.snapshot("okx-main").funding == {BTC: 0.0001, ETH: -0.002}
    assert x.snapshot("bybit-main").funding[ETH] == 0.0001
    x.set_funding("bybit-main", "SOL/USDT:USDT", 0.0003)  # a symbol the venue did not quote before
    assert x.snapshot("bybit-main").funding["SOL/USDT:USDT"] == 0.0003


def test_funding_is_charged_at_each_symbols_own_rate(x: PaperExchange, clock: SimClock) -> None:
    """At the 8 h boundary an ETH short pays |rate| × notional at −0.2% while a BTC long pays the default 0.01%."""
    x.advance()  # the first look only records the funding period
    x.matching.place(order("eth-short", "sell", "100", symbol=ETH))
    x.matching.place(order("btc-long", "buy", "1"))
    x.set_funding("okx-main", ETH, -0.002)
    before = x.books["okx-main"].collateral["USDT"]
    clock.advance(8 * 3600)
    x.advance()
    paid = float(before - x.books["okx-main"].collateral["USDT"])
    assert paid == pytest.approx(100 * 3_000 * 0.002 + 1 * MARK * 0.0001, abs=1e-4)


# --- saving and restoring -------------------------------------------------------------------------


def test_dump_and_restore_round_trip_orders_depth_fees_and_realized_pnl(
    settings: Settings, clock: SimClock, x: PaperExchange
) -> None:
    """Through JSON, a fresh exchange gets the orders, depth, fees and realized PnL back, and knows the client ids."""
    x.set_liquidity("bybit-main", BTC, 0.05)
    x.matching.place(order("o1", "buy", "10"))
    x.market.shock("BTC", 0.01)
    x.matching.place(order("o2", "sell", "4", reduce_only=True))
    x.matching.place(order("o3", "sell", "50", venue="bybit-main"))  # partial: the thinned book holds 5
    saved = json.loads(json.dumps(paper_state.dump(x)))

    fresh = PaperExchange(settings, market_from_settings(settings), clock.now)
    paper_state.restore(fresh, saved)
    m, f = x.matching, fresh.matching
    assert f.orders == m.orders
    assert f.depth == {("bybit-main", BTC): 0.05}
    assert f.fees_paid == m.fees_paid
    assert f.realized == m.realized
    assert m.realized["USDT"] > 0
    for venue in ("okx-main", "bybit-main"):
        assert fresh.books[venue].positions == x.books[venue].positions
        assert fresh.books[venue].collateral == x.books[venue].collateral
    assert fresh.matching.order_book("bybit-main", BTC) == x.matching.order_book("bybit-main", BTC)

    before = state_of(fresh, "bybit-main")
    assert f.place(order("o3", "sell", "50", venue="bybit-main")) == m.orders["o3"].receipt
    assert state_of(fresh, "bybit-main") == before
    assert f.lookup(order("o1", "buy", "10")) == m.orders["o1"].receipt
    with pytest.raises(OrderRefused):
        f.place(order("o1", "buy", "11"))
