"""A person settles an intent or an order of unknown outcome by hand, after checking the venue.

The person is proven first (a refusal is audited). The write is a lifecycle transition with compare-and-set on
the status the person was shown: if the bot (or another person) changed it meanwhile, the result is
`ChangedMeanwhile` and nothing is written. Once applied, the running bot is told to reload its intents (and
book an order's fill in its program's ledger).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from bot.core.actions import IntentStatus
from bot.core.approvals import Refused
from bot.core.hedge import OrderStatus, OrderView
from bot.core.lifecycle import Applied, IntentEvent, Lost, OrderEvent, resolvable
from bot.core.world import IntentView
from bot.engine.killswitch import KillSwitch
from bot.errors import BadInput
from bot.notify import note
from bot.service.identity import Proven, SecretSource, prove
from bot.settings import Settings
from bot.store.repo import Store

INTENT_OUTCOMES = {"confirmed": IntentEvent.RESOLVED_CONFIRMED, "failed": IntentEvent.RESOLVED_FAILED}
_ORDER_EVENTS = {
    OrderStatus.FILLED: OrderEvent.RESOLVED_FILLED,
    OrderStatus.PARTIALLY_FILLED: OrderEvent.RESOLVED_PARTIALLY_FILLED,
    OrderStatus.FAILED: OrderEvent.RESOLVED_FAILED,
}
Kind = Literal["intent", "order"]


@dataclass(frozen=True, slots=True)
class Resolved:
    kind: Kind
    id: str
    status: str  # as recorded now
    was: str


@dataclass(frozen=True, slots=True)
class NotOpen:
    """Nothing to resolve: the intent is not in flight or unknown, or the order not of unknown outcome."""

    kind: Kind
    id: str
    status: str


@dataclass(frozen=True, slots=True)
class ChangedMeanwhile:
    """A lost race: someone (the bot's reconciliation) recorded an outcome first; nothing was written."""

    kind: Kind
    id: str
    actual: str | None  # None: the record is gone


Resolution = Resolved | NotOpen | ChangedMeanwhile | Refused


def resolve(
    s: Settings,
    store: Store,
    record_id: str,
    *,
    by: str,
    secret: SecretSource,
    outcome: str,
    reason: str,
    filled: str | None = None,
    price: str | None = None,
    now: float,
) -> Resolution:
    """Resolve the intent or order `record_id` (a whole id) as `outcome`, for the approver `by`.

    Intents: confirmed or failed. Orders: failed (nothing traded) or filled, with the quantity and average
    price the venue shows. Malformed input is BadInput; a refused person, a record not open or a lost race is
    the result.
    """
    who = prove(s, store, by, secret, action=f"resolve {record_id}", now=now)
    if isinstance(who, Refused):
        return who
    row = store.intents.get(record_id)
    if row is None:
        order = store.orders.get(record_id)
        if order is not None:
            return _resolve_order(
                s, store, order, who=who, outcome=outcome, reason=reason, filled=filled, price=price, now=now
            )
    if outcome not in INTENT_OUTCOMES:
        raise BadInput(f"--outcome: expected confirmed or failed, got {outcome!r}")
    if filled is not None or price is not None:
        raise BadInput("--filled and --price are for orders; this is a transfer")
    if row is None:
        raise BadInput(f"ID: no intent or order {record_id!r}")
    if not resolvable(row.status):
        return NotOpen("intent", record_id, row.status.value)
    done = resolve_intent(store, row, outcome, by=who.name, reason=reason, now=now, desk=s.bot.desk)
    if isinstance(done, Lost):
        return ChangedMeanwhile("intent", record_id, None if done.actual is None else done.actual.value)
    return Resolved("intent", record_id, done.status.value, row.status.value)


def _resolve_order(
    s: Settings,
    store: Store,
    o: OrderView,
    *,
    who: Proven,
    outcome: str,
    reason: str,
    filled: str | None,
    price: str | None,
    now: float,
) -> Resolution:
    """An order of unknown outcome, closed by hand: failed (nothing traded) or filled (how much, at what)."""
    if o.status is not OrderStatus.UNKNOWN:
        return NotOpen("order", o.id, o.status.value)
    status, qty, avg = order_outcome(o, outcome, filled, price)
    done = resolve_order(
        store, o, status, filled=qty, avg_price=avg, by=who.name, reason=reason, now=now, desk=s.bot.desk
    )
    if isinstance(done, Lost):
        return ChangedMeanwhile("order", o.id, None if done.actual is None else done.actual.value)
    return Resolved("order", o.id, status.value, o.status.value)


def order_outcome(
    o: OrderView, outcome: str, filled: str | None, price: str | None
) -> tuple[OrderStatus, Decimal | None, float | None]:
    """The status, filled quantity and average price a person gives an order; BadInput when malformed."""
    if outcome == "failed":
        if filled is not None or price is not None:
            raise BadInput("--filled and --price go with --outcome filled")
        return OrderStatus.FAILED, None, None
    if outcome != "filled":
        raise BadInput(f"--outcome: expected filled or failed for an order, got {outcome!r}")
    try:
        qty = Decimal(filled or "")
        avg = float(Decimal(price or ""))
    except InvalidOperation:
        raise BadInput("--outcome filled needs --filled QTY and --price PRICE (plain decimals)") from None
    if not (qty.is_finite() and 0 < qty <= o.qty) or not (avg > 0 and avg < 1e12):
        raise BadInput(f"--filled must be in (0, {o.qty}] and --price positive")
    return (OrderStatus.FILLED if qty == o.qty else OrderStatus.PARTIALLY_FILLED), qty, avg


def resolve_intent(
    store: Store,
    row: IntentView,
    outcome: str,
    *,
    by: str,
    reason: str,
    now: float,
    desk: str,
) -> Applied[IntentStatus] | Lost[IntentStatus]:
    """Record `outcome` (confirmed | failed) for the intent `row`, as read and checked by the caller."""
    event = INTENT_OUTCOMES[outcome]
    what = f"{row.kind.value} {row.amount} {row.asset} via {row.route}"
    done = store.intents.transition(
        row.id,
        event,
        expected=row.status,
        ts=now,
        venue=row.venue,
        data={"resolved_by": by, "reason": reason, "by_hand": True, "was": row.status.value},
        notes=[
            note(
                "warning",
                "resolved",
                f"{row.venue}: {what} resolved {outcome} by {by}",
                desk=desk,
                venue=row.venue,
                asset=row.asset,
                detail=f"intent {row.id}: {reason}",
            )
        ],
    )
    if isinstance(done, Applied):
        KillSwitch(store, poll_seconds=0, desk=desk).mark_intents_changed(now, by=by, intent_id=row.id)
    return done


def resolve_order(
    store: Store,
    o: OrderView,
    status: OrderStatus,
    *,
    filled: Decimal | None,
    avg_price: float | None,
    by: str,
    reason: str,
    now: float,
    desk: str,
) -> Applied[OrderStatus] | Lost[OrderStatus]:
    """Record `status` (filled, partially_filled with `filled` at `avg_price`, or failed) for the order `o`."""
    done = store.orders.transition(
        o.id,
        _ORDER_EVENTS[status],
        expected=o.status,
        ts=now,
        venue=o.venue,
        filled=filled,
        avg_price=avg_price,
        fee=0.0 if filled is not None else None,
        data={"resolved_by": by, "reason": reason, "by_hand": True, "was": o.status.value},
        notes=[
            note(
                "warning",
                "resolved",
                f"{o.venue}: order {o.side} {o.qty} {o.symbol} resolved {status.value} by {by}",
                desk=desk,
                venue=o.venue,
                detail=f"order {o.id}: {reason}",
            )
        ],
    )
    if isinstance(done, Applied):
        KillSwitch(store, poll_seconds=0, desk=desk).mark_intents_changed(now, by=by, intent_id=o.id)
    return done
