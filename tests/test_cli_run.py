"""The main job through the command line: `run`, `status`, `bench` and the default config path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import PAPER, ROOT


def test_run_once_takes_one_cycle_and_status_reports_it(tmp_path: Path) -> None:
    """`run --once` prints one status line per venue, and `status` then shows every venue with its state."""
    db = f"sqlite:///{tmp_path / 'm.db'}"
    res = CliRunner().invoke(app, ["run", "--once", "--config", str(PAPER), "--db", db])
    assert res.exit_code == 0, res.output
    line = res.stdout.strip().splitlines()[-1]
    assert "okx-main u=" in line
    assert "bybit-main u=" in line
    assert "binance-pm u=" in line
    st = CliRunner().invoke(app, ["status", "--config", str(PAPER), "--db", db, "--json"])
    assert st.exit_code == 0, st.output
    out = json.loads(st.stdout)
    assert set(out["venues"]) == {"okx-main", "bybit-main", "binance-pm"}
    assert out["venues"]["okx-main"]["state"] == "healthy"
    assert 0.5 < out["venues"]["okx-main"]["utilization"] < 0.7
    table = CliRunner().invoke(app, ["status", "--config", str(PAPER), "--db", db])
    assert "okx-main" in table.stdout
    assert "pending approvals: 0" in table.stdout


def test_run_for_a_few_seconds_stops_by_itself(tmp_path: Path) -> None:
    """`run --for 1` cycles until the time is up and exits 0, leaving an intact audit chain."""
    db = f"sqlite:///{tmp_path / 'm.db'}"
    env = {**os.environ, "MARGINBOT_BOT__CYCLE_SECONDS": "0.2"}
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--for", "1", "--config", str(PAPER), "--db", db],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) >= 3
    verify = CliRunner().invoke(app, ["audit", "verify", "--config", str(PAPER), "--db", db])
    assert verify.exit_code == 0
    assert "OK" in verify.stdout


def test_status_before_any_run_says_what_to_do(tmp_path: Path) -> None:
    """Where no database exists yet, `status` says to start the bot, exits 2, and creates nothing."""
    res = CliRunner().invoke(
        app, ["status", "--config", str(PAPER), "--db", f"sqlite:///{tmp_path / 'e.db'}"]
    )
    assert res.exit_code == 2
    assert "marginbot run" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_default_config_is_the_paper_one(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With neither --config nor MARGINBOT_CONFIG, commands read config/paper.toml."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("MARGINBOT_CONFIG", raising=False)
    res = CliRunner().invoke(app, ["check-config"])
    assert res.exit_code == 0, res.output
    assert "config/paper.toml OK" in res.stdout


def test_bench_reports_each_workload_as_json(tmp_path: Path) -> None:
    """`bench --json` reports the paper workloads with their figures (a short run; the live ones are below)."""
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "--config",
            str(PAPER),
            "--json",
            "--runs",
            "1",
            "--year-steps",
            "2000",
            "--only",
            "decide_10x50,hedge_plan,reaction,simulate_year",
        ],
    )
    assert res.exit_code == 0, res.output
    w = json.loads(res.stdout)["workloads"]
    assert w["decide_10x50"]["quiet_decisions_per_s"] > 0
    assert w["simulate_year"]["steps"] == 2000
    assert w["simulate_year"]["median_seconds"] > 0
    assert w["reaction"]["samples_per_run"] > 0
    assert w["reaction"]["p99_ms"] >= w["reaction"]["p50_ms"] > 0


def test_bench_refuses_an_unknown_workload() -> None:
    """`--only` names workloads; an unknown one is bad input (exit 2) listing the known ones."""
    res = CliRunner().invoke(app, ["bench", "--config", str(PAPER), "--only", "nope"])
    assert res.exit_code == 2
    assert "ccxt_snapshot" in res.stderr


async def test_the_live_workloads_measure_a_snapshot_and_a_transfer_through_ccxt() -> None:
    """The live bench parses every position through ccxt and sends a transfer without a client-side wait."""
    from bot.bench_live import _snapshot_figures, _transfer_waits

    figures = await _snapshot_figures("okx", 5, 2)
    assert figures["parse_ms"] > 0
    assert figures["requests"] >= 2
    waits = await _transfer_waits("bybit", 1, False)
    assert len(waits) == 1
    assert 0 < waits[0] < 0.5
