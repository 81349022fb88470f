"""The per-venue state table: TRANSITIONS[(state, trigger)] -> state.

Every cycle `decide` turns what it observed into one trigger per venue; a trigger that leaves the state
unchanged is not a transition. A pair missing from the table raises `InvalidTransition`: a halted venue,
for instance, ignores observations until it is resumed.
"""

from __future__ import annotations

from enum import StrEnum

from bot.errors import InvalidTransition


class VenueState(StrEnum):
    HEALTHY = "healthy"
    WATCH = "watch"
    TOPPING_UP = "topping_up"
    AWAITING_APPROVAL = "awaiting_approval"
    CRITICAL = "critical"
    STALE = "stale"
    HALTED = "halted"


class Trigger(StrEnum):
    OBSERVED_OK = "observed_ok"  # fresh data, nothing in flight, under the alert levels
    OBSERVED_ALERT = "observed_alert"  # u ≥ alert_utilization or m ≥ alert_mm_ratio
    OBSERVED_CRITICAL = "observed_critical"  # m ≥ derisk_mm_ratio
    TRANSFER_IN_FLIGHT = "transfer_in_flight"  # a top-up to this venue is submitted and not yet settled
    APPROVAL_PENDING = "approval_pending"  # a top-up for this venue waits for approvers
    DATA_STALE = "data_stale"  # data older than max_data_age_seconds, or the venue did not answer
    HALT = "halt"
    RESUME = "resume"


_S = VenueState
_T = Trigger
_OBSERVATION_TARGET = {
    _T.OBSERVED_OK: _S.HEALTHY,
    _T.OBSERVED_ALERT: _S.WATCH,
    _T.OBSERVED_CRITICAL: _S.CRITICAL,
    _T.TRANSFER_IN_FLIGHT: _S.TOPPING_UP,
    _T.APPROVAL_PENDING: _S.AWAITING_APPROVAL,
    _T.DATA_STALE: _S.STALE,
}

TRANSITIONS: dict[tuple[VenueState, Trigger], VenueState] = {
    **{
        (state, trigger): target
        for state in _S
        if state is not _S.HALTED
        for trigger, target in _OBSERVATION_TARGET.items()
    },
    **{(state, _T.HALT): _S.HALTED for state in _S},
    (_S.HALTED, _T.RESUME): _S.STALE,  # after a resume nothing is trusted until the next fresh observation
}


def transition(state: VenueState, trigger: Trigger) -> VenueState:
    """The state after `trigger`, or `InvalidTransition` when the table has no such pair."""
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidTransition(f"{state.value} -> {trigger.value}") from None
