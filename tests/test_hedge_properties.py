"""Hypothesis properties of the hedge engine inside the bot, over random price paths and exposure changes.

The bot runs config/hedging.toml's `btc-options` (dynamic_band) on the paper exchange with deep books, so
that after every cycle in which the program could trade its delta must be back in band; a second property
holds the hourly trade cap with a cap small enough for random paths to reach it.
"""

from __future__ import annotations

import asyncio
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.engine.clock import SimClock
from bot.settings import Settings, settings_from_dict
from tests.conftest import ROOT
from tests.harness import START, make_bot

HEDGING = ROOT / "config" / "hedging.toml"
NAME = "btc-options"

# one cycle: a price move (fraction) and, sometimes, a new exposure (BTC of delta)
steps = st.lists(
    st.tuples(
        st.floats(min_value=-0.03, max_value=0.03, allow_nan=False),
        st.one_of(st.none(), st.floats(min_value=-80, max_value=80, allow_nan=False)),
    ),
    min_size=1,
    max_size=25,
)


def _settings(cap: int) -> Settings:
    data: dict[str, Any] = tomllib.loads(HEDGING.read_text())
    data["hedges"] = [h for h in data["hedges"] if h["name"] == NAME]
    data["hedges"][0]["max_trades_per_hour"] = cap
    data["hedges"][0]["stop"] = {}
    for v in data["venues"]:
        v["paper"]["book_level_usd"] = 50_000_000  # deep books: liquidity never caps a trade here
        v["paper"]["collateral"] = {"USDT": 50_000_000}  # and margin never starves one
    return settings_from_dict(data)


def _run(cap: int, path: list[tuple[float, float | None]], seconds: float) -> list[tuple[float, float, bool]]:
    """Drive the bot over `path`; per cycle: (time, |net delta − target| after it, whether it could trade)."""

    async def go(url: str) -> list[tuple[float, float, bool]]:
        s = _settings(cap)
        clock = SimClock(START)
        w = await make_bot(s, url, clock)
        h = w.bot.hedger
        assert h is not None
        spec = h.specs[NAME]
        out = []
        for move, exposure in path:
            clock.advance(seconds)
            w.market.shock("BTC", move)
            if exposure is not None and NAME in h.prices:
                h.set_exposure(NAME, exposure, clock.now())
            w.exchange.advance()
            recent = [t for t in h.states[NAME].trades if clock.now() - t < 3600.0]
            could_trade = len(recent) < spec.max_trades_per_hour
            await w.bot.cycle()
            price = w.market.prices["BTC"]
            dev = abs(h.states[NAME].net_delta(spec, price) - spec.target_delta)
            out.append((clock.now(), dev, could_trade))
        await w.bot.close()
        w.store.engine.dispose()
        return out

    with tempfile.TemporaryDirectory(prefix="marginbot-prop-") as d:
        return asyncio.run(go(f"sqlite:///{Path(d) / 'p.db'}"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=steps)
def test_after_each_cycle_the_program_could_trade_in_delta_is_in_band(
    path: list[tuple[float, float | None]],
) -> None:
    """With books deep and margin ample, every cycle in which the program could trade ends with delta in band."""
    spec_band = _settings(3600).hedges[0].band
    for ts, dev, could in _run(3600, path, 60.0):
        if could:
            assert dev <= spec_band + 1e-6, f"at {ts}: |net delta − target| = {dev} > band {spec_band}"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=steps)
def test_trades_per_hour_never_exceed_the_cap(path: list[tuple[float, float | None]]) -> None:
    """With a cap of two trades an hour and cycles 5 minutes apart, no hour ever holds more than two trades."""
    cap = 2
    s = _settings(cap)

    async def go(url: str) -> list[float]:
        clock = SimClock(START)
        w = await make_bot(s, url, clock)
        h = w.bot.hedger
        assert h is not None
        times: list[float] = []
        for move, exposure in path:
            clock.advance(300.0)
            w.market.shock("BTC", move)
            if exposure is not None and NAME in h.prices:
                h.set_exposure(NAME, exposure, clock.now())
            w.exchange.advance()
            before = h.states[NAME].trade_count
            await w.bot.cycle()
            if h.states[NAME].trade_count > before:
                times.append(clock.now())
        w.store.engine.dispose()
        return times

    with tempfile.TemporaryDirectory(prefix="marginbot-prop-") as d:
        times = asyncio.run(go(f"sqlite:///{Path(d) / 'p.db'}"))
    for t in times:
        window = [u for u in times if t <= u < t + 3600.0]
        assert len(window) <= cap, f"{len(window)} trades in the hour from {t}: {times}"
