"""The kill switch from a person's side: halt (anyone may: stopping is always safe), resume and a stopped hedge
program's resume (an approver, proven by their secret; a refusal is audited). The flags themselves are
`bot.engine.killswitch`, which the running bot reads every cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.approvals import Refused
from bot.core.hedge_book import HedgeState
from bot.engine.killswitch import KillSwitch
from bot.service.identity import SecretSource, prove
from bot.settings import Settings
from bot.store.repo import Store


@dataclass(frozen=True, slots=True)
class Done:
    """A proven person's request, applied; `changed` False when there was nothing to do (not halted, not
    stopped)."""

    by: str
    changed: bool


def halt(s: Settings, store: Store, *, by: str, reason: str, venue: str | None, now: float) -> None:
    """Stop every money move (the whole bot, or one venue): persisted, audited, notified."""
    KillSwitch(store, poll_seconds=0, desk=s.bot.desk).halt(now, by=by, reason=reason, venue=venue)


def resume(
    s: Settings, store: Store, *, by: str, secret: SecretSource, venue: str | None, now: float
) -> Done | Refused:
    """Lift the kill switch (the whole bot, or one venue), for a proven approver."""
    who = prove(s, store, by, secret, action="resume", now=now)
    if isinstance(who, Refused):
        return who
    changed = KillSwitch(store, poll_seconds=0, desk=s.bot.desk).resume(now, by=who.name, venue=venue)
    return Done(who.name, changed)


def resume_hedge(
    s: Settings, store: Store, program: str, *, by: str, secret: SecretSource, now: float
) -> Done | Refused:
    """Ask the running bot to restart a hedge program its stop rule stopped (applied, audited, at its next
    cycle), for a proven approver."""
    who = prove(s, store, by, secret, action=f"resume-hedge {program}", now=now)
    if isinstance(who, Refused):
        return who
    stored = store.ledgers.states().get(program)
    if stored is None or not HedgeState.from_json(stored).stopped:
        return Done(who.name, changed=False)
    KillSwitch(store, poll_seconds=0, desk=s.bot.desk).request_hedge_resume(now, program=program, by=who.name)
    return Done(who.name, changed=True)
