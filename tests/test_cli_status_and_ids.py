"""For operators: `status` tells how old each venue's figures are and marks them stale; times carry their zone;
ids shown short are taken short (a unique prefix) by approve, reject and resolve; the same mistake gets the
same exit code on every command.

Seen before the fix: with no bot running, `status` showed minutes-old figures as `healthy`; `approve` took
only whole ids; `resolve` by a non-approver exited 2 where `approve` exited 1.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.engine.clock import SimClock
from tests.conftest import PAPER
from tests.harness import make_bot, paper_settings


def _cli(*args: str, db: str, secret: str | None = None) -> tuple[int, str, str]:
    env = {"MARGINBOT_APPROVER_SECRET": secret} if secret is not None else {}
    res = CliRunner().invoke(app, [*args, "--config", str(PAPER), "--db", db], env=env)
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def ran(sqlite_url: str) -> str:
    code, out, err = _cli("run", "--once", db=sqlite_url)
    assert code == 0, out + err
    return sqlite_url


def _age_figures(url: str, seconds: float) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE venue_status SET observed_at = ?", (time.time() - seconds,))


def test_status_marks_old_figures_stale_with_their_age(ran: str) -> None:
    """Figures 10 minutes old (30 s allowed) are STALE in the table and `stale: true` in JSON, age given."""
    _age_figures(ran, 600)
    code, out, _ = _cli("status", db=ran)
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("okx-main")]
    assert "STALE" in rows[0]
    assert "10m 00s" in rows[0] or "9m 59s" in rows[0] or "10m 01s" in rows[0]
    assert "is `marginbot run` running?" in out
    data = json.loads(_cli("status", "--json", db=ran)[1])
    v = data["venues"]["okx-main"]
    assert v["stale"] is True
    assert 595 <= v["data_age_seconds"] <= 660


def test_fresh_figures_are_not_stale(ran: str) -> None:
    """Just after a cycle, nothing is marked stale."""
    code, out, _ = _cli("status", db=ran)
    assert code == 0
    assert "STALE" not in out
    assert all(not v["stale"] for v in json.loads(_cli("status", "--json", db=ran)[1])["venues"].values())


def test_times_carry_their_zone(ran: str) -> None:
    """Every time status prints says UTC (text) or ends in Z (JSON)."""
    _, out, _ = _cli("status", db=ran)
    assert out.splitlines()[0].endswith("Z")
    assert " UTC" in out
    data = json.loads(_cli("status", "--json", db=ran)[1])
    assert data["now_utc"].endswith("Z")
    assert all(v["observed_at_utc"].endswith("Z") for v in data["venues"].values())


@pytest.fixture
async def pending(sqlite_url: str):  # type: ignore[no-untyped-def]
    """A 786k top-up for okx-main waiting for two approvers."""
    s = paper_settings(okx_usdt=500_000)
    w = await make_bot(s, sqlite_url, SimClock(time.time()))
    await w.bot.cycle()
    rows = json.loads(_cli("approvals", "--json", db=sqlite_url)[1])["approvals"]
    return rows[0]["id"]


async def test_approve_and_reject_take_a_short_id(pending: str, sqlite_url: str) -> None:
    """The first 8 characters (as the run line shows them) name the request."""
    code, out, err = _cli("approve", pending[:8], "--as", "alice", db=sqlite_url, secret="paper-alice")
    assert code == 0, out + err
    assert "1 of 2" in out
    code, out, err = _cli("reject", pending[:6].upper(), "--as", "bob", db=sqlite_url, secret="paper-bob")
    assert code == 0, out + err
    assert json.loads(_cli("approvals", "--json", db=sqlite_url)[1])["approvals"][0]["status"] == "rejected"


@pytest.mark.parametrize(
    ("given", "fragment"),
    [("zzzzzzzz", "id starts with 'zzzzzzzz'"), ("ab", "too short"), ("", "too short")],
    ids=["unknown", "too-short", "empty"],
)
async def test_an_id_that_names_nothing_is_bad_input_everywhere(
    pending: str, sqlite_url: str, given: str, fragment: str
) -> None:
    """An unknown or too short id: exit 2 on approve, reject and resolve alike, and nothing is written."""
    before = _cli("audit", "export", db=sqlite_url)[1]
    for args in (
        ("approve", given, "--as", "alice"),
        ("reject", given, "--as", "alice"),
        ("resolve", given, "--as", "alice", "--outcome", "failed", "--reason", "checked"),
    ):
        code, _, err = _cli(*args, db=sqlite_url, secret="paper-alice")
        assert code == 2, (args, err)
        assert err.startswith("error: ID: ")
        assert fragment in err
    assert _cli("audit", "export", db=sqlite_url)[1] == before


class _Ids:
    """A store that knows two approval ids sharing their first six characters."""

    def ids_starting(self, prefix: str) -> dict[str, list[str]]:
        known = ["abcdef0123456789abcdef0123456789", "abcdef9876543210abcdef9876543210"]
        return {"approval": [i for i in known if i.startswith(prefix)], "intent": [], "order": []}


def test_an_ambiguous_prefix_asks_for_more() -> None:
    """A prefix two ids share is bad input saying how many it starts; one more character settles it."""
    from bot.cli import _full_id
    from bot.errors import BadInput

    with pytest.raises(BadInput, match=r"starts 2 approval ids .*give more characters"):
        _full_id(_Ids(), "abcdef", ("approval",))  # type: ignore[arg-type]
    assert _full_id(_Ids(), "ABCDEF9", ("approval",)) == "abcdef9876543210abcdef9876543210"  # type: ignore[arg-type]


async def test_refusals_exit_1_on_every_command(pending: str, sqlite_url: str) -> None:
    """A name that is not an approver, or a wrong secret: exit 1 and an audit record, on approve, resolve,
    resume and resume-hedge alike."""
    cases = [
        ("approve", pending, "--as", "mallory"),
        ("approve", pending, "--as", "alice"),
        ("resolve", pending, "--as", "mallory", "--outcome", "failed", "--reason", "checked"),
        ("resolve", pending, "--as", "alice", "--outcome", "failed", "--reason", "checked"),
        ("resume", "--as", "mallory"),
        ("resume", "--as", "alice"),
    ]
    for args in cases:
        code, _, err = _cli(*args, db=sqlite_url, secret="wrong")
        assert code == 1, (args, err)
        assert "refused" in err
    kinds = [json.loads(x)["kind"] for x in _cli("audit", "export", db=sqlite_url)[1].splitlines()]
    assert kinds.count("approval.refused") + kinds.count("auth.refused") == len(cases)


def test_read_only_commands_create_no_store(tmp_path: Path) -> None:
    """status, approvals, intents and audit on a path where no database is: exit 2, no file, no folder."""
    url = f"sqlite:///{tmp_path / 'nonexistent' / 'dir' / 'x.db'}"
    for args in (["status"], ["approvals"], ["intents"], ["audit", "verify"], ["audit", "export"]):
        code, _, err = _cli(*args, db=url)
        assert code == 2, (args, err)
        assert err.startswith("error: --db: no database at ")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_database_is_bad_input(tmp_path: Path) -> None:
    """--db naming a text file: exit 2 saying it is not a marginbot database, the file untouched."""
    f = tmp_path / "notes.txt"
    f.write_text("hello\n")
    for args in (["audit", "verify"], ["intents"], ["status"], ["run", "--once"]):
        code, _, err = _cli(*args, db=f"sqlite:///{f}")
        assert code == 2, (args, err)
        assert "is not a marginbot database" in err
        assert "Traceback" not in err
    assert f.read_text() == "hello\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
