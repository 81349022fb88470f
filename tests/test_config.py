"""Config validation: every kind of bad config is refused by `marginbot check-config` with exit 2 and one line
naming the key; the shipped config passes; env overrides, frozen settings and the config hash behave."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from pydantic import ValidationError
from typer.testing import CliRunner

from bot.cli import app
from bot.errors import ConfigError
from bot.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "config" / "paper.toml"

Config = dict[str, Any]


# --- helpers ---------------------------------------------------------------------------------------------
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    """One TOML value on one line: tables become inline tables, so any config fits `key = value` lines."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid in TOML basic strings
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def dump_toml(data: Config) -> str:
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in data.items())


def paper_config() -> Config:
    with PAPER.open("rb") as fh:
        return tomllib.load(fh)


def write_config(tmp_path: Path, data: Config, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(dump_toml(data), encoding="utf-8")
    return path


def by_name(items: list[Config], name: str) -> Config:
    return next(item for item in items if item["name"] == name)


def check_config(path: Path | str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, ["check-config", "--config", str(path)], env=env)


def assert_bad_input(result: Result, *fragments: str) -> None:
    """Exit 2, no traceback, nothing claimed OK, and one `error:` line on stderr carrying every fragment."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert " OK " not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert any(all(f in line for f in fragments) for line in lines), (
        f"no stderr line names {fragments}:\n{result.stderr}"
    )


@pytest.fixture(autouse=True)
def _no_marginbot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's MARGINBOT_* variables out of these tests."""
    import os

    for key in list(os.environ):
        if key.startswith("MARGINBOT_"):
            monkeypatch.delenv(key)


# --- the bad configs -------------------------------------------------------------------------------------
def _set(*path: str | int, value: Any) -> Callable[[Config], None]:
    """A mutation that sets one key; a string path step naming a list picks the item with that `name`."""

    def mutate(cfg: Config) -> None:
        node: Any = cfg
        for step in path[:-1]:
            node = by_name(node, step) if isinstance(node, list) and isinstance(step, str) else node[step]
        node[path[-1]] = value

    return mutate


def _pop(*path: str | int) -> Callable[[Config], None]:
    def mutate(cfg: Config) -> None:
        node: Any = cfg
        for step in path[:-1]:
            node = by_name(node, step) if isinstance(node, list) and isinstance(step, str) else node[step]
        del node[path[-1]]

    return mutate


def _duplicate_venue(cfg: Config) -> None:
    cfg["venues"].append(copy.deepcopy(by_name(cfg["venues"], "okx-main")))


def _duplicate_route(cfg: Config) -> None:
    cfg["routes"].append(copy.deepcopy(by_name(cfg["routes"], "buffer-to-okx")))


def _account_named_like_venue(cfg: Config) -> None:
    cfg["accounts"].append({"name": "okx-main", "bucket": "buffer", "owner": "treasury-ops"})


def _hedge_on_missing_venue(cfg: Config) -> None:
    cfg["hedges"] = [
        {
            "name": "btc-inventory",
            "asset": "BTC",
            "band": 5,
            "instruments": [{"venue": "kraken-main", "symbol": "BTC/USDT:USDT"}],
        }
    ]


def _rule_on_missing_route(cfg: Config) -> None:
    cfg["approvals"]["rules"].append(
        {"route": "buffer-to-kraken", "quorum": 2, "approvers": ["alice", "bob"]}
    )


SHA_OF_X = hashlib.sha256(b"x").hexdigest()

BAD_CONFIGS = [
    pytest.param(_set("colour", value="blue"), ("colour", "unknown key"), id="unknown-top-level-key"),
    pytest.param(
        _set("bot", "cycle_secs", value=5), ("bot.cycle_secs", "unknown key"), id="unknown-nested-key"
    ),
    pytest.param(
        _set("venues", "okx-main", "paper", "leverage", value=10),
        ("venues[okx-main].paper.leverage", "unknown key"),
        id="unknown-key-deep-in-a-venue",
    ),
    pytest.param(
        _set("routes", "buffer-to-okx", "from", value="treasury-nowhere"),
        ("routes[buffer-to-okx].from", "treasury-nowhere"),
        id="route-from-missing-account",
    ),
    pytest.param(
        _set("routes", "buffer-to-okx", "to", value="kraken-main"),
        ("routes[buffer-to-okx].to", "kraken-main"),
        id="route-to-missing-venue",
    ),
    pytest.param(
        _pop("routes", "buffer-to-okx", "address"),
        ("routes[buffer-to-okx]", "address"),
        id="withdrawal-route-without-address",
    ),
    pytest.param(
        _set("routes", "buffer-to-okx", "address", value=""),
        ("routes[buffer-to-okx]", "address"),
        id="withdrawal-route-with-empty-address",
    ),
    pytest.param(
        _set(
            "venues",
            "okx-main",
            "paper",
            "mm_tiers",
            value=[{"up_to": 5000000, "rate": 0.005}, {"up_to": 1000000, "rate": 0.01}, {"rate": 0.025}],
        ),
        ("venues[okx-main].paper", "mm_tiers", "ascend"),
        id="tiers-not-ascending",
    ),
    pytest.param(
        _set(
            "venues",
            "okx-main",
            "paper",
            "mm_tiers",
            value=[{"up_to": 1000000, "rate": 0.02}, {"rate": 0.01}],
        ),
        ("venues[okx-main].paper", "mm_tiers", "rates"),
        id="tier-rates-decreasing",
    ),
    pytest.param(
        _set("buffers", "normal", value={"min": 0.30, "target": 0.20, "max": 0.60}),
        ("buffers.normal", "min < target < max < 1"),
        id="band-min-above-target",
    ),
    pytest.param(
        _set("buffers", "high_vol", value={"min": 0.40, "target": 0.50, "max": 1.0}),
        ("buffers.high_vol.max",),
        id="band-max-not-below-one",
    ),
    pytest.param(
        _set("venues", "bybit-main", "normal", value={"min": 0.20, "target": 0.50, "max": 0.40}),
        ("venues[bybit-main].normal", "min < target < max < 1"),
        id="venue-band-target-above-max",
    ),
    pytest.param(
        _set("approvals", "quorum", value=4), ("approvals", "quorum 4"), id="quorum-above-approvers"
    ),
    pytest.param(
        _set("approvals", "rules", 0, "quorum", value=4),
        ("approvals.rules[0]", "quorum 4"),
        id="rule-quorum-above-its-approvers",
    ),
    pytest.param(_set("approvals", "quorum", value=0), ("approvals.quorum",), id="quorum-zero"),
    pytest.param(
        _set("routes", "buffer-to-okx", "max_amount", value=math.nan),
        ("routes[buffer-to-okx].max_amount", "finite"),
        id="nan-amount",
    ),
    pytest.param(
        _set("buffers", "alert_utilization", value=math.nan),
        ("buffers.alert_utilization", "finite"),
        id="nan-ratio",
    ),
    pytest.param(
        _set("accounts", "treasury-buffer", "balances", "USDT", value=-1),
        ("accounts[treasury-buffer].balances.USDT", "greater than or equal to 0"),
        id="negative-balance",
    ),
    pytest.param(
        _set("routes", "buffer-to-okx", "min_amount", value=-1000),
        ("routes[buffer-to-okx].min_amount",),
        id="negative-route-amount",
    ),
    pytest.param(
        _set("approvals", "auto_limit_usd", value=math.inf),
        ("approvals.auto_limit_usd", "finite"),
        id="inf-limit",
    ),
    pytest.param(
        _set("routes", "buffer-to-okx", "fee", value=-math.inf),
        ("routes[buffer-to-okx].fee", "finite"),
        id="minus-inf-fee",
    ),
    pytest.param(
        _set("approvals", "expires_minutes", value=math.inf),
        ("approvals.expires_minutes", "finite"),
        id="inf-duration",
    ),
    pytest.param(
        _set("routes", "buffer-to-okx", "max_amount", value="1,000"),
        ("routes[buffer-to-okx].max_amount", "decimal"),
        id="thousands-separator-string-amount",
    ),
    pytest.param(
        _set("routes", "buffer-to-okx", "max_amount", value=6000000),
        ("routes[buffer-to-okx]", "max_amount 6000000 exceeds daily_limit"),
        id="max-amount-above-daily-limit",
    ),
    pytest.param(
        _set("routes", "buffer-to-okx", "max_amount", value=1000000.005),
        ("routes[buffer-to-okx]", "not a multiple of step"),
        id="amount-finer-than-route-step",
    ),
    pytest.param(_duplicate_venue, ("okx-main", "used twice"), id="duplicate-venue-names"),
    pytest.param(_account_named_like_venue, ("okx-main", "used twice"), id="account-named-like-a-venue"),
    pytest.param(_duplicate_route, ("routes", "buffer-to-okx", "used twice"), id="duplicate-route-names"),
    pytest.param(
        _set("routes", "buffer-to-okx", "from", value="bybit-main"),
        ("routes[buffer-to-okx]", "one account and one venue"),
        id="route-joining-two-venues",
    ),
    pytest.param(
        _set("approvals", "approver_secrets", value={"mallory": SHA_OF_X}),
        ("approvals", "approver_secrets", "mallory"),
        id="approver-secret-for-unknown-approver",
    ),
    pytest.param(
        _set("approvals", "approver_secrets", value={"alice": "not-a-sha256"}),
        ("approvals.approver_secrets.alice",),
        id="approver-secret-not-hex",
    ),
    pytest.param(
        _set("approvals", "approver_secrets", value={"alice": SHA_OF_X[:63]}),
        ("approvals.approver_secrets.alice",),
        id="approver-secret-63-hex",
    ),
    pytest.param(
        _set("approvals", "approver_secrets", value={"alice": SHA_OF_X.upper()}),
        ("approvals.approver_secrets.alice",),
        id="approver-secret-uppercase-hex",
    ),
    pytest.param(
        _set("approvals", "approvers", value=["alice", "bob", "alice"]),
        ("approvals", "more than once"),
        id="approver-listed-twice",
    ),
    pytest.param(_rule_on_missing_route, ("approvals.rules", "buffer-to-kraken"), id="rule-on-missing-route"),
    pytest.param(
        _hedge_on_missing_venue, ("hedges[btc-inventory].instruments", "kraken-main"), id="hedge-venue"
    ),
    pytest.param(_set("bot", "regime", value="panic"), ("bot.regime",), id="unknown-regime"),
    pytest.param(_set("venues", value=[]), ("venues",), id="no-venues"),
    pytest.param(
        _set("venues", "okx-main", "paper", "haircuts", "USDT", value=1.0),
        ("venues[okx-main].paper.haircuts.USDT",),
        id="haircut-of-one",
    ),
]


@pytest.mark.parametrize(("mutate", "fragments"), BAD_CONFIGS)
def test_check_config_refuses_bad_config_naming_the_key(
    tmp_path: Path, mutate: Callable[[Config], None], fragments: tuple[str, ...]
) -> None:
    """Each kind of bad config makes check-config exit 2 with an `error:` line naming the offending key."""
    cfg = paper_config()
    mutate(cfg)
    assert_bad_input(check_config(write_config(tmp_path, cfg)), *fragments)


def test_check_config_reports_every_problem_on_its_own_line(tmp_path: Path) -> None:
    """Two unrelated problems give two separate `error:` lines."""
    cfg = paper_config()
    cfg["colour"] = "blue"
    by_name(cfg["routes"], "buffer-to-bybit")["max_amount"] = math.nan
    result = check_config(write_config(tmp_path, cfg))
    assert_bad_input(result, "colour", "unknown key")
    assert_bad_input(result, "routes[buffer-to-bybit].max_amount")
    assert len([line for line in result.stderr.splitlines() if line.startswith("error: ")]) == 2


def test_check_config_refuses_toml_syntax_error_naming_the_line(tmp_path: Path) -> None:
    """A TOML syntax error is bad input, reported with its line number."""
    text = PAPER.read_text(encoding="utf-8").replace("cycle_seconds = 5", "cycle_seconds = = 5", 1)
    line_no = next(i for i, line in enumerate(text.splitlines(), 1) if "= = 5" in line)
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    assert_bad_input(check_config(path), str(path), "not valid TOML", f"line {line_no}")


def test_check_config_refuses_missing_config_file(tmp_path: Path) -> None:
    """A config path that does not exist is bad input naming the path."""
    missing = tmp_path / "nowhere.toml"
    assert_bad_input(check_config(missing), str(missing), "cannot read config")


def test_check_config_refuses_config_that_is_a_directory(tmp_path: Path) -> None:
    """A config path naming a directory is bad input, not a crash."""
    assert_bad_input(check_config(tmp_path), str(tmp_path), "cannot read config")


# --- validation gaps (see the report): per-venue levels and unreachable quorums --------------------------
@pytest.mark.parametrize(
    ("override", "value"),
    [("alert_mm_ratio", 0.90), ("derisk_mm_ratio", 0.30), ("derisk_mm_ratio", 1.0)],
)
def test_check_config_refuses_venue_levels_out_of_order(tmp_path: Path, override: str, value: float) -> None:
    """A venue's own alert / de-risk levels must keep alert_mm_ratio < derisk_mm_ratio < 1, like the defaults."""
    cfg = paper_config()
    by_name(cfg["venues"], "okx-main")[override] = value
    assert_bad_input(check_config(write_config(tmp_path, cfg)), "venues[okx-main]")


def test_check_config_refuses_quorum_with_no_approvers(tmp_path: Path) -> None:
    """A quorum of 2 with an empty approver list can never be met, so the config is refused."""
    cfg = paper_config()
    cfg["approvals"]["approvers"] = []
    del cfg["approvals"]["rules"]
    assert_bad_input(check_config(write_config(tmp_path, cfg)), "approvals")


# --- the shipped config ----------------------------------------------------------------------------------
def test_toml_writer_round_trips_the_shipped_config(tmp_path: Path) -> None:
    """The test module's TOML writer reproduces the shipped config exactly, so mutations are all that differ."""
    cfg = paper_config()
    assert tomllib.loads(dump_toml(cfg)) == cfg
    assert load_settings(write_config(tmp_path, cfg)) == load_settings(PAPER)


def test_shipped_config_passes_and_summary_names_every_venue_and_route() -> None:
    """config/paper.toml passes check-config, and the summary lists every venue, account and route."""
    cfg = paper_config()
    result = check_config(PAPER)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    out = result.stdout
    assert f"config {PAPER} OK" in out
    assert load_settings(PAPER).config_hash[:16] in out
    for section in ("venues", "accounts", "routes"):
        for item in cfg[section]:
            assert re.search(rf"^\s+{re.escape(item['name'])}\s", out, re.MULTILINE), (section, item["name"])
    for route in cfg["routes"]:
        assert f"{route['from']} → {route['to']}" in out
    assert "quorum 2 of alice, bob, carol" in out
    assert "rule: bucket emergency needs 3 of alice, bob, carol" in out


def test_check_config_defaults_to_marginbot_config_env(tmp_path: Path) -> None:
    """Without --config, check-config reads the file named by $MARGINBOT_CONFIG."""
    ok = CliRunner().invoke(app, ["check-config"], env={"MARGINBOT_CONFIG": str(PAPER)})
    assert ok.exit_code == 0, ok.output
    assert f"config {PAPER} OK" in ok.stdout
    missing = tmp_path / "from-env.toml"
    bad = CliRunner().invoke(app, ["check-config"], env={"MARGINBOT_CONFIG": str(missing)})
    assert_bad_input(bad, str(missing))


# --- environment overrides -------------------------------------------------------------------------------
def test_env_override_changes_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """MARGINBOT_BOT__CYCLE_SECONDS=2 overrides bot.cycle_seconds and leaves the rest of [bot] from the file."""
    monkeypatch.setenv("MARGINBOT_BOT__CYCLE_SECONDS", "2")
    s = load_settings(PAPER)
    assert s.bot.cycle_seconds == 2.0
    assert s.bot.max_data_age_seconds == 30.0
    assert s.bot.database_url == "sqlite:///marginbot.db"


def test_env_override_reaches_nested_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """A three-level override (MARGINBOT_BUFFERS__NORMAL__MIN) changes one band edge and keeps the others."""
    monkeypatch.setenv("MARGINBOT_BUFFERS__NORMAL__MIN", "0.25")
    s = load_settings(PAPER)
    assert (s.buffers.normal.min, s.buffers.normal.target, s.buffers.normal.max) == (0.25, 0.30, 0.60)


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "five"])
def test_invalid_env_override_is_a_config_error_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """An invalid value from the environment raises ConfigError naming bot.cycle_seconds."""
    monkeypatch.setenv("MARGINBOT_BOT__CYCLE_SECONDS", value)
    with pytest.raises(ConfigError) as info:
        load_settings(PAPER)
    assert any(p.startswith("bot.cycle_seconds:") for p in info.value.problems), info.value.problems


def test_invalid_env_override_fails_check_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the CLI, an invalid env override exits 2 naming bot.cycle_seconds."""
    monkeypatch.setenv("MARGINBOT_BOT__CYCLE_SECONDS", "-1")
    assert_bad_input(check_config(PAPER), "bot.cycle_seconds")


def test_env_override_is_cross_checked_with_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """An env override that breaks a cross-field rule (quorum above the approvers) is refused."""
    monkeypatch.setenv("MARGINBOT_APPROVALS__QUORUM", "5")
    with pytest.raises(ConfigError, match="quorum 5"):
        load_settings(PAPER)


def test_env_override_of_unknown_nested_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistyped override such as MARGINBOT_BOT__CYCLE_SECS is refused, not silently ignored."""
    monkeypatch.setenv("MARGINBOT_BOT__CYCLE_SECS", "2")
    with pytest.raises(ConfigError, match=r"bot\.cycle_secs: unknown key"):
        load_settings(PAPER)


def test_cli_only_env_variables_are_not_mistaken_for_config_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """MARGINBOT_CONFIG and MARGINBOT_LOG_LEVEL are read by the CLI and do not trip the unknown-key check."""
    monkeypatch.setenv("MARGINBOT_CONFIG", str(PAPER))
    monkeypatch.setenv("MARGINBOT_LOG_LEVEL", "info")
    assert load_settings(PAPER).bot.cycle_seconds == 5.0


# --- frozen settings -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "attr", "value"),
    [
        ("settings", "bot", None),
        ("bot", "cycle_seconds", 1.0),
        ("buffers.normal", "min", 0.1),
        ("route", "fee", 0),
    ],
)
def test_settings_are_frozen(target: str, attr: str, value: Any) -> None:
    """Assigning to the settings or any of their sections raises."""
    s = load_settings(PAPER)
    objects = {
        "settings": s,
        "bot": s.bot,
        "buffers.normal": s.buffers.normal,
        "route": s.routes[0],
    }
    obj = objects[target]
    before = getattr(obj, attr)
    with pytest.raises(ValidationError, match="frozen"):
        setattr(obj, attr, value)
    assert getattr(obj, attr) == before


# --- config hash -----------------------------------------------------------------------------------------
def test_config_hash_is_stable_for_the_same_content(tmp_path: Path) -> None:
    """Loading the same file twice, or a copy of it elsewhere, gives the same sha256 config hash."""
    first = load_settings(PAPER).config_hash
    copy_path = tmp_path / "copy.toml"
    shutil.copyfile(PAPER, copy_path)
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert load_settings(PAPER).config_hash == first
    assert load_settings(copy_path).config_hash == first


def test_config_hash_ignores_comments_and_layout(tmp_path: Path) -> None:
    """The hash is of the config's content: rewriting the file without comments keeps it."""
    assert (
        load_settings(write_config(tmp_path, paper_config())).config_hash == load_settings(PAPER).config_hash
    )


@pytest.mark.parametrize(
    "mutate",
    [
        _set("bot", "cycle_seconds", value=6),
        _set("routes", "buffer-to-okx", "max_amount", value=1500000),
        _set("buffers", "normal", "target", value=0.35),
        _set("approvals", "approvers", value=["alice", "bob", "carol", "dave"]),
    ],
    ids=["cycle-seconds", "route-limit", "band-target", "approver"],
)
def test_config_hash_changes_when_a_value_changes(tmp_path: Path, mutate: Callable[[Config], None]) -> None:
    """Changing any one value gives a different config hash."""
    cfg = paper_config()
    mutate(cfg)
    changed = load_settings(write_config(tmp_path, cfg))
    assert changed.config_hash != load_settings(PAPER).config_hash


def test_config_hash_changes_with_an_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment override is part of the effective config, so it changes the hash."""
    plain = load_settings(PAPER).config_hash
    monkeypatch.setenv("MARGINBOT_BOT__CYCLE_SECONDS", "2")
    assert load_settings(PAPER).config_hash != plain
