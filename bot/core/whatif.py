"""What-if: the projected effect of a proposed order on its venue's margin, before it is sent.

Transfers carry theirs from `decide` (utilization before → after). Orders get theirs here: each planned
order's fill is applied at its estimated price to the venue's positions, in plan order (so the second leg
sees the first), and the venue's figures recomputed. Where the venue reports its own figures (what it
liquidates on), the projection is those plus the change our model computes. The text goes into the order's
audit record and its notification: "okx-main u 78.0% → 61.0%, m 20.0% → 15.1%". Given the decision's
assessments, a venue's figures before its first order are the assessment's, not computed a second time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.core.assess import Assessment
from bot.core.execution import apply_fill
from bot.core.hedge import OrderAction
from bot.core.margin import Position, figures
from bot.core.world import VenueSnapshot


@dataclass(frozen=True, slots=True)
class Effect:
    venue: str
    u_before: float
    u_after: float
    m_before: float
    m_after: float

    def text(self) -> str:
        return (
            f"{self.venue} u {_pct(self.u_before)} → {_pct(self.u_after)}, "
            f"m {_pct(self.m_before)} → {_pct(self.m_after)}"
        )


def _pct(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x * 100:.1f}%"


def _shift(reported: float, before: float, after: float) -> float:
    if math.isinf(reported) or math.isinf(before) or math.isinf(after):
        return after
    return max(0.0, reported + (after - before))


def with_effects(
    snapshots: Mapping[str, VenueSnapshot | None],
    orders: Sequence[OrderAction],
    assessments: Mapping[str, Assessment] | None = None,
) -> tuple[OrderAction, ...]:
    """The orders, each with its projected effect on its venue (cumulative in plan order).

    `assessments` (the decision's, made from these same snapshots) give each venue's figures before its
    first order where the venue reports none of its own, instead of computing them again.
    """
    positions: dict[str, tuple[Position, ...]] = {}
    collateral: dict[str, dict[str, float]] = {}
    out: list[OrderAction] = []
    for o in orders:
        snap = snapshots.get(o.venue)
        if snap is None or o.est_price <= 0:
            out.append(o)
            continue
        a = assessments.get(o.venue) if assessments is not None and o.venue not in positions else None
        pos = positions.get(o.venue, snap.positions)
        coll = collateral.get(o.venue, dict(snap.collateral))
        if a is not None and snap.reported is None:
            before = a.figures  # the same computation, on the same snapshot
        else:
            before = figures(coll, pos, snap.prices, snap.haircuts, snap.params)
        base, settle = o.symbol.split("/", 1)[0], o.symbol.rsplit(":", 1)[-1]
        signed = float(o.qty) if o.side == "buy" else -float(o.qty)
        new_pos, realized = apply_fill(pos, o.symbol, base, signed, o.est_price)
        new_coll = dict(coll)
        new_coll[settle] = new_coll.get(settle, 0.0) + realized
        prices = snap.prices if base in snap.prices else {**snap.prices, base: o.est_price}
        after = figures(new_coll, new_pos, prices, snap.haircuts, snap.params)
        positions[o.venue], collateral[o.venue] = new_pos, new_coll
        ref = snap.reported
        u0, m0 = (ref.utilization, ref.mm_ratio) if ref is not None else (before.utilization, before.mm_ratio)
        effect = Effect(
            o.venue,
            u0,
            _shift(u0, before.utilization, after.utilization),
            m0,
            _shift(m0, before.mm_ratio, after.mm_ratio),
        )
        out.append(dataclasses.replace(o, effect=effect.text()))
    return tuple(out)
