"""Recovering from the awkward cases of the hedge engine: answers without a final status, a person resolving
an order, funding across an unreadable venue, a resume at start, and an exposure set before any price."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.core.hedge import OrderStatus
from bot.engine.clock import SimClock
from bot.sim.runner import Replay
from bot.sim.scenario import load_scenario
from bot.venues.base import OrderReceipt, OrderRequest
from bot.venues.paper import PaperOrders
from tests.conftest import ROOT
from tests.harness import START, make_bot
from tests.test_hedge_engine import BTC_OKX, HEDGING, _holding, _rows, _step, _venue_qty, hedging

LAG = 60.0


class NoStatusThenGone(PaperOrders):
    """The venue answers with its reference but no final status, then its lookup never shows the order."""

    async def place(self, req: OrderRequest) -> OrderReceipt:
        r = await super().place(req)
        return OrderReceipt(r.client_id, r.venue_ref, r.filled, r.avg_price, r.fee, r.ts, done=False)

    async def lookup_order(self, req: OrderRequest) -> OrderReceipt | None:
        return None


async def test_an_acknowledged_order_without_status_is_never_failed_for_not_being_found(
    sqlite_url: str,
) -> None:
    """An order the venue acknowledged stays unknown (paged) past the lag; the program never hedges twice."""
    s = hedging("btc-options", reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    w.bot.hedger.desk_orders.port = NoStatusThenGone(w.exchange)
    first = await w.bot.cycle()
    (o,) = first.orders
    assert o.status is OrderStatus.UNKNOWN
    for _ in range(30):  # 150 s: well past the lag
        await _step(w, clock)
    assert [r.status for r in _rows(w.store)] == ["unknown"]
    assert _venue_qty(w, *BTC_OKX) == pytest.approx(-40.0)  # one hedge, not two


async def test_a_person_resolving_an_unknown_order_opens_the_gate_and_the_ledger_counts_the_fill(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`resolve ID --outcome filled --filled Q --price P` closes the order; the running bot books the fill once."""
    s = hedging("btc-options", reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    w.bot.hedger.desk_orders.port = NoStatusThenGone(w.exchange)
    (o,) = (await w.bot.cycle()).orders
    await _step(w, clock)
    assert w.bot.hedger.states["btc-options"].holdings == {}
    monkeypatch.setenv("MARGINBOT_APPROVER_SECRET", "paper-alice")
    result = CliRunner().invoke(
        app,
        [
            "resolve",
            o.order.id,
            "--as",
            "alice",
            "--outcome",
            "filled",
            "--filled",
            "40",
            "--price",
            "59990",
            "--reason",
            "okx order history shows it filled",
            "--config",
            str(HEDGING),
            "--db",
            sqlite_url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "resolved as filled" in result.stdout
    w.bot.hedger.desk_orders.port = PaperOrders(w.exchange)
    w.bot.kill.poll_seconds = 0
    await _step(w, clock)
    await _step(w, clock)
    assert [r.status for r in _rows(w.store)] == ["filled"]
    assert _holding(w, "btc-options", *BTC_OKX) == pytest.approx(-40.0)
    assert _venue_qty(w, *BTC_OKX) == pytest.approx(-40.0)
    assert w.bot.gate_open


def test_resolving_an_order_refuses_a_fill_larger_than_the_order(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filled quantity above the order's, or a missing price, is bad input (exit 2), and nothing changes."""

    async def setup() -> str:
        s = hedging("btc-options", reconcile_lag_seconds=LAG)
        w = await make_bot(s, sqlite_url, SimClock(START))
        w.bot.hedger.desk_orders.port = NoStatusThenGone(w.exchange)
        (o,) = (await w.bot.cycle()).orders
        return o.order.id

    oid = asyncio.run(setup())
    monkeypatch.setenv("MARGINBOT_APPROVER_SECRET", "paper-alice")
    base = [
        "resolve",
        oid,
        "--as",
        "alice",
        "--reason",
        "checked",
        "--config",
        str(HEDGING),
        "--db",
        sqlite_url,
    ]
    for extra in (["--outcome", "filled", "--filled", "41", "--price", "60000"], ["--outcome", "filled"]):
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 2, result.output
    result = CliRunner().invoke(app, [*base, "--outcome", "confirmed"])
    assert result.exit_code == 2, result.output


async def test_funding_at_a_boundary_the_venue_missed_is_charged_when_it_answers(sqlite_url: str) -> None:
    """okx is dark across 08:00: the charge is not lost, it is booked when okx answers again."""
    s = hedging("eth-inventory", reconcile_lag_seconds=LAG)
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    await w.bot.cycle()
    for venue in ("okx-main", "bybit-main"):  # the same everywhere: no rotation, the hedge stays on okx
        w.exchange.set_funding(venue, "ETH/USDT:USDT", -0.0025)
    clock.set(START - START % 28_800 + 28_800 - 60)  # a minute before the next funding boundary
    await _step(w, clock, 1)
    w.exchange.outage("okx-main", 600)
    for _ in range(8):
        await _step(w, clock, 60)  # across the boundary, okx unreadable
    assert w.bot.hedger.states["eth-inventory"].funding == pytest.approx(0.0)
    for _ in range(4):
        await _step(w, clock, 60)  # okx answers again
    st = w.bot.hedger.states["eth-inventory"]
    assert st.funding > 0  # a short paying a negative rate: a cost
    assert st.stopped
    assert "funding drag" in st.stop_reason


async def test_a_resume_requested_while_the_bot_was_down_is_applied_at_start(sqlite_url: str) -> None:
    """A program stopped on max_loss and resumed before the bot starts again hedges again, and stays active."""
    s = hedging("btc-options", edit=lambda d: d["hedges"][0].update(stop={"max_loss_usd": 20_000}))
    clock = SimClock(START)
    w = await make_bot(s, sqlite_url, clock)
    await w.bot.cycle()
    w.market.shock("BTC", 0.25)  # a short-gamma book loses on a big move
    await _step(w, clock)
    assert w.bot.hedger.states["btc-options"].stopped
    await _step(w, clock)
    w.bot.kill.request_hedge_resume(clock.now(), program="btc-options", by="alice")
    w2 = await make_bot(s, sqlite_url, clock, exchange=w.exchange)
    await _step(w2, clock)
    await _step(w2, clock)
    st = w2.bot.hedger.states["btc-options"]
    assert not st.stopped
    assert st.loss_base > 20_000
    assert st.holdings  # hedged again
    assert "ctl:resume-hedge:btc-options" not in w2.store.flags.with_prefix("ctl:")


def test_an_exposure_event_at_step_zero_runs(tmp_path: Path) -> None:
    """An `exposure` event at the first step takes the scenario's starting price and is hedged from there."""
    from bot.app import open_store
    from bot.settings import load_settings

    sc = tmp_path / "s.toml"
    sc.write_text(
        'name = "exposure at 0"\nstart = "2026-03-02T00:00:00Z"\nsteps = 5\n'
        "[prices.BTC]\nstart = 60000\n[prices.ETH]\nstart = 3000\n[prices.USDC]\nstart = 1\n"
        '[[events]]\nat = 0\ntype = "exposure"\nhedge = "btc-options"\nqty = 10\n'
    )
    s = load_settings(ROOT / "config" / "hedging.toml")
    store = open_store(s, f"sqlite:///{tmp_path / 'x.db'}")
    out: dict[str, Any] = asyncio.run(Replay(load_scenario(sc), s, store).run())
    assert out["hedges"]["btc-options"]["holdings"] == {"okx-main|BTC/USDT:USDT": -10.0}
    assert Decimal(out["orders"][0]["amount"]) == Decimal(10) or any(
        o["program"] == "btc-options" and Decimal(o["amount"]) == Decimal(10) for o in out["orders"]
    )
