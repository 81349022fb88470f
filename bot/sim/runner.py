"""Replay a scenario deterministically through the same bot, with a simulated clock and a paper world."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.app import Wired, build, require_paper
from bot.core.fsm import VenueState
from bot.core.margin import Figures
from bot.core.policy import Regime
from bot.engine.alerts import RaisedAlert
from bot.engine.bot import Bot
from bot.engine.clock import SimClock
from bot.service.approvals import cast_vote, oldest_pending
from bot.settings import Settings
from bot.sim.fast import FastForward
from bot.sim.market import AssetProcess, Market
from bot.sim.scenario import (
    Approve,
    Crash,
    ExposureEvent,
    FundingEvent,
    HaircutEvent,
    Halt,
    Liquidity,
    MalformedAnswer,
    MarginRates,
    PriceShock,
    RegimeEvent,
    Reject,
    Resume,
    Scenario,
    ServerError,
    StaleData,
    TimeoutAfterEffect,
    TransferFreeze,
    VenueOutage,
    VolEvent,
    check_against,
)
from bot.store import audit as chain
from bot.store.repo import Store
from bot.venues.paper import PaperExchange


@dataclass(slots=True)
class VenueStats:
    max_utilization: float = 0.0
    min_buffer: float = 1.0
    final_utilization: float | None = None
    max_mm_ratio: float = 0.0
    steps_above_alert: int = 0


def _num(x: float | None) -> float | None:
    """Ratios as JSON numbers; an infinite ratio (equity ≤ 0) becomes null."""
    if x is None or math.isinf(x) or math.isnan(x):
        return None
    return round(x, 6)


@dataclass
class Replay:
    scenario: Scenario
    settings: Settings
    store: Store
    progress: Callable[[int, int], None] | None = None
    clock: SimClock = field(init=False)
    market: Market = field(init=False)

    def __post_init__(self) -> None:
        check_against(self.scenario, self.settings)
        self.start = self.scenario.start.timestamp()
        self.clock = SimClock(self.start)
        prices = dict(self.settings.market.prices)
        for asset, spec in self.scenario.prices.items():
            prices[asset] = spec.start if spec.start is not None else (spec.path or [1.0])[0]
        self.market = Market(prices, seed=self.scenario.seed)
        for asset, spec in self.scenario.prices.items():
            self.market.set_process(
                asset,
                AssetProcess(spec.vol_annual, spec.drift_annual, list(spec.path) if spec.path else None),
            )

    def step_of(self, ts: float | None) -> int | None:
        if ts is None:
            return None
        return round((ts - self.start) / self.scenario.step_seconds)

    def _apply(self, e: Any, exchange: PaperExchange, bot: Bot) -> None:
        world = _PAPER_WORLD.get(type(e))
        if world is not None:
            world(e, exchange, self.scenario.step_seconds)
        elif isinstance(e, PriceShock):
            self.market.shock(e.asset, e.pct)
        elif isinstance(e, VolEvent):
            self.market.set_vol(e.asset, e.vol_annual)
        else:
            self._apply_people(e, bot)

    def _apply_people(self, e: Any, bot: Bot) -> None:
        """Events the bot's people and settings make: votes, the kill switch, the regime, an exposure."""
        now = self.clock.now()
        if isinstance(e, (Approve, Reject)):
            request = oldest_pending(self.store)
            if request is not None:  # the scenario speaks for the approver: identity is taken as proven
                cast_vote(
                    self.store,
                    request,
                    approver=e.approver,
                    approve=isinstance(e, Approve),
                    authenticated=True,
                    now=now,
                    desk=self.settings.bot.desk,
                    reason=getattr(e, "reason", ""),
                )
        elif isinstance(e, RegimeEvent):
            bot.set_regime(Regime(e.value))
        elif isinstance(e, ExposureEvent) and bot.hedger is not None:
            asset = bot.hedger.specs[e.hedge].asset
            bot.hedger.set_exposure(e.hedge, e.qty, now, price=self.market.prices.get(asset))
        elif isinstance(e, Halt):
            bot.kill.halt(now, by=e.by, reason=e.reason)
        elif isinstance(e, Resume):
            bot.kill.resume(now, by=e.by)

    def _build(self, exchange: PaperExchange | None = None) -> Wired:
        # in a replay only this process changes the kill switch, so it is re-read only when it changed
        return build(
            self.settings,
            self.store,
            self.clock,
            market=self.market,
            exchange=exchange,
            send_notifications=False,
            figures_every_seconds=None,
            kill_switch_poll_seconds=math.inf,
        )

    async def run(self) -> dict[str, Any]:
        require_paper(self.settings, "simulate")
        sc = self.scenario
        wired = self._build()
        bot, exchange = wired.bot, wired.exchange
        await bot.start()
        alert_log: list[RaisedAlert] = []
        events: dict[int, list[Any]] = {}
        for e in sc.events:
            events.setdefault(e.at, []).append(e)
        tracker, fast = _Tracker(bot), FastForward(exchange)
        every = max(1, sc.steps // 100)
        step_seconds, clock, market, start = sc.step_seconds, self.clock, self.market, self.start
        crashed = False
        for i in range(sc.steps):
            now = start + i * step_seconds
            clock.set(now)
            if i:
                market.advance(step_seconds, step=i)
            todo = events.get(i)
            quiet = None
            if not todo and not crashed:
                read = fast.read(now)
                quiet = None if read is None else bot.quiet_figures(now, *read)
            if quiet is not None:
                tracker.track(quiet, bot)
            else:
                bot, crashed, observed = await self._full_step(bot, exchange, todo or [], crashed, alert_log)
                tracker.track(observed, bot)
            if self.progress is not None and (i % every == 0 or i == sc.steps - 1):
                self.progress(i + 1, sc.steps)
        await bot.close()
        alert_log.extend(bot.alert_log)
        return self._report(bot, exchange, tracker.stats(), alert_log, tracker.deviations)

    async def _full_step(
        self, bot: Bot, exchange: PaperExchange, todo: list[Any], crashed: bool, alert_log: list[RaisedAlert]
    ) -> tuple[Bot, bool, Mapping[str, Figures | None]]:
        """The step's events, a rebuild after a crash, the paper world's own moves, then a whole cycle.
        Returns the bot (a new one after a crash), whether the process dies after this step, and what the
        cycle observed."""
        for e in todo:
            self._apply(e, exchange, bot)
        if crashed:  # the process died after the last step: a new one is built from the database
            alert_log.extend(bot.alert_log)
            bot = await self._rebuild(bot, exchange)
        exchange.advance()
        observed = (await bot.cycle()).observed
        return bot, any(isinstance(e, Crash) for e in todo), observed

    async def _rebuild(self, bot: Bot, exchange: PaperExchange) -> Bot:
        regime = bot.regime
        new = self._build(exchange).bot
        new.regime = regime
        await new.start()
        return new

    def _report(
        self,
        bot: Bot,
        exchange: PaperExchange,
        stats: dict[str, VenueStats],
        alert_log: list[RaisedAlert],
        deviations: dict[str, float],
    ) -> dict[str, Any]:
        approvals = self.store.approvals.rows()
        approvers_by_intent = {a.intent_id: list(a.approvers) for a in approvals}
        transfers = [
            {
                "id": r.id,
                "route": r.route,
                "kind": r.kind.value,
                "asset": r.asset,
                "amount": _dec(r.amount),
                "usd": _dec(r.usd),
                "status": r.status.value,
                "step_requested": self.step_of(r.created_at),
                "step_submitted": self.step_of(r.submitted_at),
                "step_settled": self.step_of(r.settled_at),
                "approvers": approvers_by_intent.get(r.id, []),
            }
            for r in self.store.intents.rows()
        ]
        verified = chain.verify(self.store.engine)
        return {
            "scenario": self.scenario.name,
            "steps": self.scenario.steps,
            "liquidations": [
                {"venue": liq.venue, "step": self.step_of(liq.ts)} for liq in exchange.liquidations
            ],
            "venues": {
                v: {
                    "max_utilization": _num(st.max_utilization),
                    "min_buffer": _num(st.min_buffer),
                    "final_utilization": _num(st.final_utilization),
                    "max_mm_ratio": _num(st.max_mm_ratio),
                    "final_state": bot.states.get(v, VenueState.STALE).value,
                    "steps_above_alert": st.steps_above_alert,
                }
                for v, st in stats.items()
            },
            "transfers": transfers,
            "approvals": [
                {
                    "id": a.id,
                    "action_id": a.intent_id,
                    "status": a.status,
                    "approvers": list(a.approvers),
                    "step_requested": self.step_of(a.created_at),
                    "step_decided": self.step_of(a.decided_at),
                }
                for a in approvals
            ],
            "orders": self._orders(),
            "hedges": _hedge_report(bot, deviations),
            "alerts": [
                {
                    "step": self.step_of(r.ts),
                    "severity": r.alert.severity,
                    "kind": r.alert.kind,
                    "venue": r.alert.venue,
                }
                for r in alert_log
            ],
            "notifications": self.store.outbox.count(),
            "audit": {"events": verified.records, "chain_ok": verified.ok},
            "halted": bot.kill.read(self.clock.now()).halted,
            "final_prices": {a: round(p, 8) for a, p in sorted(self.market.prices.items())},
        }

    def _orders(self) -> list[dict[str, Any]]:
        return [
            {
                "id": o.id,
                "venue": o.venue,
                "symbol": o.symbol,
                "side": o.side,
                "amount": _dec(o.qty),
                "filled": None if o.filled is None else _dec(o.filled),
                "avg_price": None if o.avg_price is None else round(o.avg_price, 8),
                "reduce_only": o.reduce_only,
                "reason": o.reason.value,
                "program": o.program,
                "status": o.status.value,
                "step": self.step_of(o.created_at),
            }
            for o in self.store.orders.rows()
        ]


class _Tracker:
    """Per venue: the largest utilization and liquidation ratio, the smallest buffer, the last utilization and
    the steps at or above the alert level; per hedge program, the largest |net delta − target| after a cycle.
    Kept in flat lists: it runs every step."""

    def __init__(self, bot: Bot) -> None:
        self.venues = list(bot.policy.venues)
        self.alert_u = [bot.policy.venues[v].alert_utilization for v in self.venues]
        n = len(self.venues)
        self.max_u, self.min_buffer, self.max_m = [0.0] * n, [1.0] * n, [0.0] * n
        self.final: list[float | None] = [None] * n
        self.above = [0] * n
        self.deviations: dict[str, float] = {}

    def track(self, observed: Mapping[str, Figures | None], bot: Bot) -> None:
        max_u, min_buffer, max_m, final = self.max_u, self.min_buffer, self.max_m, self.final
        for k, v in enumerate(self.venues):
            f = observed.get(v)
            if f is None:
                continue
            u = f.utilization
            if u > max_u[k]:  # noqa: PLR1730 -- a comparison, not a call to max(): this runs every step
                max_u[k] = u
            if 1.0 - u < min_buffer[k]:  # noqa: PLR1730 -- as above
                min_buffer[k] = 1.0 - u
            if f.mm_ratio > max_m[k]:  # noqa: PLR1730 -- as above
                max_m[k] = f.mm_ratio
            if u >= self.alert_u[k]:
                self.above[k] += 1
            final[k] = u
        h = bot.hedger
        if h is not None and h.specs:
            for name, spec in h.specs.items():
                price = h.prices.get(spec.asset)
                if price is not None:
                    dev = abs(h.states[name].net_delta(spec, price) - spec.target_delta)
                    self.deviations[name] = max(self.deviations.get(name, 0.0), dev)

    def stats(self) -> dict[str, VenueStats]:
        return {
            v: VenueStats(self.max_u[k], self.min_buffer[k], self.final[k], self.max_m[k], self.above[k])
            for k, v in enumerate(self.venues)
        }


# events the paper world applies to itself: (event, exchange, step seconds); a window of `steps` ends just
# before the step after it
_PAPER_WORLD: dict[type, Callable[[Any, PaperExchange, float], None]] = {
    FundingEvent: lambda e, x, span: x.set_funding(e.venue, e.symbol, e.rate_8h),
    MarginRates: lambda e, x, span: x.set_margin_factor(e.venue, e.factor),
    HaircutEvent: lambda e, x, span: x.set_haircut(e.venue, e.asset, e.value),
    VenueOutage: lambda e, x, span: x.outage(e.venue, e.steps * span - 1e-6),
    StaleData: lambda e, x, span: x.stale(e.venue, e.steps * span - 1e-6),
    TransferFreeze: lambda e, x, span: x.freeze(e.venue_or_account, e.steps * span - 1e-6),
    TimeoutAfterEffect: lambda e, x, span: x.timeout_after_effect(e.route, e.count),
    ServerError: lambda e, x, span: x.server_error(e.route, e.count),
    MalformedAnswer: lambda e, x, span: x.malformed_answer(e.route, e.count),
    Liquidity: lambda e, x, span: x.set_liquidity(e.venue, e.symbol, e.depth_factor),
}


def _hedge_report(bot: Bot, deviations: dict[str, float]) -> dict[str, Any]:
    h = bot.hedger
    if h is None:
        return {}
    out: dict[str, Any] = {}
    for name, net, loss in h.summaries():
        st = h.states[name]
        out[name] = {
            "max_abs_delta_deviation": round(deviations.get(name, 0.0), 8),
            "final_net_delta": None if net is None else round(net, 8),
            "trades": st.trade_count,
            "stopped": st.stopped,
            "stop_reason": st.stop_reason or None,
            "cost_usd": None if loss is None else round(loss, 2),
            "holdings": {k: round(q, 8) for k, q in sorted(st.holdings.items())},
        }
    return out


def _dec(x: Any) -> str:
    return format(x.normalize(), "f") if hasattr(x, "normalize") else str(x)
