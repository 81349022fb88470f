"""The hedging scenarios (config/scenarios/hedging/*.toml) replayed on config/hedging.toml."""

from __future__ import annotations

import asyncio
import copy
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.app import open_store
from bot.settings import Settings, load_settings, settings_from_dict
from bot.sim.runner import Replay
from bot.sim.scenario import load_scenario
from tests.conftest import ROOT, SCENARIOS

HEDGING = ROOT / "config" / "hedging.toml"
HEDGE_SCENARIOS = SCENARIOS / "hedging"
NAMES = ("trending-day", "funding-flip", "liquidity-drought", "bleeding-stop", "venue-outage")
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


@dataclass(frozen=True)
class Run:
    out: dict[str, Any]
    marks: dict[int, dict[str, float]]  # step -> market prices the cycle of that step saw

    def orders(self, program: str) -> list[dict[str, Any]]:
        return [o for o in self.out["orders"] if o["program"] == program]

    def hedge(self, program: str) -> dict[str, Any]:
        h: dict[str, Any] = self.out["hedges"][program]
        return h


def replay(settings: Settings, name: str, db: Path) -> Run:
    """Replay one hedging scenario, recording the marks of every step (the price each cycle traded against)."""
    store = open_store(settings, f"sqlite:///{db}")
    r = Replay(load_scenario(HEDGE_SCENARIOS / f"{name}.toml"), settings, store)
    marks = {0: dict(r.market.prices)}
    advance: Callable[..., None] = r.market.advance

    def recording(dt_seconds: float, step: int | None = None) -> None:
        advance(dt_seconds, step=step)
        assert step is not None
        marks[step] = dict(r.market.prices)

    r.market.advance = recording  # type: ignore[method-assign]
    return Run(asyncio.run(r.run()), marks)


@pytest.fixture(scope="module")
def hedging() -> Settings:
    return load_settings(HEDGING)


@pytest.fixture(scope="module")
def runs(hedging: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Each scenario replayed once for the whole module (a replay is deterministic)."""
    d = tmp_path_factory.mktemp("hedge-scenarios")
    return {name: replay(hedging, name, d / f"{name}.db") for name in NAMES}


def signed(o: dict[str, Any]) -> float:
    q = float(Decimal(o["filled"] or "0"))
    return q if o["side"] == "buy" else -q


def test_the_five_hedging_scenarios_ship() -> None:
    """trending-day, funding-flip, liquidity-drought, bleeding-stop and venue-outage are in config/scenarios/hedging."""
    assert {p.stem for p in HEDGE_SCENARIOS.glob("*.toml")} >= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_hedging_scenario_ends_safe_with_nothing_unknown(runs: dict[str, Run], name: str) -> None:
    """No liquidation, an intact audit chain, and no order or transfer left with an unknown outcome."""
    out = runs[name].out
    assert out["liquidations"] == []
    assert out["audit"]["chain_ok"]
    assert out["audit"]["events"] > 0
    assert out["orders"], "the hedge programs placed no order at all"
    unknown_orders = [o for o in out["orders"] if o["status"] == "unknown"]
    assert unknown_orders == []
    unknown_transfers = [t for t in out["transfers"] if t["status"] == "unknown"]
    assert unknown_transfers == []
    assert set(out["hedges"]) == {"btc-options", "eth-inventory", "btc-treasury"}


@pytest.mark.parametrize("name", NAMES)
def test_each_programs_holdings_are_the_sum_of_its_fills(runs: dict[str, Run], name: str) -> None:
    """Every program's final holdings equal the signed fills of its own orders, instrument by instrument."""
    run = runs[name]
    for program, h in run.out["hedges"].items():
        total: dict[str, float] = {}
        for o in run.orders(program):
            key = f"{o['venue']}|{o['symbol']}"
            total[key] = total.get(key, 0.0) + signed(o)
        total = {k: v for k, v in total.items() if abs(v) > 1e-9}
        assert set(total) == set(h["holdings"]), program
        for key, qty in total.items():
            assert h["holdings"][key] == pytest.approx(qty, abs=1e-6), (program, key)


# --- trending day ---------------------------------------------------------------------------------


def _every_cycle(hedging: Settings) -> Settings:
    """config/hedging.toml with btc-options rebalancing every cycle (a tiny band, no min trade, no cap)."""
    data = copy.deepcopy(tomllib.loads(HEDGING.read_text()))
    (h,) = [h for h in data["hedges"] if h["name"] == "btc-options"]
    h.update(band=0.001, min_trade=0, max_trades_per_hour=3600)
    s = settings_from_dict(data)
    assert s.hedges[0].band != hedging.hedges[0].band
    return s


def test_trending_day_keeps_the_band_with_few_trades(runs: dict[str, Run], hedging: Settings) -> None:
    """On the +8% day btc-options never drifts past its band of 4 BTC and trades at most 8 times."""
    (spec,) = [h for h in hedging.hedges if h.name == "btc-options"]
    h = runs["trending-day"].hedge("btc-options")
    assert spec.band == 4
    assert h["max_abs_delta_deviation"] <= spec.band
    assert h["trades"] <= 8
    assert not h["stopped"]
    # the short-gamma book loses delta as BTC rises: the hedge is bought back, never sold more
    later = [o for o in runs["trending-day"].orders("btc-options") if o["step"] > 0]
    assert later
    assert all(o["side"] == "buy" and o["reduce_only"] for o in later)


def test_a_band_saves_at_least_ten_times_the_trades_of_rebalancing_every_cycle(
    runs: dict[str, Run], hedging: Settings, tmp_path: Path
) -> None:
    """The same trending day with a 0.001 BTC band and no cap makes at least 10× the trades of the 4 BTC band."""
    banded = runs["trending-day"].hedge("btc-options")["trades"]
    baseline_run = replay(_every_cycle(hedging), "trending-day", tmp_path / "every-cycle.db")
    baseline = baseline_run.hedge("btc-options")["trades"]
    assert baseline >= 10 * banded, f"band of 4: {banded} trades; every cycle: {baseline} trades"
    assert baseline_run.out["liquidations"] == []
    assert baseline_run.hedge("btc-options")["max_abs_delta_deviation"] <= 0.001 + 1e-9


# --- funding flip ---------------------------------------------------------------------------------


def test_funding_flip_rotates_the_eth_hedge_to_bybit_once(runs: dict[str, Run]) -> None:
    """When okx ETH funding turns against shorts, eth-inventory moves its short to bybit in one step, once."""
    run = runs["funding-flip"]
    h = run.hedge("eth-inventory")
    assert set(h["holdings"]) == {f"bybit-main|{ETH}"}
    assert h["holdings"][f"bybit-main|{ETH}"] == pytest.approx(-1500.0)
    orders = run.orders("eth-inventory")
    unwinds = [o for o in orders if o["reason"] == "unwind"]
    assert len(unwinds) == 1
    (unwind,) = unwinds
    assert (unwind["venue"], unwind["symbol"], unwind["side"]) == ("okx-main", ETH, "buy")
    assert unwind["reduce_only"]
    assert unwind["status"] == "filled"
    assert unwind["step"] >= 120  # not before the flip
    step = unwind["step"]
    moved_in = [o for o in orders if o["venue"] == "bybit-main" and o["reason"] == "rebalance"]
    assert len(moved_in) == 1
    assert moved_in[0]["step"] == step
    assert moved_in[0]["side"] == "sell"
    assert Decimal(moved_in[0]["filled"]) == Decimal(unwind["filled"])
    back = [o for o in orders if o["venue"] == "okx-main" and o["step"] > step]
    assert back == [], "the hedge moved back to okx after the rotation"
    assert [o for o in orders if o["step"] > step] == []


# --- liquidity drought ----------------------------------------------------------------------------

EXPOSURE_STEP = 61  # liquidity-drought.toml: the options book's delta goes from 40 to 80 BTC


def test_liquidity_drought_splits_the_hedge_across_venues_in_one_step(runs: dict[str, Run]) -> None:
    """At the exposure jump the thin okx book cannot take it all: btc-options sells on okx and bybit at once."""
    after = [o for o in runs["liquidity-drought"].orders("btc-options") if o["step"] >= EXPOSURE_STEP]
    assert after
    first = min(o["step"] for o in after)
    assert first == EXPOSURE_STEP
    assert {o["venue"] for o in after if o["step"] == first} == {"okx-main", "bybit-main"}
    assert all(o["side"] == "sell" for o in after)


def test_liquidity_drought_orders_stay_within_the_slippage_cap(
    runs: dict[str, Run], hedging: Settings
) -> None:
    """Every hedge fill after the jump averages within max_slippage_bps (+ half the spread) of that step's mark."""
    run = runs["liquidity-drought"]
    (spec,) = [h for h in hedging.hedges if h.name == "btc-options"]
    half_spread = {v.name: v.paper.spread_bps / 2 for v in hedging.venues if v.paper is not None}
    after = [o for o in run.orders("btc-options") if o["step"] >= EXPOSURE_STEP]
    assert after
    for o in after:
        mark = run.marks[o["step"]]["BTC"]
        slip = (mark - o["avg_price"]) / mark * 10_000  # sells: below the mark is slippage
        assert slip <= spec.max_slippage_bps + half_spread[o["venue"]] + 1e-6, (o, mark, slip)
        assert o["status"] == "filled"
    capped = [
        a
        for a in run.out["alerts"]
        if a["kind"] == "hedge_capped" and a["venue"] == "hedge:btc-options" and a["step"] == EXPOSURE_STEP
    ]
    assert capped, "the capped hedge raised no hedge_capped warning"


def test_liquidity_drought_holds_to_the_trade_cap_and_ends_in_band(
    runs: dict[str, Run], hedging: Settings
) -> None:
    """At most 4 trades in any hour, a hedge_cap warning while the cap holds delta out, and net delta back in band."""
    run = runs["liquidity-drought"]
    (spec,) = [h for h in hedging.hedges if h.name == "btc-options"]
    steps = sorted({o["step"] for o in run.orders("btc-options")})
    for s in steps:
        window = [t for t in steps if s <= t < s + 60]  # one-minute steps: an hour is 60 steps
        assert len(window) <= spec.max_trades_per_hour, (s, window)
    caps = [a for a in run.out["alerts"] if a["kind"] == "hedge_cap" and a["venue"] == "hedge:btc-options"]
    assert caps, "no hedge_cap warning although the trades-per-hour cap was reached"
    assert all(a["severity"] == "warning" for a in caps)
    assert min(a["step"] for a in caps) > EXPOSURE_STEP
    h = run.hedge("btc-options")
    assert h["final_net_delta"] is not None
    assert abs(h["final_net_delta"] - spec.target_delta) <= spec.band
    assert sum(h["holdings"].values()) < -70  # most of the 80 BTC is hedged by the end


# --- bleeding stop --------------------------------------------------------------------------------


def test_bleeding_stop_stops_and_unwinds_eth_inventory(runs: dict[str, Run]) -> None:
    """Funding drag of 75 bps/day trips the 10 bps/day stop: eth-inventory unwinds reduce-only and stays flat."""
    run = runs["bleeding-stop"]
    h = run.hedge("eth-inventory")
    assert h["stopped"]
    assert h["stop_reason"] is not None
    assert "funding drag" in h["stop_reason"]
    assert "max_funding_drag_bps_per_day" in h["stop_reason"]
    assert h["holdings"] == {}
    orders = run.orders("eth-inventory")
    stops = [o for o in orders if o["reason"] == "stop"]
    assert stops
    assert all(o["reduce_only"] and o["side"] == "buy" and o["symbol"] == ETH for o in stops)
    assert all(o["status"] == "filled" for o in stops)
    stop_step = min(o["step"] for o in stops)
    assert stop_step == 480  # the 08:00 funding charge, the first after the rate turned at step 30
    assert [o for o in orders if o["reason"] == "rebalance" and o["step"] >= stop_step] == []
    assert [o for o in orders if o["reason"] != "stop" and o["step"] > stop_step] == []
    stopped = [
        a
        for a in run.out["alerts"]
        if a["kind"] == "hedge_stopped"
        and a["venue"] == "hedge:eth-inventory"
        and a["severity"] == "critical"
    ]
    assert stopped
    assert stopped[0]["step"] == stop_step
    # the other programs are not stopped by eth-inventory's rule
    assert not run.hedge("btc-options")["stopped"]
    assert not run.hedge("btc-treasury")["stopped"]


# --- venue outage ---------------------------------------------------------------------------------

OUTAGE = range(100, 400)  # venue-outage.toml: okx-main dark from step 100 for 300 steps


def test_venue_outage_places_the_extra_hedge_on_the_backup(runs: dict[str, Run]) -> None:
    """While okx is dark, the 20 BTC of extra delta is sold on bybit-main and no order goes to okx."""
    run = runs["venue-outage"]
    during = [o for o in run.orders("btc-options") if o["step"] in OUTAGE]
    assert during, "btc-options placed no hedge during the outage"
    assert {o["venue"] for o in during} == {"bybit-main"}
    assert all(o["side"] == "sell" and not o["reduce_only"] for o in during)
    assert min(o["step"] for o in during) == 110  # the exposure event's own step
    assert sum(signed(o) for o in during) == pytest.approx(-20.0, abs=0.5)
    to_okx = [o for o in run.out["orders"] if o["venue"] == "okx-main" and o["step"] in OUTAGE]
    assert to_okx == []
    assert abs(run.hedge("btc-options")["final_net_delta"]) <= 4
