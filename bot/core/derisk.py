"""De-risking: reduce-only orders for a venue at its de-risk level that no top-up can rescue in time.

A venue is de-risked when its liquidation ratio m ≥ `derisk_mm_ratio` even after counting the top-ups
that will land within `derisk_wait_seconds` (transfers in flight, and this cycle's automatic legs, by
their routes' `settle_seconds`). The orders bring m, with those top-ups counted, under
`alert_mm_ratio` (with a 2% margin), choosing reductions that least disturb net delta:
  1. opposite positions in the same underlying are reduced together (delta unchanged);
  2. then the largest notionals (the highest marginal maintenance rate), in 10% steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.core.actions import TransferKind
from bot.core.approvals import Allowed
from bot.core.assess import landing_usd as in_flight_landing
from bot.core.assets import landed_value
from bot.core.decide import Alert, Decision
from bot.core.execution import apply_fill, round_step
from bot.core.hedge import OrderAction, OrderReason
from bot.core.margin import Position, figures
from bot.core.policy import Level
from bot.core.world import Policy, VenueSnapshot, World

STEPS = 10
QTY_STEP = 0.001
TARGET_MARGIN = 0.98


@dataclass(frozen=True, slots=True)
class DeriskPlan:
    orders: tuple[OrderAction, ...]
    alerts: tuple[Alert, ...]


def landing_usd(world: World, policy: Policy, decision: Decision, venue: str) -> float:
    """Equity that top-ups will add to `venue` within the de-risk wait (in flight, or allowed this cycle):
    the assessment's `landing_usd`, for a venue that has one."""
    a = decision.assessments.get(venue)
    snap = world.snapshots.get(venue)
    if a is not None and snap is not None and a.level is Level.CRITICAL and snap.positions:
        return a.landing_usd
    routes = {r.name: r for r in policy.routes}
    prices: Mapping[str, float] = snap.prices if snap is not None else {}
    haircuts: Mapping[str, float] = snap.haircuts if snap is not None else {}
    horizon = world.now + policy.derisk_wait_seconds
    mine = [i for i in world.intents if i.venue == venue]
    total = in_flight_landing(mine, routes, horizon, prices, haircuts)
    for p in decision.actions:
        act = p.action
        r = routes.get(act.route)
        if act.venue != venue or act.kind is not TransferKind.TOPUP or not isinstance(p.verdict, Allowed):
            continue
        if r is not None and world.now + r.settle_seconds <= horizon:
            total += landed_value(
                act.asset,
                act.amount - r.fee,
                usd=act.usd,
                amount=act.amount,
                prices=prices,
                haircuts=haircuts,
            )
    return total


def _ratio(snap: VenueSnapshot, positions: tuple[Position, ...], extra_equity: float) -> float:
    f = figures(snap.collateral, positions, snap.prices, snap.haircuts, snap.params)
    equity = f.equity + extra_equity
    return f.mm / equity if equity > 0 else float("inf")


def reductions(snap: VenueSnapshot, extra_equity: float, target: float) -> dict[str, float]:
    """Signed quantities to trade per symbol (opposite to each position) to bring m under `target`."""
    current = [p for p in snap.positions if p.qty != 0]
    original = {p.symbol: p.qty for p in current}
    done: dict[str, float] = {}
    realized = [0.0]  # a reduction realizes the position's PnL into collateral: equity does not change

    def met() -> bool:
        return _ratio(snap, tuple(current), extra_equity + realized[0]) < target

    def take(symbol: str, qty: float) -> None:
        base = symbol.split("/", 1)[0]
        after, pnl = apply_fill(tuple(current), symbol, base, -qty, snap.prices.get(base, 0.0))
        current[:] = list(after)
        realized[0] += pnl
        done[symbol] = done.get(symbol, 0.0) - qty

    # 1. offsetting pairs in one underlying: reducing both leaves delta where it was
    by_base: dict[str, list[Position]] = {}
    for p in current:
        by_base.setdefault(p.base, []).append(p)
    for group in by_base.values():
        longs = sorted((p for p in group if p.qty > 0), key=lambda p: -p.qty)
        shorts = sorted((p for p in group if p.qty < 0), key=lambda p: p.qty)
        if not longs or not shorts or met():
            continue
        lg, sh = longs[0], shorts[0]
        chunk = min(lg.qty, -sh.qty) / STEPS
        for _ in range(STEPS):
            if met():
                break
            take(lg.symbol, chunk)
            take(sh.symbol, -chunk)
    # 2. the largest notionals first, in steps of a tenth of the original size
    while not met():
        live = [p for p in current if abs(p.qty) > 1e-12]
        if not live:
            break
        p = max(live, key=lambda p: abs(p.qty) * snap.prices.get(p.base, 0.0))
        step = min(abs(p.qty), abs(original[p.symbol]) / STEPS)
        take(p.symbol, step if p.qty > 0 else -step)
    return done


def plan_derisk(
    world: World, policy: Policy, decision: Decision, *, busy: frozenset[str] = frozenset()
) -> DeriskPlan:
    """Reduce-only orders for every venue whose assessment has a de-risk need (at its de-risk level, and
    the top-ups landing in time do not rescue it).

    `busy` venues (an order of unknown outcome there) are left alone: what they hold is not known.
    """
    orders: list[OrderAction] = []
    alerts: list[Alert] = []
    for venue, a in decision.assessments.items():
        snap = world.snapshots.get(venue)
        if not a.derisk or snap is None or not world.moves_allowed or venue in busy:
            continue
        f, vpol, landing = a.figures, policy.venues[venue], a.landing_usd
        plan = reductions(snap, landing, vpol.alert_mm_ratio * TARGET_MARGIN)
        legs = []
        for leg, (symbol, qty) in enumerate(sorted(plan.items())):
            size = round_step(abs(qty), QTY_STEP)
            if size <= 0:
                continue
            side = "buy" if qty > 0 else "sell"
            base = symbol.split("/", 1)[0]
            orders.append(
                OrderAction(
                    program=None,
                    venue=venue,
                    symbol=symbol,
                    side=side,
                    qty=size,
                    reduce_only=True,
                    reason=OrderReason.DERISK,
                    trigger=f"{world.now:.3f}",
                    leg=leg,
                    est_price=snap.prices.get(base, 0.0),
                    est_slippage_bps=0.0,
                    note=f"{venue}: m {f.mm_ratio:.1%} ≥ de-risk {vpol.derisk_mm_ratio:.0%}",
                )
            )
            legs.append(f"{side} {size} {symbol}")
        if legs:
            alerts.append(
                Alert(
                    "derisk_orders",
                    "critical",
                    venue,
                    None,
                    f"{venue}: liquidation ratio {f.mm_ratio:.1%} and no top-up lands within "
                    f"{policy.derisk_wait_seconds:g}s: reduce-only {', '.join(legs)}",
                )
            )
    return DeriskPlan(tuple(orders), tuple(alerts))
