"""The simulator's fast path: most steps of a calm scenario change nothing but prices.

On such a step the simulator reads every paper venue's figures itself and asks the bot whether the cycle would
be quiet (`Bot.quiet_figures`); if so the step ends there, with the same figures, states, audit trail and
report as a full step. A step is taken the full way whenever the paper world would do anything of its own
(a transfer in flight, a funding charge at an 8 h boundary, a liquidation, an outage or stale window), when a
scenario event falls on it, or when the bot says it might not be quiet.
"""

from __future__ import annotations

from bot.core.margin import Figures, Position
from bot.venues.paper import FUNDING_PERIOD_SECONDS, PaperExchange


class FastForward:
    def __init__(self, exchange: PaperExchange) -> None:
        self.x = exchange
        self.books = list(exchange.books.items())

    def read(self, now: float) -> tuple[dict[str, Figures | None], dict[str, tuple[Position, ...]]] | None:
        """Every venue's figures and positions at `now`, when `PaperExchange.advance` would do nothing;
        else None (take the step the full way)."""
        x = self.x
        if x.pending or x.last_funding_period != int(now // FUNDING_PERIOD_SECONDS):
            return None
        figs: dict[str, Figures | None] = {}
        positions: dict[str, tuple[Position, ...]] = {}
        for name, book in self.books:
            if book.outage_until > now or book.stale_until > now:
                return None
            f = x.figures(book)
            if book.positions and f.mm_ratio >= 1.0:
                return None  # the full step liquidates it
            figs[name] = f
            positions[name] = book.positions
        return figs, positions
