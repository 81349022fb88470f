"""The command line with live venues: rehearsal through ccxt, key status in check-config, missing keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import PAPER, ROOT

LIVE_EXAMPLE = ROOT / "config" / "live.example.toml"


def _utilizations(text: str) -> dict[str, str]:
    return dict(re.findall(r"(\S+) u=\s*([0-9.]+%)", text))


def test_a_rehearsal_sees_the_paper_world_through_ccxt_as_the_paper_run_does(tmp_path: Path) -> None:
    """`rehearse --once` over the paper config reads every venue through ccxt and the fakes, at the same utilization."""
    paper = CliRunner().invoke(
        app, ["run", "--once", "--config", str(PAPER), "--db", f"sqlite:///{tmp_path}/p.db"]
    )
    assert paper.exit_code == 0, paper.output
    live = CliRunner().invoke(
        app, ["rehearse", "--once", "--config", str(PAPER), "--db", f"sqlite:///{tmp_path}/r.db"]
    )
    assert live.exit_code == 0, live.output
    seen = _utilizations(live.stdout)
    assert set(seen) == {"okx-main", "bybit-main", "binance-pm"}
    assert seen == _utilizations(paper.stdout)
    assert "fake okx at http://127.0.0.1:" in live.stderr


def test_a_rehearsal_map_must_name_known_things() -> None:
    """A bad --map is bad input: exit 2 with the item named."""
    res = CliRunner().invoke(app, ["rehearse", "--once", "--config", str(PAPER), "--map", "okx-main=kraken"])
    assert res.exit_code == 2
    assert "--map okx-main=kraken" in res.stderr


def test_check_config_says_which_key_sets_are_missing_without_printing_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The live example validates; each key set shows MISSING with its variables, or `found` once set."""
    for var in list(__import__("os").environ):
        if var.startswith("MARGINBOT_KEY_"):
            monkeypatch.delenv(var)
    res = CliRunner().invoke(app, ["check-config", "--config", str(LIVE_EXAMPLE)])
    assert res.exit_code == 0, res.output
    assert "key set 'okx': MISSING" in res.stdout
    assert "MARGINBOT_KEY_OKX_PASSWORD" in res.stdout
    monkeypatch.setenv("MARGINBOT_KEY_OKX_API_KEY", "live-key-abcdef")
    monkeypatch.setenv("MARGINBOT_KEY_OKX_SECRET", "live-secret-abcdef")
    monkeypatch.setenv("MARGINBOT_KEY_OKX_PASSWORD", "live-pass-abcdef")
    res = CliRunner().invoke(app, ["check-config", "--config", str(LIVE_EXAMPLE)])
    assert "key set 'okx': found" in res.stdout
    assert "live-key-abcdef" not in res.output
    assert "live-secret-abcdef" not in res.output


def test_run_without_keys_exits_2_naming_each_missing_key_set_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No exchange is contacted when keys are missing: one line per key set, exit 2."""
    for var in list(__import__("os").environ):
        if var.startswith("MARGINBOT_KEY_"):
            monkeypatch.delenv(var)
    res = CliRunner().invoke(
        app, ["run", "--once", "--config", str(LIVE_EXAMPLE), "--db", f"sqlite:///{tmp_path}/l.db"]
    )
    assert res.exit_code == 2
    lines = [x for x in res.stderr.splitlines() if x.startswith("error: credentials")]
    assert len(lines) == 4
    assert "Traceback" not in res.output


def test_simulate_refuses_a_live_config_plainly(tmp_path: Path) -> None:
    """simulate replays paper venues only, and says so naming the live ones."""
    scenario = ROOT / "config" / "scenarios"
    first = sorted(scenario.glob("*.toml"))[0]
    res = CliRunner().invoke(
        app, ["simulate", str(first), "--config", str(LIVE_EXAMPLE), "--db", f"sqlite:///{tmp_path}/s.db"]
    )
    assert res.exit_code == 2  # bad input for simulate, which names the command that can: rehearse
    assert "simulate runs paper venues and accounts only" in res.stderr
    assert "`marginbot rehearse`" in res.stderr
