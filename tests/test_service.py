"""The service layer a person's request goes through, whatever the surface: who is proven, what is refused and
audited, and what each use case returns (no printing, no exit codes)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from bot.app import open_store
from bot.core.approvals import Counted, Refused
from bot.engine.clock import SimClock
from bot.errors import BadInput
from bot.service import approvals, controls, resolutions
from bot.service.identity import Proven, prove
from bot.settings import Settings
from bot.store import audit as chain
from bot.store.repo import Store
from tests.harness import START, make_bot, paper_settings

SERVICE = Path(__file__).resolve().parents[1] / "bot" / "service"


class Secrets:
    """A secret source that records whom it was asked for."""

    def __init__(self, secret: str | None) -> None:
        self.secret = secret
        self.asked: list[str] = []

    def __call__(self, name: str) -> str:
        self.asked.append(name)
        if self.secret is None:
            raise BadInput("no secret")
        return self.secret


def _kinds(store: Store) -> list[str]:
    return [r["kind"] for r in chain.rows(store.engine)]


def _store(s: Settings, url: str) -> Store:
    return open_store(s, url)


def test_a_name_that_is_not_an_approver_is_refused_without_asking_for_a_secret(sqlite_url: str) -> None:
    """prove: mallory is refused (auth.refused, with a warning notification) and her secret never asked."""
    s = paper_settings()
    store = _store(s, sqlite_url)
    secrets = Secrets("paper-alice")
    out = prove(s, store, "mallory", secrets, action="resume", now=START)
    assert out == Refused("'mallory' is not in approvals.approvers")
    assert secrets.asked == []
    assert _kinds(store)[-1] == "auth.refused"
    assert any("resume by mallory refused" in n.title for n in store.outbox.due(START))


def test_an_approver_with_the_right_secret_is_proven_and_nothing_is_recorded(sqlite_url: str) -> None:
    """prove: alice with her secret is Proven, and proving writes no audit record."""
    s = paper_settings()
    store = _store(s, sqlite_url)
    before = store.audit.count()
    assert prove(s, store, "alice", Secrets("paper-alice"), action="resume", now=START) == Proven("alice")
    assert store.audit.count() == before


def test_no_secret_is_the_surfaces_bad_input_and_writes_nothing(sqlite_url: str) -> None:
    """A secret source that cannot give a secret raises its own bad input; nothing is recorded."""
    s = paper_settings()
    store = _store(s, sqlite_url)
    before = store.audit.count()
    with pytest.raises(BadInput):
        controls.resume(s, store, by="alice", secret=Secrets(None), venue=None, now=START)
    assert store.audit.count() == before


def test_a_refused_resume_leaves_the_kill_switch_on_and_is_audited(sqlite_url: str) -> None:
    """resume with a wrong secret: Refused, auth.refused recorded, the halt stands; the right one lifts it."""
    s = paper_settings()
    store = _store(s, sqlite_url)
    controls.halt(s, store, by="dana", reason="drill", venue=None, now=START)
    out = controls.resume(s, store, by="alice", secret=Secrets("guess"), venue=None, now=START + 1)
    assert out == Refused("alice: secret does not match")
    assert store.flags.get("ctl:halt") is not None
    done = controls.resume(s, store, by="alice", secret=Secrets("paper-alice"), venue=None, now=START + 2)
    assert done == controls.Done("alice", changed=True)
    assert store.flags.get("ctl:halt") is None
    assert _kinds(store)[-3:] == ["halt", "auth.refused", "resume"]


def test_resume_and_resume_hedge_say_when_there_was_nothing_to_do(sqlite_url: str) -> None:
    """Nothing halted, no program stopped: Done(changed=False), and no kill-switch record."""
    s = paper_settings()
    store = _store(s, sqlite_url)
    alice = Secrets("paper-alice")
    assert controls.resume(s, store, by="alice", secret=alice, venue=None, now=START) == controls.Done(
        "alice", changed=False
    )
    out = controls.resume_hedge(s, store, "btc-options", by="alice", secret=alice, now=START)
    assert out == controls.Done("alice", changed=False)
    assert store.flags.with_prefix("ctl:") == {}


def test_a_refused_resume_hedge_is_audited(sqlite_url: str) -> None:
    """resume-hedge by a non-approver: Refused and recorded, naming the program in the action."""
    s = paper_settings()
    store = _store(s, sqlite_url)
    out = controls.resume_hedge(s, store, "btc-options", by="mallory", secret=Secrets("x"), now=START)
    assert isinstance(out, Refused)
    (refusal,) = [r for r in chain.rows(store.engine) if r["kind"] == "auth.refused"]
    assert refusal["data"]["action"] == "resume-hedge btc-options"


async def test_a_vote_through_the_service_counts_once_and_refuses_a_wrong_secret(sqlite_url: str) -> None:
    """vote: a wrong secret is a refused (audited) vote; the right one counts; the intent waits for a quorum."""
    s = paper_settings(approvals={"auto_limit_usd": 1000})
    w = await make_bot(s, sqlite_url, SimClock(START))
    await w.bot.cycle()
    request = approvals.oldest_pending(w.store)
    assert request is not None
    bad = approvals.vote(
        s, w.store, request, by="alice", approve=True, secret=Secrets("guess"), now=START + 1
    )
    assert bad.outcome == Refused("alice: secret does not match")
    good = approvals.vote(
        s, w.store, request, by="alice", approve=True, secret=Secrets("paper-alice"), now=START + 2
    )
    assert isinstance(good.outcome, Counted)
    assert good.outcome.approvers == ("alice",)
    assert good.request is not None
    assert _kinds(w.store).count("approval.refused") == 1
    assert w.store.approvals.get(request).approvers == ("alice",)  # type: ignore[union-attr]


async def test_resolve_returns_what_happened_and_refuses_what_is_not_open(sqlite_url: str) -> None:
    """resolve: an unknown transfer is Resolved; the same again is NotOpen; a bad outcome is bad input."""
    s = paper_settings(reconcile_lag_seconds=600)
    w = await make_bot(s, sqlite_url, SimClock(START))
    w.exchange.server_error("okx-funding-to-okx", 1)
    await w.bot.cycle()
    (row,) = [r for r in w.store.intents.rows() if r.status == "unknown"]
    alice = Secrets("paper-alice")
    with pytest.raises(BadInput, match="--outcome"):
        resolutions.resolve(
            s, w.store, row.id, by="alice", secret=alice, outcome="maybe", reason="x", now=START
        )
    done = resolutions.resolve(
        s, w.store, row.id, by="alice", secret=alice, outcome="failed", reason="not there", now=START + 1
    )
    assert done == resolutions.Resolved("intent", row.id, "failed", "unknown")
    again = resolutions.resolve(
        s, w.store, row.id, by="alice", secret=alice, outcome="failed", reason="again", now=START + 2
    )
    assert again == resolutions.NotOpen("intent", row.id, "failed")
    mark = json.loads(w.store.flags.get("ctl:intents") or "{}")
    assert (mark["by"], mark["intent"]) == ("alice", row.id)  # the running bot is told to reload


def test_the_service_layer_neither_prints_nor_knows_the_command_line() -> None:
    """bot/service imports no typer and calls no print: the web surface calls the same functions."""
    for path in sorted(SERVICE.glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {
            (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in n.names
        }
        assert not {m for m in imported if m.split(".")[0] in {"typer", "click", "bot.cli"}}, path.name
        calls = {
            n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        assert "print" not in calls, path.name
