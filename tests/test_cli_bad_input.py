"""Bad input on the command line: scenario files for `marginbot simulate`, bad arguments and options.

Every case exits 2 with one `error:` line naming the key (or the file), and never prints a traceback;
an event type the spec names but this release does not run exits 1 saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from bot.cli import app

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "config" / "paper.toml"

# a valid scenario header: every asset the shipped config's positions need has a price
HEADER = """\
name = "bad input probe"
start = "2026-03-01T00:00:00Z"
step_seconds = 60
steps = 10
seed = 1

[prices.BTC]
start = 60000
vol_annual = 0.5

[prices.ETH]
start = 3000
"""


@pytest.fixture(autouse=True)
def _no_marginbot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's MARGINBOT_* variables out of these tests."""
    for key in list(os.environ):
        if key.startswith("MARGINBOT_"):
            monkeypatch.delenv(key)


def write_scenario(tmp_path: Path, text: str, name: str = "scenario.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def simulate(tmp_path: Path, scenario: Path) -> Result:
    db = f"sqlite:///{tmp_path / 'sim.db'}"
    return CliRunner().invoke(app, ["simulate", str(scenario), "--config", str(PAPER), "--db", db, "--json"])


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def assert_no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def assert_bad_input_at(result: Result, key: str, *fragments: str) -> None:
    """Exit 2, no traceback, no JSON, and an `error:` line that starts with the key and carries the fragments."""
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert result.stdout == ""
    assert any(
        line.startswith(f"error: {key}") and all(f in line for f in fragments) for line in error_lines(result)
    ), f"no stderr line starts with {key!r} and holds {fragments}:\n{result.stderr}"


# --- scenario validation ---------------------------------------------------------------------------------
BAD_EVENTS = [
    pytest.param('at = 1\ntype = "moon_landing"\n', "events[0]", ("moon_landing",), id="unknown-event-type"),
    pytest.param("at = 1\n", "events[0]", ("type",), id="event-without-type"),
    pytest.param(
        'at = 10\ntype = "regime"\nvalue = "high_vol"\n',
        "events[0].at",
        ("10", "0..9"),
        id="event-at-equal-to-steps",
    ),
    pytest.param(
        'at = 500\ntype = "crash"\n',
        "events[0].at",
        ("500", "0..9"),
        id="event-at-far-past-the-end",
    ),
    pytest.param(
        'at = -1\ntype = "regime"\nvalue = "high_vol"\n',
        "events[0].at",
        ("greater than or equal to 0",),
        id="event-at-negative",
    ),
    pytest.param(
        'at = 1\ntype = "price_shock"\nasset = "BTC"\n',
        "events[0].pct",
        ("required",),
        id="event-missing-a-field",
    ),
    pytest.param(
        'at = 1\ntype = "venue_outage"\nvenue = "kraken-main"\nsteps = 3\n',
        "events[0].venue",
        ("kraken-main",),
        id="event-names-unknown-venue",
    ),
    pytest.param(
        'at = 1\ntype = "margin_rates"\nvenue = "kraken-main"\nfactor = 2\n',
        "events[0].venue",
        ("kraken-main",),
        id="margin-rates-on-unknown-venue",
    ),
    pytest.param(
        'at = 1\ntype = "transfer_freeze"\nvenue_or_account = "treasury-nowhere"\nsteps = 3\n',
        "events[0].venue_or_account",
        ("treasury-nowhere",),
        id="freeze-on-unknown-account",
    ),
    pytest.param(
        'at = 1\ntype = "timeout_after_effect"\nroute = "buffer-to-kraken"\n',
        "events[0].route",
        ("buffer-to-kraken",),
        id="timeout-on-unknown-route",
    ),
    pytest.param(
        'at = 1\ntype = "price_shock"\nasset = "DOGE"\npct = -0.1\n',
        "events[0].asset",
        ("DOGE",),
        id="shock-on-unpriced-asset",
    ),
    pytest.param(
        'at = 1\ntype = "price_shock"\nasset = "BTC"\npct = nan\n',
        "events[0].pct",
        ("finite",),
        id="nan-shock",
    ),
]


@pytest.mark.parametrize(("event", "key", "fragments"), BAD_EVENTS)
def test_simulate_refuses_bad_event_naming_the_key(
    tmp_path: Path, event: str, key: str, fragments: tuple[str, ...]
) -> None:
    """A bad event makes simulate exit 2 with an `error:` line that starts with the event's key."""
    path = write_scenario(tmp_path, f"{HEADER}\n[[events]]\n{event}")
    assert_bad_input_at(simulate(tmp_path, path), key, *fragments)


def test_simulate_names_the_right_event_index(tmp_path: Path) -> None:
    """With two good events before it, the bad event is reported as events[2]."""
    events = (
        '[[events]]\nat = 1\ntype = "regime"\nvalue = "high_vol"\n\n'
        '[[events]]\nat = 2\ntype = "price_shock"\nasset = "BTC"\npct = -0.05\n\n'
        '[[events]]\nat = 3\ntype = "stale_data"\nvenue = "okx-mian"\nsteps = 2\n'
    )
    result = simulate(tmp_path, write_scenario(tmp_path, f"{HEADER}\n{events}"))
    assert_bad_input_at(result, "events[2].venue", "okx-mian")
    assert len(error_lines(result)) == 1


@pytest.mark.parametrize(
    ("start_line", "key"),
    [
        ('start = "2026-03-01T00:00:00"', "start"),
        ("start = 2026-03-01T00:00:00", "start"),
        ('start = "yesterday"', "start"),
        ("", "start"),
    ],
    ids=["string-without-timezone", "toml-local-datetime", "not-a-date", "missing"],
)
def test_simulate_refuses_start_without_timezone(tmp_path: Path, start_line: str, key: str) -> None:
    """The scenario `start` must be a timestamp with a timezone; anything else is bad input naming `start`."""
    text = HEADER.replace('start = "2026-03-01T00:00:00Z"', start_line, 1)
    assert_bad_input_at(simulate(tmp_path, write_scenario(tmp_path, text)), key)


@pytest.mark.parametrize(
    ("text", "key", "fragments"),
    [
        ("colour = 1\n" + HEADER, "colour", ("unknown key",)),
        (HEADER.replace("steps = 10", "steps = 0"), "steps", ()),
        (HEADER.replace("step_seconds = 60", 'step_seconds = "1,000"'), "step_seconds", ()),
        (HEADER + "\n[prices.SOL]\nvol_annual = 0.5\n", "prices.SOL", ("start",)),
    ],
    ids=["unknown-key", "zero-steps", "string-number", "price-without-start"],
)
def test_simulate_refuses_bad_scenario_header(
    tmp_path: Path, text: str, key: str, fragments: tuple[str, ...]
) -> None:
    """Bad top-level scenario values are bad input naming the key."""
    assert_bad_input_at(simulate(tmp_path, write_scenario(tmp_path, text)), key, *fragments)


def test_simulate_refuses_missing_scenario_file(tmp_path: Path) -> None:
    """A scenario path that does not exist is bad input naming the path."""
    missing = tmp_path / "no-such-scenario.toml"
    assert_bad_input_at(simulate(tmp_path, missing), str(missing), "cannot read scenario")


def test_simulate_refuses_scenario_toml_syntax_error(tmp_path: Path) -> None:
    """A scenario that is not valid TOML is bad input naming the file and line."""
    path = write_scenario(tmp_path, HEADER + "\n[[events]]\nat = = 3\n")
    line_no = len(HEADER.splitlines()) + 3
    assert_bad_input_at(simulate(tmp_path, path), str(path), "not valid TOML", f"line {line_no}")


def test_simulate_refuses_bad_config_before_reading_the_scenario(tmp_path: Path) -> None:
    """simulate validates its --config too: a missing config file is bad input naming it."""
    missing = tmp_path / "missing-config.toml"
    scenario = write_scenario(tmp_path, HEADER)
    result = CliRunner().invoke(
        app, ["simulate", str(scenario), "--config", str(missing), "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    )
    assert_bad_input_at(result, str(missing), "cannot read config")


HEDGE_EVENTS_WITH_BAD_NAMES = [
    pytest.param(
        'type = "liquidity"\nvenue = "nowhere"\nsymbol = "BTC/USDT:USDT"\ndepth_factor = 0.5\n',
        "events[0].venue",
        id="liquidity-venue",
    ),
    pytest.param(
        'type = "liquidity"\nvenue = "okx-main"\nsymbol = "BTCUSDT"\ndepth_factor = 0.5\n',
        "events[0].symbol",
        id="liquidity-symbol",
    ),
    pytest.param(
        'type = "exposure"\nhedge = "no-such-program"\nqty = 10\n', "events[0].hedge", id="exposure"
    ),
]


@pytest.mark.parametrize(("event", "where"), HEDGE_EVENTS_WITH_BAD_NAMES)
def test_simulate_refuses_hedge_events_naming_what_the_config_lacks(
    tmp_path: Path, event: str, where: str
) -> None:
    """A liquidity or exposure event naming an unknown venue, symbol or program exits 2 naming the key."""
    path = write_scenario(tmp_path, f"{HEADER}\n[[events]]\nat = 2\n{event}")
    result = simulate(tmp_path, path)
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert where in result.stderr


# --- audit export and arguments --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["xml", "JSONL", ""])
def test_audit_export_refuses_unknown_format(tmp_path: Path, fmt: str) -> None:
    """`audit export --format xml` (or any format but jsonl / csv) exits 2 naming --format."""
    result = CliRunner().invoke(
        app,
        [
            "audit",
            "export",
            "--format",
            fmt,
            "--config",
            str(PAPER),
            "--db",
            f"sqlite:///{tmp_path / 'a.db'}",
        ],
    )
    assert_bad_input_at(result, "--format", "jsonl or csv")


@pytest.mark.parametrize(
    "args",
    [
        ["check-config", "--bogus"],
        ["simulate"],
        ["run", "--for", "-1"],
        ["bench", "--runs", "0"],
        ["no-such-command"],
    ],
    ids=["unknown-option", "missing-argument", "negative-duration", "runs-out-of-range", "unknown-command"],
)
def test_bad_arguments_exit_2_without_traceback(args: list[str]) -> None:
    """Malformed command lines are bad input: exit 2, a usage message, no traceback."""
    result = CliRunner().invoke(app, [*args, "--config", str(PAPER)])
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert "Usage:" in result.stderr


# --- the installed entry point ---------------------------------------------------------------------------
def _marginbot() -> list[str]:
    script = Path(sys.executable).parent / "marginbot"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["check-config", "--config", "{tmp}/missing.toml"], "cannot read config"),
        (["simulate", "{tmp}/missing-scenario.toml", "--config", str(PAPER)], "cannot read scenario"),
        (["audit", "export", "--format", "xml", "--config", str(PAPER)], "--format"),
    ],
    ids=["check-config", "simulate", "audit-export"],
)
def test_installed_command_exits_2_on_bad_input_without_traceback(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    """The real `marginbot` process exits 2 on bad input, with one error line on stderr and no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGINBOT_")}
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = subprocess.run(
        [*_marginbot(), *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert needle in lines[0]
    assert proc.stdout == ""
