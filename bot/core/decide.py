"""decide(world, policy) -> Decision: the whole treasury policy as a pure function of data.

Per venue, every cycle:
  halted                      -> nothing moves
  no answer / data too old    -> `stale`, alert, no action
  buffer (counting in-flight top-ups) < band.min -> top-up to band.target along the routes
  buffer > band.max, nothing in flight            -> sweep the excess above band.target
  u ≥ alert_utilization or m ≥ alert_mm_ratio     -> warning; m ≥ derisk_mm_ratio -> critical
Each planned move carries the approval policy's verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from bot.core.actions import OPEN_STATUSES, SPENT_STATUSES, IntentStatus, TransferAction, TransferKind
from bot.core.approvals import BREAK_GLASS, Allowed, NeedsApproval, Verdict, evaluate
from bot.core.assets import landed_value, price_of, unit_value
from bot.core.fsm import Trigger, VenueState, transition
from bot.core.margin import Figures, figures, sweep_usd, topup_usd
from bot.core.numbers import round_down, to_decimal
from bot.core.policy import Level, level
from bot.core.routing import (
    Leg,
    blocked_routes,
    plan_sweep,
    plan_topup,
    route_remaining,
)
from bot.core.world import DAY_SECONDS, IntentView, Policy, RouteSpec, VenueSnapshot, World

ZERO = Decimal(0)
SWEEP_MIN_FRACTION = 0.01  # a sweep capped below 1% of equity waits until there is more to return
SWEEP_MM_MARGIN = 0.9  # a sweep leaves the liquidation ratio at most 90% of its alert level


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # utilization | mm_ratio | derisk | stale | crosscheck | capacity | unpriced | approval | denied | …
    severity: str  # info | warning | critical
    venue: str
    asset: str | None
    message: str


def crosscheck_gap(reported: Figures, own: Figures) -> float:
    """The larger absolute difference of utilization and liquidation ratio (∞ on either side counts fully)."""
    gaps = []
    for a, b in ((reported.utilization, own.utilization), (reported.mm_ratio, own.mm_ratio)):
        if math.isinf(a) or math.isinf(b):
            gaps.append(0.0 if a == b else math.inf)
        else:
            gaps.append(abs(a - b))
    return max(gaps)


@dataclass(frozen=True, slots=True)
class Planned:
    action: TransferAction
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class Transition:
    venue: str
    before: VenueState
    trigger: Trigger
    after: VenueState


@dataclass(frozen=True, slots=True)
class Decision:
    actions: tuple[Planned, ...]
    transitions: tuple[Transition, ...]
    alerts: tuple[Alert, ...]
    reasons: tuple[str, ...]
    observed: Mapping[str, Figures | None]
    withdrawn: tuple[str, ...] = ()  # approval requests whose need disappeared


def _pct(x: float) -> str:
    return "∞" if x == float("inf") else f"{x * 100:.1f}%"


def _incoming_usd(
    intents: list[IntentView], prices: Mapping[str, float], haircuts: Mapping[str, float]
) -> float:
    """Equity that top-ups already in flight (or of unknown outcome) will add when they land."""
    total = 0.0
    for i in intents:
        if i.kind is TransferKind.TOPUP and i.status in (IntentStatus.SUBMITTED, IntentStatus.UNKNOWN):
            total += landed_value(
                i.asset, i.amount - i.fee, usd=i.usd, amount=i.amount, prices=prices, haircuts=haircuts
            )
    return total


def _last_money_movement(intents: tuple[IntentView, ...], venue: str) -> float:
    """When collateral last arrived at (a settled top-up) or left (a sweep sent from) this venue."""
    last = float("-inf")
    for i in intents:
        if i.venue != venue:
            continue
        if i.kind is TransferKind.TOPUP and i.settled_at is not None and i.settled_at > last:
            last = i.settled_at
        elif i.kind is TransferKind.SWEEP and i.status in _LEFT_VENUE and i.created_at > last:
            last = i.created_at
    return last


_LEFT_VENUE = frozenset({IntentStatus.SUBMITTED, IntentStatus.UNKNOWN, IntentStatus.CONFIRMED})


def _automatic_spent(world: World) -> Decimal:
    start = world.now - DAY_SECONDS
    return sum(
        (i.usd for i in world.intents if i.automatic and i.status in SPENT_STATUSES and i.created_at > start),
        ZERO,
    )


def _usable_routes(routes: list[RouteSpec], world: World) -> list[RouteSpec]:
    """Routes with no unknown-outcome intent, no failure in the cooldown window, and (an `exclusive` route,
    whose venue takes no client id) no open intent: `routing.blocked_routes` says which and why."""
    blocked = blocked_routes(routes, world.intents, world.now)
    return [r for r in routes if r.name not in blocked]


def decide(world: World, policy: Policy) -> Decision:
    """Evaluate every venue against its band and return the moves, state changes and alerts."""
    actions: list[Planned] = []
    withdrawn: list[str] = []
    transitions: list[Transition] = []
    alerts: list[Alert] = []
    reasons: list[str] = []
    observed: dict[str, Figures | None] = {}
    auto_spent: Decimal | None = None  # computed lazily: most cycles move nothing

    open_by_venue: dict[str, list[IntentView]] = {}
    for i in world.intents:
        if i.status in OPEN_STATUSES:
            open_by_venue.setdefault(i.venue, []).append(i)

    for name, vpol in policy.venues.items():
        current = [world.states.get(name, VenueState.STALE)]
        snap = world.snapshots.get(name)

        def move(trigger: Trigger, venue: str = name, current: list[VenueState] = current) -> None:
            before = current[0]
            after = transition(before, trigger)
            if after is not before:
                transitions.append(Transition(venue, before, trigger, after))
                current[0] = after

        halted = world.halted or name in world.halted_venues
        if halted and current[0] is not VenueState.HALTED:
            move(Trigger.HALT)
        elif not halted and current[0] is VenueState.HALTED:
            move(Trigger.RESUME)
        if snap is None or world.now - snap.ts > policy.max_data_age_seconds:
            observed[name] = None
            age = "no answer" if snap is None else f"data {world.now - snap.ts:.0f}s old"
            alerts.append(Alert("stale", "warning", name, None, f"{name}: {age}; no decision on stale data"))
            if not halted:
                move(Trigger.DATA_STALE)
            continue

        # the venue's own figures where it reports them (it liquidates on those), else our computation
        f = snap.reported or figures(snap.collateral, snap.positions, snap.prices, snap.haircuts, snap.params)
        observed[name] = f
        if snap.own is not None and snap.reported is not None:
            gap = crosscheck_gap(snap.reported, snap.own)
            if gap > vpol.crosscheck_tolerance:
                alerts.append(
                    Alert(
                        "crosscheck",
                        "warning",
                        name,
                        None,
                        f"{name}: the venue's figures (u {_pct(f.utilization)}, m {_pct(f.mm_ratio)}) differ from "
                        f"ours (u {_pct(snap.own.utilization)}, m {_pct(snap.own.mm_ratio)}) by "
                        f"{_pct(gap)} > {_pct(vpol.crosscheck_tolerance)}; acting on the venue's",
                    )
                )
        band = vpol.band(world.regime)
        lvl = level(f.utilization, f.mm_ratio, vpol)
        if lvl is Level.CRITICAL:
            alerts.append(
                Alert(
                    "derisk",
                    "critical",
                    name,
                    None,
                    f"{name}: liquidation ratio {_pct(f.mm_ratio)} ≥ de-risk level {_pct(vpol.derisk_mm_ratio)}",
                )
            )
        elif lvl is Level.ALERT:
            if f.utilization >= vpol.alert_utilization:
                alerts.append(
                    Alert(
                        "utilization",
                        "warning",
                        name,
                        None,
                        f"{name}: utilization {_pct(f.utilization)} ≥ alert {_pct(vpol.alert_utilization)}",
                    )
                )
            if f.mm_ratio >= vpol.alert_mm_ratio:
                alerts.append(
                    Alert(
                        "mm_ratio",
                        "warning",
                        name,
                        None,
                        f"{name}: liquidation ratio {_pct(f.mm_ratio)} ≥ alert {_pct(vpol.alert_mm_ratio)}",
                    )
                )

        if halted:
            continue  # watched and alerted on, never acted on, until a human resumes it

        last_move = _last_money_movement(world.intents, name)
        if snap.ts < last_move:
            # the balance was read before the last transfer landed or left: acting on it could double a move
            alerts.append(
                Alert(
                    "stale",
                    "warning",
                    name,
                    None,
                    f"{name}: balance read before the last transfer settled; waiting for a fresh one",
                )
            )
            move(Trigger.DATA_STALE)
            continue

        extra_im = world.reserved_im.get(name, 0.0)
        if extra_im > 0.0:
            # a hedge waits for initial margin here: size the buffer as if it were placed, so treasury tops
            # the venue up first (the observed figures and alerts above stay the venue's own)
            im = f.im + extra_im
            f = Figures(f.equity, im, f.mm, im / f.equity if f.equity > 0 else float("inf"), f.mm_ratio)
        mine = open_by_venue.get(name, [])
        awaiting = False
        for i in mine:
            if i.status is IntentStatus.PENDING_APPROVAL or i.status is IntentStatus.PROPOSED:
                awaiting = True
            elif i.status is IntentStatus.UNKNOWN:
                alerts.append(
                    Alert(
                        "unknown_intent",
                        "critical",
                        name,
                        i.asset,
                        f"{name}: transfer {i.id} on {i.route} has an unknown outcome; route blocked",
                    )
                )
        incoming = _incoming_usd(mine, snap.prices, snap.haircuts) if mine else 0.0
        equity_eff = f.equity + incoming
        buffer_eff = 1.0 - f.im / equity_eff if equity_eff > 0 else float("-inf")
        planned_here: list[Planned] = []

        if awaiting and buffer_eff >= band.min:
            # the buffer recovered (or automatic moves restored it): pending requests are no longer needed
            withdrawn.extend(i.id for i in mine if i.status is IntentStatus.PENDING_APPROVAL)
            awaiting = False
        if not world.moves_allowed:
            pass  # the startup gate: nothing moves until every open intent is reconciled
        elif buffer_eff < band.min:
            need = topup_usd(f, band.target, incoming)
            routes = _usable_routes(
                [r for r in policy.routes if r.venue == name and r.kind is TransferKind.TOPUP], world
            )
            remaining = {r.name: route_remaining(r, world.intents, world.now) for r in routes}
            available = {a: s.balances for a, s in world.accounts.items() if s is not None}
            legs, short = plan_topup(
                need,
                routes,
                prices=snap.prices,
                haircuts=snap.haircuts,
                remaining=remaining,
                available=available,
                rank=policy.bucket_rank,
            )
            why = (
                f"{name} buffer {_pct(buffer_eff)} < min {_pct(band.min)} ({world.regime.value}): "
                f"top up {need:,.0f} USD to reach {_pct(band.target)}"
            )
            reasons.append(why)
            unpriced = sorted({r.asset for r in routes if price_of(r.asset, snap.prices) is None})
            if unpriced:
                alerts.append(
                    Alert(
                        "unpriced",
                        "critical",
                        name,
                        unpriced[0],
                        f"{name}: no price read for {', '.join(unpriced)}: routes in it carry nothing",
                    )
                )
            if short > 0:
                alerts.append(
                    Alert(
                        "capacity",
                        "critical",
                        name,
                        None,
                        f"{name}: routes can deliver only {need - short:,.0f} of {need:,.0f} USD needed",
                    )
                )
            if auto_spent is None:
                auto_spent = _automatic_spent(world)
            auto_spent = _plan_legs(
                TransferKind.TOPUP,
                legs,
                f=f,
                incoming=incoming,
                snap=snap,
                why=why,
                remaining=remaining,
                auto_spent=auto_spent,
                policy=policy,
                out=planned_here,
            )
            waiting_since = min(
                (i.created_at for i in mine if i.status is IntentStatus.PENDING_APPROVAL),
                default=world.now
                if any(isinstance(p.verdict, NeedsApproval) for p in planned_here)
                else None,
            )
            if awaiting:
                # one request at a time waits for people; what may run automatically still goes
                planned_here = [p for p in planned_here if not isinstance(p.verdict, NeedsApproval)]
            bg = policy.approvals.break_glass_usd
            if (
                bg is not None
                and lvl is Level.CRITICAL
                and waiting_since is not None
                and not any(
                    i.break_glass and i.venue == name and i.created_at >= waiting_since for i in world.intents
                )
            ):
                glass = _break_glass(
                    need,
                    bg,
                    routes=routes,
                    snap=snap,
                    remaining=remaining,
                    available=available,
                    f=f,
                    why=why,
                    policy=policy,
                    already=planned_here,
                )
                if glass is not None:
                    auto_spent += glass.action.usd  # it counts toward the daily automatic budget
                    planned_here.append(glass)
                    alerts.append(
                        Alert(
                            "break_glass",
                            "critical",
                            name,
                            glass.action.asset,
                            f"{name}: at the de-risk level with its top-up awaiting approval: "
                            f"break-glass {glass.action.amount} {glass.action.asset} via "
                            f"{glass.action.route} sent now",
                        )
                    )
        elif f.buffer > band.max and not mine:
            if auto_spent is None:
                auto_spent = _automatic_spent(world)
            # a sweep is never urgent: it returns only what may move automatically now, and the rest later
            budget = min(policy.approvals.auto_limit_usd, policy.approvals.daily_auto_limit_usd - auto_spent)
            excess = min(sweep_usd(f, band.target), max(0.0, float(budget)))
            # nor so far that the liquidation ratio would reach its alert level (portfolio margin: IM = MM × k)
            excess = min(excess, max(0.0, f.equity - f.mm / (vpol.alert_mm_ratio * SWEEP_MM_MARGIN)))
            excess = min(excess, max(0.0, f.equity - vpol.min_equity_usd))
            if excess < SWEEP_MIN_FRACTION * f.equity:
                excess = (
                    0.0  # held up by a limit above: sweeping PnL crumbs every cycle is churn, not treasury
                )
            routes = _usable_routes(
                [r for r in policy.routes if r.venue == name and r.kind is TransferKind.SWEEP], world
            )
            remaining = {r.name: route_remaining(r, world.intents, world.now) for r in routes}
            legs = plan_sweep(
                excess,
                routes,
                prices=snap.prices,
                haircuts=snap.haircuts,
                remaining=remaining,
                collateral=snap.collateral,
                rank=policy.bucket_rank,
            )
            why = (
                f"{name} buffer {_pct(f.buffer)} > max {_pct(band.max)} ({world.regime.value}): "
                f"sweep {excess:,.0f} USD back to treasury, down to {_pct(band.target)}"
            )
            if legs:
                reasons.append(why)
            auto_spent = _plan_legs(
                TransferKind.SWEEP,
                legs,
                f=f,
                incoming=0.0,
                snap=snap,
                why=why,
                remaining=remaining,
                auto_spent=auto_spent,
                policy=policy,
                out=planned_here,
            )
        topup_waits = topup_goes = False
        for p in planned_here:
            actions.append(p)
            v = p.verdict
            if isinstance(v, Allowed):
                topup_goes = topup_goes or p.action.kind is TransferKind.TOPUP
                continue
            waits = isinstance(v, NeedsApproval)
            topup_waits = topup_waits or (waits and p.action.kind is TransferKind.TOPUP)
            alerts.append(
                Alert(
                    "approval" if waits else "denied",
                    "warning" if waits else "critical",
                    name,
                    p.action.asset,
                    f"{p.action.kind.value} {p.action.amount} {p.action.asset} via {p.action.route}: {v.reason}",
                )
            )

        if lvl is Level.CRITICAL:
            move(Trigger.OBSERVED_CRITICAL)
        elif awaiting or topup_waits:
            move(Trigger.APPROVAL_PENDING)
        elif incoming > 0 or topup_goes:
            move(Trigger.TRANSFER_IN_FLIGHT)
        elif lvl is Level.ALERT:
            move(Trigger.OBSERVED_ALERT)
        else:
            move(Trigger.OBSERVED_OK)

    return Decision(
        tuple(actions), tuple(transitions), tuple(alerts), tuple(reasons), observed, tuple(withdrawn)
    )


def _break_glass(
    need: float,
    cap_usd: Decimal,
    *,
    routes: list[RouteSpec],
    snap: VenueSnapshot,
    remaining: Mapping[str, Decimal],
    available: Mapping[str, Mapping[str, Decimal]],
    f: Figures,
    why: str,
    policy: Policy,
    already: list[Planned],
) -> Planned | None:
    """One move of at most `cap_usd`, from outside the emergency bucket, sent before approval.

    Route limits and source balances are what is left after the automatic legs planned in this same cycle.
    """
    going = [p.action for p in already if isinstance(p.verdict, Allowed)]
    remaining = {
        k: v - sum((a.amount for a in going if a.route == k), Decimal(0)) for k, v in remaining.items()
    }
    available = {
        acct: {
            asset: q - sum((a.amount for a in going if a.source == acct and a.asset == asset), Decimal(0))
            for asset, q in bal.items()
        }
        for acct, bal in available.items()
    }
    candidates = [r for r in routes if r.bucket != "emergency"]
    capped = min(need, float(cap_usd))
    legs, _ = plan_topup(
        capped,
        candidates,
        prices=snap.prices,
        haircuts=snap.haircuts,
        remaining=remaining,
        available=available,
        rank=policy.bucket_rank,
    )
    if not legs:
        return None
    leg = legs[0]
    r = leg.route
    price = to_decimal(price_of(r.asset, snap.prices) or 0.0)  # a leg exists only for a priced asset
    amount = min(leg.amount, round_down(cap_usd / price, r.step))  # never above the break-glass amount
    if amount < r.min_amount or amount <= r.fee:
        return None
    usd = (amount * price).quantize(Decimal("0.01"))
    delivered = float(amount - r.fee) * unit_value(r.asset, snap.prices, snap.haircuts)
    u_after = f.im / (f.equity + delivered) if f.equity + delivered > 0 else float("inf")
    action = TransferAction(
        kind=TransferKind.TOPUP,
        venue=snap.venue,
        route=r.name,
        source=r.source,
        destination=r.destination,
        asset=r.asset,
        amount=amount,
        usd=usd,
        address=r.address,
        trigger=f"{BREAK_GLASS}:{snap.venue}@{snap.ts!r}",
        leg=0,
        reason=f"{BREAK_GLASS}: {why}",
        utilization_before=f.utilization,
        utilization_after=u_after,
    )
    return Planned(action, Allowed(f"{BREAK_GLASS}: at the de-risk level while the top-up awaits approval"))


def _plan_legs(
    kind: TransferKind,
    legs: list[Leg],
    *,
    f: Figures,
    incoming: float,
    snap: VenueSnapshot,
    why: str,
    remaining: Mapping[str, Decimal],
    auto_spent: Decimal,
    policy: Policy,
    out: list[Planned],
) -> Decimal:
    """Turn route legs into actions with their approval verdicts; return the updated automatic spend."""
    venue, observed_at, prices = snap.venue, snap.ts, snap.prices
    equity_after = f.equity + incoming
    for n, leg in enumerate(legs):
        r = leg.route
        equity_after += leg.delivered_usd if kind is TransferKind.TOPUP else -leg.delivered_usd
        u_after = f.im / equity_after if equity_after > 0 else float("inf")
        usd = (leg.amount * to_decimal(price_of(r.asset, prices) or 0.0)).quantize(Decimal("0.01"))
        action = TransferAction(
            kind=kind,
            venue=venue,
            route=r.name,
            source=r.source,
            destination=r.destination,
            asset=r.asset,
            amount=leg.amount,
            usd=usd,
            address=r.address,
            trigger=f"{venue}@{observed_at!r}",
            leg=n,
            reason=why,
            utilization_before=f.utilization,
            utilization_after=u_after,
        )
        verdict = evaluate(
            policy.approvals,
            route=r.name,
            bucket=r.bucket if kind is TransferKind.TOPUP else "venue",
            usd=usd,
            amount=leg.amount,
            max_amount=r.max_amount,
            route_remaining=remaining.get(r.name, ZERO),
            auto_spent_24h=auto_spent,
        )
        if isinstance(verdict, Allowed):
            auto_spent += usd
        out.append(Planned(action, verdict))
    return auto_spent
