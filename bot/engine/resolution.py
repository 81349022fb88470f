"""A person settles an intent or an order of unknown outcome by hand: the same path for the command line and tests.

The write is a lifecycle transition with compare-and-set on the status the person was shown (`row.status`): if
the bot (or another person) changed it meanwhile, the result is `Lost(actual)` and nothing is written. Once
applied, the running bot is told to reload its intents (and book an order's fill in its program's ledger).
"""

from __future__ import annotations

from decimal import Decimal

from bot.core.actions import IntentStatus
from bot.core.hedge import OrderStatus, OrderView
from bot.core.lifecycle import Applied, IntentEvent, Lost, OrderEvent
from bot.core.world import IntentView
from bot.engine.killswitch import KillSwitch
from bot.notify import note
from bot.store.repo import Store

INTENT_OUTCOMES = {"confirmed": IntentEvent.RESOLVED_CONFIRMED, "failed": IntentEvent.RESOLVED_FAILED}
_ORDER_EVENTS = {
    OrderStatus.FILLED: OrderEvent.RESOLVED_FILLED,
    OrderStatus.PARTIALLY_FILLED: OrderEvent.RESOLVED_PARTIALLY_FILLED,
    OrderStatus.FAILED: OrderEvent.RESOLVED_FAILED,
}


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
    done = store.transition_intent(
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
    done = store.transition_order(
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
