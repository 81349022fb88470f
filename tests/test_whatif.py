"""What-if before every action: each proposed move carries its projected effect on its venue's margin into
its audit record and its notification (and transfers into their approval requests)."""

from __future__ import annotations

import dataclasses
import json
import math
from decimal import Decimal
from pathlib import Path

from bot.core.hedge import OrderAction, OrderReason
from bot.core.margin import Figures
from bot.core.whatif import with_effects
from bot.engine.clock import SimClock
from bot.settings import load_settings
from bot.store.audit import export_lines
from tests import builders
from tests.conftest import ROOT
from tests.harness import START, make_bot, paper_settings


def order(qty: str, side: str, *, reduce_only: bool = False, leg: int = 0) -> OrderAction:
    return OrderAction(
        program="p",
        venue="v1",
        symbol="BTC/USDT:USDT",
        side=side,
        qty=Decimal(qty),
        reduce_only=reduce_only,
        reason=OrderReason.REBALANCE,
        trigger="t",
        leg=leg,
        est_price=60_000.0,
        est_slippage_bps=0.0,
    )


def _u(text: str) -> tuple[float, float]:
    part = text.split(", ", maxsplit=1)[0].split(" u ")[1]
    a, b = part.split(" → ")
    return float(a.rstrip("%")), float(b.rstrip("%"))


def test_an_order_that_adds_to_a_position_projects_higher_utilization() -> None:
    """Selling more against a short raises u; buying it back lowers it; the text names the venue."""
    snap = builders.snapshot("v1", usdt=1_500_000.0, qty=-150.0)
    (more,) = with_effects({"v1": snap}, [order("10", "sell")])
    (less,) = with_effects({"v1": snap}, [order("10", "buy", reduce_only=True)])
    assert more.effect.startswith("v1 u 60.0% → ")
    assert _u(more.effect)[1] > 60.0
    assert _u(less.effect)[1] < 60.0


def test_legs_of_one_plan_are_projected_cumulatively() -> None:
    """The second leg's 'before' is the first leg's 'after'."""
    snap = builders.snapshot("v1", usdt=1_500_000.0, qty=-150.0)
    first, second = with_effects({"v1": snap}, [order("10", "sell"), order("10", "sell", leg=1)])
    assert _u(second.effect)[1] > _u(first.effect)[1]
    assert math.isclose(_u(first.effect)[0], 60.0)


def test_a_venue_that_reports_its_own_figures_is_projected_from_them() -> None:
    """Live venues liquidate on their figures: the projection is theirs plus our model's change."""
    snap = dataclasses.replace(
        builders.snapshot("v1", usdt=1_500_000.0, qty=-150.0),
        reported=Figures(1_500_000, 1_050_000, 9, 0.7, 0.2),
    )
    (o,) = with_effects({"v1": snap}, [order("10", "sell")])
    before, after = _u(o.effect)
    assert before == 70.0
    assert after > 70.0
    assert " m 20.0% → " in o.effect


def test_an_order_on_an_unobserved_venue_goes_without_a_projection() -> None:
    """No snapshot, no guess: the order keeps an empty effect."""
    (o,) = with_effects({"v1": None}, [order("1", "buy")])
    assert o.effect == ""


async def test_hedge_orders_carry_their_projection_into_audit_and_notifications(tmp_path: Path) -> None:
    """The first cycle of the hedging config places hedges: each order's audit record and notification say
    what it does to its venue's utilization."""
    s = load_settings(ROOT / "config" / "hedging.toml")
    clock = SimClock(START)
    wired = await make_bot(s, f"sqlite:///{tmp_path}/h.db", clock)
    clock.advance(5)
    await wired.bot.cycle()
    records = [json.loads(line) for line in export_lines(wired.store.engine, "jsonl")]
    created = [r for r in records if r["kind"] == "order.created"]
    assert created
    assert all(" → " in r["data"]["projected"] for r in created)
    notes = wired.store.outbox.due(math.inf, limit=10_000)
    assert any("projected" in str(n) for n in notes)


async def test_a_top_up_carries_utilization_before_and_after_into_audit_and_notification(
    tmp_path: Path,
) -> None:
    """The paper default tops okx-main up: its intent record holds u before/after, its note shows the arrow."""
    s = paper_settings()
    clock = SimClock(START)
    wired = await make_bot(s, f"sqlite:///{tmp_path}/t.db", clock)
    clock.advance(5)
    await wired.bot.cycle()
    records = [json.loads(line) for line in export_lines(wired.store.engine, "jsonl")]
    intents = [r for r in records if r["kind"].startswith("intent") and "utilization_before" in r["data"]]
    assert intents
    assert intents[0]["data"]["utilization_after"] < intents[0]["data"]["utilization_before"]
    notes = [str(n) for n in wired.store.outbox.due(math.inf, limit=10_000)]
    assert any("okx-main" in n and " → " in n for n in notes)
