"""The kill switch: persisted in the store, read every cycle, and set by people or by the bot failing closed.

    ctl:halt            the whole bot: no money moves anywhere
    ctl:halt:<venue>    one venue (set at start when its positions changed while the bot was down)
    ctl:intents         bumped when a person resolves an intent, so a running bot reloads its cache
    ctl:resume-hedge:<program>   a person asked to resume a hedge program stopped by its stop rule; the
                        bot applies it (audited) at its next cycle and clears the flag

A kill switch that cannot be read counts as on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.notify import note
from bot.store.repo import Store

PREFIX = "ctl:"
HALT = "ctl:halt"
INTENTS = "ctl:intents"
RESUME_HEDGE = "ctl:resume-hedge:"


def venue_key(venue: str) -> str:
    return f"{HALT}:{venue}"


@dataclass(frozen=True, slots=True)
class Controls:
    halted: bool
    halted_venues: frozenset[str]
    reasons: dict[str, str]  # flag key -> "by NAME: reason"
    intents_mark: str | None
    resume_hedges: tuple[tuple[str, str], ...] = ()  # (program, by) asked to resume


class KillSwitch:
    """Reads the control flags (re-reading when this process changed one, or after `poll_seconds`)."""

    def __init__(self, store: Store, *, poll_seconds: float, desk: str) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.desk = desk
        self._cached: Controls | None = None
        self._cached_version = -1
        self._read_at = float("-inf")

    def read(self, now: float) -> Controls:
        """The current controls; raises if the store cannot be read (the caller fails closed)."""
        fresh = self._cached is not None and self._cached_version == self.store.flags.version
        if fresh and now - self._read_at < self.poll_seconds and self._cached is not None:
            return self._cached
        flags = self.store.flags.with_prefix(PREFIX)
        reasons: dict[str, str] = {}
        for key, raw in flags.items():
            if key.startswith(HALT):
                info = json.loads(raw)
                reasons[key] = f"by {info.get('by')}: {info.get('reason')}"
        venues = frozenset(k[len(HALT) + 1 :] for k in reasons if k != HALT)
        resumes = tuple(
            (k[len(RESUME_HEDGE) :], str(json.loads(v).get("by")))
            for k, v in sorted(flags.items())
            if k.startswith(RESUME_HEDGE)
        )
        self._cached = Controls(HALT in reasons, venues, reasons, flags.get(INTENTS), resumes)
        self._cached_version = self.store.flags.version
        self._read_at = now
        return self._cached

    def halt(self, now: float, *, by: str, reason: str, venue: str | None = None) -> None:
        key = HALT if venue is None else venue_key(venue)
        where = "all venues" if venue is None else venue
        value = json.dumps({"by": by, "reason": reason, "at": now})
        self.store.flags.set(
            key,
            value,
            now,
            events=[("halt", venue, {"by": by, "reason": reason, "scope": where})],
            notes=[
                note(
                    "critical",
                    "halt",
                    f"HALTED ({where}) by {by}: {reason}",
                    desk=self.desk,
                    venue=venue,
                    detail="no money moves until `marginbot resume`",
                )
            ],
        )

    def resume(self, now: float, *, by: str, venue: str | None = None) -> bool:
        """Clear a halt; False when there was none to clear."""
        key = HALT if venue is None else venue_key(venue)
        if self.store.flags.get(key) is None:
            return False
        where = "all venues" if venue is None else venue
        self.store.flags.set(
            key,
            None,
            now,
            events=[("resume", venue, {"by": by, "scope": where})],
            notes=[note("warning", "resume", f"resumed ({where}) by {by}", desk=self.desk, venue=venue)],
        )
        return True

    def mark_intents_changed(self, now: float, *, by: str, intent_id: str) -> None:
        self.store.flags.set(INTENTS, json.dumps({"at": now, "by": by, "intent": intent_id}), now)

    def request_hedge_resume(self, now: float, *, program: str, by: str) -> None:
        self.store.flags.set(
            RESUME_HEDGE + program,
            json.dumps({"by": by, "at": now}),
            now,
            events=[("hedge.resume_requested", None, {"program": program, "by": by})],
        )

    def hedge_resumed(self, now: float, *, program: str) -> None:
        self.store.flags.set(RESUME_HEDGE + program, None, now)
