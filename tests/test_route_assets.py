"""A route moves only an asset that is priced and accepted at its venue end, sized through price and haircut.

Seen before the fix: a DOGE route (priced nowhere) passed check-config and `run` sent 285,664.36 DOGE for a
285,664 USD need, booked as 285k USD of collateral; an ETH route into a USDT-only venue asked approval for
1,000 ETH (3.0M USD) to cover a 286k USD need.
"""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.app import build, open_store
from bot.cli import app
from bot.core.decide import decide
from bot.core.margin import collateral_value
from bot.core.routing import plan_topup
from bot.engine.clock import SimClock
from bot.errors import ConfigError
from bot.settings import settings_from_dict
from tests.builders import NOW, policy, route, snapshot, world
from tests.test_config import PAPER, by_name, paper_config, write_config

RANK = {"buffer": 0, "trading": 1, "emergency": 2}


def _with_route_asset(asset: str, *, accept: dict[str, float] | None = None) -> dict[str, Any]:
    """The shipped config with buffer-to-okx in `asset` (the treasury holds plenty of it)."""
    data = paper_config()
    by_name(data["routes"], "buffer-to-okx")["asset"] = asset
    by_name(data["accounts"], "treasury-buffer")["balances"][asset] = 9_000_000
    if accept is not None:
        by_name(data["venues"], "okx-main")["paper"]["haircuts"].update(accept)
    return data


def test_a_route_in_an_asset_its_venue_does_not_take_is_refused_at_load() -> None:
    """DOGE into okx-main (collateral USDT, haircuts USDT/BTC) is a config error naming the route."""
    with pytest.raises(ConfigError) as err:
        settings_from_dict(_with_route_asset("DOGE"))
    assert any(
        p.startswith("routes[buffer-to-okx].asset: okx-main does not take DOGE") for p in err.value.problems
    )


def test_an_eth_route_into_a_usdt_only_venue_is_refused_by_check_config(tmp_path: Path) -> None:
    """check-config exits 2 with one line naming the route, instead of saying OK."""
    path = write_config(tmp_path, _with_route_asset("ETH"))
    res = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: routes[buffer-to-okx].asset: okx-main does not take ETH")
    assert " OK " not in res.stdout


def test_a_sweep_route_in_an_asset_its_venue_does_not_hold_is_refused() -> None:
    """The venue end of a sweep must take the asset too: it is the collateral being returned."""
    data = paper_config()
    by_name(data["routes"], "bybit-to-buffer")["asset"] = "SOL"
    with pytest.raises(ConfigError) as err:
        settings_from_dict(data)
    assert any(
        p.startswith("routes[bybit-to-buffer].asset: bybit-main does not take SOL")
        for p in err.value.problems
    )


def test_an_unpriced_route_carries_nothing() -> None:
    """With no price for DOGE, a DOGE route is never sized as if a coin were a dollar: the need is a shortfall."""
    legs, short = plan_topup(
        285_664.0,
        [route("doge", asset="DOGE", min_amount="1")],
        prices={"BTC": 60_000.0},
        haircuts={},
        remaining={"doge": Decimal(10**9)},
        available={"buffer": {"DOGE": Decimal(10**9)}},
        rank=RANK,
    )
    assert legs == []
    assert short == pytest.approx(285_664.0)


def test_a_top_up_in_eth_is_sized_through_price_and_haircut() -> None:
    """286k USD of need at ETH 3,000 with a 10% haircut is 105.93 ETH (rounded up), not 286k ETH or 1,000 ETH."""
    legs, short = plan_topup(
        286_000.0,
        [route("eth", asset="ETH", min_amount="1", max_amount="5000", daily_limit="5000")],
        prices={"ETH": 3_000.0},
        haircuts={"ETH": 0.10},
        remaining={"eth": Decimal(5000)},
        available={"buffer": {"ETH": Decimal(10_000)}},
        rank=RANK,
    )
    assert short == 0
    assert [leg.amount for leg in legs] == [Decimal("105.93")]
    assert legs[0].delivered_usd == pytest.approx(105.93 * 3000 * 0.9)


def test_decide_values_an_eth_top_up_in_dollars_for_the_approval_policy() -> None:
    """The action's `usd` is amount × price, so a 3M USD move cannot pass as a 1,000 'dollar' one."""
    r = route("eth", asset="ETH", min_amount="1", max_amount="5000", daily_limit="5000")
    snap = snapshot(usdt=1_100_000.0)  # u = 0.9M / 1.1M: buffer 18% < 20%
    snap = replace(snap, prices={"BTC": 60_000.0, "ETH": 3_000.0})
    w = world({"v1": snap}, balances={"buffer": {"ETH": Decimal(10_000)}})
    planned = decide(w, policy((r,))).actions
    assert len(planned) == 1
    a = planned[0].action
    assert a.asset == "ETH"
    assert a.usd == (a.amount * 3000).quantize(Decimal("0.01"))
    assert 900_000 / 0.7 - 1_100_000 < float(a.usd) < 900_000 / 0.7 - 1_100_000 + 3_000  # one 0.01 ETH step


def test_decide_alerts_when_a_route_asset_has_no_price() -> None:
    """A venue that needs a top-up through an unpriced route gets a critical `unpriced` alert and no move."""
    r = route("doge", asset="DOGE", min_amount="1")
    w = world({"v1": snapshot(usdt=1_100_000.0)}, balances={"buffer": {"DOGE": Decimal(10**9)}})
    d = decide(w, policy((r,)))
    assert d.actions == ()
    assert any(a.kind == "unpriced" and "DOGE" in a.message for a in d.alerts)


def test_collateral_with_no_price_counts_for_nothing() -> None:
    """Equity never counts an unpriced asset at 1 USD; stablecoins are 1."""
    assert collateral_value({"DOGE": 285_664.0, "USDT": 10.0}, {"BTC": 60_000.0}, {}) == 10.0
    assert collateral_value({"DOGE": 100.0}, {"DOGE": 0.15}, {"DOGE": 0.5}) == pytest.approx(7.5)


def test_run_tops_up_in_eth_by_value_end_to_end(tmp_path: Path) -> None:
    """okx-main takes ETH (haircut 10%) and its only top-up route is ETH: the bot sends ETH worth the need."""
    data = _with_route_asset("ETH", accept={"ETH": 0.10})
    for name in ("okx-funding-to-okx", "emergency-to-okx"):
        data["routes"] = [r for r in data["routes"] if r["name"] != name]
    by_name(data["venues"], "okx-main")["paper"]["collateral"]["USDT"] = 1_100_000  # buffer 18%
    by_name(data["routes"], "buffer-to-okx")["min_amount"] = 1  # limits are in the route's asset: 1 ETH
    s = settings_from_dict(data)
    store = open_store(s, f"sqlite:///{tmp_path / 'm.db'}")
    clock = SimClock(NOW)
    wired = build(s, store, clock, send_notifications=False)

    async def one() -> None:
        await wired.bot.start()
        await wired.bot.cycle()

    asyncio.run(one())
    rows = [r for r in store.intents.rows() if r.venue == "okx-main"]
    assert [(r.route, r.asset) for r in rows] == [("buffer-to-okx", "ETH")]
    eth = rows[0].amount
    need = 0.9e6 / 0.7 - 1.1e6  # back to the 30% target
    assert Decimal(str(need / (3000 * 0.9))) <= eth - 1 < Decimal(str(need / (3000 * 0.9))) + 1
    assert rows[0].usd == (eth * 3000).quantize(Decimal("0.01"))


def test_the_shipped_configs_route_only_accepted_assets() -> None:
    """Every example config still loads: its routes move collateral their venues take."""
    for name in ("paper.toml", "hedging.toml", "live.example.toml"):
        with (PAPER.parent / name).open("rb") as fh:
            settings_from_dict(tomllib.load(fh))
