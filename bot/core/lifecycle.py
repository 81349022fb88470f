"""The intent and order lifecycles as tables: INTENT_TRANSITIONS[(status, event)] -> status, and the same for orders.

Events are named for what happened. The store applies a transition with compare-and-set on the status the caller
read (`IntentRepo.transition`, `OrderRepo.transition`): a row that no longer has that status is a lost race,
returned as `Lost(actual)`, never overwritten. A pair missing from a table raises `InvalidTransition`.

Intents (transfers), from SPEC's `proposed → pending_approval → approved | rejected | expired → submitted →
confirmed | failed | unknown → (reconciled to) confirmed | failed`:

    proposed          requested_approval → pending_approval   allowed → approved (within automatic limits)
    pending_approval  approved → approved   rejected → rejected   expired → expired   withdrawn → expired
    approved          sent → submitted   refused → failed   outcome_lost → unknown   restart_unknown → unknown
    submitted         venue_confirmed → confirmed   venue_failed | not_found → failed   ambiguous → unknown
    unknown           venue_confirmed → confirmed   venue_failed | not_found → failed   found_pending → submitted
    approved, submitted, unknown   resolved_confirmed → confirmed   resolved_failed → failed   (a person, by hand)
    rejected, expired, confirmed, failed: terminal

Orders (market, immediate-or-cancel), recorded `approved` before they are placed:

    approved          filled | partially_filled | unfilled | refused | outcome_lost | restart_unknown
    unknown           filled | partially_filled | unfilled | not_found
                      | resolved_filled | resolved_partially_filled | resolved_failed   (a person, by hand)
    filled, partially_filled, failed: terminal
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from bot.core.actions import IntentStatus
from bot.core.hedge import OrderStatus
from bot.errors import InvalidTransition


class IntentEvent(StrEnum):
    REQUESTED_APPROVAL = "requested_approval"  # the rules want people: recorded with its approval request
    ALLOWED = "allowed"  # within the automatic limits (or break-glass): recorded ready to send
    APPROVED = "approved"  # the quorum of approvers was reached
    REJECTED = "rejected"  # an approver rejected it
    EXPIRED = "expired"  # nobody decided in time
    WITHDRAWN = "withdrawn"  # the need disappeared before anyone decided
    SENT = "sent"  # the venue accepted the request
    REFUSED = "refused"  # the venue refused it, or could not be reached: nothing moved
    OUTCOME_LOST = "outcome_lost"  # timeout, 5xx, an answer without a status: it may have happened
    RESTART_UNKNOWN = "restart_unknown"  # found `approved` (maybe sent) at start: the bot died mid-send
    VENUE_CONFIRMED = "venue_confirmed"  # the venue's record shows it settled
    VENUE_FAILED = "venue_failed"  # the venue's record shows it failed
    NOT_FOUND = "not_found"  # absent at the venue past its consistency lag, never acknowledged
    FOUND_PENDING = "found_pending"  # the venue shows it, not settled yet (an unknown one is adopted)
    AMBIGUOUS = "ambiguous"  # the venue's record contradicts the intent: a person must look
    RESOLVED_CONFIRMED = "resolved_confirmed"  # a person checked the venue: it happened
    RESOLVED_FAILED = "resolved_failed"  # a person checked the venue: it did not


class OrderEvent(StrEnum):
    FILLED = "filled"  # the whole quantity traded
    PARTIALLY_FILLED = "partially_filled"  # part traded, the venue cancelled the rest (IOC)
    UNFILLED = "unfilled"  # the venue closed it with nothing traded
    REFUSED = "refused"  # the venue refused it, or could not be reached: nothing traded
    OUTCOME_LOST = "outcome_lost"  # timeout, 5xx, an answer without a final status: it may have traded
    RESTART_UNKNOWN = "restart_unknown"  # found `approved` at start: the bot died before the answer
    NOT_FOUND = "not_found"  # absent at the venue past its consistency lag, never acknowledged
    RESOLVED_FILLED = "resolved_filled"  # a person checked the venue: all of it traded
    RESOLVED_PARTIALLY_FILLED = "resolved_partially_filled"  # a person checked the venue: part of it traded
    RESOLVED_FAILED = "resolved_failed"  # a person checked the venue: nothing traded


_I = IntentStatus
_IE = IntentEvent
_IN_FLIGHT = (_I.SUBMITTED, _I.UNKNOWN)
_BY_HAND = {_IE.RESOLVED_CONFIRMED: _I.CONFIRMED, _IE.RESOLVED_FAILED: _I.FAILED}

INTENT_TRANSITIONS: dict[tuple[IntentStatus, IntentEvent], IntentStatus] = {
    (_I.PROPOSED, _IE.REQUESTED_APPROVAL): _I.PENDING_APPROVAL,
    (_I.PROPOSED, _IE.ALLOWED): _I.APPROVED,
    (_I.PENDING_APPROVAL, _IE.APPROVED): _I.APPROVED,
    (_I.PENDING_APPROVAL, _IE.REJECTED): _I.REJECTED,
    (_I.PENDING_APPROVAL, _IE.EXPIRED): _I.EXPIRED,
    (_I.PENDING_APPROVAL, _IE.WITHDRAWN): _I.EXPIRED,
    (_I.APPROVED, _IE.SENT): _I.SUBMITTED,
    (_I.APPROVED, _IE.REFUSED): _I.FAILED,
    (_I.APPROVED, _IE.OUTCOME_LOST): _I.UNKNOWN,
    (_I.APPROVED, _IE.RESTART_UNKNOWN): _I.UNKNOWN,
    **{(s, _IE.VENUE_CONFIRMED): _I.CONFIRMED for s in _IN_FLIGHT},
    **{(s, _IE.VENUE_FAILED): _I.FAILED for s in _IN_FLIGHT},
    **{(s, _IE.NOT_FOUND): _I.FAILED for s in _IN_FLIGHT},
    (_I.SUBMITTED, _IE.AMBIGUOUS): _I.UNKNOWN,
    (_I.UNKNOWN, _IE.FOUND_PENDING): _I.SUBMITTED,
    **{(s, e): to for s in (_I.APPROVED, *_IN_FLIGHT) for e, to in _BY_HAND.items()},
}

_O = OrderStatus
_OE = OrderEvent
_VENUE_ANSWER = {_OE.FILLED: _O.FILLED, _OE.PARTIALLY_FILLED: _O.PARTIALLY_FILLED, _OE.UNFILLED: _O.FAILED}

ORDER_TRANSITIONS: dict[tuple[OrderStatus, OrderEvent], OrderStatus] = {
    **{(s, e): to for s in (_O.APPROVED, _O.UNKNOWN) for e, to in _VENUE_ANSWER.items()},
    (_O.APPROVED, _OE.REFUSED): _O.FAILED,
    (_O.APPROVED, _OE.OUTCOME_LOST): _O.UNKNOWN,
    (_O.APPROVED, _OE.RESTART_UNKNOWN): _O.UNKNOWN,
    (_O.UNKNOWN, _OE.NOT_FOUND): _O.FAILED,
    (_O.UNKNOWN, _OE.RESOLVED_FILLED): _O.FILLED,
    (_O.UNKNOWN, _OE.RESOLVED_PARTIALLY_FILLED): _O.PARTIALLY_FILLED,
    (_O.UNKNOWN, _OE.RESOLVED_FAILED): _O.FAILED,
}

# what a person settles by hand: one resolution per intent or order
RESOLUTIONS: frozenset[IntentEvent | OrderEvent] = frozenset(
    {*_BY_HAND, _OE.RESOLVED_FILLED, _OE.RESOLVED_PARTIALLY_FILLED, _OE.RESOLVED_FAILED}
)


def intent_after(status: IntentStatus, event: IntentEvent) -> IntentStatus:
    """The intent's status after `event`, or `InvalidTransition` when the table has no such pair."""
    try:
        return INTENT_TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransition(f"intent {status.value} -> {event.value}") from None


def order_after(status: OrderStatus, event: OrderEvent) -> OrderStatus:
    """The order's status after `event`, or `InvalidTransition` when the table has no such pair."""
    try:
        return ORDER_TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransition(f"order {status.value} -> {event.value}") from None


def resolvable(status: IntentStatus) -> bool:
    """A person may settle an intent in this status by hand (`marginbot resolve`)."""
    return (status, IntentEvent.RESOLVED_FAILED) in INTENT_TRANSITIONS


def intent_terminal(status: IntentStatus) -> bool:
    return not any(s is status for s, _ in INTENT_TRANSITIONS)


def order_terminal(status: OrderStatus) -> bool:
    return not any(s is status for s, _ in ORDER_TRANSITIONS)


S = TypeVar("S", IntentStatus, OrderStatus)


@dataclass(frozen=True, slots=True)
class Applied(Generic[S]):
    """The transition was committed: the row went from the expected status to `status`."""

    status: S


@dataclass(frozen=True, slots=True)
class Lost(Generic[S]):
    """A lost race: the row no longer had the expected status (someone else changed it first); nothing was
    written. `actual` is what it has now (None: no such row)."""

    actual: S | None
