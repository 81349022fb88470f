"""The per-venue state table."""

import pytest

from bot.core.fsm import TRANSITIONS, Trigger, VenueState, transition
from bot.errors import InvalidTransition


def test_every_state_of_the_spec_is_in_the_table() -> None:
    """healthy, watch, topping_up, awaiting_approval, critical, stale and halted all take part."""
    reached = set(TRANSITIONS.values()) | {before for before, _ in TRANSITIONS}
    assert reached == set(VenueState)


def test_a_pair_missing_from_the_table_raises_naming_it() -> None:
    """A halted venue ignores observations: the pair is refused with its names."""
    with pytest.raises(InvalidTransition, match="halted -> observed_ok"):
        transition(VenueState.HALTED, Trigger.OBSERVED_OK)


@pytest.mark.parametrize("state", list(VenueState))
def test_halt_is_reachable_from_every_state(state: VenueState) -> None:
    """The kill switch works whatever the venue is doing."""
    assert transition(state, Trigger.HALT) is VenueState.HALTED


def test_resume_makes_the_venue_prove_fresh_data_first() -> None:
    """After a resume nothing is trusted until the next fresh observation."""
    assert transition(VenueState.HALTED, Trigger.RESUME) is VenueState.STALE
    assert transition(VenueState.STALE, Trigger.OBSERVED_OK) is VenueState.HEALTHY


def test_observations_drive_the_states() -> None:
    """Each observation trigger leads to its state from any live state."""
    assert transition(VenueState.HEALTHY, Trigger.OBSERVED_ALERT) is VenueState.WATCH
    assert transition(VenueState.WATCH, Trigger.TRANSFER_IN_FLIGHT) is VenueState.TOPPING_UP
    assert transition(VenueState.TOPPING_UP, Trigger.APPROVAL_PENDING) is VenueState.AWAITING_APPROVAL
    assert transition(VenueState.AWAITING_APPROVAL, Trigger.OBSERVED_CRITICAL) is VenueState.CRITICAL
    assert transition(VenueState.CRITICAL, Trigger.DATA_STALE) is VenueState.STALE
