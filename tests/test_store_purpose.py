"""Simulations are sealed: `simulate` never writes into a store that holds a live history, and nothing a
simulation recorded (its notifications included) is ever delivered or acted on by `run`.

Seen before the fix: `simulate --db` on a copy of a real marginbot.db appended simulated audit records after
the real ones, `status` showed simulated balances, and the next real `run` delivered the 15 simulated
notifications ("topup … submitted/confirmed") to the chat endpoint.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from bot.app import open_store
from bot.cli import app
from bot.errors import StoreMissing
from bot.settings import Settings
from bot.store.purpose import MODE_FLAG, SIMULATED, mode_of
from tests.conftest import PAPER, SCENARIOS

# the large top-up scenario raises notifications within a few hundred steps
SCENARIO = SCENARIOS / "large-topup-approved.toml"


@pytest.fixture(autouse=True)
def _no_marginbot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("MARGINBOT_")]:
        monkeypatch.delenv(key)


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--config", str(PAPER)])


def digest(path: Path) -> str:
    """The database's content: file and WAL together (a checkpoint may move bytes between them)."""
    h = hashlib.sha256()
    for p in sorted(path.parent.glob(path.name + "*")):
        if not p.name.endswith("-shm"):
            h.update(p.read_bytes())
    return h.hexdigest()


def live_store(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "marginbot.db"
    res = cli("run", "--once", "--db", f"sqlite:///{path}")
    assert res.exit_code == 0, res.output
    return path, f"sqlite:///{path}"


def test_simulate_refuses_a_store_with_a_live_history_and_changes_nothing(tmp_path: Path) -> None:
    """simulate --db on a live store: exit 2, one line naming --db and what the store holds, not a byte written."""
    path, url = live_store(tmp_path)
    before, audit_before = digest(path), cli("audit", "export", "--db", url).stdout
    res = cli("simulate", str(SCENARIO), "--db", url)
    assert res.exit_code == 2, res.output
    lines = [x for x in res.stderr.splitlines() if x]
    assert len(lines) == 1
    assert lines[0].startswith("error: --db: ")
    assert "a live bot's history" in lines[0]
    assert "Traceback" not in res.output
    assert cli("audit", "export", "--db", url).stdout == audit_before
    assert digest(path) == before


def test_a_store_written_before_marks_existed_counts_as_live(
    paper_settings: Settings, tmp_path: Path
) -> None:
    """A store with audit records but no mark (an older release's) is a live history: simulate refuses it."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = open_store(paper_settings, url)  # `create`: no mark, as an older release left it
    store.audit.record(time.time(), [("halt", None, {"by": "dana"})])
    store.engine.dispose()
    res = cli("simulate", str(SCENARIO), "--db", url)
    assert res.exit_code == 2
    assert "audit records" in res.stderr


def test_simulated_notifications_are_never_due_and_run_refuses_the_store(
    paper_settings: Settings, tmp_path: Path
) -> None:
    """A simulation's notifications are written `simulated` (no outbox picks them up), and `run` on its store
    exits 2 naming it, before it could deliver or act on anything."""
    url = f"sqlite:///{tmp_path / 'sim.db'}"
    res = cli("simulate", str(SCENARIO), "--db", url, "--json")
    assert res.exit_code == 0, res.output
    store = open_store(paper_settings, url, purpose="read")
    assert store.outbox.count() > 0
    assert store.outbox.due(time.time() + 10**9) == []
    assert mode_of(store)[0] == "simulation"
    statuses = {
        r[0] for r in store.engine.connect().exec_driver_sql("SELECT DISTINCT status FROM notifications")
    }
    assert statuses == {SIMULATED}
    store.engine.dispose()
    run = cli("run", "--once", "--db", url)
    assert run.exit_code == 2, run.output
    assert (
        "holds a simulation (scenario 'large top-up approved" in run.stderr
        or "holds a simulation" in run.stderr
    )
    assert "Traceback" not in run.output


def test_a_second_simulation_needs_its_own_store(tmp_path: Path) -> None:
    """Two simulations in one store would mix their reports: the second is refused."""
    url = f"sqlite:///{tmp_path / 'sim.db'}"
    assert cli("simulate", str(SCENARIOS / "calm-day.toml"), "--db", url).exit_code == 0
    again = cli("simulate", str(SCENARIOS / "calm-day.toml"), "--db", url)
    assert again.exit_code == 2
    assert "already holds a simulation (scenario 'calm day')" in again.stderr


def test_status_reads_a_simulation_store_without_writing(tmp_path: Path) -> None:
    """Looking at a simulation's results is allowed and writes nothing."""
    path = tmp_path / "sim.db"
    assert cli("simulate", str(SCENARIOS / "calm-day.toml"), "--db", f"sqlite:///{path}").exit_code == 0
    before = digest(path)
    res = cli("status", "--db", f"sqlite:///{path}")
    assert res.exit_code == 0, res.output
    assert digest(path) == before


def test_a_live_store_is_marked_live_and_a_rehearsal_may_not_write_into_it(
    paper_settings: Settings, tmp_path: Path
) -> None:
    """`run` marks its store; the rehearsal purpose refuses it (fake-exchange history is not a live one)."""
    _, url = live_store(tmp_path)
    store = open_store(paper_settings, url, purpose="read")
    assert mode_of(store)[0] == "live"
    assert store.flags.get(MODE_FLAG) is not None
    store.engine.dispose()
    with pytest.raises(StoreMissing, match="a rehearsal never writes into it"):
        open_store(paper_settings, url, purpose="rehearsal")
