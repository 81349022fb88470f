"""The bot: observe → decide → record intent → act → reconcile, one cycle at a time.

The bot keeps a write-through cache of its intents and venue states, so a quiet cycle does little I/O;
everything it changes is committed (with its audit record) before it is acted on. A `Bot` can be torn
down at any point and rebuilt from the store with `start()`, which reconciles every open intent before
any money may move again (the startup gate).

Fail closed: if reading the kill switch, reconciling, or the risk checks in `decide` raise, the bot sets
the kill switch itself (persisted, audited, a critical notification) and moves nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from bot.core.actions import OPEN_STATUSES, IntentStatus
from bot.core.assess import is_quiet, observed_figures
from bot.core.decide import Alert, Decision, decide, index_intents
from bot.core.derisk import plan_derisk
from bot.core.fsm import VenueState
from bot.core.gate import Gate, trading_gate
from bot.core.lifecycle import IntentEvent, Lost
from bot.core.margin import Figures, Position
from bot.core.policy import Band, Regime, VenuePolicy
from bot.core.whatif import with_effects
from bot.core.world import DAY_SECONDS, AccountSnapshot, IntentView, Policy, VenueSnapshot, World
from bot.engine.alerts import AlertBook, RaisedAlert
from bot.engine.clock import Clock
from bot.engine.executor import Executor, Outcome
from bot.engine.hedger import HedgePlan, Hedger, Seen
from bot.engine.killswitch import Controls, KillSwitch
from bot.engine.observe import Observation, Observer
from bot.engine.orders import OrderOutcome
from bot.engine.positions import PositionWatch
from bot.engine.reconcile import Reconciler
from bot.notify import OutboxWorker, note
from bot.store.repo import Store
from bot.store.rows import Note, VenueFigures
from bot.venues.base import AccountPort, TransferPort, VenuePort

log = structlog.get_logger("marginbot.bot")

_IN_FLIGHT = frozenset({IntentStatus.SUBMITTED, IntentStatus.UNKNOWN})
_HEALTHY = VenueState.HEALTHY
BOT = "marginbot"  # the name the bot uses when it sets the kill switch itself


@dataclass(frozen=True, slots=True)
class CycleResult:
    now: float
    observed: Mapping[str, Figures | None]
    states: Mapping[str, VenueState]
    decision: Decision
    outcomes: tuple[Outcome, ...]
    raised: tuple[Alert, ...]
    orders: tuple[OrderOutcome, ...] = ()


@dataclass(frozen=True, slots=True)
class _Look:
    """What one cycle read, and what follows from it before deciding."""

    now: float  # decision time: after the last read
    obs: Observation
    changed: Mapping[str, tuple[str | None, str]]
    halted_venues: frozenset[str]
    gate: Gate
    observed_at: float  # perf_counter at decision time (the bench's breach → intent figure starts here)


_NOTHING = Decision((), (), (), (), {}, ())
_NO_HEDGES = HedgePlan()


class Bot:
    def __init__(
        self,
        *,
        policy: Policy,
        venues: Sequence[VenuePort],
        accounts: Sequence[AccountPort],
        transfers: TransferPort,
        store: Store,
        clock: Clock,
        regime: Regime,
        desk: str,
        expires_minutes: float,
        repeat_minutes: float,
        reconcile_lag_seconds: float = 120.0,
        kill_switch_poll_seconds: float = 0.0,
        outbox: OutboxWorker | None = None,
        figures_every_seconds: float | None = 0.0,
        before_cycle: Callable[[float], None] | None = None,
        hedger: Hedger | None = None,
        cycle_seconds: float | None = None,
        read_deadline_seconds: float = 5.0,
    ) -> None:
        self.policy = policy
        self.venues = list(venues)
        self.accounts = list(accounts)
        self.observer = Observer(self.venues, self.accounts, clock, deadline_seconds=read_deadline_seconds)
        self.cycle_seconds = cycle_seconds  # None: no watchdog
        self.last_observation = Observation()  # the last cycle's reads and their times (for the bench)
        self.transfers = transfers
        self.store = store
        self.clock = clock
        self.regime = regime
        self.desk = desk
        self.routes = {r.name: r for r in policy.routes}
        self.executor = Executor(store, transfers, self.routes, desk=desk, expires_minutes=expires_minutes)
        self.reconciler = Reconciler(
            store, transfers, self.routes, lag_seconds=reconcile_lag_seconds, desk=desk
        )
        self.kill = KillSwitch(store, poll_seconds=kill_switch_poll_seconds, desk=desk)
        self.alerts = AlertBook(desk=desk, repeat_seconds=repeat_minutes * 60.0)
        self.outbox = outbox
        self.figures_every = figures_every_seconds
        self.before_cycle = before_cycle
        self.states: dict[str, VenueState] = {}
        self.since: dict[str, float] = {}
        self.watch = PositionWatch({})
        self.hedger = hedger
        self._intents: dict[str, IntentView] = {}
        self._intent_tuple: tuple[IntentView, ...] = ()
        self._open = False  # any intent open (proposed … unknown): then no cycle is quiet
        self._bands_of: dict[Regime, list[tuple[str, VenuePolicy, Band]]] = {}
        self._last_move: dict[str, float] = {}  # venue -> when collateral last arrived or left
        self._in_flight: tuple[IntentView, ...] = ()
        self._expiries: dict[str, float] = {}
        self._unreconciled: set[str] = set()  # open intents not yet classified since start: the startup gate
        self._intents_mark: str | None = None
        self._last_figures_at = float("-inf")
        self._last_observed: Mapping[str, Figures | None] = {}
        self._flush_task: asyncio.Task[int] | None = None
        self._figures_task: asyncio.Task[None] | None = None
        # breach observed -> first intent committed and accepted by the venue (for `marginbot bench`)
        self.last_reaction_seconds: float | None = None

    @property
    def alert_log(self) -> list[RaisedAlert]:
        return self.alerts.log

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Rebuild from the store: states, intents, approvals, positions; then reconcile every open intent."""
        now = self.clock.now()
        stored = self.store.figures.states()
        self.states = {v: VenueState(stored.get(v, VenueState.STALE.value)) for v in self.policy.venues}
        self.since = dict.fromkeys(self.policy.venues, now)
        self.watch = PositionWatch(self.store.figures.positions())
        self._load_intents(now)
        if self.hedger is not None:
            self.hedger.watch = self.watch
            self.hedger.load(now)
        # an intent still `approved` was recorded by a process that stopped before recording the venue's answer:
        # it may or may not have been sent, so it is unknown until the venue is asked
        for i in [
            i for i in self._intent_tuple if i.status is IntentStatus.APPROVED and (i.automatic or i.sending)
        ]:
            self._transition(
                i,
                IntentEvent.RESTART_UNKNOWN,
                now,
                data={"reconciled": "the bot stopped between recording the intent and the venue's answer"},
            )
        self._unreconciled = {i.id for i in self._in_flight}
        if self.hedger is not None:
            self._unreconciled |= self.hedger.unreconciled
        try:
            self._intents_mark = self.kill.read(now).intents_mark
        except Exception as e:  # an unreadable kill switch is on
            self._fail_closed(now, "reading the kill switch", e)
        if self._unreconciled:
            await self._reconcile(now)
            await self._reconcile_orders(now)

    async def close(self) -> None:
        if self._flush_task is not None:
            await asyncio.gather(self._flush_task, return_exceptions=True)
        if self._figures_task is not None:
            await asyncio.gather(self._figures_task, return_exceptions=True)
        self.flush_figures(self.clock.now())

    def open_counts(self) -> tuple[int, int]:
        """(transfers in flight or of unknown outcome, requests awaiting approval), from the cache."""
        pending = sum(1 for i in self._intent_tuple if i.status is IntentStatus.PENDING_APPROVAL)
        return len(self._in_flight), pending

    @property
    def gate_open(self) -> bool:
        return not self._unreconciled

    def set_regime(self, regime: Regime) -> None:
        if regime is not self.regime:
            now = self.clock.now()
            self.store.audit.record(
                now,
                [("regime.changed", None, {"from": self.regime.value, "to": regime.value})],
                [note("warning", "regime", f"regime {self.regime.value} → {regime.value}", desk=self.desk)],
            )
            self.regime = regime

    # --- the cycle ---------------------------------------------------------------------------------------
    async def cycle(self) -> CycleResult:
        """observe → decide → record intent → act → reconcile: one cycle, each phase a method below."""
        started = self.clock.now()
        controls, outcomes = await self._open_business(started)
        venues_read = None
        if self._may_be_quiet(controls):
            venues_read = self.observer.venues_now()
            quiet = self._quiet(self.clock.now(), venues_read)
            if quiet is not None:
                return quiet
        look = await self._look(controls, venues_read)
        hedge_plan, controls = await self._plan_hedges(look, controls)
        world, decision = self._decide(look, controls, hedge_plan)
        outcomes += await self._act(decision, look.now, look.observed_at)
        order_outcomes, alerts = await self._orders(world, decision, look, hedge_plan)
        raised = self._close(look, started, decision, alerts)
        return CycleResult(
            look.now, decision.observed, self.states, decision, tuple(outcomes), raised, tuple(order_outcomes)
        )

    async def _open_business(self, now: float) -> tuple[Controls, list[Outcome]]:
        """Before reading the venues: the kill switch, what the venues say of moves in flight, expiries, and
        what people approved since the last cycle."""
        if self.before_cycle is not None:
            self.before_cycle(now)
        controls = self._controls(now)
        if self._in_flight or (self.hedger is not None and self.hedger.open):
            try:
                await self._reconcile(now)
                await self._reconcile_orders(now)
            except Exception as e:  # fail closed
                controls = self._fail_closed(now, "reconciliation", e)
        if self._expiries:
            self._expire(now)
        outcomes: list[Outcome] = []
        if not controls.halted and not self._unreconciled:
            outcomes.extend(await self._send_approved(now, controls))
        return controls, outcomes

    async def _look(
        self, controls: Controls, venues_read: Mapping[str, VenueSnapshot | None] | None
    ) -> _Look:
        """Every venue and account read at once; decision time is after the last read."""
        obs = self.last_observation = await self.observer.observe(venues_read)
        now = self.clock.now()  # decision time: every snapshot's age is judged now, after all reads
        changed, halted_by_watch = self._watch_positions(now, obs.snapshots)
        halted_venues = (
            controls.halted_venues | halted_by_watch | self._halt_banned(now, controls, obs.banned)
        )
        gate = trading_gate(
            kill_switch=controls.halted, startup_open=not self._unreconciled, halted_venues=halted_venues
        )
        return _Look(now, obs, changed, halted_venues, gate, time.perf_counter())

    async def _plan_hedges(self, look: _Look, controls: Controls) -> tuple[HedgePlan, Controls]:
        hedge_plan = _NO_HEDGES
        if self.hedger is not None and self.hedger.specs:
            obs = look.obs
            try:
                hedge_plan = await self.hedger.plan(
                    self._seen(look.now, obs.snapshots, obs.accounts, look.gate.halted_venues, look.changed),
                    gate=look.gate,
                    resumes=dict(controls.resume_hedges),
                )
            except Exception as e:  # fail closed: the hedge engine's own checks failed
                controls = self._fail_closed(look.now, "the hedge engine", e)
        if controls.resume_hedges and self.hedger is not None:
            self._clear_resumes(look.now, controls, hedge_plan.resumed)
        return hedge_plan, controls

    def _decide(self, look: _Look, controls: Controls, hedge_plan: HedgePlan) -> tuple[World, Decision]:
        world = World(
            now=look.now,
            regime=self.regime,
            snapshots=look.obs.snapshots,
            states=self.states,
            accounts=look.obs.accounts,
            intents=self._intent_tuple,
            halted=controls.halted,
            halted_venues=look.halted_venues,
            moves_allowed=not self._unreconciled,
            reserved_im=hedge_plan.im_needs,
        )
        try:
            return world, decide(world, self.policy)
        except Exception as e:  # fail closed: the risk checks themselves failed
            self._fail_closed(look.now, "the risk checks", e)
            return world, _NOTHING

    async def _act(self, decision: Decision, now: float, observed_at: float) -> list[Outcome]:
        """Money first: each intent is committed and sent before the cycle's telemetry is written."""
        for intent_id in decision.withdrawn:
            self._withdraw(intent_id, now)
        outcomes: list[Outcome] = []
        for planned in decision.actions:
            self.executor.last_submitted_at = None
            outcome = await self.executor.execute(planned, now)
            outcomes.append(outcome)
            if outcome.view is not None:
                self._remember(outcome.view, now)
            if len(outcomes) == 1 and self.executor.last_submitted_at is not None:
                self.last_reaction_seconds = self.executor.last_submitted_at - observed_at
        return outcomes

    async def _orders(
        self, world: World, decision: Decision, look: _Look, hedge_plan: HedgePlan
    ) -> tuple[list[OrderOutcome], tuple[Alert, ...]]:
        """De-risk orders for venues at their de-risk level, then the hedge programs' orders, through the gate."""
        order_outcomes: list[OrderOutcome] = []
        alerts = (*decision.alerts, *hedge_plan.alerts)
        if self.hedger is None or decision is _NOTHING:
            return order_outcomes, alerts
        gate = look.gate
        if decision.derisk_venues:  # at the de-risk level, and what lands in time does not rescue it
            busy = self.hedger.busy_venues | gate.halted_venues
            derisk = plan_derisk(world, self.policy, decision, busy=busy)
            alerts = (*alerts, *derisk.alerts)
            order_outcomes.extend(
                await self.hedger.send(with_effects(world.snapshots, gate.admit(derisk.orders)), look.now)
            )
        hedge_orders = gate.admit(hedge_plan.orders)  # while reducing: only an all reduce-only batch
        if hedge_orders:
            order_outcomes.extend(
                await self.hedger.send(with_effects(world.snapshots, hedge_orders), look.now)
            )
        return order_outcomes, alerts

    def _close(
        self, look: _Look, started: float, decision: Decision, alerts: tuple[Alert, ...]
    ) -> tuple[Alert, ...]:
        """Alerts raised, repeated or cleared, state transitions recorded, telemetry; the alerts newly raised."""
        now = look.now
        if self._unreconciled:
            n = len(self._unreconciled)
            alerts = (
                *alerts,
                Alert(
                    "startup_gate",
                    "critical",
                    "*",
                    None,
                    f"no money moves until {n} open intent(s) are reconciled",
                ),
            )
        overrun = self._watchdog(started, look.obs)
        if overrun is not None:
            alerts = (*alerts, overrun)
        events, notes, raised = self.alerts.update(now, alerts)
        if decision.transitions or events:
            self.store.figures.record_transitions(
                now,
                [(t.venue, t.before.value, t.trigger.value, t.after.value) for t in decision.transitions],
                notes,
                events=events,
            )
            if decision.transitions:
                states = dict(self.states)
                for t in decision.transitions:
                    states[t.venue] = t.after
                    self.since[t.venue] = now
                self.states = states
        self._last_observed = decision.observed
        self._after_cycle(now)
        return raised

    # --- the quiet cycle -----------------------------------------------------------------------------------
    def _may_be_quiet(self, controls: Controls) -> bool:
        """Nothing open, halted, standing or hedged, and every venue answers at once: the cycle may end after
        reading the venues, if each is quiet (`_quiet`)."""
        return (
            not self._open
            and not self._unreconciled
            and not self.alerts.active
            and not controls.halted
            and not controls.halted_venues
            and not controls.resume_hedges
            and self.observer.instant
            and (self.hedger is None or not self.hedger.specs)
        )

    def _quiet(self, now: float, snaps: Mapping[str, VenueSnapshot | None]) -> CycleResult | None:
        """The cycle's result when every venue is fresh, healthy, unmoved and quiet (`assess.is_quiet`):
        then `decide` would plan, alert and change nothing, and nothing is written. Else None: the full cycle
        runs on these same snapshots."""
        observed: dict[str, Figures | None] = {}
        age = self.policy.max_data_age_seconds
        for name in self.policy.venues:
            snap = snaps.get(name)
            if snap is None or snap.own is not None or now - snap.ts > age or not self.watch.unchanged(snap):
                return None
            f = observed_figures(snap)
            if not self._quiet_venue(name, f, snap.ts):
                return None
            observed[name] = f
        return self._quiet_result(now, observed)

    def quiet_figures(
        self,
        now: float,
        figures_now: dict[str, Figures | None],
        positions: Mapping[str, tuple[Position, ...]],
    ) -> dict[str, Figures | None] | None:
        """The simulator's fast path: every venue was read by the caller itself, at `now`, with `positions`.
        When the cycle would be quiet (`_may_be_quiet`, then every venue quiet and its positions the very ones
        last seen), it ends here as `cycle` would end it, and the observed figures are returned; None when it
        might not be quiet: then run `cycle`."""
        if not self._may_be_quiet(self._controls(now)):
            return None
        holds, states, last_move = self.watch.holds, self.states, self._last_move
        for name, vpol, band in self._bands():
            f = figures_now.get(name)
            if (
                f is None
                or states.get(name) is not _HEALTHY
                or not is_quiet(f, vpol, band)
                or not holds(name, positions[name])
                or now < last_move.get(name, -math.inf)
            ):
                return None
        self._last_observed = figures_now
        self._after_cycle(now)
        return figures_now

    def _quiet_venue(self, name: str, f: Figures, read_at: float) -> bool:
        vpol = self.policy.venues[name]
        return (
            self.states.get(name) is _HEALTHY
            and is_quiet(f, vpol, vpol.band(self.regime))
            and read_at >= self._last_move.get(name, -math.inf)
        )

    def _bands(self) -> list[tuple[str, VenuePolicy, Band]]:
        """(venue, its policy, the band in force) for the regime in force, made once per regime."""
        bands = self._bands_of.get(self.regime)
        if bands is None:
            bands = [(n, p, p.band(self.regime)) for n, p in self.policy.venues.items()]
            self._bands_of[self.regime] = bands
        return bands

    def _quiet_result(self, now: float, observed: dict[str, Figures | None]) -> CycleResult:
        self._last_observed = observed
        self._after_cycle(now)
        return CycleResult(now, observed, self.states, Decision((), (), (), (), observed), (), ())

    def _after_cycle(self, now: float) -> None:
        """Telemetry and the outbox, off the money path: every cycle, quiet or not."""
        if self.figures_every is not None and now - self._last_figures_at >= self.figures_every:
            self._figures_later(now)
        if self.outbox is not None and (self._flush_task is None or self._flush_task.done()):
            self._flush_task = asyncio.create_task(self._flush(now))

    def _watchdog(self, started: float, obs: Observation) -> Alert | None:
        """A cycle that overran `cycle_seconds` by half (at least a second) names its slowest read."""
        if self.cycle_seconds is None:
            return None
        took = self.clock.now() - started
        if took <= self.cycle_seconds + max(1.0, 0.5 * self.cycle_seconds):
            return None
        slow = obs.slowest()
        which = f"; slowest read: {slow[0]} {slow[1]:.1f}s" if slow is not None else ""
        cut = f"; cut off at {self.observer.deadline:g}s: {', '.join(obs.late)}" if obs.late else ""
        return Alert(
            "cycle_overrun",
            "warning",
            "*",
            None,
            f"cycle took {took:.1f}s against cycle_seconds {self.cycle_seconds:g}{which}{cut}",
        )

    def _controls(self, now: float) -> Controls:
        """The kill switch; a change made by a person to an intent makes the cache reload."""
        try:
            controls = self.kill.read(now)
        except Exception as e:  # a kill switch that cannot be read counts as on
            return self._fail_closed(now, "reading the kill switch", e)
        if controls.intents_mark != self._intents_mark:
            self._intents_mark = controls.intents_mark
            self._load_intents(now)
            still_open = {i.id for i in self._in_flight}
            if self.hedger is not None:  # a person may have resolved an order of unknown outcome too
                self.hedger.reload_open(now)
                still_open |= set(self.hedger.open)
            self._unreconciled &= still_open
        return controls

    def _fail_closed(self, now: float, what: str, e: BaseException) -> Controls:
        reason = f"fail-closed: {what} raised {type(e).__name__}: {e}"
        try:  # persist first: the halt matters more than the log line
            self.kill.halt(now, by=BOT, reason=reason[:500])
        except Exception as e2:  # even the store is gone: hold in memory, the next cycle tries again
            reason += f" (and the halt could not be saved: {type(e2).__name__})"
        with contextlib.suppress(Exception):
            log.error("failing closed", what=what, error=type(e).__name__)
        return Controls(True, frozenset(), {"ctl:halt": reason}, self._intents_mark)

    def _halt_banned(self, now: float, controls: Controls, banned_now: Mapping[str, str]) -> frozenset[str]:
        """Venues that banned our address this cycle: halted (a critical page) unless already halted."""
        banned = frozenset(banned_now)
        for venue, why in banned_now.items():
            if venue not in controls.halted_venues:
                try:
                    self.kill.halt(now, by=BOT, venue=venue, reason=f"IP ban: {why}"[:500])
                except Exception as e:  # the venue is held in memory this cycle either way
                    log.error("could not record the venue halt", venue=venue, error=type(e).__name__)
        return banned

    def _watch_positions(
        self, now: float, snapshots: Mapping[str, VenueSnapshot | None]
    ) -> tuple[dict[str, tuple[str | None, str]], frozenset[str]]:
        """Record position changes the bot did not make itself (our fills are expected by the watch).

        Returns the changes (venue -> before, after) and the venues halted because theirs happened while
        the bot was down. Stale snapshots are not compared: old data is not a change.
        """
        halted: set[str] = set()
        changed: dict[str, tuple[str | None, str]] = {}
        age = self.policy.max_data_age_seconds
        for snap in snapshots.values():
            if snap is None or now - snap.ts > age:
                continue
            change = self.watch.check(snap)
            if change is None:
                continue
            changed[change.venue] = (change.before, change.after)
            self.store.figures.save_positions(change.venue, change.after, now, changed_from=change.before)
            # a symbol with an order of unknown outcome is held by the watch (its change is that order's to
            # explain, once classified): what changed while down here is something else, a liquidation
            if change.while_down:
                self.kill.halt(
                    now,
                    by=BOT,
                    venue=change.venue,
                    reason=f"positions changed while the bot was down (a liquidation?): "
                    f"{change.before} -> {change.after}",
                )
                halted.add(change.venue)
        return changed, frozenset(halted)

    # --- intents -----------------------------------------------------------------------------------------
    def _load_intents(self, now: float) -> None:
        self._intents = {i.id: i for i in self.store.intents.load(now - 2 * DAY_SECONDS)}
        self._expiries = self.store.approvals.expiries()
        self._reindex()

    def _remember(self, view: IntentView, now: float) -> None:
        """Cache an intent the executor just recorded (write-through: the store already has it)."""
        self._intents[view.id] = view
        if view.status is IntentStatus.PENDING_APPROVAL:
            self._expiries[view.id] = now + self.executor.expires_seconds
        horizon = now - 2 * DAY_SECONDS
        self._intents = {
            k: i for k, i in self._intents.items() if i.created_at > horizon or i.status in OPEN_STATUSES
        }
        self._reindex()

    def _set(self, intent: IntentView) -> None:
        self._intents[intent.id] = intent
        self._reindex()

    def _transition(
        self,
        i: IntentView,
        event: IntentEvent,
        now: float,
        *,
        data: dict[str, object] | None = None,
        notes: Sequence[Note] = (),
    ) -> None:
        """Apply a lifecycle event to a cached intent (compare-and-set on its cached status); when a person
        changed it first, their record stands and the cache takes it from the store."""
        done = self.store.intents.transition(
            i.id, event, expected=i.status, ts=now, venue=i.venue, data=data, notes=notes
        )
        if isinstance(done, Lost):
            log.info("intent changed meanwhile", intent=i.id, on=event.value, now_is=str(done.actual))
            fresh = self.store.intents.get(i.id)
            if fresh is not None:
                self._set(fresh)
            return
        self._set(dataclasses.replace(i, status=done.status))

    def _reindex(self) -> None:
        """Rebuild the views derived from the intent cache (only when it changes, never on a quiet cycle)."""
        self._intent_tuple = tuple(self._intents.values())
        self._in_flight = tuple(i for i in self._intent_tuple if i.status in _IN_FLIGHT)
        self._open = any(i.status in OPEN_STATUSES for i in self._intent_tuple)
        self._last_move = index_intents(self._intent_tuple)[1]

    async def _reconcile(self, now: float) -> None:
        """Look every in-flight or unknown transfer up at the venue and adopt what it says."""
        for f in await self.reconciler.run(self._in_flight, now):
            if f.intent is not self._intents.get(f.intent.id):
                self._set(f.intent)
            if f.classified:
                self._unreconciled.discard(f.intent.id)

    async def _reconcile_orders(self, now: float) -> None:
        if self.hedger is None:
            return
        for r in await self.hedger.reconcile(now):
            if r.classified:
                self._unreconciled.discard(r.order.id)

    def _clear_resumes(self, now: float, controls: Controls, applied: frozenset[str]) -> None:
        """Clear the resume requests the hedge engine applied (or that name no configured program)."""
        assert self.hedger is not None
        for program, _by in controls.resume_hedges:
            if program in applied or program not in self.hedger.specs:
                self.kill.hedge_resumed(now, program=program)

    def _seen(
        self,
        now: float,
        snapshots: Mapping[str, VenueSnapshot | None],
        accounts: Mapping[str, AccountSnapshot | None],
        halted_venues: frozenset[str],
        changed: Mapping[str, tuple[str | None, str]],
    ) -> Seen:
        """Fresh snapshots of venues that are not halted: the only ones a hedge may trade on."""
        age = self.policy.max_data_age_seconds
        fresh = {
            v: s if s is not None and now - s.ts <= age and v not in halted_venues else None
            for v, s in snapshots.items()
        }
        limits = {v: p.alert_utilization for v, p in self.policy.venues.items()}
        return Seen(now, fresh, accounts, limits, changed)

    async def _send_approved(self, now: float, controls: Controls) -> list[Outcome]:
        """Send what people approved since the last cycle (its route must not be blocked by an unknown)."""
        blocked = {i.route for i in self._in_flight if i.status is IntentStatus.UNKNOWN}
        ready = [
            i
            for i in self._intent_tuple
            if i.status is IntentStatus.APPROVED
            and not i.automatic
            and not i.sending
            and i.venue not in controls.halted_venues
            and i.route not in blocked
            and i.route in self.routes
        ]
        out = []
        for i in ready:
            outcome = await self.executor.send_approved(i, now)
            out.append(outcome)
            if outcome.view is not None:
                self._set(outcome.view)
        return out

    def _withdraw(self, intent_id: str, now: float) -> None:
        """A request whose need disappeared is closed (as expired, with the reason) before anyone approves it."""
        i = self._intents.get(intent_id)
        if i is None or i.status is not IntentStatus.PENDING_APPROVAL:
            return
        self._transition(
            i,
            IntentEvent.WITHDRAWN,
            now,
            data={"withdrawn": "the need disappeared"},
            notes=[
                note(
                    "info",
                    "approval",
                    f"{i.venue}: approval request {intent_id} withdrawn, no longer needed",
                    desk=self.desk,
                    venue=i.venue,
                    asset=i.asset,
                )
            ],
        )
        self._expiries.pop(intent_id, None)

    def _expire(self, now: float) -> None:
        for intent_id, expires_at in list(self._expiries.items()):
            i = self._intents.get(intent_id)
            if i is None or i.status is not IntentStatus.PENDING_APPROVAL:
                del self._expiries[intent_id]
                continue
            if expires_at <= now:
                self._transition(
                    i,
                    IntentEvent.EXPIRED,
                    now,
                    notes=[
                        note(
                            "warning",
                            "approval",
                            f"{i.venue}: approval request {intent_id} for "
                            f"{i.kind.value} {i.amount} {i.asset} via {i.route} expired undecided",
                            desk=self.desk,
                            venue=i.venue,
                            asset=i.asset,
                        )
                    ],
                )
                del self._expiries[intent_id]

    # --- telemetry ---------------------------------------------------------------------------------------
    def _figures_later(self, now: float) -> None:
        """Telemetry leaves the cycle: the figures are gathered now and written by a worker thread while the
        next cycle runs (one write at a time; a write still running when the next is due is skipped)."""
        if self._figures_task is not None and not self._figures_task.done():
            return
        rows, hedges = self._figure_rows(now)
        self._last_figures_at = now
        self._figures_task = asyncio.create_task(asyncio.to_thread(self._write_figures, rows, hedges, now))

    def flush_figures(self, now: float) -> None:
        rows, hedges = self._figure_rows(now)
        self._write_figures(rows, hedges, now)
        self._last_figures_at = now

    def _figure_rows(
        self, now: float
    ) -> tuple[list[VenueFigures], list[tuple[str, float | None, float | None]]]:
        rows = []
        for v in self.policy.venues:
            f = self._last_observed.get(v)
            state = self.states.get(v, VenueState.STALE).value
            since = self.since.get(v, now)
            if f is None:
                rows.append(VenueFigures(v, state, since, None, None, None, None, None, None))
            else:
                rows.append(
                    VenueFigures(v, state, since, now, f.equity, f.im, f.mm, f.utilization, f.mm_ratio)
                )
        hedges = list(self.hedger.summaries()) if self.hedger is not None and self.hedger.specs else []
        return rows, hedges

    def _write_figures(
        self, rows: list[VenueFigures], hedges: list[tuple[str, float | None, float | None]], now: float
    ) -> None:
        try:
            if rows:
                self.store.figures.save(rows, now)
            if hedges:
                self.store.ledgers.save_summaries(hedges, now)
        except Exception as e:  # telemetry never takes the bot down; the next write tries again
            log.warning("writing figures failed", error=type(e).__name__)

    async def _flush(self, now: float) -> int:
        assert self.outbox is not None
        try:
            return await self.outbox.flush(now)
        except Exception as e:  # the outbox never takes the bot down
            log.warning("outbox flush failed", error=type(e).__name__)
            return 0
