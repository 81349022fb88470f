"""`marginbot stress`: gather the current world, project the shock grid, assess coverage, render the report.

Inputs, read once and never changed:
    paper venues and accounts  the paper world of the config (`PaperExchange`), carried on from the state a
                               `marginbot run` saved in the database when there is one
    live venues and accounts   one snapshot and one balance read each through the ccxt ports (no preflight);
                               the exchange clients are closed afterwards
    intents                    open and recent transfers from the database: in-flight top-ups, route budgets
                               already spent, routes the bot would not use now
The grid is `default_grid(underlyings, venues)` followed by `[[stress.scenarios]]` from the config.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from decimal import Decimal
from typing import Any

from bot.app import compile_policy, market_from_settings, open_store, require_prices
from bot.core.assets import STABLES
from bot.core.policy import Regime
from bot.core.stress import ScenarioStress, StressReport, VenueStress, assess
from bot.core.stress_grid import Shock, StressScenario, default_grid, project, underlyings
from bot.core.world import DAY_SECONDS, AccountSnapshot, IntentView, Policy, VenueSnapshot
from bot.errors import BadInput, StoreMissing
from bot.settings import Settings
from bot.venues import paper_state
from bot.venues.live.ports import LiveAccount, LiveVenue, LiveWorld
from bot.venues.paper import PaperExchange
from bot.venues.paper_state import PAPER_BLOB

RISK_ARRAY = "bot.core.risk_array"


@dataclass(frozen=True, slots=True)
class Inputs:
    """The current world as the stress sees it."""

    snapshots: dict[str, VenueSnapshot]
    accounts: dict[str, AccountSnapshot]
    intents: tuple[IntentView, ...]
    now: float
    source: str  # where the paper figures come from, for the header


@dataclass(frozen=True, slots=True)
class StressRun:
    report: StressReport
    inputs: Inputs
    policy: Policy
    comparison: dict[str, Any] | None
    notes: tuple[str, ...]


def parse_regime(value: str | None, s: Settings) -> Regime:
    """`--regime`, defaulting to the config's `bot.regime`."""
    if value is None:
        return Regime(s.bot.regime)
    try:
        return Regime(value)
    except ValueError:
        raise BadInput(f"--regime: expected normal or high_vol, got {value!r}") from None


def config_scenarios(s: Settings) -> tuple[StressScenario, ...]:
    """`[[stress.scenarios]]` as core scenarios (validated at load: every shock has the keys its type needs)."""
    return tuple(
        StressScenario(
            sc.name,
            tuple(Shock(x.type, x.asset, x.venue, x.pct, x.factor, x.value) for x in sc.shocks),
            origin="config",
        )
        for sc in s.stress.scenarios
    )


async def gather(
    s: Settings,
    *,
    saved_paper: str | None = None,
    intents: tuple[IntentView, ...] = (),
    clock: Callable[[], float] = time.time,
    live: LiveWorld | None = None,
) -> Inputs:
    """Read every venue and account once. `live` reuses exchange clients (tests point them at fakes)."""
    paper = PaperExchange(s, market_from_settings(s), clock)
    source = "paper world from the config"
    if saved_paper is not None:
        paper_state.restore(paper, json.loads(saved_paper))
        source = "paper world as the last `marginbot run` saved it"
    snapshots: dict[str, VenueSnapshot] = {}
    accounts: dict[str, AccountSnapshot] = {}
    live_venues = [v.name for v in s.venues if v.kind == "ccxt"]
    live_accounts = [a for a in s.accounts if a.kind == "ccxt"]
    for v in s.venues:
        if v.kind == "paper":
            snapshots[v.name] = paper.snapshot(v.name)
    for a in s.accounts:
        if a.kind == "paper":
            accounts[a.name] = paper.account_snapshot(a.name)
    if live_venues or live_accounts:
        world = live or LiveWorld(s, clock=clock)
        try:
            for name in live_venues:
                snapshots[name] = await LiveVenue(world, name).snapshot()
            for a in live_accounts:
                accounts[a.name] = await LiveAccount(world, a.name, a.bucket).balances()
        finally:
            if live is None:
                await world.close()
        paper_too = any(v.kind == "paper" for v in s.venues)
        source = f"{source}; live venues read now" if paper_too else "live venues read now"
    return Inputs(snapshots, accounts, intents, clock(), source)


def margin_comparison(snapshots: Mapping[str, VenueSnapshot]) -> tuple[dict[str, Any] | None, str | None]:
    """Cross versus portfolio margin per venue, from `bot.core.risk_array.compare` when it exists."""
    try:
        module = importlib.import_module(RISK_ARRAY)
    except ModuleNotFoundError as e:
        if e.name != RISK_ARRAY:
            raise
        return None, "margin comparison (cross vs portfolio): not available in this build"
    compare = getattr(module, "compare", None)
    if compare is None:
        return None, "margin comparison (cross vs portfolio): not available in this build"
    return {v: _plain(compare(snapshots[v])) for v in sorted(snapshots)}, None


def run(s: Settings, db: str | None, regime: str | None) -> StressRun:
    """Gather, project, assess; nothing is written and no money moves."""
    reg = parse_regime(regime, s)
    policy = compile_policy(s)
    intents: tuple[IntentView, ...] = ()
    saved = None
    try:  # a store that does not exist yet is a paper world as the config describes it: nothing to read
        store = open_store(s, db, purpose="read")
    except StoreMissing:
        pass
    else:
        try:
            intents = tuple(store.intents.load(time.time() - 2 * DAY_SECONDS))
            saved = store.flags.get(PAPER_BLOB)
        finally:
            store.engine.dispose()
    stored = set(json.loads(saved).get("prices", {})) if saved is not None else set()
    require_prices(s, set(s.market.prices) | STABLES | stored, "`stress`")
    inputs = asyncio.run(gather(s, saved_paper=saved, intents=intents))
    snaps = inputs.snapshots
    grid = default_grid(underlyings(snaps), sorted(snaps)) + config_scenarios(s)
    projection = project(snaps, grid)
    report = assess(
        projection, policy, inputs.accounts, reg, intents=inputs.intents, now=inputs.now, snapshots=snaps
    )
    comparison, note = margin_comparison(snaps)
    return StressRun(report, inputs, policy, comparison, (note,) if note else ())


# --- JSON for tools ------------------------------------------------------------------------------------
def _ratio(x: float) -> float | None:
    """Ratios are numbers; ∞ (equity at or below zero) is null, since JSON has no infinity."""
    return None if not math.isfinite(x) else round(x, 6)


def _dec(x: Decimal) -> str:
    return format(x, "f")


def _plain(obj: Any) -> Any:
    """JSON-ready data from dataclasses, mappings, sequences, Decimals and floats."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(x) for x in obj]
    if isinstance(obj, Decimal):
        return _dec(obj)
    if isinstance(obj, float):
        return _ratio(obj)
    return obj


def _venue_json(v: VenueStress) -> dict[str, Any]:
    return {
        "utilization": _ratio(v.utilization),
        "mm_ratio": _ratio(v.mm_ratio),
        "topup_usd": _dec(v.topup_usd),
        "liquidates": v.liquidates,
        "covered": v.covered,
        "equity": round(v.equity, 2),
        "delivered_usd": _dec(v.delivered_usd),
        "shortfall_usd": _dec(v.shortfall_usd),
        "mm_ratio_after": _ratio(v.mm_ratio_after),
        "frozen": v.frozen,
        "in_time_only": v.in_time_only,
        "routes": [
            {
                "route": d.route,
                "asset": d.asset,
                "amount": _dec(d.amount),
                "usd": f"{d.delivered_usd:.2f}",
                "settle_seconds": d.settle_seconds,
            }
            for d in v.deliveries
        ],
        "reason": v.reason,
    }


def _scenario_json(sc: ScenarioStress) -> dict[str, Any]:
    return {
        "name": sc.name,
        "origin": sc.scenario.origin,
        "shocks": [{k: val for k, val in asdict(x).items() if val is not None} for x in sc.scenario.shocks],
        "venues": {v.venue: _venue_json(v) for v in sc.venues},
        "topup_usd": _dec(sc.topup_usd),
        "shortfall_usd": _dec(sc.shortfall_usd),
        "covered": sc.covered,
        "liquidates": list(sc.liquidates),
    }


def to_json(r: StressRun) -> dict[str, Any]:
    """SPEC's `stress --json` shape, with extra fields; scenarios in grid order."""
    rep = r.report
    current = _scenario_json(rep.current)
    for v in current["venues"]:
        snap = r.inputs.snapshots[v]
        if snap.reported is not None:
            current["venues"][v]["reported_utilization"] = _ratio(snap.reported.utilization)
            current["venues"][v]["reported_mm_ratio"] = _ratio(snap.reported.mm_ratio)
    return {
        "as_of": _iso(rep.now),
        "regime": rep.regime.value,
        "source": r.inputs.source,
        "ok": rep.ok,
        "current": current,
        "scenarios": [_scenario_json(sc) for sc in rep.scenarios],
        "failing": [sc.name for sc in rep.ranked() if sc.failed],
        "margin_comparison": r.comparison,
        "notes": list(r.notes),
    }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# --- the table for people ------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return "     ∞" if not math.isfinite(x) else f"{x * 100:5.1f}%"


def _worst(v: VenueStress, x: float) -> str:
    return f"{_pct(x)} {v.venue}"


def _comparison_line(c: Any) -> str:
    if isinstance(c, Mapping) and {"cross_im", "portfolio_im", "efficiency"} <= c.keys():
        eff = c["efficiency"]
        ratio = "∞" if eff is None else f"{eff:.2f}×"
        cheaper = (
            "portfolio asks less" if eff is None or eff > 1 else "cross asks less" if eff < 1 else "equal"
        )
        return f"cross {c['cross_im']:,.0f} USD, portfolio {c['portfolio_im']:,.0f} USD: {ratio} ({cheaper})"
    return json.dumps(c)


def render(r: StressRun) -> str:
    rep = r.report
    n_config = sum(1 for sc in rep.scenarios if sc.scenario.origin == "config")
    in_flight = sum(1 for i in r.inputs.intents if i.status.value in ("submitted", "unknown"))
    lines = [
        f"stress {_iso(rep.now)}: {len(rep.scenarios)} scenarios ({len(rep.scenarios) - n_config} default, "
        f"{n_config} from config) on {len(rep.current.venues)} venues; regime {rep.regime.value}; "
        f"{r.inputs.source}; {in_flight} transfer(s) in flight",
        "",
        f"{'now':<14} {'u':>6} {'m':>6} {'buffer':>6}  {'band':<12} {'top-up USD':>12}  state",
    ]
    for v in rep.current.venues:
        b = r.policy.venues[v.venue].band(rep.regime)
        band = f"{b.min:.0%}/{b.target:.0%}/{b.max:.0%}"
        state = "ok" if not v.failed and v.topup_usd == 0 else v.reason
        lines.append(
            f"{v.venue:<14} {_pct(v.utilization)} {_pct(v.mm_ratio)} {_pct(1.0 - v.utilization)}  "
            f"{band:<12} {v.topup_usd:>12,}  {state}"
        )
    treasury = "; ".join(
        f"{a.account} ({a.bucket}) " + ", ".join(f"{q:,.0f} {k}" for k, q in sorted(a.balances.items()) if q)
        for a in sorted(r.inputs.accounts.values(), key=lambda a: a.account)
    )
    lines += [f"treasury: {treasury or 'no accounts'}", ""]
    ranked = rep.ranked()
    width = max([len("scenario"), *(len(sc.name) for sc in ranked)])
    vw = max([len(v) for v in r.inputs.snapshots] or [0])
    lines.append(
        f"{'scenario':<{width}}  {'worst u':<{vw + 7}}  {'worst m':<{vw + 7}}  {'top-up USD':>12}  "
        f"{'covered':<7}  liquidates"
    )
    for sc in ranked:
        wu, wm = sc.worst_utilization, sc.worst_mm_ratio
        lines.append(
            f"{sc.name:<{width}}  {_worst(wu, wu.utilization):<{vw + 7}}  {_worst(wm, wm.mm_ratio):<{vw + 7}}  "
            f"{sc.topup_usd:>12,}  {'yes' if sc.covered else 'NO':<7}  {', '.join(sc.liquidates) or '-'}"
        )
    failing = [sc for sc in ranked if sc.failed]
    lines.append("")
    if failing:
        not_covered = sum(1 for sc in failing if not sc.covered)
        liquidating = sum(1 for sc in failing if sc.liquidates)
        lines.append(
            f"{len(failing)} of {len(ranked)} scenarios fail ({not_covered} not covered, {liquidating} "
            "liquidate a venue); what to do: runbooks/stress.md"
        )
        for sc in failing:
            for v in sc.venues:
                if v.failed:
                    lines.append(f"  {sc.name} / {v.venue}: {v.reason}")
    else:
        lines.append(f"all {len(ranked)} scenarios covered; none liquidates a venue")
    if r.comparison is not None:
        lines += ["", "initial margin of today's book, cross vs portfolio margin:"]
        lines += [f"  {v:<{vw}}  {_comparison_line(c)}" for v, c in r.comparison.items()]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)
