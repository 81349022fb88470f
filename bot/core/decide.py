"""decide(world, policy) -> Decision: the whole treasury policy as a pure function of data.

Per venue, every cycle, each step a small function below:
  halted                      -> watched and alerted on, nothing moves               (_halt_or_resume)
  no answer / data too old    -> `stale`, alert, no action                           (_stale)
  the venue's assessment (`bot/core/assess.py`): figures, level, band, buffer, top-up need, sweepable
  excess, de-risk need — computed once, read here, by `stress` and by de-risking
  u ≥ alert_utilization or m ≥ alert_mm_ratio     -> warning; m ≥ derisk_mm_ratio -> critical (_level_alerts)
  balance read before the last transfer settled   -> `stale`, no action              (_stale_balance)
  buffer (counting in-flight top-ups) < band.min -> top-up to band.target along the routes (_plan_topup),
                                                     break-glass while approval waits (_break_glass)
  buffer > band.max, nothing in flight            -> sweep the excess above band.target (_plan_sweep)
Each planned move carries the approval policy's verdict (_plan_legs, _verdict_alerts); one trigger moves
the venue's state (_trigger).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from bot.core.actions import OPEN_STATUSES, SPENT_STATUSES, IntentStatus, TransferAction, TransferKind
from bot.core.approvals import BREAK_GLASS, Allowed, NeedsApproval, Verdict, evaluate
from bot.core.assess import SWEEP_MIN_FRACTION, Assessment, assess_venue, count_planned
from bot.core.assets import price_of, unit_value
from bot.core.fsm import Trigger, VenueState, transition
from bot.core.margin import Figures
from bot.core.numbers import round_down, to_decimal
from bot.core.policy import Level, VenuePolicy
from bot.core.routing import Leg, blocked_routes, plan_sweep, plan_topup, route_remaining
from bot.core.world import DAY_SECONDS, IntentView, Policy, RouteSpec, VenueSnapshot, World

ZERO = Decimal(0)
_NOTHING_OPEN: tuple[IntentView, ...] = ()
_LEFT_VENUE = frozenset({IntentStatus.SUBMITTED, IntentStatus.UNKNOWN, IntentStatus.CONFIRMED})
_TOPUP = TransferKind.TOPUP
_SWEEP = TransferKind.SWEEP
# enum members bound once: reading `Level.OK` goes through the enum's class machinery (≈ 0.1 µs each on
# Python 3.11), and these are read for every venue every cycle
_OK, _ALERT, _CRITICAL = Level.OK, Level.ALERT, Level.CRITICAL
_STALE, _HALTED = VenueState.STALE, VenueState.HALTED
_T_OK, _T_ALERT, _T_CRITICAL = Trigger.OBSERVED_OK, Trigger.OBSERVED_ALERT, Trigger.OBSERVED_CRITICAL
_T_IN_FLIGHT, _T_APPROVAL = Trigger.TRANSFER_IN_FLIGHT, Trigger.APPROVAL_PENDING
_OBSERVED = {_OK: _T_OK, _ALERT: _T_ALERT, _CRITICAL: _T_CRITICAL}  # the trigger when nothing is open
_PENDING, _PROPOSED, _UNKNOWN = IntentStatus.PENDING_APPROVAL, IntentStatus.PROPOSED, IntentStatus.UNKNOWN


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
    assessments: Mapping[str, Assessment] = field(default_factory=dict)  # every venue with fresh data

    @property
    def derisk_venues(self) -> tuple[str, ...]:
        """Venues at their de-risk level that the top-ups landing in time do not bring back under it."""
        return tuple(v for v, a in self.assessments.items() if a.derisk)


def _pct(x: float) -> str:
    return "∞" if x == float("inf") else f"{x * 100:.1f}%"


class _Cycle:
    """What one `decide` call reads (the world, the policy, indexes built once) and accumulates."""

    __slots__ = (
        "actions",
        "alerts",
        "assessments",
        "auto_spent",
        "horizon",
        "last_move",
        "observed",
        "open_by_venue",
        "policy",
        "reasons",
        "transitions",
        "withdrawn",
        "world",
    )

    def __init__(self, world: World, policy: Policy) -> None:
        self.world = world
        self.policy = policy
        self.actions: list[Planned] = []
        self.transitions: list[Transition] = []
        self.alerts: list[Alert] = []
        self.reasons: list[str] = []
        self.withdrawn: list[str] = []
        self.observed: dict[str, Figures | None] = {}
        self.assessments: dict[str, Assessment] = {}
        self.auto_spent: Decimal | None = None  # computed when first needed: most cycles move nothing
        self.horizon = world.now + policy.derisk_wait_seconds
        self.open_by_venue, self.last_move = index_intents(world.intents)

    def spent(self) -> Decimal:
        """Automatic moves in the rolling 24 h, this cycle's included."""
        if self.auto_spent is None:
            self.auto_spent = _automatic_spent(self.world)
        return self.auto_spent

    def move(self, venue: str, before: VenueState, trigger: Trigger) -> VenueState:
        after = transition(before, trigger)
        if after is not before:
            self.transitions.append(Transition(venue, before, trigger, after))
        return after

    def alert(self, kind: str, severity: str, venue: str, asset: str | None, message: str) -> None:
        self.alerts.append(Alert(kind, severity, venue, asset, message))

    def decision(self) -> Decision:
        return Decision(
            tuple(self.actions),
            tuple(self.transitions),
            tuple(self.alerts),
            tuple(self.reasons),
            self.observed,
            tuple(self.withdrawn),
            self.assessments,
        )


def index_intents(
    intents: tuple[IntentView, ...],
) -> tuple[dict[str, list[IntentView]], dict[str, float]]:
    """Open intents per venue (in order), and when collateral last arrived at (a settled top-up) or left
    (a sweep sent from) each venue."""
    open_by_venue: dict[str, list[IntentView]] = {}
    last_move: dict[str, float] = {}
    for i in intents:
        if i.status in OPEN_STATUSES:
            open_by_venue.setdefault(i.venue, []).append(i)
        if i.kind is _TOPUP and i.settled_at is not None:
            at = i.settled_at
        elif i.kind is _SWEEP and i.status in _LEFT_VENUE:
            at = i.created_at
        else:
            continue
        if at > last_move.get(i.venue, -math.inf):
            last_move[i.venue] = at
    return open_by_venue, last_move


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
    c = _Cycle(world, policy)
    for name, vpol in policy.venues.items():
        _decide_venue(c, name, vpol)
    return c.decision()


def _decide_venue(c: _Cycle, name: str, vpol: VenuePolicy) -> None:
    world = c.world
    halted = world.halted or name in world.halted_venues
    state = world.states.get(name, _STALE)
    if halted is not (state is _HALTED):
        state = _halt_or_resume(c, name, state, halted)
    snap = world.snapshots.get(name)
    if snap is None or world.now - snap.ts > c.policy.max_data_age_seconds:
        _stale(c, name, snap, state, halted)
        return
    mine = c.open_by_venue.get(name, _NOTHING_OPEN)
    a = assess_venue(
        snap,
        vpol,
        world.regime,
        mine,
        reserved_im=world.reserved_im.get(name, 0.0),
        routes=c.policy.routes,
        horizon=c.horizon,
    )
    c.observed[name] = a.figures
    c.assessments[name] = a
    if snap.own is not None and snap.reported is not None:
        _crosscheck(c, name, a.figures, snap.own, vpol)
    if a.level is not _OK:
        _level_alerts(c, name, a, vpol)
    if halted:
        return  # watched and alerted on, never acted on, until a human resumes it
    if snap.ts < c.last_move.get(name, -math.inf):
        _stale_balance(c, name, state)
        return
    if not mine and a.sweep_usd == 0.0 and a.buffer >= a.band.min:
        c.move(name, state, _OBSERVED[a.level])  # a quiet venue: nothing open, nothing to move
        return
    planned, awaiting = _plan_moves(c, name, snap, a, mine)
    topup_waits, topup_goes = _verdict_alerts(c, name, planned) if planned else (False, False)
    c.move(name, state, _trigger(a, awaiting=awaiting, topup_waits=topup_waits, topup_goes=topup_goes))
    if planned and a.level is _CRITICAL:
        going = [p.action for p in planned if isinstance(p.verdict, Allowed)]
        c.assessments[name] = count_planned(
            a, snap, vpol, going, routes=c.policy.routes, now=world.now, horizon=c.horizon
        )


def _halt_or_resume(c: _Cycle, name: str, state: VenueState, halted: bool) -> VenueState:
    """The kill switch or a venue halt moves the venue to `halted`; lifting it, to `stale`."""
    if halted and state is not _HALTED:
        return c.move(name, state, Trigger.HALT)
    if not halted and state is _HALTED:
        return c.move(name, state, Trigger.RESUME)
    return state


def _stale(c: _Cycle, name: str, snap: VenueSnapshot | None, state: VenueState, halted: bool) -> None:
    """No answer, or data older than max_data_age_seconds: an alert and no decision."""
    c.observed[name] = None
    age = "no answer" if snap is None else f"data {c.world.now - snap.ts:.0f}s old"
    c.alert("stale", "warning", name, None, f"{name}: {age}; no decision on stale data")
    if not halted:
        c.move(name, state, Trigger.DATA_STALE)


def _stale_balance(c: _Cycle, name: str, state: VenueState) -> None:
    """The balance was read before the last transfer landed or left: acting on it could double a move."""
    c.alert(
        "stale",
        "warning",
        name,
        None,
        f"{name}: balance read before the last transfer settled; waiting for a fresh one",
    )
    c.move(name, state, Trigger.DATA_STALE)


def _crosscheck(c: _Cycle, name: str, f: Figures, own: Figures, vpol: VenuePolicy) -> None:
    """The venue's figures against ours: a warning beyond the tolerance (the bot acts on the venue's)."""
    gap = crosscheck_gap(f, own)
    if gap > vpol.crosscheck_tolerance:
        c.alert(
            "crosscheck",
            "warning",
            name,
            None,
            f"{name}: the venue's figures (u {_pct(f.utilization)}, m {_pct(f.mm_ratio)}) differ from "
            f"ours (u {_pct(own.utilization)}, m {_pct(own.mm_ratio)}) by "
            f"{_pct(gap)} > {_pct(vpol.crosscheck_tolerance)}; acting on the venue's",
        )


def _level_alerts(c: _Cycle, name: str, a: Assessment, vpol: VenuePolicy) -> None:
    """Critical at the de-risk level; else a warning per alert level reached."""
    f = a.figures
    if a.level is _CRITICAL:
        c.alert(
            "derisk",
            "critical",
            name,
            None,
            f"{name}: liquidation ratio {_pct(f.mm_ratio)} ≥ de-risk level {_pct(vpol.derisk_mm_ratio)}",
        )
        return
    if f.utilization >= vpol.alert_utilization:
        c.alert(
            "utilization",
            "warning",
            name,
            None,
            f"{name}: utilization {_pct(f.utilization)} ≥ alert {_pct(vpol.alert_utilization)}",
        )
    if f.mm_ratio >= vpol.alert_mm_ratio:
        c.alert(
            "mm_ratio",
            "warning",
            name,
            None,
            f"{name}: liquidation ratio {_pct(f.mm_ratio)} ≥ alert {_pct(vpol.alert_mm_ratio)}",
        )


def _open_intents(c: _Cycle, name: str, mine: Sequence[IntentView]) -> bool:
    """Page on each intent of unknown outcome; whether a request waits for people."""
    awaiting = False
    for i in mine:
        if i.status is _PENDING or i.status is _PROPOSED:
            awaiting = True
        elif i.status is _UNKNOWN:
            c.alert(
                "unknown_intent",
                "critical",
                name,
                i.asset,
                f"{name}: transfer {i.id} on {i.route} has an unknown outcome; route blocked",
            )
    return awaiting


def _plan_moves(
    c: _Cycle, name: str, snap: VenueSnapshot, a: Assessment, mine: Sequence[IntentView]
) -> tuple[list[Planned], bool]:
    """This venue's moves (a top-up or a sweep) and whether a request still waits for people."""
    awaiting = _open_intents(c, name, mine) if mine else False
    if awaiting and a.buffer >= a.band.min:
        # the buffer recovered (or automatic moves restored it): pending requests are no longer needed
        c.withdrawn.extend(i.id for i in mine if i.status is _PENDING)
        awaiting = False
    if not c.world.moves_allowed:
        return [], awaiting  # the startup gate: nothing moves until every open intent is reconciled
    if a.below_min:
        return _plan_topup(c, name, snap, a, mine=mine, awaiting=awaiting), awaiting
    if a.sweep_usd > 0.0:
        return _plan_sweep(c, name, snap, a), awaiting
    return [], awaiting


def _plan_topup(
    c: _Cycle, name: str, snap: VenueSnapshot, a: Assessment, *, mine: Sequence[IntentView], awaiting: bool
) -> list[Planned]:
    """Legs that bring the buffer back to target, with their verdicts; break-glass where it applies."""
    world, policy, need, band = c.world, c.policy, a.topup_usd, a.band
    routes = _usable_routes([r for r in policy.routes if r.venue == name and r.kind is _TOPUP], world)
    remaining = {r.name: route_remaining(r, world.intents, world.now) for r in routes}
    available = {acct: s.balances for acct, s in world.accounts.items() if s is not None}
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
        f"{name} buffer {_pct(a.buffer)} < min {_pct(band.min)} ({world.regime.value}): "
        f"top up {need:,.0f} USD to reach {_pct(band.target)}"
    )
    c.reasons.append(why)
    _route_alerts(c, name, snap, routes=routes, need=need, short=short)
    planned: list[Planned] = []
    c.auto_spent = _plan_legs(
        _TOPUP,
        legs,
        f=a.sizing,
        incoming=a.incoming_usd,
        snap=snap,
        why=why,
        remaining=remaining,
        auto_spent=c.spent(),
        policy=policy,
        out=planned,
    )
    waiting_since = min(
        (i.created_at for i in mine if i.status is _PENDING),
        default=world.now if any(isinstance(p.verdict, NeedsApproval) for p in planned) else None,
    )
    if awaiting:
        # one request at a time waits for people; what may run automatically still goes
        planned = [p for p in planned if not isinstance(p.verdict, NeedsApproval)]
    if a.level is _CRITICAL and waiting_since is not None:
        _glass(
            c,
            name,
            snap,
            a,
            waiting_since=waiting_since,
            routes=routes,
            remaining=remaining,
            available=available,
            why=why,
            planned=planned,
        )
    return planned


def _route_alerts(
    c: _Cycle, name: str, snap: VenueSnapshot, *, routes: list[RouteSpec], need: float, short: float
) -> None:
    """Routes in an asset with no price carry nothing; a shortfall no route can carry is critical."""
    unpriced = sorted({r.asset for r in routes if price_of(r.asset, snap.prices) is None})
    if unpriced:
        c.alert(
            "unpriced",
            "critical",
            name,
            unpriced[0],
            f"{name}: no price read for {', '.join(unpriced)}: routes in it carry nothing",
        )
    if short > 0:
        c.alert(
            "capacity",
            "critical",
            name,
            None,
            f"{name}: routes can deliver only {need - short:,.0f} of {need:,.0f} USD needed",
        )


def _glass(
    c: _Cycle,
    name: str,
    snap: VenueSnapshot,
    a: Assessment,
    *,
    waiting_since: float,
    routes: list[RouteSpec],
    remaining: Mapping[str, Decimal],
    available: Mapping[str, Mapping[str, Decimal]],
    why: str,
    planned: list[Planned],
) -> None:
    """At the de-risk level with the top-up awaiting approval: one capped move now, once per request."""
    bg = c.policy.approvals.break_glass_usd
    if bg is None or any(
        i.break_glass and i.venue == name and i.created_at >= waiting_since for i in c.world.intents
    ):
        return
    glass = _break_glass(
        a.topup_usd,
        bg,
        routes=routes,
        snap=snap,
        remaining=remaining,
        available=available,
        f=a.sizing,
        why=why,
        policy=c.policy,
        already=planned,
    )
    if glass is None:
        return
    c.auto_spent = c.spent() + glass.action.usd  # it counts toward the daily automatic budget
    planned.append(glass)
    c.alert(
        "break_glass",
        "critical",
        name,
        glass.action.asset,
        f"{name}: at the de-risk level with its top-up awaiting approval: "
        f"break-glass {glass.action.amount} {glass.action.asset} via {glass.action.route} sent now",
    )


def _plan_sweep(c: _Cycle, name: str, snap: VenueSnapshot, a: Assessment) -> list[Planned]:
    """Return the sweepable excess to treasury, within what may move automatically now."""
    world, policy, f, band = c.world, c.policy, a.sizing, a.band
    # a sweep is never urgent: it returns only what may move automatically now, and the rest later
    budget = min(policy.approvals.auto_limit_usd, policy.approvals.daily_auto_limit_usd - c.spent())
    excess = min(a.sweep_usd, max(0.0, float(budget)))
    if excess < SWEEP_MIN_FRACTION * f.equity:
        excess = 0.0  # held up by the budget: sweeping PnL crumbs every cycle is churn, not treasury
    routes = _usable_routes([r for r in policy.routes if r.venue == name and r.kind is _SWEEP], world)
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
        c.reasons.append(why)
    planned: list[Planned] = []
    c.auto_spent = _plan_legs(
        _SWEEP,
        legs,
        f=f,
        incoming=0.0,
        snap=snap,
        why=why,
        remaining=remaining,
        auto_spent=c.spent(),
        policy=policy,
        out=planned,
    )
    return planned


def _verdict_alerts(c: _Cycle, name: str, planned: list[Planned]) -> tuple[bool, bool]:
    """Record the venue's moves; alert on each that waits or is denied. Whether a top-up waits, and
    whether one goes now."""
    topup_waits = topup_goes = False
    for p in planned:
        c.actions.append(p)
        v = p.verdict
        if isinstance(v, Allowed):
            topup_goes = topup_goes or p.action.kind is _TOPUP
            continue
        waits = isinstance(v, NeedsApproval)
        topup_waits = topup_waits or (waits and p.action.kind is _TOPUP)
        c.alert(
            "approval" if waits else "denied",
            "warning" if waits else "critical",
            name,
            p.action.asset,
            f"{p.action.kind.value} {p.action.amount} {p.action.asset} via {p.action.route}: {v.reason}",
        )
    return topup_waits, topup_goes


def _trigger(
    a: Assessment, *, awaiting: bool = False, topup_waits: bool = False, topup_goes: bool = False
) -> Trigger:
    """The one observation that moves the venue's state this cycle."""
    if a.level is _CRITICAL:
        return _T_CRITICAL
    if awaiting or topup_waits:
        return _T_APPROVAL
    if a.incoming_usd > 0 or topup_goes:
        return _T_IN_FLIGHT
    if a.level is _ALERT:
        return _T_ALERT
    return _T_OK


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
    return Planned(
        action,
        Allowed(f"{BREAK_GLASS}: at the de-risk level while the top-up awaits approval", break_glass=True),
    )


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
