"""Noticing position changes, above all those that happened while the bot was down (a liquidation).

The watch keeps what each venue should show as far as the bot knows: the last observation, plus the bot's own
fills. A symbol with an order of unknown outcome is *held*: what the venue shows there may be that order's
fill, so its observations are not taken in until the order is classified. Then its fill (if any) is added to
what was known before it, and the next observation shows whatever else moved (a liquidation) as a change.
What the watch knows is what the store keeps, so a hold survives a restart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
        self._held: dict[str, frozenset[str]] = {}  # venue -> symbols with an order of unknown outcome

    def hold(self, held: Mapping[str, frozenset[str]]) -> None:
        """Hold these symbols (venue -> symbols with an order of unknown outcome) at what is known of them;
        a venue whose hold is released is compared afresh at its next observation."""
        new = {v: s for v, s in held.items() if s}
        for venue, symbols in self._held.items():
            if symbols - new.get(venue, frozenset()):
                self._last.pop(venue, None)
        self._held = new

    def seen_since(self, venue: str, ts: float) -> bool:
        """Whether the venue was observed after `ts` (its positions then may already include a fill)."""
        return self._checked_at.get(venue, float("-inf")) > ts

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

    def unchanged(self, snap: VenueSnapshot) -> bool:
        """The venue shows the very positions it showed last time (a quiet cycle's check: no comparison)."""
        return self._last.get(snap.venue) is snap.positions

    def holds(self, venue: str, positions: tuple[Position, ...]) -> bool:
        """`positions` are the very ones last seen at `venue`."""
        return self._last.get(venue) is positions

    def check(self, snap: VenueSnapshot) -> Change | None:
        """A change of positions since the last look, or None (cheap when the snapshot shares the same tuple)."""
        v = snap.venue
        self._checked_at[v] = snap.ts
        if self._last.get(v) is snap.positions:
            return None
        self._last[v] = snap.positions
        now = self._taken_in(v, snap.positions)
        before = self._known.get(v)
        first = v in self._unseen
        self._unseen.discard(v)
        if _same(before, now):
            return None
        self._known[v] = now
        return Change(v, before, now, while_down=first and before is not None)

    def _taken_in(self, venue: str, positions: tuple[Position, ...]) -> str:
        """The observed positions, with each held symbol kept at what is known of it (canonical JSON)."""
        held = self._held.get(venue)
        if not held:
            return canonical(positions)
        known = parse(self._known.get(venue))
        rows = [[p.symbol, p.qty] for p in positions if p.symbol not in held]
        rows += [[s, q] for s, q in known.items() if s in held]
        return canonical_json(sorted(rows))
