"""`marginbot stress` through the command line: exit codes, the JSON shape, config scenarios, bad shocks."""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import PAPER

# one venue with a small book, plenty of collateral and a fast route: every default scenario is covered
CALM = """\
[bot]
regime = "normal"

[approvals]
approvers = ["alice", "bob"]
quorum = 2

[market]
prices = { BTC = 60000 }

[[venues]]
name = "okx-main"
kind = "paper"
[venues.paper]
collateral = { USDT = 5000000 }
positions = [ { symbol = "BTC/USDT:USDT", qty = -10, entry = 60000 } ]

[[accounts]]
name = "okx-funding"
bucket = "buffer"
owner = "treasury-ops"
balances = { USDT = 1000000 }

[[routes]]
name = "okx-funding-to-okx"
from = "okx-funding"
to = "okx-main"
asset = "USDT"
method = "internal"
max_amount = 1000000
daily_limit = 3000000
settle_seconds = 30
"""


@pytest.fixture(autouse=True)
def _no_marginbot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's MARGINBOT_* variables out of these tests."""
    for key in list(os.environ):
        if key.startswith("MARGINBOT_"):
            monkeypatch.delenv(key)


def stress(tmp_path: Path, config: Path, *args: str) -> Result:
    db = f"sqlite:///{tmp_path / 'stress.db'}"
    return CliRunner().invoke(app, ["stress", "--config", str(config), "--db", db, *args])


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def by_name(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {sc["name"]: sc for sc in out["scenarios"]}


def test_the_paper_config_fails_the_grid_with_exit_1_and_the_spec_json_shape(tmp_path: Path) -> None:
    """On config/paper.toml some scenarios are not covered or liquidate, so `stress --json` exits 1."""
    res = stress(tmp_path, PAPER, "--json")
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert out["ok"] is False
    venues = {"okx-main", "bybit-main", "binance-pm"}
    for sc in out["scenarios"]:
        assert set(sc) >= {"name", "venues", "topup_usd", "covered"}
        assert set(sc["venues"]) == venues
        assert isinstance(sc["covered"], bool)
        assert Decimal(sc["topup_usd"]) == sum(Decimal(v["topup_usd"]) for v in sc["venues"].values())
        for v in sc["venues"].values():
            assert v["utilization"] is None or isinstance(v["utilization"], float)
            assert v["mm_ratio"] is None or isinstance(v["mm_ratio"], float)
            assert isinstance(v["liquidates"], bool)
            Decimal(v["topup_usd"])
    scenarios = by_name(out)
    assert scenarios["okx-main frozen, all +20%"]["liquidates"] == ["okx-main"]
    assert scenarios["BTC -5%"]["covered"] is True
    assert set(out["failing"]) == {n for n, sc in scenarios.items() if not sc["covered"] or sc["liquidates"]}
    assert set(out["current"]["venues"]) == venues
    assert (
        out["margin_comparison"]["binance-pm"]["efficiency"] > 1.0
    )  # the hedged book gains from portfolio margin


def test_the_table_puts_failing_scenarios_first(tmp_path: Path) -> None:
    """The human table starts with the current figures, then lists failures before the covered scenarios."""
    res = stress(tmp_path, PAPER)
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert lines[0].startswith("stress ")
    header = next(i for i, line in enumerate(lines) if line.startswith("scenario "))
    rows = []
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        rows.append(line)
    covered = [" yes " in row for row in rows]
    assert covered == sorted(covered)
    assert "scenarios fail" in res.stdout


def test_a_calm_book_passes_every_scenario_with_exit_0(tmp_path: Path) -> None:
    """A small book with deep collateral needs no top-up anywhere on the grid: exit 0."""
    res = stress(tmp_path, write_config(tmp_path, CALM), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["ok"] is True
    assert out["failing"] == []


def test_config_scenarios_load_and_appear_after_the_default_grid(tmp_path: Path) -> None:
    """`[[stress.scenarios]]` are added to the grid with origin "config" and their shocks applied."""
    extra = """
[[stress.scenarios]]
name = "okx hike and btc +25%"
shocks = [ { type = "price", asset = "BTC", pct = 0.25 }, { type = "margin_rates", venue = "okx-main", factor = 2 } ]

[[stress.scenarios]]
name = "funding wallet frozen"
shocks = [ { type = "freeze", venue = "okx-funding" } ]
"""
    res = stress(tmp_path, write_config(tmp_path, CALM + extra), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [sc["name"] for sc in out["scenarios"][-2:]] == ["okx hike and btc +25%", "funding wallet frozen"]
    hike = by_name(out)["okx hike and btc +25%"]
    assert hike["origin"] == "config"
    assert hike["shocks"][1] == {"type": "margin_rates", "venue": "okx-main", "factor": 2.0}
    plain = by_name(out)["BTC +20%"]["venues"]["okx-main"]["utilization"]
    assert hike["venues"]["okx-main"]["utilization"] > plain


def test_a_config_scenario_that_liquidates_a_venue_exits_1(tmp_path: Path) -> None:
    """BTC ten times higher busts the short while okx-main is frozen: nothing can rescue it, so exit 1."""
    extra = """
[[stress.scenarios]]
name = "btc x10"
shocks = [ { type = "price", asset = "BTC", pct = 9.0 }, { type = "freeze", venue = "okx-main" } ]
"""
    res = stress(tmp_path, write_config(tmp_path, CALM + extra), "--json")
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    sc = by_name(out)["btc x10"]
    assert sc["liquidates"] == ["okx-main"]
    assert sc["venues"]["okx-main"]["liquidates"] is True
    assert sc["covered"] is False
    assert out["failing"] == ["btc x10"]


@pytest.mark.parametrize(
    ("shock", "line"),
    [
        pytest.param(
            '{ type = "margin_rates", venue = "okx-main" }',
            "error: stress.scenarios[okx hike].shocks[1]: margin_rates needs factor",
            id="missing-factor",
        ),
        pytest.param(
            '{ type = "haircut", venue = "okx-main", value = 0.3 }',
            "error: stress.scenarios[okx hike].shocks[1]: haircut needs asset",
            id="haircut-without-asset",
        ),
        pytest.param(
            '{ type = "price", pct = 0.1, venue = "okx-main" }',
            "error: stress.scenarios[okx hike].shocks[1]: price takes no venue",
            id="price-on-one-venue",
        ),
        pytest.param(
            '{ type = "freeze", venue = "okx-mian" }',
            "error: stress.scenarios[okx hike].shocks[1].venue: no venue or account named 'okx-mian'",
            id="unknown-venue",
        ),
        pytest.param(
            '{ type = "price", asset = "BTX", pct = -0.2 }',
            "error: stress.scenarios[okx hike].shocks[1].asset: BTX is not in market.prices",
            id="unknown-asset",
        ),
    ],
)
def test_a_bad_shock_is_bad_input_with_one_line_naming_it(tmp_path: Path, shock: str, line: str) -> None:
    """A shock missing a key its type needs, or naming what the config lacks, exits 2 with one clear line."""
    extra = f"""
[[stress.scenarios]]
name = "okx hike"
shocks = [ {{ type = "price", asset = "BTC", pct = -0.25 }}, {shock} ]
"""
    res = stress(tmp_path, write_config(tmp_path, CALM + extra))
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    errors = [x for x in res.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    assert errors[0].startswith(line)
    assert "Traceback" not in res.output


def test_an_unknown_regime_is_bad_input(tmp_path: Path) -> None:
    """`--regime` takes normal or high_vol; anything else exits 2 naming the option."""
    res = stress(tmp_path, write_config(tmp_path, CALM), "--regime", "calm")
    assert res.exit_code == 2
    assert "error: --regime" in res.stderr


def test_the_high_vol_regime_asks_for_bigger_top_ups(tmp_path: Path) -> None:
    """The same grid on the paper config needs more treasury under the 50% high-volatility buffer."""
    normal = json.loads(stress(tmp_path, PAPER, "--json").stdout)
    high = json.loads(stress(tmp_path, PAPER, "--json", "--regime", "high_vol").stdout)
    assert high["regime"] == "high_vol"
    need = {sc["name"]: Decimal(sc["topup_usd"]) for sc in normal["scenarios"]}
    need_high = {sc["name"]: Decimal(sc["topup_usd"]) for sc in high["scenarios"]}
    assert sum(need_high.values()) > sum(need.values())


def test_stress_reads_the_paper_world_a_run_saved(tmp_path: Path) -> None:
    """After `run --once` on the same database, the stress starts from the paper world that run left."""
    db = f"sqlite:///{tmp_path / 'stress.db'}"
    ran = CliRunner().invoke(app, ["run", "--once", "--config", str(PAPER), "--db", db])
    assert ran.exit_code == 0, ran.output
    res = stress(tmp_path, PAPER, "--json")
    out = json.loads(res.stdout)
    assert "as the last `marginbot run` saved it" in out["source"]


async def test_live_venues_are_read_through_ccxt_with_the_same_figures_as_on_paper() -> None:
    """Over fake exchanges serving the paper world, the live inputs give the same current figures and failures."""
    from bot.app import compile_policy, market_from_settings
    from bot.cli import _rehearsal_map
    from bot.core.policy import Regime
    from bot.core.stress import assess
    from bot.core.stress_grid import default_grid, project, underlyings
    from bot.settings import load_settings
    from bot.stress_cmd import gather
    from bot.venues.fakes.rehearsal import Rehearsal
    from bot.venues.live.ports import LiveWorld
    from bot.venues.paper import PaperExchange

    s = load_settings(PAPER)
    paper_inputs = await gather(s)
    paper = PaperExchange(s, market_from_settings(s), lambda: 0.0)
    rehearsal = Rehearsal(s, _rehearsal_map(s, []), paper)
    live_settings = await rehearsal.start()
    world = LiveWorld(live_settings, env=rehearsal.env)
    try:
        live_inputs = await gather(live_settings, live=world)
    finally:
        await world.close()
        await rehearsal.stop()
    assert live_inputs.source == "live venues read now"

    def report(settings, inputs):  # type: ignore[no-untyped-def]
        snaps = inputs.snapshots
        grid = default_grid(underlyings(snaps), sorted(snaps))
        return assess(
            project(snaps, grid),
            compile_policy(settings),
            inputs.accounts,
            Regime.NORMAL,
            now=inputs.now,
            snapshots=snaps,
        )

    on_paper, through_ccxt = report(s, paper_inputs), report(live_settings, live_inputs)
    for a, b in zip(on_paper.current.venues, through_ccxt.current.venues, strict=True):
        assert a.venue == b.venue
        assert abs(a.utilization - b.utilization) < 1e-6
        assert abs(a.mm_ratio - b.mm_ratio) < 1e-6
    assert [sc.name for sc in on_paper.ranked() if sc.failed] == [
        sc.name for sc in through_ccxt.ranked() if sc.failed
    ]


def test_the_margin_comparison_is_included_when_the_risk_array_offers_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `bot.core.risk_array.compare` present its per-venue answer is in the JSON; without it, a note says so."""
    import types

    module = types.ModuleType("bot.core.risk_array")
    monkeypatch.setitem(sys.modules, "bot.core.risk_array", module)
    out = json.loads(stress(tmp_path, write_config(tmp_path, CALM), "--json").stdout)
    assert out["margin_comparison"] is None
    assert any("margin comparison" in n for n in out["notes"])

    module.compare = lambda snap: {"venue": snap.venue, "cross_im": 1.5, "portfolio_im": Decimal("1.2")}  # type: ignore[attr-defined]
    out = json.loads(stress(tmp_path, write_config(tmp_path, CALM), "--json").stdout)
    assert out["margin_comparison"] == {
        "okx-main": {"venue": "okx-main", "cross_im": 1.5, "portfolio_im": "1.2"}
    }
    assert out["notes"] == []


def test_two_config_scenarios_with_one_name_are_bad_input(tmp_path: Path) -> None:
    """Scenario names identify rows in the report, so a name used twice exits 2 naming it."""
    extra = """
[[stress.scenarios]]
name = "okx hike"
shocks = [ { type = "margin_rates", venue = "okx-main", factor = 2 } ]

[[stress.scenarios]]
name = "okx hike"
shocks = [ { type = "margin_rates", venue = "okx-main", factor = 3 } ]
"""
    res = stress(tmp_path, write_config(tmp_path, CALM + extra))
    assert res.exit_code == 2
    assert res.stderr.strip() == "error: stress.scenarios: the name 'okx hike' is used twice"
