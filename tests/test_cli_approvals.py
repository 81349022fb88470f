"""approvals, approve and reject through the command line: authenticated, audited, single use."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.engine.clock import SimClock
from tests.conftest import PAPER
from tests.harness import make_bot, paper_settings


def _cli(*args: str, db: str, secret: str | None = None) -> tuple[int, str]:
    env = {"MARGINBOT_APPROVER_SECRET": secret} if secret is not None else {}
    res = CliRunner().invoke(app, [*args, "--config", str(PAPER), "--db", db], env=env)
    return res.exit_code, res.output


@pytest.fixture
async def pending(sqlite_url: str):  # type: ignore[no-untyped-def]
    """A bot with a 786k top-up for okx-main waiting for two approvers."""
    s = paper_settings(okx_usdt=500_000)
    clock = SimClock(time.time())  # the command line votes on the wall clock
    w = await make_bot(s, sqlite_url, clock)
    await w.bot.cycle()
    rows = json.loads(_cli("approvals", "--json", db=sqlite_url)[1])["approvals"]
    assert [r["status"] for r in rows] == ["pending"]
    return w, clock, rows[0]["id"]


async def test_two_authenticated_approvals_send_the_move(pending, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """alice then bob, each with their secret: approved, and the bot sends it at its next cycle."""
    w, clock, rid = pending
    code, out = _cli("approve", rid, "--as", "alice", db=sqlite_url, secret="paper-alice")
    assert code == 0, out
    assert "1 of 2" in out
    code, out = _cli("approve", rid, "--as", "bob", db=sqlite_url, secret="paper-bob")
    assert code == 0, out
    assert "approved by alice, bob" in out
    clock.advance(5)
    result = await w.bot.cycle()
    assert [o.intent_id for o in result.outcomes] == [rid]
    assert len(w.exchange.effects) == 1


async def test_refused_attempts_are_audited_and_change_nothing(pending, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """A wrong secret, an outsider, the bot itself and a second vote by the same person are refused and audited."""
    _w, _clock, rid = pending
    assert _cli("approve", rid, "--as", "alice", db=sqlite_url, secret="guess")[0] == 1
    assert _cli("approve", rid, "--as", "mallory", db=sqlite_url, secret="anything")[0] == 1
    assert _cli("approve", rid, "--as", "marginbot", db=sqlite_url, secret="x")[0] == 1
    assert _cli("approve", rid, "--as", "alice", db=sqlite_url, secret="paper-alice")[0] == 0
    code, out = _cli("approve", rid, "--as", "alice", db=sqlite_url, secret="paper-alice")
    assert code == 1
    assert "counts once" in out
    rows = json.loads(_cli("approvals", "--json", db=sqlite_url)[1])["approvals"]
    assert rows[0]["status"] == "pending"
    assert rows[0]["approvers"] == ["alice"]
    kinds = [json.loads(line)["kind"] for line in _cli("audit", "export", db=sqlite_url)[1].splitlines()]
    assert kinds.count("approval.refused") == 4
    assert kinds.count("approval.vote") == 1


async def test_one_rejection_ends_it_and_it_never_goes(pending, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """After alice approves, bob rejects: the request is rejected, later approvals are refused, nothing is sent."""
    w, clock, rid = pending
    assert _cli("approve", rid, "--as", "alice", db=sqlite_url, secret="paper-alice")[0] == 0
    code, out = _cli(
        "reject", rid, "--as", "bob", "--reason", "use the emergency line", db=sqlite_url, secret="paper-bob"
    )
    assert code == 0, out
    assert _cli("approve", rid, "--as", "carol", db=sqlite_url, secret="paper-carol")[0] == 1
    clock.advance(5)
    await w.bot.cycle()
    assert rid not in w.exchange.effects


async def test_no_secret_and_no_terminal_is_bad_input(pending, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """Without a secret in the environment and no terminal to ask at, approve exits 2."""
    _, _, rid = pending
    code, out = _cli("approve", rid, "--as", "alice", db=sqlite_url)
    assert code == 2
    assert "MARGINBOT_APPROVER_SECRET" in out
