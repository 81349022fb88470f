"""Alert bookkeeping: raise once, repeat while standing (every `notify.repeat_minutes`), clear when gone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.decide import Alert
from bot.notify import note
from bot.store.rows import Note

_EXECUTOR_NOTIFIED = frozenset({"approval"})  # the executor's own notification carries the details

Event = tuple[str, str | None, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class RaisedAlert:
    ts: float
    alert: Alert


class AlertBook:
    def __init__(self, *, desk: str, repeat_seconds: float) -> None:
        self.desk = desk
        self.repeat_seconds = repeat_seconds
        self.active: dict[tuple[str, str, str | None], float] = {}
        self.log: list[RaisedAlert] = []

    def update(
        self, now: float, alerts: Sequence[Alert]
    ) -> tuple[list[Event], list[Note], tuple[Alert, ...]]:
        """The audit events and notifications to commit for this cycle's alerts, and the ones newly raised."""
        if not alerts and not self.active:
            return [], [], ()
        events: list[Event] = []
        notes: list[Note] = []
        raised: list[Alert] = []
        current: set[tuple[str, str, str | None]] = set()
        for a in alerts:
            key = (a.kind, a.venue, a.asset)
            if key in current:
                continue
            current.add(key)
            last = self.active.get(key)
            if last is not None and now - last < self.repeat_seconds:
                continue
            kind = "alert.raised" if last is None else "alert.repeated"
            events.append((kind, a.venue, {"kind": a.kind, "severity": a.severity, "message": a.message}))
            if a.kind not in _EXECUTOR_NOTIFIED:
                notes.append(
                    note(a.severity, a.kind, a.message, desk=self.desk, venue=a.venue, asset=a.asset)
                )
            self.active[key] = now
            if last is None:
                raised.append(a)
                self.log.append(RaisedAlert(now, a))
        for key in [k for k in self.active if k not in current]:
            del self.active[key]
            events.append(("alert.cleared", key[1], {"kind": key[0]}))
            if key[0] not in _EXECUTOR_NOTIFIED:
                notes.append(
                    note(
                        "info",
                        key[0],
                        f"{key[1]}: {key[0]} alert cleared",
                        desk=self.desk,
                        venue=key[1],
                        asset=key[2],
                    )
                )
        return events, notes, tuple(raised)
