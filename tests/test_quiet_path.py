"""The quiet path: most cycles change nothing but prices, and end early — with the same result.

A quiet venue (`assess.is_quiet`: level ok, buffer neither under the band's min nor over its max) decides
nothing; a bot whose venues are all quiet (nothing open, halted or standing) ends its cycle after reading them;
the simulator's fast path (`bot/sim/fast.py`) ends a step there too. Each is held against the full way.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.assess import is_quiet
from bot.core.decide import decide
from bot.core.margin import figures
from bot.core.policy import Regime
from bot.sim.fast import FastForward
from bot.sim.runner import Replay
from bot.sim.scenario import load_scenario
from tests.builders import VPOL, policy, snapshot, world
from tests.conftest import SCENARIOS
from tests.harness import START, make_bot, paper_settings


@settings(max_examples=300, deadline=None)
@given(
    usdt=st.floats(50_000, 20_000_000),
    qty=st.floats(-300, 300),
    price=st.floats(10_000, 150_000),
    regime=st.sampled_from(list(Regime)),
)
def test_a_quiet_venue_decides_nothing(usdt: float, qty: float, price: float, regime: Regime) -> None:
    """Whenever `is_quiet` holds for a healthy venue with nothing open, decide plans, alerts and moves
    nothing there; and a venue `decide` leaves alone with no alert and no move is quiet or outside the band
    only where a sweep rounds to nothing."""
    snap = snapshot(usdt=usdt, qty=qty, price=price)
    f = figures(snap.collateral, snap.positions, snap.prices, snap.haircuts, snap.params)
    d = decide(world({"v1": snap}, regime=regime), policy(()))
    if is_quiet(f, VPOL, VPOL.band(regime)):
        assert d.actions == ()
        assert d.transitions == ()
        assert d.alerts == ()
        assert d.withdrawn == ()


async def test_a_quiet_cycle_ends_early_with_the_full_cycles_result(tmp_path: Path) -> None:
    """Two bots over one paper world, one forced the full way: after they settle, each cycle of the quiet bot
    gives the same figures and states, writes nothing, and calls no decision."""
    s = paper_settings(okx_usdt=1_500_000)
    quiet = await make_bot(s, f"sqlite:///{tmp_path / 'q.db'}", _clock())
    full = await make_bot(s, f"sqlite:///{tmp_path / 'f.db'}", quiet.bot.clock, exchange=quiet.exchange)  # type: ignore[arg-type]
    full.bot._may_be_quiet = lambda controls: False  # type: ignore[method-assign]
    for _ in range(2):  # the first cycles take in the positions and settle the states
        await quiet.bot.cycle()
        await full.bot.cycle()
    audit_before = quiet.store.audit.count()
    for k in range(5):
        quiet.market.shock("BTC", 0.001 * (k + 1))
        a = await quiet.bot.cycle()
        b = await full.bot.cycle()
        assert a.decision.assessments == {}  # the quiet path: no decision was made
        assert b.decision.assessments != {}
        assert a.observed == b.observed
        assert a.states == b.states
        assert a.outcomes == b.outcomes == ()
    assert quiet.store.audit.count() == audit_before


def _clock():  # type: ignore[no-untyped-def]
    from bot.engine.clock import SimClock

    return SimClock(START)


@pytest.mark.parametrize("name", ["calm-day", "btc-crash", "crash-recovery", "approval-expires"])
def test_the_simulators_fast_path_changes_nothing(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shipped scenario gives the same report with the fast path as without it."""
    from bot.app import open_store
    from bot.settings import load_settings
    from tests.conftest import PAPER

    s = load_settings(PAPER)

    def replay(db: str) -> dict[str, Any]:
        store = open_store(s, f"sqlite:///{tmp_path / db}", purpose="simulation")
        return asyncio.run(Replay(load_scenario(SCENARIOS / f"{name}.toml"), s, store).run())

    fast = replay("fast.db")
    monkeypatch.setattr(FastForward, "read", lambda self, now: None)
    slow = replay("slow.db")
    assert json.dumps(fast, sort_keys=True) == json.dumps(slow, sort_keys=True)
