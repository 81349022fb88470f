"""Bad input, table-driven: configs, scenarios, environment overrides and arguments.

Every case exits 2 with one `error:` line per problem on stderr, the first naming the key (or the file, the
option, the environment variable), no traceback, nothing on stdout, and no file created or changed: each case
runs in a folder of its own (the working directory, where the default database would go), holding its
config, its scenario and a copy of a live store, and the folder is the same, byte for byte, afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import DATA, PAPER, ROOT
from tests.test_cli_bad_input import HEADER as SCENARIO  # a valid scenario: BTC and ETH priced, 10 steps

LIVE_EXAMPLE = ROOT / "config" / "live.example.toml"
PAPER_TEXT = PAPER.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Case:
    args: list[str]  # {dir} is the case's folder
    key: str  # the first error line starts with "error: " + key
    config: str | bytes = PAPER_TEXT  # written as {dir}/config.toml, passed with --config
    scenario: str | bytes = SCENARIO  # written as {dir}/scenario.toml
    env: dict[str, str] = field(default_factory=dict)
    lines: int = 1
    fragment: str = ""  # also in the first line


def paper(old: str, new: str) -> str:
    assert old in PAPER_TEXT, old
    return PAPER_TEXT.replace(old, new, 1)


BUFFER_TO_OKX = 'name = "buffer-to-okx"\nfrom = "treasury-buffer"\nto = "okx-main"\nasset = "USDT"'
CHECK = ["check-config"]
SIM = ["simulate", "{dir}/scenario.toml"]
LIVE_DB = "sqlite:///{dir}/live.db"

CASES: dict[str, Case] = {
    # --- configs -------------------------------------------------------------------------------------------
    "config-binary": Case(CHECK, "{dir}/config.toml", config=b"\x00\x01\x02\xff\xfe binary", fragment="UTF"),
    "config-utf16": Case(CHECK, "{dir}/config.toml", config=PAPER_TEXT.encode("utf-16"), fragment="UTF-16"),
    "config-latin1": Case(
        CHECK, "{dir}/config.toml", config="desk = 'caf\xe9'\n".encode("latin-1"), fragment="UTF-8"
    ),
    "config-toml-syntax": Case(CHECK, "{dir}/config.toml", config=PAPER_TEXT + "\n[bot\n", fragment="line"),
    "config-missing": Case(["check-config", "--config", "{dir}/nope.toml"], "{dir}/nope.toml"),
    "config-is-a-folder": Case(["check-config", "--config", "{dir}"], "{dir}", fragment="cannot read config"),
    "unknown-top-level-key": Case(
        CHECK, "colour", config="colour = 1\n" + PAPER_TEXT, fragment="unknown key"
    ),
    "boolean-minutes": Case(
        CHECK, "approvals.expires_minutes", config=paper("expires_minutes = 30", "expires_minutes = true")
    ),
    "boolean-amount": Case(
        CHECK, "routes[buffer-to-okx].max_amount", config=paper("max_amount = 2000000", "max_amount = false")
    ),
    "zero-cycle": Case(CHECK, "bot.cycle_seconds", config=paper("cycle_seconds = 5", "cycle_seconds = 0")),
    "band-out-of-order": Case(
        CHECK,
        "buffers.normal",
        config=paper(
            "normal = { min = 0.20, target = 0.30, max = 0.60 }",
            "normal = { min = 0.40, target = 0.30, max = 0.60 }",
        ),
    ),
    "route-asset-not-collateral": Case(
        CHECK,
        "routes[buffer-to-okx].asset",
        config=paper(BUFFER_TO_OKX, BUFFER_TO_OKX.replace('"USDT"', '"DOGE"')),
        fragment="does not take DOGE",
    ),
    "route-to-nowhere": Case(
        CHECK,
        "routes[buffer-to-okx].to",
        config=paper(BUFFER_TO_OKX, BUFFER_TO_OKX.replace("okx-main", "kraken")),
    ),
    "amount-with-thousands-comma": Case(
        CHECK,
        "routes[buffer-to-okx].max_amount",
        config=paper("max_amount = 2000000", 'max_amount = "2,000,000"'),
    ),
    "nan-amount": Case(
        CHECK, "routes[buffer-to-okx].max_amount", config=paper("max_amount = 2000000", "max_amount = nan")
    ),
    "negative-collateral": Case(
        CHECK,
        "venues[okx-main].paper.collateral.USDT",
        config=paper("collateral = { USDT = 1500000 }", "collateral = { USDT = -1 }"),
    ),
    "database-url-without-driver": Case(
        CHECK,
        "bot.database_url",
        config=paper(
            'database_url = "sqlite:///marginbot.db"', 'database_url = "mysql+nosuchdriver://u@h/db"'
        ),
        fragment="no driver",
    ),
    "database-url-garbage": Case(
        CHECK,
        "bot.database_url",
        config=paper('database_url = "sqlite:///marginbot.db"', 'database_url = "marginbot database please"'),
    ),
    "notify-url-apprise-cannot-parse": Case(
        CHECK, "notify.urls[0]", config=paper("urls = []", 'urls = ["nosuchscheme://token@host"]')
    ),
    "approver-secret-not-hex": Case(
        CHECK,
        "approvals.approver_secrets.alice",
        config=paper(
            'alice = "77ab7f86074412f8cc19ed68acafb404e567c40f34084d146f22374a1e2c218b"', 'alice = "xyz"'
        ),
    ),
    "quorum-above-approvers": Case(
        CHECK, "approvals", config=paper("quorum = 2", "quorum = 4"), fragment="quorum 4"
    ),
    "paper-venue-with-api-url": Case(
        CHECK,
        "venues[okx-main]",
        config=paper(
            'name = "okx-main"\nkind = "paper"', 'name = "okx-main"\nkind = "paper"\napi_url = "http://x"'
        ),
    ),
    "ccxt-venue-unsupported-exchange": Case(
        CHECK,
        "venues[okx-main]",
        config=paper(
            'name = "okx-main"\nkind = "paper"\nmargin_model = "cross"\n[venues.paper]',
            'name = "okx-main"\nkind = "ccxt"\nexchange = "kraken"\nmargin_model = "cross"\n[venues.paper]',
        ),
        fragment="kraken",
    ),
    # --- environment overrides -----------------------------------------------------------------------------
    "env-urls-not-json": Case(
        CHECK, "MARGINBOT_NOTIFY__URLS", env={"MARGINBOT_NOTIFY__URLS": "json://x"}, fragment="not valid JSON"
    ),
    "env-venues-not-json": Case(CHECK, "MARGINBOT_VENUES", env={"MARGINBOT_VENUES": "[{"}, fragment="JSON"),
    "env-number-not-a-number": Case(
        CHECK,
        "bot.cycle_seconds",
        env={"MARGINBOT_BOT__CYCLE_SECONDS": "five"},
        fragment="(from MARGINBOT_BOT__CYCLE_SECONDS)",
    ),
    "env-unknown-regime": Case(CHECK, "bot.regime", env={"MARGINBOT_BOT__REGIME": "panic"}),
    "env-unknown-key": Case(
        CHECK, "bot.cycle_secs", env={"MARGINBOT_BOT__CYCLE_SECS": "2"}, fragment="unknown key"
    ),
    "env-negative-quorum": Case(CHECK, "approvals.quorum", env={"MARGINBOT_APPROVALS__QUORUM": "-1"}),
    "env-band-out-of-order": Case(
        CHECK, "buffers.normal", env={"MARGINBOT_BUFFERS__NORMAL": '{"min": 0.5, "target": 0.3, "max": 0.6}'}
    ),
    "env-config-path-missing": Case(
        ["check-config"], "{dir}/missing.toml", env={"MARGINBOT_CONFIG": "{dir}/missing.toml"}
    ),
    # --- scenarios -----------------------------------------------------------------------------------------
    "scenario-binary": Case(
        SIM, "{dir}/scenario.toml", scenario=b"\x89PNG\r\n\x1a\n\x00\x00", fragment="UTF-8"
    ),
    "scenario-utf16": Case(SIM, "{dir}/scenario.toml", scenario=SCENARIO.encode("utf-16"), fragment="UTF-16"),
    "scenario-path-shorter-than-steps": Case(
        SIM,
        "prices.SOL.path",
        scenario=SCENARIO + "\n[prices.SOL]\npath = [150, 151, 152]\n",
        fragment="3 prices for 10 steps",
    ),
    "scenario-approve-by-a-stranger": Case(
        SIM,
        "events[0].approver",
        scenario=SCENARIO + '\n[[events]]\nat = 2\ntype = "approve"\napprover = "mallory"\n',
    ),
    "scenario-unknown-event": Case(
        SIM, "events[0]", scenario=SCENARIO + '\n[[events]]\nat = 2\ntype = "moon_landing"\n'
    ),
    "scenario-event-past-the-end": Case(
        SIM, "events[0].at", scenario=SCENARIO + '\n[[events]]\nat = 10\ntype = "crash"\n'
    ),
    "scenario-start-without-zone": Case(
        SIM, "start", scenario=SCENARIO.replace('"2026-03-01T00:00:00Z"', '"2026-03-01T00:00:00"')
    ),
    "scenario-missing-price": Case(
        SIM,
        "prices.BTC",
        config=(DATA / "spec-example.toml").read_text(encoding="utf-8"),
        scenario=SCENARIO.split("[prices.BTC]", 1)[0],
        fragment="no price for BTC",
    ),
    "simulate-live-config": Case(
        SIM, "venues", config=LIVE_EXAMPLE.read_text(encoding="utf-8"), fragment="`marginbot rehearse`"
    ),
    "simulate-report-is-a-file": Case([*SIM, "--report", "{dir}/scenario.toml"], "--report"),
    "simulate-into-a-live-store": Case([*SIM, "--db", LIVE_DB], "--db", fragment="a live bot's history"),
    # --- arguments and stores ------------------------------------------------------------------------------
    "bench-only-empty": Case(["bench", "--only", ""], "--only", fragment="names no workload"),
    "bench-only-unknown": Case(["bench", "--only", "warp"], "--only", fragment="warp"),
    "rehearse-live-config": Case(
        ["rehearse", "--once"], "venues", config=LIVE_EXAMPLE.read_text(encoding="utf-8"), fragment="rehearse"
    ),
    "status-nowhere": Case(
        ["status", "--db", "sqlite:///{dir}/no/such/dir/x.db"], "--db", fragment="no database"
    ),
    "status-default-db-missing": Case(["status"], "bot.database_url", fragment="no database"),
    "audit-verify-not-a-db": Case(["audit", "verify", "--db", "sqlite:///{dir}/scenario.toml"], "--db"),
    "intents-not-a-db": Case(
        ["intents", "--db", "sqlite:///{dir}/scenario.toml"], "--db", fragment="not a marginbot"
    ),
    "audit-export-format": Case(["audit", "export", "--format", "xml", "--db", LIVE_DB], "--format"),
    "approve-unknown-id": Case(
        ["approve", "0123abcd", "--as", "alice", "--db", LIVE_DB],
        "ID",
        env={"MARGINBOT_APPROVER_SECRET": "paper-alice"},
    ),
    "resolve-short-id": Case(
        ["resolve", "ab", "--as", "alice", "--outcome", "failed", "--reason", "x", "--db", LIVE_DB],
        "ID",
        env={"MARGINBOT_APPROVER_SECRET": "paper-alice"},
        fragment="too short",
    ),
    "halt-unknown-venue": Case(
        ["halt", "--as", "dana", "--reason", "x", "--venue", "kraken", "--db", LIVE_DB], "--venue"
    ),
    "resume-hedge-unknown-program": Case(["resume-hedge", "nope", "--as", "alice", "--db", LIVE_DB], "NAME"),
    "run-without-start-prices": Case(
        ["run", "--once"],
        "market.prices",
        config=(DATA / "spec-example.toml").read_text(encoding="utf-8"),
        fragment="BTC",
    ),
    "run-on-a-text-file": Case(["run", "--once", "--db", "sqlite:///{dir}/scenario.toml"], "--db"),
}


@pytest.fixture(scope="module")
def live_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store a live `run` wrote (one cycle of the paper config)."""
    d = tmp_path_factory.mktemp("live")
    res = CliRunner().invoke(
        app, ["run", "--once", "--config", str(PAPER), "--db", f"sqlite:///{d / 'live.db'}"]
    )
    assert res.exit_code == 0, res.output
    with sqlite3.connect(d / "live.db") as conn:  # everything into the main file, so one copy holds it all
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return d / "live.db"


def _tree(root: Path) -> dict[str, str]:
    """Every file's content. SQLite's shared-memory index (-shm) is rebuilt by any reader, and an empty
    write-ahead log (-wal) holds nothing: neither counts as a change."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
        if not p.name.endswith("-shm") and not (p.name.endswith("-wal") and p.stat().st_size == 0)
    }


@pytest.fixture
def case_dir(tmp_path: Path, live_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [k for k in os.environ if k.startswith("MARGINBOT_")]:
        monkeypatch.delenv(key)
    shutil.copy(live_db, tmp_path / "live.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_table_holds_at_least_forty_cases() -> None:
    """The issue asks for forty or more: configs, scenarios, env overrides and arguments."""
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_per_problem_exit_2_and_writes_nothing(name: str, case_dir: Path) -> None:
    """Exit 2, `error:` lines naming the key, no traceback, nothing on stdout, no file created or changed."""
    case = CASES[name]

    def fill(x: str) -> str:
        return x.replace("{dir}", str(case_dir))

    for fname, content in (("config.toml", case.config), ("scenario.toml", case.scenario)):
        target = case_dir / fname
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    args = [fill(a) for a in case.args]
    if "--config" not in args and not case.env.get("MARGINBOT_CONFIG"):
        args += ["--config", str(case_dir / "config.toml")]
    before = _tree(case_dir)
    res = CliRunner().invoke(app, args, env={k: fill(v) for k, v in case.env.items()})
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    assert res.stdout == ""
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == case.lines, res.stderr
    assert all(line.startswith("error: ") for line in lines), res.stderr
    assert lines[0].startswith(f"error: {fill(case.key)}"), res.stderr
    assert fill(case.fragment) in lines[0], res.stderr
    assert _tree(case_dir) == before
