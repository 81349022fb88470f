"""The bot: observe → decide → record intent → act → reconcile, one cycle at a time.

The bot keeps a write-through cache of its intents and venue states, so a quiet cycle does no database
I/O; everything it changes is committed (with its audit record) before it is acted on. A `Bot` can be
torn down at any point and rebuilt from the store with `start()`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from bot.core.actions import OPEN_STATUSES, IntentStatus
from bot.core.decide import Alert, Decision, decide
from bot.core.fsm import VenueState
from bot.core.margin import Figures
from bot.core.policy import Regime
from bot.core.world import DAY_SECONDS, AccountSnapshot, IntentView, Policy, VenueSnapshot, World
from bot.engine.clock import Clock
from bot.engine.executor import Executor, Outcome, request_for
from bot.errors import MarginbotError
from bot.notify import OutboxWorker, note
from bot.store.repo import Note, Store, VenueFigures
from bot.venues.base import AccountPort, TransferPort, TransferState, VenuePort

log = structlog.get_logger("marginbot.bot")

_EXECUTOR_NOTIFIED = frozenset({"approval"})  # the executor's own notification carries the details
_IN_FLIGHT = frozenset({IntentStatus.SUBMITTED, IntentStatus.UNKNOWN})


@dataclass(frozen=True, slots=True)
class RaisedAlert:
    ts: float
    alert: Alert


@dataclass(frozen=True, slots=True)
class CycleResult:
    now: float
    observed: Mapping[str, Figures | None]
    states: Mapping[str, VenueState]
    decision: Decision
    outcomes: tuple[Outcome, ...]
    raised: tuple[Alert, ...]


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
        outbox: OutboxWorker | None = None,
        figures_every_seconds: float | None = 0.0,
        before_cycle: Callable[[float], None] | None = None,
    ) -> None:
        self.policy = policy
        self.venues = list(venues)
        self.accounts = list(accounts)
        self.transfers = transfers
        self.store = store
        self.clock = clock
        self.regime = regime
        self.desk = desk
        self.routes = {r.name: r for r in policy.routes}
        self.executor = Executor(store, transfers, self.routes, desk=desk, expires_minutes=expires_minutes)
        self.repeat_seconds = repeat_minutes * 60.0
        self.outbox = outbox
        self.figures_every = figures_every_seconds
        self.before_cycle = before_cycle
        self.states: dict[str, VenueState] = {}
        self.since: dict[str, float] = {}
        self._intents: dict[str, IntentView] = {}
        self._intent_tuple: tuple[IntentView, ...] = ()
        self._in_flight: tuple[IntentView, ...] = ()
        self._expiries: dict[str, float] = {}
        self._active_alerts: dict[tuple[str, str, str | None], float] = {}
        self._last_figures_at = float("-inf")
        self._last_observed: Mapping[str, Figures | None] = {}
        self._flush_task: asyncio.Task[int] | None = None
        self.alert_log: list[RaisedAlert] = []
        # breach observed -> first intent committed and accepted by the venue (for `marginbot bench`)
        self.last_reaction_seconds: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load venue states, open and recent intents and pending approvals from the store."""
        now = self.clock.now()
        stored = self.store.venue_states()
        self.states = {v: VenueState(stored.get(v, VenueState.STALE.value)) for v in self.policy.venues}
        self.since = dict.fromkeys(self.policy.venues, now)
        self._intents = {i.id: i for i in self.store.load_intents(now - 2 * DAY_SECONDS)}
        self._reindex()
        self._expiries = self.store.approval_expiries()

    async def close(self) -> None:
        if self._flush_task is not None:
            await asyncio.gather(self._flush_task, return_exceptions=True)
        self.flush_figures(self.clock.now())

    def open_counts(self) -> tuple[int, int]:
        """(transfers in flight or of unknown outcome, requests awaiting approval), from the cache."""
        pending = sum(1 for i in self._intent_tuple if i.status is IntentStatus.PENDING_APPROVAL)
        return len(self._in_flight), pending

    def set_regime(self, regime: Regime) -> None:
        if regime is not self.regime:
            now = self.clock.now()
            self.store.record(
                now,
                [("regime.changed", None, {"from": self.regime.value, "to": regime.value})],
                [note("warning", "regime", f"regime {self.regime.value} → {regime.value}", desk=self.desk)],
            )
            self.regime = regime

    # --- the cycle ---------------------------------------------------------------------------------------
    async def cycle(self) -> CycleResult:
        now = self.clock.now()
        if self.before_cycle is not None:
            self.before_cycle(now)
        if self._in_flight:
            await self._reconcile(now)
        if self._expiries:
            self._expire(now)
        snapshots, accounts = await self._observe()
        world = World(
            now=now,
            regime=self.regime,
            snapshots=snapshots,
            states=self.states,
            accounts=accounts,
            intents=self._intent_tuple,
        )
        observed_at = time.perf_counter()
        decision = decide(world, self.policy)
        # money first: each intent is committed and sent before the cycle's telemetry is written
        outcomes = []
        for planned in decision.actions:
            self.executor.last_submitted_at = None
            outcome = await self.executor.execute(planned, now)
            outcomes.append(outcome)
            if outcome.view is not None:
                self._remember(outcome.view, now)
            if len(outcomes) == 1 and self.executor.last_submitted_at is not None:
                self.last_reaction_seconds = self.executor.last_submitted_at - observed_at
        events, notes, raised = self._alerts(now, decision.alerts)
        if decision.transitions or events:
            self.store.record_transitions(
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
        if self.figures_every is not None and now - self._last_figures_at >= self.figures_every:
            self.flush_figures(now)
        if self.outbox is not None and (self._flush_task is None or self._flush_task.done()):
            self._flush_task = asyncio.create_task(self._flush(now))
        return CycleResult(now, decision.observed, self.states, decision, tuple(outcomes), raised)

    async def _observe(self) -> tuple[dict[str, VenueSnapshot | None], dict[str, AccountSnapshot | None]]:
        snaps: dict[str, VenueSnapshot | None] = {}
        for v in self.venues:
            try:
                snaps[v.name] = await v.snapshot()
            except MarginbotError as e:
                log.debug("venue read failed", venue=v.name, error=str(e))
                snaps[v.name] = None
            except Exception as e:  # fail closed: an unreadable venue is stale, never guessed at
                log.error("venue read raised", venue=v.name, error=type(e).__name__)
                snaps[v.name] = None
        accts: dict[str, AccountSnapshot | None] = {}
        for a in self.accounts:
            try:
                accts[a.name] = await a.balances()
            except Exception as e:  # an unreadable account offers no balance to draw on
                log.debug("account read failed", account=a.name, error=str(e))
                accts[a.name] = None
        return snaps, accts

    # --- intents -----------------------------------------------------------------------------------------
    def _remember(self, view: IntentView, now: float) -> None:
        """Cache an intent the executor just recorded (write-through: the store already has it)."""
        self._intents[view.id] = view
        if view.status is IntentStatus.PENDING_APPROVAL:
            self._expiries[view.id] = now + self.executor.expires_seconds
        self._prune(now)

    def _set_status(self, intent: IntentView, status: IntentStatus) -> None:
        self._intents[intent.id] = dataclasses.replace(intent, status=status)
        self._reindex()

    def _prune(self, now: float) -> None:
        horizon = now - 2 * DAY_SECONDS
        self._intents = {
            k: i for k, i in self._intents.items() if i.created_at > horizon or i.status in OPEN_STATUSES
        }
        self._reindex()

    def _reindex(self) -> None:
        """Rebuild the views derived from the intent cache (only when it changes, never on a quiet cycle)."""
        self._intent_tuple = tuple(self._intents.values())
        self._in_flight = tuple(i for i in self._intent_tuple if i.status in _IN_FLIGHT)

    async def _reconcile(self, now: float) -> None:
        """Look every in-flight or unknown transfer up at the venue and adopt what it says."""
        for i in [
            i for i in self._intent_tuple if i.status in (IntentStatus.SUBMITTED, IntentStatus.UNKNOWN)
        ]:
            route = self.routes.get(i.route)
            if route is None:
                continue
            try:
                receipt = await self.transfers.lookup(request_for(route, intent_id=i.id, amount=i.amount))
            except Exception as e:  # a failed lookup changes nothing: try again next cycle
                log.debug("lookup failed", intent=i.id, error=str(e))
                continue
            if receipt is None:
                continue
            if receipt.state is TransferState.SETTLED:
                self.store.set_intent_status(
                    i.id,
                    IntentStatus.CONFIRMED,
                    now,
                    venue=i.venue,
                    venue_ref=receipt.venue_ref,
                    notes=[
                        note(
                            "info",
                            "transfer",
                            f"{i.venue}: {i.kind.value} {i.amount} {i.asset} via {i.route} confirmed",
                            desk=self.desk,
                            venue=i.venue,
                            asset=i.asset,
                        )
                    ],
                )
                self._set_status(i, IntentStatus.CONFIRMED)
            elif receipt.state is TransferState.FAILED:
                self.store.set_intent_status(
                    i.id,
                    IntentStatus.FAILED,
                    now,
                    venue=i.venue,
                    venue_ref=receipt.venue_ref,
                    notes=[
                        note(
                            "critical",
                            "transfer_failed",
                            f"{i.venue}: {i.kind.value} {i.amount} {i.asset} "
                            f"via {i.route} failed at the venue",
                            desk=self.desk,
                            venue=i.venue,
                            asset=i.asset,
                        )
                    ],
                )
                self._set_status(i, IntentStatus.FAILED)
            elif i.status is IntentStatus.UNKNOWN:
                self.store.set_intent_status(
                    i.id,
                    IntentStatus.SUBMITTED,
                    now,
                    venue=i.venue,
                    venue_ref=receipt.venue_ref,
                    data={"reconciled": True},
                )
                self._set_status(i, IntentStatus.SUBMITTED)

    def _expire(self, now: float) -> None:
        for intent_id, expires_at in list(self._expiries.items()):
            i = self._intents.get(intent_id)
            if i is None or i.status is not IntentStatus.PENDING_APPROVAL:
                del self._expiries[intent_id]
                continue
            if expires_at <= now:
                self.store.set_intent_status(
                    intent_id,
                    IntentStatus.EXPIRED,
                    now,
                    venue=i.venue,
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
                self._set_status(i, IntentStatus.EXPIRED)
                del self._expiries[intent_id]

    # --- alerts and telemetry ----------------------------------------------------------------------------
    def _alerts(
        self, now: float, alerts: Sequence[Alert]
    ) -> tuple[list[tuple[str, str | None, dict[str, Any]]], list[Note], tuple[Alert, ...]]:
        """Raise new alerts, repeat long-standing ones every `repeat_minutes`, clear the ones that went away.

        Returns the audit events and notifications to commit, and the alerts newly raised.
        """
        if not alerts and not self._active_alerts:
            return [], [], ()
        events: list[tuple[str, str | None, dict[str, Any]]] = []
        notes: list[Note] = []
        raised: list[Alert] = []
        current: set[tuple[str, str, str | None]] = set()
        for a in alerts:
            key = (a.kind, a.venue, a.asset)
            if key in current:
                continue
            current.add(key)
            last = self._active_alerts.get(key)
            if last is None or now - last >= self.repeat_seconds:
                kind = "alert.raised" if last is None else "alert.repeated"
                events.append((kind, a.venue, {"kind": a.kind, "severity": a.severity, "message": a.message}))
                if a.kind not in _EXECUTOR_NOTIFIED:
                    notes.append(
                        note(a.severity, a.kind, a.message, desk=self.desk, venue=a.venue, asset=a.asset)
                    )
                self._active_alerts[key] = now
                if last is None:
                    raised.append(a)
                    self.alert_log.append(RaisedAlert(now, a))
        for key in [k for k in self._active_alerts if k not in current]:
            del self._active_alerts[key]
            events.append(("alert.cleared", key[1], {"kind": key[0]}))
            if key[0] not in _EXECUTOR_NOTIFIED:
                notes.append(
                    note(
                        "info",
                        key[0],
                        f"{key[1]}: {key[0]} alert cleared",
                        desk=self.desk,
                        venue=key[1],
                        asset=key[2],
                    )
                )
        return events, notes, tuple(raised)

    def flush_figures(self, now: float) -> None:
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
        if rows:
            self.store.save_figures(rows, now)
        self._last_figures_at = now

    async def _flush(self, now: float) -> int:
        assert self.outbox is not None
        try:
            return await self.outbox.flush(now)
        except Exception as e:  # the outbox never takes the bot down
            log.warning("outbox flush failed", error=type(e).__name__)
            return 0
