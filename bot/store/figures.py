"""Venues as the store knows them: each one's state (changed through `bot/core/fsm.py`, every change audited),
its last figures (telemetry for `marginbot status`, not audited) and its last positions seen (to notice what
changed while the bot was down)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, insert, select, update

from bot.store.guards import finite
from bot.store.rows import Event, Note, VenueFigures, VenueStatusRow
from bot.store.tables import venue_status

if TYPE_CHECKING:
    from bot.store.repo import Store, Tx

# statements built once: parameters are passed at execution, so each compiles once and is cached
_UPDATE_STATE = update(venue_status).where(venue_status.c.venue == bindparam("v_venue"))
_INSERT_STATE = insert(venue_status)


class FigureRepo:
    """`store.figures`: the `venue_status` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def states(self) -> dict[str, str]:
        """Each venue's last recorded state."""
        with self._store.reading() as conn:
            return {
                r.venue: r.state for r in conn.execute(select(venue_status.c.venue, venue_status.c.state))
            }

    def record_transitions(
        self,
        ts: float,
        changes: Sequence[tuple[str, str, str, str]],
        notes: Iterable[Note] = (),
        *,
        events: Sequence[Event] = (),
    ) -> None:
        """Persist venue state changes (venue, before, trigger, after), one audit record each, with other events."""
        with self._store.transaction() as tx:
            tx.events(ts, events)
            for venue, before, trigger, after in changes:
                tx.audit(ts, "venue.transition", {"from": before, "trigger": trigger, "to": after}, venue)
                params = {"v_venue": venue, "state": after, "since": ts, "updated_at": ts}
                if not tx.conn.execute(_UPDATE_STATE, params).rowcount:
                    tx.conn.execute(
                        _INSERT_STATE, {"venue": venue, "state": after, "since": ts, "updated_at": ts}
                    )
            tx.notes(ts, notes)

    def save(self, rows: Sequence[VenueFigures], ts: float) -> None:
        """Telemetry for `marginbot status`: not audited (the decisions built on it are)."""
        with self._store.transaction() as tx:
            for r in rows:
                values = {
                    "state": r.state,
                    "observed_at": r.observed_at,
                    "equity": finite(r.equity),
                    "im": finite(r.im),
                    "mm": finite(r.mm),
                    "utilization": finite(r.utilization),
                    "mm_ratio": finite(r.mm_ratio),
                    "updated_at": ts,
                }
                done = tx.conn.execute(
                    update(venue_status).where(venue_status.c.venue == r.venue).values(**values)
                ).rowcount
                if not done:
                    tx.conn.execute(insert(venue_status).values(venue=r.venue, since=r.since, **values))

    def rows(self) -> list[VenueStatusRow]:
        """Every venue's row, by name."""
        with self._store.reading() as conn:
            q = select(venue_status).order_by(venue_status.c.venue)
            return [VenueStatusRow.of(r) for r in conn.execute(q)]

    def positions(self) -> dict[str, str]:
        """The positions last seen per venue (canonical JSON), to notice what changed while the bot was down."""
        with self._store.reading() as conn:
            q = select(venue_status.c.venue, venue_status.c.positions).where(
                venue_status.c.positions.is_not(None)
            )
            return {r.venue: str(r.positions) for r in conn.execute(q)}

    def save_positions(self, venue: str, positions: str, ts: float, *, changed_from: str | None) -> None:
        """Remember a venue's positions; a change seen while running is an audit record."""
        with self._store.transaction() as tx:
            done = tx.conn.execute(
                update(venue_status)
                .where(venue_status.c.venue == venue)
                .values(positions=positions, updated_at=ts)
            ).rowcount
            if not done:
                tx.conn.execute(
                    insert(venue_status).values(
                        venue=venue, state="stale", since=ts, positions=positions, updated_at=ts
                    )
                )
            if changed_from is not None:
                tx.audit(ts, "venue.positions_changed", {"from": changed_from, "to": positions}, venue)

    def expect_positions(self, tx: Tx, venue: str, positions: str, ts: float) -> None:
        """Inside `tx` (an order's result): what the venue should now show, so a restart does not take the
        bot's own fill for a surprise."""
        done = tx.conn.execute(
            update(venue_status).where(venue_status.c.venue == venue).values(positions=positions)
        ).rowcount
        if not done:
            tx.conn.execute(
                insert(venue_status).values(
                    venue=venue, state="stale", since=ts, positions=positions, updated_at=ts
                )
            )
