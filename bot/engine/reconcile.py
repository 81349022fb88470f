"""Reconciliation: look each in-flight or unknown transfer up at the venue and adopt what the venue says.

    found, settled                  -> confirmed
    found, failed                   -> failed
    found, pending                  -> submitted (an unknown one is adopted)
    found, no status / other amount -> ambiguous: stays unknown, its route blocked, a human is paged
    not found, within the lag       -> no change yet (venues show new transfers late)
    not found past the lag          -> failed, if the venue never acknowledged it; else ambiguous
    lookup fails                    -> no change; try again next cycle

An intent is *classified* once one of the first six outcomes was reached; the startup gate waits for all.
Each change is a transition of the intent's lifecycle (`bot.core.lifecycle`) from the status the bot read; if
a person resolved the intent meanwhile (a lost race), their record stands and the bot reloads it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from bot.core.actions import IntentStatus
from bot.core.lifecycle import IntentEvent, Lost
from bot.core.world import IntentView, RouteSpec
from bot.engine.executor import request_for
from bot.notify import note
from bot.store.repo import Store
from bot.store.rows import Note
from bot.venues.base import TransferPort, TransferReceipt, TransferState

log = structlog.get_logger("marginbot.reconcile")


@dataclass(frozen=True, slots=True)
class Finding:
    intent: IntentView  # as it is now (updated when its status changed)
    classified: bool
    ambiguous: bool = False


class _NoAnswer:
    """A lookup that taught nothing: the route left the config, or the venue did not answer."""


_NO_ROUTE, _NO_ANSWER = _NoAnswer(), _NoAnswer()


class Reconciler:
    def __init__(
        self,
        store: Store,
        transfers: TransferPort,
        routes: dict[str, RouteSpec],
        *,
        lag_seconds: float,
        desk: str,
    ) -> None:
        self.store = store
        self.transfers = transfers
        self.routes = routes
        self.lag = lag_seconds
        self.desk = desk
        self._paged: set[str] = set()

    async def run(self, intents: Iterable[IntentView], now: float) -> list[Finding]:
        """Look every intent up at once (one slow venue holds no other's lookups back), then record what
        each venue said, one intent after another, in their order."""
        todo = list(intents)
        answers = await asyncio.gather(*(self._lookup(i) for i in todo))
        out = []
        for i, answer in zip(todo, answers, strict=True):
            finding = self._classify(i, answer, now)
            if finding is not None:
                out.append(finding)
        return out

    async def _lookup(self, i: IntentView) -> TransferReceipt | _NoAnswer | None:
        route = self.routes.get(i.route)
        if route is None:
            return _NO_ROUTE
        try:
            return await self.transfers.lookup(
                request_for(route, intent_id=i.id, amount=i.amount, created_at=i.created_at)
            )
        except Exception as e:  # nothing learnt: no change, try again next cycle
            log.info("lookup failed", intent=i.id, error=type(e).__name__)
            return _NO_ANSWER

    def _classify(
        self, i: IntentView, answer: TransferReceipt | _NoAnswer | None, now: float
    ) -> Finding | None:
        if answer is _NO_ROUTE:
            return Finding(i, classified=False, ambiguous=True)  # its route left the config: a human decides
        if answer is _NO_ANSWER:
            return Finding(i, classified=False)
        if answer is None:
            return self._absent(i, now)
        assert isinstance(answer, TransferReceipt)
        return self._found(i, answer, now)

    def _set(
        self,
        i: IntentView,
        event: IntentEvent,
        now: float,
        *,
        data: dict[str, object],
        venue_ref: str | None = None,
        notes: list[Note] | None = None,
        settled_at: float | None = None,
    ) -> Finding:
        """Record what the venue says as a transition from the status the bot read; classified, unless the
        intent is still unknown after it (ambiguous) or after a person's change that won the race."""
        done = self.store.intents.transition(
            i.id,
            event,
            expected=i.status,
            ts=now,
            venue=i.venue,
            venue_ref=venue_ref,
            data=data,
            notes=notes or [],
            settled_at=settled_at,
        )
        if isinstance(done, Lost):  # a person (or another writer) changed it first: their record stands
            log.info("intent changed meanwhile", intent=i.id, on=event.value, now_is=str(done.actual))
            fresh = self.store.intents.get(i.id)
            if fresh is None:
                return Finding(i, classified=False)
            return Finding(fresh, classified=fresh.status is not IntentStatus.UNKNOWN)
        changed = dataclasses.replace(
            i,
            status=done.status,
            settled_at=settled_at if settled_at is not None else i.settled_at,
            acknowledged=i.acknowledged or venue_ref is not None,
        )
        unknown = done.status is IntentStatus.UNKNOWN
        return Finding(changed, classified=True, ambiguous=unknown)

    def _page(self, i: IntentView, why: str) -> Note:
        return note(
            "critical",
            "unknown_intent",
            f"{i.venue}: {i.kind.value} {i.amount} {i.asset} via {i.route} is ambiguous: {why}",
            desk=self.desk,
            venue=i.venue,
            asset=i.asset,
            detail=f"intent {i.id}; its route stays blocked. Check the venue's history for this client id, "
            f"then `marginbot resolve {i.id} --as NAME --outcome confirmed|failed --reason …`",
        )

    @staticmethod
    def _what(i: IntentView) -> str:
        return f"{i.kind.value} {i.amount} {i.asset} via {i.route}"

    def _absent(self, i: IntentView, now: float) -> Finding:
        """Not found at the venue: wait out its lag; then failed if never acknowledged, else ambiguous."""
        if now - i.created_at < self.lag:
            return Finding(i, classified=False)
        if i.acknowledged:
            return self._ambiguous(i, now, "the venue acknowledged it but no longer finds it")
        return self._set(
            i,
            IntentEvent.NOT_FOUND,
            now,
            data={"reconciled": "absent at the venue past its consistency lag", "lag_seconds": self.lag},
            notes=[
                note(
                    "warning",
                    "transfer_failed",
                    f"{i.venue}: {self._what(i)} never reached the venue",
                    desk=self.desk,
                    venue=i.venue,
                    asset=i.asset,
                    detail=f"intent {i.id}",
                )
            ],
        )

    def _found(self, i: IntentView, receipt: TransferReceipt, now: float) -> Finding | None:
        """The venue's record of the transfer, adopted when it is consistent with the intent."""
        if receipt.state is None:
            return self._ambiguous(i, now, "the venue's answer carries no status")
        if receipt.amount != i.amount:
            return self._ambiguous(i, now, f"the venue shows {receipt.amount}, the intent says {i.amount}")
        if receipt.state is TransferState.SETTLED:
            if i.status is IntentStatus.CONFIRMED:
                return None
            return self._set(
                i,
                IntentEvent.VENUE_CONFIRMED,
                now,
                data={"reconciled": "settled"},
                venue_ref=receipt.venue_ref,
                settled_at=receipt.settled_at if receipt.settled_at is not None else now,
                notes=[
                    note(
                        "info",
                        "transfer",
                        f"{i.venue}: {self._what(i)} confirmed",
                        desk=self.desk,
                        venue=i.venue,
                        asset=i.asset,
                    )
                ],
            )
        if receipt.state is TransferState.FAILED:
            return self._set(
                i,
                IntentEvent.VENUE_FAILED,
                now,
                data={"reconciled": "failed at the venue"},
                venue_ref=receipt.venue_ref,
                notes=[
                    note(
                        "critical",
                        "transfer_failed",
                        f"{i.venue}: {self._what(i)} failed at the venue",
                        desk=self.desk,
                        venue=i.venue,
                        asset=i.asset,
                    )
                ],
            )
        if i.status is IntentStatus.UNKNOWN:  # pending at the venue: an unknown one is adopted
            return self._set(
                i,
                IntentEvent.FOUND_PENDING,
                now,
                data={"reconciled": "found at the venue"},
                venue_ref=receipt.venue_ref,
            )
        return Finding(i, classified=True)

    def _ambiguous(self, i: IntentView, now: float, why: str) -> Finding:
        """Stays (or becomes) unknown, and a human is paged once per intent and process."""
        page = [] if i.id in self._paged else [self._page(i, why)]
        self._paged.add(i.id)
        if i.status is not IntentStatus.UNKNOWN:
            return self._set(
                i, IntentEvent.AMBIGUOUS, now, data={"reconciled": "ambiguous", "why": why}, notes=page
            )
        if page:
            self.store.audit.record(now, [("intent.ambiguous", i.venue, {"intent": i.id, "why": why})], page)
        return Finding(i, classified=True, ambiguous=True)
