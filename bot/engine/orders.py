"""Orders through intent → audit → call → result, and their reconciliation.

    intent `approved` + audit, committed  -> place (client order id = intent id)
        filled / partially_filled (IOC: the rest cancelled) / failed (refused, unreachable, nothing filled)
        timeout, 5xx, an answer without a final status -> `unknown`: looked up, never re-sent
    reconcile: found -> adopt its fill; not found past the lag and never acknowledged -> failed;
               found without a final status -> stays unknown, paged once

A fill is committed together with the hedge program's new ledger (see `bot.store.orders`). Each result is a
transition of the order's lifecycle (`bot.core.lifecycle`) from the status the bot read; if a person resolved
the order meanwhile (a lost race), nothing of the bot's is recorded or counted, and the outcome says `lost`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import structlog

from bot.core.hedge import OrderAction, OrderStatus, OrderView
from bot.core.lifecycle import Lost, OrderEvent, order_after
from bot.errors import KeyRejected, OrderRefused, RateLimited, UnknownOutcome, VenueBanned, VenueUnavailable
from bot.notify import note
from bot.store.repo import Store
from bot.store.rows import FillEffects, LedgerUpdate
from bot.venues.base import OrderPort, OrderReceipt, OrderRequest

log = structlog.get_logger("marginbot.orders")

# called with (order, filled signed qty, avg price, fee); returns the ledgers and the venue's expected positions
# (canonical JSON) to commit with the result
OnFill = Callable[[OrderView, float, float, float], tuple[list[LedgerUpdate], str | None]]


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    order: OrderView
    status: OrderStatus
    filled: Decimal = Decimal(0)
    avg_price: float = 0.0
    classified: bool = True
    lost: bool = False  # a person resolved it first: `order` is as the store has it, nothing of ours counted


def view_of(a: OrderAction, now: float) -> OrderView:
    return OrderView(
        id=a.intent_id,
        program=a.program,
        venue=a.venue,
        symbol=a.symbol,
        side=a.side,
        qty=a.qty,
        reduce_only=a.reduce_only,
        reason=a.reason,
        status=OrderStatus.APPROVED,
        created_at=now,
        effect=a.effect,
    )


def request_of(o: OrderView) -> OrderRequest:
    return OrderRequest(o.id, o.venue, o.symbol, o.side, o.qty, o.reduce_only)


def event_of(o: OrderView, r: OrderReceipt) -> OrderEvent:
    """What the venue's answer says happened to the order."""
    if not r.done:
        return OrderEvent.OUTCOME_LOST
    if r.filled >= o.qty:
        return OrderEvent.FILLED
    if r.filled > 0:
        return OrderEvent.PARTIALLY_FILLED
    return OrderEvent.UNFILLED


def event_status(o: OrderView, event: OrderEvent) -> OrderStatus:
    """The status `event` leads to from the order's status (for messages written with the transition)."""
    return order_after(o.status, event)


class OrderDesk:
    def __init__(self, store: Store, port: OrderPort, *, desk: str, lag_seconds: float) -> None:
        self.store = store
        self.port = port
        self.desk = desk
        self.lag = lag_seconds
        self._paged: set[str] = set()

    def _what(self, o: OrderView) -> str:
        ro = " reduce-only" if o.reduce_only else ""
        who = f"hedge {o.program}" if o.program else "de-risk"
        return f"{who}: {o.side} {o.qty} {o.symbol}{ro} ({o.reason.value})"

    def _lost(self, o: OrderView, event: OrderEvent, lost: Lost[OrderStatus]) -> OrderOutcome:
        """A person (or another writer) changed the order first: their record stands, the bot takes it."""
        log.info("order changed meanwhile", order=o.id, on=event.value, now_is=str(lost.actual))
        fresh = self.store.orders.get(o.id)
        seen = dataclasses.replace(o, status=fresh.status) if fresh is not None else o
        status = seen.status
        return OrderOutcome(seen, status, classified=status is not OrderStatus.UNKNOWN, lost=True)

    def _adopt(self, o: OrderView, r: OrderReceipt, now: float, on_fill: OnFill, how: str) -> OrderOutcome:
        event = event_of(o, r)
        signed = float(r.filled) if o.side == "buy" else -float(r.filled)
        # the fill is counted (ledgers, expected positions) only once the result is recorded
        effects: FillEffects | None = None
        if r.filled > 0 and r.done:
            effects = lambda: on_fill(o, signed, r.avg_price, r.fee)  # noqa: E731 (called by the store)
        severity = "info" if event is OrderEvent.FILLED else "warning"
        if event is OrderEvent.OUTCOME_LOST:
            severity = "critical"
        done = self.store.orders.transition(
            o.id,
            event,
            expected=o.status,
            ts=now,
            venue=o.venue,
            filled=r.filled,
            avg_price=r.avg_price,
            fee=r.fee,
            venue_ref=r.venue_ref,
            effects=effects,
            data={"how": how},
            notes=[
                note(
                    severity,
                    "order",
                    f"{o.venue}: {self._what(o)} {event_status(o, event)}: {r.filled} at {r.avg_price:,.2f}",
                    desk=self.desk,
                    venue=o.venue,
                    detail=f"order {o.id} ({how}); venue ref {r.venue_ref}; fee {r.fee:,.2f}"
                    + (f"; projected {o.effect}" if o.effect else ""),
                )
            ],
        )
        if isinstance(done, Lost):
            return self._lost(o, event, done)
        status = done.status
        # the venue answered with its reference: an order it acknowledged is never failed for not being found
        seen = dataclasses.replace(o, status=status, acknowledged=True)
        return OrderOutcome(seen, status, r.filled, r.avg_price, classified=status is not OrderStatus.UNKNOWN)

    def _fail(self, o: OrderView, now: float, event: OrderEvent, severity: str, why: str) -> OrderOutcome:
        status = event_status(o, event)
        done = self.store.orders.transition(
            o.id,
            event,
            expected=o.status,
            ts=now,
            venue=o.venue,
            error=why,
            notes=[
                note(
                    severity,
                    "order" if status is OrderStatus.FAILED else "unknown_order",
                    f"{o.venue}: {self._what(o)} {status.value}",
                    desk=self.desk,
                    venue=o.venue,
                    detail=f"order {o.id}: {why}" + (f"; projected {o.effect}" if o.effect else ""),
                )
            ],
        )
        if isinstance(done, Lost):
            return self._lost(o, event, done)
        seen = dataclasses.replace(o, status=done.status)
        return OrderOutcome(seen, done.status, classified=done.status is not OrderStatus.UNKNOWN)

    async def execute(self, a: OrderAction, now: float, on_fill: OnFill) -> OrderOutcome | None:
        """Commit the order intent, then place it; None when the same intent was already recorded."""
        if not self.store.orders.create(a, now):
            return None
        o = view_of(a, now)
        try:
            receipt = await self.port.place(request_of(o))
        except OrderRefused as e:
            return self._fail(o, now, OrderEvent.REFUSED, "warning", f"refused: {e}")
        except (VenueUnavailable, RateLimited, VenueBanned, KeyRejected) as e:  # refused before the book
            return self._fail(o, now, OrderEvent.REFUSED, "warning", f"not sent: {e}")
        except Exception as e:  # UnknownOutcome or anything unexpected: it may have traded; never re-send
            if not isinstance(e, UnknownOutcome):
                log.error("unexpected error from the order call", order=o.id, error=type(e).__name__)
            return self._fail(
                o, now, OrderEvent.OUTCOME_LOST, "critical", f"{type(e).__name__}: {e}; it will be looked up"
            )
        return self._adopt(o, receipt, now, on_fill, "placed")

    async def reconcile(self, o: OrderView, now: float, on_fill: OnFill) -> OrderOutcome | None:
        """Look an open order up at the venue; None when nothing can be said yet."""
        try:
            found = await self.port.lookup_order(request_of(o))
        except Exception as e:  # a lookup that fails changes nothing; try again next cycle
            log.debug("order lookup failed", order=o.id, error=type(e).__name__)
            return None
        if found is None:
            if now - o.created_at < self.lag:
                return None
            if o.acknowledged:
                return self._page(o, now, "acknowledged by the venue, now not found")
            return self._fail(
                o,
                now,
                OrderEvent.NOT_FOUND,
                "warning",
                f"not found at the venue {self.lag:.0f}s after it was sent",
            )
        if not found.done:
            return self._page(o, now, "the venue shows it without a final status")
        return self._adopt(o, found, now, on_fill, "reconciled")

    def _page(self, o: OrderView, now: float, why: str) -> OrderOutcome | None:
        if o.id in self._paged:
            return None
        self._paged.add(o.id)
        self.store.audit.record(
            now,
            [("order.ambiguous", o.venue, {"id": o.id, "why": why})],
            [
                note(
                    "critical",
                    "unknown_order",
                    f"{o.venue}: {self._what(o)} is ambiguous: {why}",
                    desk=self.desk,
                    venue=o.venue,
                    detail=f"order {o.id}; the program it belongs to holds still until a person looks",
                )
            ],
        )
        return None
