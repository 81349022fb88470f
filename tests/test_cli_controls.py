"""halt, resume, intents and resolve through the command line, against a database a bot is using."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app
from bot.engine.clock import SimClock
from tests.conftest import PAPER
from tests.harness import START, make_bot, paper_settings

RUN = CliRunner()


SECRETS = {"alice": "paper-alice", "dana": "whatever"}


def _cli(*args: str, db: str) -> tuple[int, str]:
    who = args[args.index("--as") + 1] if "--as" in args else None
    env = {"MARGINBOT_APPROVER_SECRET": SECRETS[who]} if who in SECRETS else {}
    res = RUN.invoke(app, [*args, "--config", str(PAPER), "--db", db], env=env)
    return res.exit_code, res.output


def test_halt_and_resume_are_recorded_and_shown(sqlite_url: str) -> None:
    """halt writes the kill switch (status shows it), a non-approver cannot resume, an approver can."""
    code, out = _cli("halt", "--as", "dana", "--reason", "drill", db=sqlite_url)
    assert code == 0
    assert "halted all venues" in out
    code, out = _cli("status", "--json", db=sqlite_url)
    assert json.loads(out)["halted"] == {"all": "by dana: drill"}
    code, out = _cli("resume", "--as", "dana", db=sqlite_url)
    assert code == 1  # a refused attempt, as on `approve`: audited, exit 1
    assert "not in approvals.approvers" in out
    assert "auth.refused" in _cli("audit", "export", db=sqlite_url)[1]
    wrong = RUN.invoke(
        app,
        ["resume", "--as", "alice", "--config", str(PAPER), "--db", sqlite_url],
        env={"MARGINBOT_APPROVER_SECRET": "guess"},
    )
    assert wrong.exit_code == 1
    assert "secret does not match" in wrong.output
    code, out = _cli("resume", "--as", "alice", db=sqlite_url)
    assert code == 0
    assert json.loads(_cli("status", "--json", db=sqlite_url)[1])["halted"] == {}
    code, out = _cli("audit", "export", db=sqlite_url)
    kinds = [json.loads(line)["kind"] for line in out.splitlines()]
    assert kinds == ["halt", "auth.refused", "auth.refused", "resume"]  # both refused attempts audited


def test_halt_names_a_venue_that_exists(sqlite_url: str) -> None:
    """A halt for a venue not in the config is bad input, exit 2."""
    code, out = _cli("halt", "--as", "dana", "--reason", "x", "--venue", "kraken", db=sqlite_url)
    assert code == 2
    assert "--venue" in out


async def test_an_unknown_transfer_is_listed_and_resolved_by_hand(sqlite_url: str, tmp_path: Path) -> None:
    """intents lists the unknown transfer first; resolve closes it, audited, and the bot reloads it."""
    s = paper_settings(reconcile_lag_seconds=600)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    w.exchange.server_error("okx-funding-to-okx", 1)
    await w.bot.cycle()
    code, out = _cli("intents", "--json", db=sqlite_url)
    rows = json.loads(out)["intents"]
    assert [r["status"] for r in rows] == ["unknown"]
    intent_id = rows[0]["id"]
    assert (
        _cli("resolve", intent_id, "--as", "alice", "--outcome", "maybe", "--reason", "x", db=sqlite_url)[0]
        == 2
    )
    assert (
        _cli("resolve", "feedface", "--as", "alice", "--outcome", "failed", "--reason", "x", db=sqlite_url)[0]
        == 2
    )
    code, out = _cli(
        "resolve",
        intent_id,
        "--as",
        "alice",
        "--outcome",
        "failed",
        "--reason",
        "not in OKX history",
        db=sqlite_url,
    )
    assert code == 0, out
    assert "resolved as failed (was unknown)" in out
    # the running bot picks it up at its next cycle: the route is no longer blocked by an unknown
    clock.advance(400)
    w.exchange.advance()
    result = await w.bot.cycle()
    new = [r for r in w.store.intents.rows() if r.id in {o.intent_id for o in result.outcomes}]
    assert [(r.route, r.status) for r in new] == [("okx-funding-to-okx", "submitted")]
    statuses = {r.id: r.status for r in w.store.intents.rows()}
    assert statuses[intent_id] == "failed"
    code, out = _cli(
        "resolve", intent_id, "--as", "alice", "--outcome", "confirmed", "--reason", "x", db=sqlite_url
    )
    assert code == 1
    assert "only transfers in flight or of unknown outcome" in out
