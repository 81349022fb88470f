"""Noticing position changes, above all those that happened while the bot was down (a liquidation)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.actions import canonical_json
from bot.core.margin import Position
from bot.core.world import VenueSnapshot


def canonical(positions: tuple[Position, ...]) -> str:
    return canonical_json(sorted([p.symbol, p.qty] for p in positions))


@dataclass(frozen=True, slots=True)
class Change:
    venue: str
    before: str | None
    after: str
    while_down: bool  # first sight after a start, and different from what was last recorded


class PositionWatch:
    def __init__(self, known: dict[str, str]) -> None:
        self._known = dict(known)  # canonical positions per venue as last recorded
        self._unseen = set(known)  # venues not yet observed since start
        self._last: dict[str, tuple[Position, ...]] = {}

    def check(self, snap: VenueSnapshot) -> Change | None:
        """A change of positions since the last look, or None (cheap when the snapshot shares the same tuple)."""
        v = snap.venue
        if self._last.get(v) is snap.positions:
            return None
        self._last[v] = snap.positions
        now = canonical(snap.positions)
        before = self._known.get(v)
        first = v in self._unseen
        self._unseen.discard(v)
        if before == now:
            return None
        self._known[v] = now
        return Change(v, before, now, while_down=first and before is not None)
