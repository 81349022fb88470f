"""Scenario replays through `simulate`: the shipped scenarios, a model that can fail, determinism, crashes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.app import open_store
from bot.cli import app
from bot.settings import Settings
from bot.sim.runner import Replay
from bot.sim.scenario import load_scenario
from tests.conftest import DATA, PAPER, SCENARIOS

SHIPPED = sorted(SCENARIOS.glob("*.toml"))


def _replay(settings: Settings, path: Path, tmp_path: Path) -> dict[str, Any]:
    store = open_store(settings, f"sqlite:///{tmp_path / (path.stem + '.db')}")
    return asyncio.run(Replay(load_scenario(path), settings, store).run())


def test_at_least_the_four_required_scenarios_ship() -> None:
    """A calm day, a crash, a margin hike with an outage and a regime switch before an event are shipped."""
    assert {p.stem for p in SHIPPED} >= {
        "calm-day",
        "btc-crash",
        "margin-hike-outage",
        "high-vol-before-event",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_each_shipped_scenario_runs_without_a_liquidation(
    path: Path, paper_settings: Settings, tmp_path: Path
) -> None:
    """Every shipped scenario ends with no liquidation and an intact audit chain."""
    out = _replay(paper_settings, path, tmp_path)
    assert out["liquidations"] == []
    assert out["audit"]["chain_ok"]
    assert out["audit"]["events"] > 0
    assert set(out["venues"]) == {v.name for v in paper_settings.venues}
    assert all(t["status"] != "unknown" for t in out["transfers"]), (
        "a transfer was left with an unknown outcome"
    )


def test_the_crash_moves_collateral_in_time(paper_settings: Settings, tmp_path: Path) -> None:
    """During the crash, bybit-main is topped up automatically and its utilization is back under the alert level."""
    out = _replay(paper_settings, SCENARIOS / "btc-crash.toml", tmp_path)
    topups = [t for t in out["transfers"] if t["kind"] == "topup" and t["route"].endswith("bybit")]
    assert topups
    assert all(t["status"] == "confirmed" for t in topups)
    assert out["venues"]["bybit-main"]["final_utilization"] < 0.80
    assert all(t["step_submitted"] is not None and t["step_settled"] > t["step_submitted"] for t in topups)


def test_the_same_crash_with_every_route_frozen_liquidates(paper_settings: Settings, tmp_path: Path) -> None:
    """The model can fail: with no route able to move money, the long ETH book is liquidated."""
    out = _replay(paper_settings, DATA / "crash-frozen.toml", tmp_path)
    assert [x["venue"] for x in out["liquidations"]] == ["bybit-main"]
    assert not any(t["status"] == "confirmed" for t in out["transfers"])


def test_a_replay_is_deterministic(paper_settings: Settings, tmp_path: Path) -> None:
    """Replaying a scenario twice gives the same report, ids included."""
    a = _replay(paper_settings, SCENARIOS / "btc-crash.toml", tmp_path / "a")
    b = _replay(paper_settings, SCENARIOS / "btc-crash.toml", tmp_path / "b")
    assert a == b


def test_the_report_has_the_fields_the_spec_names(paper_settings: Settings, tmp_path: Path) -> None:
    """simulate --json carries every top-level, venue and transfer field of SPEC.md, amounts as decimal strings."""
    out = _replay(paper_settings, SCENARIOS / "btc-crash.toml", tmp_path)
    assert set(out) >= {
        "scenario",
        "steps",
        "liquidations",
        "venues",
        "transfers",
        "approvals",
        "orders",
        "hedges",
        "alerts",
        "notifications",
        "audit",
        "halted",
    }
    v = out["venues"]["bybit-main"]
    assert set(v) == {
        "max_utilization",
        "min_buffer",
        "final_utilization",
        "max_mm_ratio",
        "final_state",
        "steps_above_alert",
    }
    t = out["transfers"][0]
    assert set(t) == {
        "id",
        "route",
        "kind",
        "asset",
        "amount",
        "usd",
        "status",
        "step_requested",
        "step_submitted",
        "step_settled",
        "approvers",
    }
    assert isinstance(t["amount"], str)
    assert isinstance(t["usd"], str)
    assert t["kind"] in ("topup", "sweep")
    assert {a["severity"] for a in out["alerts"]} <= {"info", "warning", "critical"}


def test_crashes_and_timeouts_end_with_no_duplicate_and_no_liquidation(
    paper_settings: Settings, tmp_path: Path
) -> None:
    """A crash right after a top-up whose answer was lost: rebuilt from the database, one transfer per intent."""
    text = (SCENARIOS / "btc-crash.toml").read_text()
    text = text.replace('name = "btc crash 20% in an hour"', 'name = "crash with faults"')
    for at in (35, 40, 45, 50):
        text += (
            f'\n[[events]]\nat = {at}\ntype = "timeout_after_effect"\nroute = "buffer-to-bybit"\ncount = 1\n'
        )
        text += f'\n[[events]]\nat = {at + 1}\ntype = "crash"\n'
    path = tmp_path / "faults.toml"
    path.write_text(text)
    out = _replay(paper_settings, path, tmp_path)
    assert out["liquidations"] == []
    ids = [t["id"] for t in out["transfers"]]
    assert len(ids) == len(set(ids))
    assert all(t["status"] == "confirmed" for t in out["transfers"] if t["kind"] == "topup")


def test_simulate_command_prints_json_and_writes_a_report(tmp_path: Path) -> None:
    """`marginbot simulate --json --report DIR` prints the report and leaves it with the audit trail in DIR."""
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            str(SCENARIOS / "calm-day.toml"),
            "--config",
            str(PAPER),
            "--json",
            "--report",
            str(tmp_path / "rep"),
            "--db",
            f"sqlite:///{tmp_path / 'sim.db'}",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["scenario"] == "calm day"
    assert out["steps"] == 1440
    assert json.loads((tmp_path / "rep" / "simulate.json").read_text()) == out
    lines = (tmp_path / "rep" / "audit.jsonl").read_text().splitlines()
    assert len(lines) == out["audit"]["events"]


def test_the_large_top_up_goes_only_after_the_second_approval(
    paper_settings: Settings, tmp_path: Path
) -> None:
    """The 686k request is approved by alice (step 13) and bob (step 16), and submitted at 16, not before."""
    out = _replay(paper_settings, SCENARIOS / "large-topup-approved.toml", tmp_path)
    (t,) = [t for t in out["transfers"] if t["kind"] == "topup"]
    assert t["approvers"] == ["alice", "bob"]
    assert t["step_submitted"] == 16
    assert t["status"] == "confirmed"
    (a,) = out["approvals"]
    assert (a["status"], a["step_decided"]) == ("approved", 16)


def test_an_unanswered_request_expires_and_never_executes(paper_settings: Settings, tmp_path: Path) -> None:
    """The first request expires after 30 minutes unsent; only the fresh, approved one goes."""
    out = _replay(paper_settings, SCENARIOS / "approval-expires.toml", tmp_path)
    first, second = out["transfers"][:2]
    assert (first["status"], first["step_submitted"]) == ("expired", None)
    assert second["status"] == "confirmed"
    assert second["step_requested"] >= first["step_requested"] + 30
