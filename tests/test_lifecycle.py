"""The intent and order lifecycle tables: every allowed pair, a few forbidden ones, and terminal statuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.actions import OPEN_STATUSES, IntentStatus
from bot.core.hedge import OPEN_ORDER_STATUSES, OrderStatus
from bot.core.lifecycle import (
    INTENT_TRANSITIONS,
    ORDER_TRANSITIONS,
    RESOLUTIONS,
    IntentEvent,
    OrderEvent,
    intent_after,
    intent_terminal,
    order_after,
    order_terminal,
)
from bot.errors import InvalidTransition

IS, IE = IntentStatus, IntentEvent
OS, OE = OrderStatus, OrderEvent

# the tables written out by hand, as SPEC's lifecycle and today's call sites read
INTENT_PAIRS = {
    (IS.PROPOSED, IE.REQUESTED_APPROVAL): IS.PENDING_APPROVAL,
    (IS.PROPOSED, IE.ALLOWED): IS.APPROVED,
    (IS.PENDING_APPROVAL, IE.APPROVED): IS.APPROVED,
    (IS.PENDING_APPROVAL, IE.REJECTED): IS.REJECTED,
    (IS.PENDING_APPROVAL, IE.EXPIRED): IS.EXPIRED,
    (IS.PENDING_APPROVAL, IE.WITHDRAWN): IS.EXPIRED,
    (IS.APPROVED, IE.SENT): IS.SUBMITTED,
    (IS.APPROVED, IE.REFUSED): IS.FAILED,
    (IS.APPROVED, IE.OUTCOME_LOST): IS.UNKNOWN,
    (IS.APPROVED, IE.RESTART_UNKNOWN): IS.UNKNOWN,
    (IS.APPROVED, IE.RESOLVED_CONFIRMED): IS.CONFIRMED,
    (IS.APPROVED, IE.RESOLVED_FAILED): IS.FAILED,
    (IS.SUBMITTED, IE.VENUE_CONFIRMED): IS.CONFIRMED,
    (IS.SUBMITTED, IE.VENUE_FAILED): IS.FAILED,
    (IS.SUBMITTED, IE.NOT_FOUND): IS.FAILED,
    (IS.SUBMITTED, IE.AMBIGUOUS): IS.UNKNOWN,
    (IS.SUBMITTED, IE.RESOLVED_CONFIRMED): IS.CONFIRMED,
    (IS.SUBMITTED, IE.RESOLVED_FAILED): IS.FAILED,
    (IS.UNKNOWN, IE.VENUE_CONFIRMED): IS.CONFIRMED,
    (IS.UNKNOWN, IE.VENUE_FAILED): IS.FAILED,
    (IS.UNKNOWN, IE.NOT_FOUND): IS.FAILED,
    (IS.UNKNOWN, IE.FOUND_PENDING): IS.SUBMITTED,
    (IS.UNKNOWN, IE.RESOLVED_CONFIRMED): IS.CONFIRMED,
    (IS.UNKNOWN, IE.RESOLVED_FAILED): IS.FAILED,
}
ORDER_PAIRS = {
    (OS.APPROVED, OE.FILLED): OS.FILLED,
    (OS.APPROVED, OE.PARTIALLY_FILLED): OS.PARTIALLY_FILLED,
    (OS.APPROVED, OE.UNFILLED): OS.FAILED,
    (OS.APPROVED, OE.REFUSED): OS.FAILED,
    (OS.APPROVED, OE.OUTCOME_LOST): OS.UNKNOWN,
    (OS.APPROVED, OE.RESTART_UNKNOWN): OS.UNKNOWN,
    (OS.UNKNOWN, OE.FILLED): OS.FILLED,
    (OS.UNKNOWN, OE.PARTIALLY_FILLED): OS.PARTIALLY_FILLED,
    (OS.UNKNOWN, OE.UNFILLED): OS.FAILED,
    (OS.UNKNOWN, OE.NOT_FOUND): OS.FAILED,
    (OS.UNKNOWN, OE.RESOLVED_FILLED): OS.FILLED,
    (OS.UNKNOWN, OE.RESOLVED_PARTIALLY_FILLED): OS.PARTIALLY_FILLED,
    (OS.UNKNOWN, OE.RESOLVED_FAILED): OS.FAILED,
}


def test_the_tables_are_exactly_the_written_lifecycles() -> None:
    """Nothing more and nothing less than the pairs written out above is allowed."""
    assert INTENT_TRANSITIONS == INTENT_PAIRS
    assert ORDER_TRANSITIONS == ORDER_PAIRS


@pytest.mark.parametrize(("pair", "after"), INTENT_PAIRS.items(), ids=lambda p: "-".join(map(str, p)))
def test_every_allowed_intent_pair(pair: tuple[IntentStatus, IntentEvent], after: IntentStatus) -> None:
    """Each allowed (status, event) gives its status."""
    assert intent_after(*pair) is after


@pytest.mark.parametrize(("pair", "after"), ORDER_PAIRS.items(), ids=lambda p: "-".join(map(str, p)))
def test_every_allowed_order_pair(pair: tuple[OrderStatus, OrderEvent], after: OrderStatus) -> None:
    """Each allowed (status, event) gives its status."""
    assert order_after(*pair) is after


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (IS.CONFIRMED, IE.SENT),  # a stale send result over a settled move
        (IS.CONFIRMED, IE.FOUND_PENDING),
        (IS.FAILED, IE.VENUE_CONFIRMED),  # the bot never reopens a failed intent
        (IS.FAILED, IE.FOUND_PENDING),  # the race of issue 13: a person's `failed`, then the bot's lookup
        (IS.FAILED, IE.RESOLVED_CONFIRMED),  # a person cannot re-resolve either
        (IS.PENDING_APPROVAL, IE.SENT),  # nothing is sent before approval
        (IS.PENDING_APPROVAL, IE.RESOLVED_FAILED),  # a request is rejected, not resolved
        (IS.EXPIRED, IE.APPROVED),  # a late quorum
        (IS.REJECTED, IE.APPROVED),
        (IS.SUBMITTED, IE.SENT),
        (IS.UNKNOWN, IE.OUTCOME_LOST),
    ],
)
def test_forbidden_intent_pairs_raise(status: IntentStatus, event: IntentEvent) -> None:
    """A pair the table lacks is InvalidTransition, naming both."""
    with pytest.raises(InvalidTransition, match=f"{status.value} -> {event.value}"):
        intent_after(status, event)


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (OS.FILLED, OE.FILLED),
        (OS.FAILED, OE.FILLED),  # a person's `failed`, then the bot's lookup
        (OS.FAILED, OE.RESOLVED_FILLED),
        (OS.APPROVED, OE.RESOLVED_FAILED),  # only an order of unknown outcome is resolved by hand
        (OS.UNKNOWN, OE.OUTCOME_LOST),
        (OS.PARTIALLY_FILLED, OE.NOT_FOUND),
    ],
)
def test_forbidden_order_pairs_raise(status: OrderStatus, event: OrderEvent) -> None:
    """A pair the table lacks is InvalidTransition, naming both."""
    with pytest.raises(InvalidTransition, match=f"{status.value} -> {event.value}"):
        order_after(status, event)


def test_terminal_statuses_are_the_closed_ones() -> None:
    """Terminal is exactly not open: every open status has a way on, every closed one none."""
    assert {s for s in IntentStatus if intent_terminal(s)} == set(IntentStatus) - OPEN_STATUSES
    assert {s for s in OrderStatus if order_terminal(s)} == set(OrderStatus) - OPEN_ORDER_STATUSES


def test_a_resolution_leads_to_a_terminal_status() -> None:
    """A person's decision closes an intent or an order for good."""
    for (_, event), after in [*INTENT_TRANSITIONS.items(), *ORDER_TRANSITIONS.items()]:
        if event in RESOLUTIONS:
            assert intent_terminal(after) if isinstance(after, IntentStatus) else order_terminal(after)


@given(st.sampled_from(sorted(IntentStatus)), st.lists(st.sampled_from(sorted(IntentEvent)), max_size=12))
def test_no_way_out_of_a_terminal_intent(start: IntentStatus, events: list[IntentEvent]) -> None:
    """Whatever events follow, an intent that reached a terminal status stays there: every event raises."""
    status = start
    for event in events:
        if intent_terminal(status):
            with pytest.raises(InvalidTransition):
                intent_after(status, event)
            continue
        try:
            status = intent_after(status, event)
        except InvalidTransition:
            continue
    if intent_terminal(start):
        assert status is start


@given(st.sampled_from(sorted(OrderStatus)), st.lists(st.sampled_from(sorted(OrderEvent)), max_size=12))
def test_no_way_out_of_a_terminal_order(start: OrderStatus, events: list[OrderEvent]) -> None:
    """Whatever events follow, an order that reached a terminal status stays there: every event raises."""
    status = start
    for event in events:
        if order_terminal(status):
            with pytest.raises(InvalidTransition):
                order_after(status, event)
            continue
        try:
            status = order_after(status, event)
        except InvalidTransition:
            continue
    if order_terminal(start):
        assert status is start
