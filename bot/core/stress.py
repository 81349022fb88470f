"""Stress coverage: under each scenario, what every venue needs and whether treasury can deliver it in time.

For one scenario of a `Projection` and each venue:
    need       the venue's assessment (`bot/core/assess.py`, the rule `decide` sizes top-ups by): the buffer
               below the regime band's `min` → what brings it back to `target`, counting top-ups already in
               flight (a frozen destination holds them); when the shocked liquidation ratio m ≥ 1, at least
               what brings m under 1
    routes     the configured top-up routes into the venue, in `policy.bucket_rank` order, cheapest first,
               minus those whose source or destination the scenario freezes and those the bot would not use
               now (an unknown outcome, a recent failure, an exclusive route with a move open)
    in time    a venue at or above its `derisk_mm_ratio` counts only routes that settle within
               `policy.derisk_wait_seconds` (slower money arrives after the bot has had to de-risk)
    capacity   `plan_topup` within each route's `max_amount`, its rolling `daily_limit` remaining and the
               source account's balance; venues of one scenario draw in order of need (worst liquidation
               ratio first), sharing account balances and route budgets
    covered    the routes deliver the whole need (no need: covered)
    liquidates the shocked m ≥ 1 and m is still ≥ 1 with the top-ups that land in time added to equity

Approvals are assumed granted: coverage is about money and limits, not quorum latency.
Pure and deterministic: the same inputs give the same report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot.core.actions import OPEN_STATUSES, TransferKind
from bot.core.assess import Assessment, assess_figures, landing_usd
from bot.core.margin import Figures
from bot.core.numbers import round_up, to_decimal
from bot.core.policy import Regime, VenuePolicy
from bot.core.routing import Leg, blocked_routes, plan_topup, route_remaining
from bot.core.stress_grid import Projection, StressScenario, shocked
from bot.core.world import AccountSnapshot, IntentView, Policy, RouteSpec, VenueSnapshot

ZERO = Decimal(0)
USD_STEP = Decimal(1)  # needs and shortfalls are reported in whole USD, rounded up
SHORT_TOLERANCE_USD = 0.01  # float dust left after legs rounded up to their step is not a shortfall
NOW_SCENARIO = StressScenario("now", (), origin="current")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One leg a scenario's top-up would take."""

    route: str
    asset: str
    amount: Decimal  # sent from the source, fee included
    delivered_usd: float
    settle_seconds: float


@dataclass(frozen=True, slots=True)
class VenueStress:
    """One venue under one scenario."""

    venue: str
    equity: float
    utilization: float
    mm_ratio: float
    topup_usd: Decimal  # what the venue needs (0 when its buffer stays inside the band)
    delivered_usd: Decimal  # what the routes can deliver of it
    shortfall_usd: Decimal
    mm_ratio_after: float  # m with in-flight top-ups and the deliveries added to equity
    covered: bool
    liquidates: bool
    frozen: bool
    in_time_only: bool  # at the de-risk level: only routes settling within the de-risk wait counted
    deliveries: tuple[Delivery, ...]
    reason: str

    @property
    def failed(self) -> bool:
        return self.liquidates or not self.covered


@dataclass(frozen=True, slots=True)
class ScenarioStress:
    """One scenario across every venue (venues in the projection's order)."""

    scenario: StressScenario
    venues: tuple[VenueStress, ...]
    topup_usd: Decimal
    shortfall_usd: Decimal
    covered: bool
    liquidates: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def failed(self) -> bool:
        return bool(self.liquidates) or not self.covered

    @property
    def worst_utilization(self) -> VenueStress:
        return max(self.venues, key=lambda v: (_key(v.utilization), v.venue))

    @property
    def worst_mm_ratio(self) -> VenueStress:
        return max(self.venues, key=lambda v: (_key(v.mm_ratio), v.venue))


@dataclass(frozen=True, slots=True)
class StressReport:
    regime: Regime
    now: float
    current: ScenarioStress  # the unshocked figures, assessed the same way
    scenarios: tuple[ScenarioStress, ...]  # in grid order

    @property
    def ok(self) -> bool:
        """Every scenario is covered and none liquidates a venue."""
        return not any(s.failed for s in self.scenarios)

    def ranked(self) -> list[ScenarioStress]:
        """Failures first (liquidations, then the largest shortfalls), then by top-up needed; ties in grid
        order."""
        ranked = sorted(
            enumerate(self.scenarios),
            key=lambda p: (
                0 if p[1].liquidates else 1 if not p[1].covered else 2,
                -p[1].shortfall_usd,
                -p[1].topup_usd,
                p[0],
            ),
        )
        return [s for _, s in ranked]


def _key(x: float) -> float:
    return math.inf if math.isnan(x) else x


def _usd(x: float) -> Decimal:
    return round_up(to_decimal(max(0.0, x)), USD_STEP) if math.isfinite(x) else Decimal("1e15")


def _ratio(num: float, equity: float) -> float:
    if equity > 0.0:
        return num / equity
    return math.inf if num else 0.0


def _pct(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x * 100:.1f}%"


@dataclass(frozen=True, slots=True)
class _Need:
    a: Assessment  # the venue under the scenario, assessed as `decide` would (top-ups in flight counted)
    vpol: VenuePolicy
    need: float  # the assessment's top-up, or more where m ≥ 1
    landing: float  # in-flight top-ups that land within the de-risk wait
    prices: Mapping[str, float]
    haircuts: Mapping[str, float]

    @property
    def venue(self) -> str:
        return self.a.venue

    @property
    def f(self) -> Figures:
        return self.a.figures


def _open_by_venue(intents: tuple[IntentView, ...]) -> dict[str, list[IntentView]]:
    out: dict[str, list[IntentView]] = {}
    for i in intents:
        if i.status in OPEN_STATUSES:
            out.setdefault(i.venue, []).append(i)
    return out


def _need(
    v: str,
    f: Figures,
    policy: Policy,
    regime: Regime,
    *,
    scenario: StressScenario,
    snapshots: Mapping[str, VenueSnapshot] | None,
    mine: Sequence[IntentView],
    routes: Mapping[str, RouteSpec],
    horizon: float,
) -> _Need:
    """The venue's top-up need under the scenario: the assessment's, and when the shocked m ≥ 1 at least
    what brings m under 1 with what lands in time."""
    vpol = policy.venues[v]
    if snapshots is not None and v in snapshots:
        snap, _ = shocked(snapshots[v], scenario)
        prices, haircuts = snap.prices, snap.haircuts
    else:
        prices, haircuts = {}, {}
    a = assess_figures(v, f, vpol, vpol.band(regime), open_intents=mine, prices=prices, haircuts=haircuts)
    landing = landing_usd(mine, routes, horizon, prices, haircuts) if mine else 0.0
    need = a.topup_usd
    if f.mm_ratio >= 1.0:
        need = max(need, f.mm - (f.equity + landing) + 1.0)
    return _Need(a, vpol, need, landing, prices, haircuts)


def assess_scenario(
    scenario: StressScenario,
    figs: Mapping[str, Figures],
    policy: Policy,
    accounts: Mapping[str, AccountSnapshot],
    regime: Regime,
    *,
    intents: tuple[IntentView, ...] = (),
    now: float,
    snapshots: Mapping[str, VenueSnapshot] | None = None,
    blocked: Mapping[str, str] | None = None,
) -> ScenarioStress:
    """One scenario: each venue's need, what the routes can deliver of it, and what liquidates."""
    frozen = scenario.frozen
    by_name = {r.name: r for r in policy.routes}
    if blocked is None:
        blocked = blocked_routes(policy.routes, intents, now)
    horizon = now + policy.derisk_wait_seconds
    open_by_venue = _open_by_venue(intents)
    needs = [
        _need(
            v,
            figs[v],
            policy,
            regime,
            scenario=scenario,
            snapshots=snapshots,
            mine=() if v in frozen else open_by_venue.get(v, ()),  # a frozen destination holds them
            routes=by_name,
            horizon=horizon,
        )
        for v in sorted(figs)
    ]
    remaining = {r.name: route_remaining(r, intents, now) for r in policy.routes}
    available: dict[str, dict[str, Decimal]] = {a: dict(s.balances) for a, s in sorted(accounts.items())}
    out: dict[str, VenueStress] = {}
    # worst liquidation ratio first, then the largest need, then by name
    for n in sorted(needs, key=lambda n: (-_key(n.f.mm_ratio), -n.need, n.venue)):
        out[n.venue] = _venue(
            n, policy, frozen=frozen, blocked=blocked, remaining=remaining, available=available
        )
    venues = tuple(out[v] for v in sorted(out))
    return ScenarioStress(
        scenario=scenario,
        venues=venues,
        topup_usd=sum((v.topup_usd for v in venues), ZERO),
        shortfall_usd=sum((v.shortfall_usd for v in venues), ZERO),
        covered=all(v.covered for v in venues),
        liquidates=tuple(v.venue for v in venues if v.liquidates),
    )


def _draw(
    n: _Need,
    policy: Policy,
    *,
    frozen: frozenset[str],
    blocked: Mapping[str, str],
    remaining: dict[str, Decimal],
    available: dict[str, dict[str, Decimal]],
    in_time_only: bool,
) -> tuple[list[Leg], float, list[str], list[str]]:
    """The need planned over the usable routes into the venue, drawing down the route budgets and account
    balances it shares with the scenario's other venues: legs, shortfall, notes, and each route's cap."""
    into = [r for r in policy.routes if r.kind is TransferKind.TOPUP and r.venue == n.venue]
    usable = [
        r
        for r in into
        if r.bucket in policy.bucket_rank
        and r.source not in frozen
        and r.destination not in frozen
        and r.name not in blocked
        and (not in_time_only or r.settle_seconds <= policy.derisk_wait_seconds)
    ]
    notes: list[str] = []
    if not into:
        notes.append("no top-up route into it")
    elif not usable:
        notes.append(_why_none(into, policy, frozen, blocked, in_time_only))
    caps = _caps(usable, remaining, available)
    legs, short = plan_topup(
        n.need,
        usable,
        prices=n.prices,
        haircuts=n.haircuts,
        remaining=remaining,
        available=available,
        rank=policy.bucket_rank,
    )
    for leg in legs:
        r = leg.route
        remaining[r.name] = remaining.get(r.name, ZERO) - leg.amount
        bal = available.setdefault(r.source, {})
        bal[r.asset] = bal.get(r.asset, ZERO) - leg.amount
    return legs, short, notes, caps


def _venue(
    n: _Need,
    policy: Policy,
    *,
    frozen: frozenset[str],
    blocked: Mapping[str, str],
    remaining: dict[str, Decimal],
    available: dict[str, dict[str, Decimal]],
) -> VenueStress:
    f, vpol, v = n.f, n.vpol, n.venue
    in_time_only = f.mm_ratio >= vpol.derisk_mm_ratio
    is_frozen = v in frozen
    legs: list[Leg] = []
    short = n.need
    notes: list[str] = []
    caps: list[str] = []
    if n.need > 0 and not is_frozen:
        legs, short, notes, caps = _draw(
            n,
            policy,
            frozen=frozen,
            blocked=blocked,
            remaining=remaining,
            available=available,
            in_time_only=in_time_only,
        )
    delivered = sum(leg.delivered_usd for leg in legs)
    # at the de-risk level only what lands in time counts (and only in-time routes were used)
    m_after = _ratio(f.mm, f.equity + (n.landing if in_time_only else n.a.incoming_usd) + delivered)
    liquidates = f.mm_ratio >= 1.0 and m_after >= 1.0
    topup = _usd(n.need)
    if short < SHORT_TOLERANCE_USD:
        short = 0.0
    elif legs:
        notes.extend(caps)
    shortfall = _usd(short) if short > 0 else ZERO
    covered = n.need <= 0 or (not is_frozen and short <= 0)
    deliveries = tuple(
        Delivery(leg.route.name, leg.route.asset, leg.amount, leg.delivered_usd, leg.route.settle_seconds)
        for leg in legs
    )
    reason = _reason(
        n,
        policy,
        covered=covered,
        liquidates=liquidates,
        is_frozen=is_frozen,
        in_time_only=in_time_only,
        deliveries=deliveries,
        shortfall=shortfall,
        m_after=m_after,
        notes=notes,
    )
    return VenueStress(
        venue=v,
        equity=f.equity,
        utilization=f.utilization,
        mm_ratio=f.mm_ratio,
        topup_usd=topup,
        delivered_usd=_usd(delivered) if delivered > 0 else ZERO,
        shortfall_usd=shortfall,
        mm_ratio_after=m_after,
        covered=covered,
        liquidates=liquidates,
        frozen=is_frozen,
        in_time_only=in_time_only,
        deliveries=deliveries,
        reason=reason,
    )


def _caps(
    routes: list[RouteSpec], remaining: Mapping[str, Decimal], available: Mapping[str, Mapping[str, Decimal]]
) -> list[str]:
    """What bounds each route before this venue draws on it: the tightest of its three limits."""
    out = []
    for r in sorted(routes, key=lambda r: r.name):
        bounds = [
            (r.max_amount, "max_amount per transfer"),
            (remaining.get(r.name, ZERO), "left of its daily_limit"),
            (available.get(r.source, {}).get(r.asset, ZERO), f"{r.source} balance"),
        ]
        amount, what = min(bounds, key=lambda b: b[0])
        out.append(f"{r.name} ≤ {max(amount, ZERO):,.0f} {r.asset} ({what})")
    return out


def _why_none(
    into: list[RouteSpec],
    policy: Policy,
    frozen: frozenset[str],
    blocked: Mapping[str, str],
    in_time_only: bool,
) -> str:
    parts = []
    for r in sorted(into, key=lambda r: r.name):
        if r.source in frozen:
            parts.append(f"{r.name}: {r.source} frozen")
        elif r.name in blocked:
            parts.append(f"{r.name}: {blocked[r.name]}")
        elif r.bucket not in policy.bucket_rank:
            parts.append(f"{r.name}: bucket {r.bucket} not drawn on")
        elif in_time_only and r.settle_seconds > policy.derisk_wait_seconds:
            parts.append(f"{r.name}: settles in {r.settle_seconds:g}s")
    return "no usable route (" + "; ".join(parts) + ")"


def _reason(
    n: _Need,
    policy: Policy,
    *,
    covered: bool,
    liquidates: bool,
    is_frozen: bool,
    in_time_only: bool,
    deliveries: tuple[Delivery, ...],
    shortfall: Decimal,
    m_after: float,
    notes: list[str],
) -> str:
    f = n.f
    if n.need <= 0:
        incoming = n.a.incoming_usd
        flying = f", counting {incoming:,.0f} USD in flight" if incoming > 0 else ""
        return f"buffer {_pct(n.a.buffer)} not below min {_pct(n.a.band.min)}{flying}: no top-up needed"
    need = f"{_usd(n.need):,}"
    parts: list[str] = []
    if is_frozen:
        parts.append(f"frozen: none of the {need} USD needed can reach it")
    elif covered:
        via = ", ".join(d.route for d in deliveries)
        parts.append(f"{need} USD via {via}")
    else:
        parts.append(f"short {shortfall:,} of {need} USD")
        parts.extend(notes)
        if not notes:
            parts.append("route limits or source balances too small")
    if in_time_only and not is_frozen:
        parts.append(
            f"m {_pct(f.mm_ratio)} ≥ de-risk {_pct(n.vpol.derisk_mm_ratio)}: only routes settling within "
            f"{policy.derisk_wait_seconds:g}s count"
        )
    if liquidates:
        parts.append(f"LIQUIDATES: m {_pct(m_after)} with what lands in time")
    elif f.mm_ratio >= 1.0:
        parts.append(f"rescued: m {_pct(f.mm_ratio)} → {_pct(m_after)}")
    return "; ".join(parts)


def assess(
    projection: Projection,
    policy: Policy,
    accounts: Mapping[str, AccountSnapshot],
    regime: Regime,
    *,
    intents: tuple[IntentView, ...] = (),
    now: float,
    snapshots: Mapping[str, VenueSnapshot] | None = None,
) -> StressReport:
    """Every scenario of the projection, and the current (unshocked) figures, assessed for coverage.

    `snapshots` (the unshocked ones the projection was made from) price route assets under each scenario;
    without them a route's asset counts at 1 USD with no haircut (stablecoin routes).
    """
    blocked = blocked_routes(policy.routes, intents, now)
    venues = projection.venues

    def one(sc: StressScenario, row: tuple[Figures, ...]) -> ScenarioStress:
        return assess_scenario(
            sc,
            dict(zip(venues, row, strict=True)),
            policy,
            accounts,
            regime,
            intents=intents,
            now=now,
            snapshots=snapshots,
            blocked=blocked,
        )

    scenarios = tuple(one(sc, row) for sc, row in zip(projection.scenarios, projection.figures, strict=True))
    current = one(NOW_SCENARIO, projection.base)
    return StressReport(regime, now, current, scenarios)
