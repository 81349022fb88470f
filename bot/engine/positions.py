"""Noticing position changes, above all those that happened while the bot was down (a liquidation)."""

from __future__ import annotations

import json
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


def parse(text: str | None) -> dict[str, float]:
    """Canonical positions (JSON) as symbol -> qty."""
    return {} if text is None else {str(s): float(q) for s, q in json.loads(text)}


def _same(a: str | None, b: str) -> bool:
    """Equal position sets, up to float noise in the quantities."""
    if a == b:
        return True
    pa, pb = parse(a), parse(b)
    return pa.keys() == pb.keys() and all(abs(pa[k] - pb[k]) <= 1e-9 * max(1.0, abs(pb[k])) for k in pa)


class PositionWatch:
    def __init__(self, known: dict[str, str]) -> None:
        self._known = dict(known)  # canonical positions per venue as last recorded
        self._unseen = set(known)  # venues not yet observed since start
        self._last: dict[str, tuple[Position, ...]] = {}
        self._checked_at: dict[str, float] = {}  # when each venue was last compared

    def observed(self, venue: str) -> bool:
        """Whether this process has observed the venue at all (since its start)."""
        return venue in self._checked_at

    def seen_since(self, venue: str, ts: float) -> bool:
        """Whether the venue was observed after `ts` (its positions then may already include a fill)."""
        return self._checked_at.get(venue, float("-inf")) > ts

    def resync(self, venue: str) -> str | None:
        """Take what the venue showed at its last observation as what it should show (after adopting a fill
        that observation may already contain). Returns those canonical positions, if any."""
        last = self._last.get(venue)
        if last is None:
            self._known.pop(venue, None)
            return None
        self._known[venue] = canonical(last)
        return self._known[venue]

    def held(self, venue: str, symbol: str) -> float:
        """What the venue should show on `symbol`, as far as the bot knows."""
        return parse(self._known.get(venue)).get(symbol, 0.0)

    def expect(self, venue: str, symbol: str, qty: float) -> str:
        """Our own fill of `qty` changes what the venue should show; returns the new canonical positions."""
        held = parse(self._known.get(venue))
        new = held.get(symbol, 0.0) + qty
        if abs(new) <= 1e-12:
            held.pop(symbol, None)
        else:
            held[symbol] = new
        self._known[venue] = canonical_json(sorted([s, q] for s, q in held.items()))
        self._last.pop(venue, None)
        return self._known[venue]

    def check(self, snap: VenueSnapshot) -> Change | None:
        """A change of positions since the last look, or None (cheap when the snapshot shares the same tuple)."""
        v = snap.venue
        self._checked_at[v] = snap.ts
        if self._last.get(v) is snap.positions:
            return None
        self._last[v] = snap.positions
        now = canonical(snap.positions)
        before = self._known.get(v)
        first = v in self._unseen
        self._unseen.discard(v)
        if _same(before, now):
            return None
        self._known[v] = now
        return Change(v, before, now, while_down=first and before is not None)
