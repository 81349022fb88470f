"""Hedge ledgers: each program's book (JSON), committed with the order result that changed it (see
`OrderRepo.transition`) or alone with its audit records (a stop, a resume, an exposure change, funding)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select, update

from bot.store.rows import Event, HedgeRow, LedgerUpdate, Note
from bot.store.tables import hedges

if TYPE_CHECKING:
    from bot.store.repo import Store, Tx


class LedgerRepo:
    """`store.ledgers`: the `hedges` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def put(self, tx: Tx, u: LedgerUpdate, ts: float) -> None:
        """Replace a program's ledger inside `tx` (not audited here: the caller records why)."""
        tx.conn.execute(delete(hedges).where(hedges.c.name == u.name))
        tx.conn.execute(
            insert(hedges).values(
                name=u.name,
                state=u.state,
                net_delta=u.net_delta,
                target=u.target,
                band=u.band,
                loss=u.loss,
                stopped=u.stopped,
                stop_reason=u.stop_reason,
                updated_at=ts,
            )
        )

    def save(
        self,
        update_: LedgerUpdate,
        ts: float,
        *,
        events: Iterable[Event] = (),
        notes: Iterable[Note] = (),
    ) -> None:
        """Commit a hedge ledger with its audit records (a stop, a resume, an exposure change, funding)."""
        with self._store.transaction() as tx:
            self.put(tx, update_, ts)
            tx.events(ts, events)
            tx.notes(ts, notes)

    def save_summaries(self, rows: Iterable[tuple[str, float | None, float | None]], ts: float) -> None:
        """Telemetry for `status`: (name, net delta, running cost) per program; never audited."""
        with self._store.transaction() as tx:
            for name, net, loss in rows:
                tx.conn.execute(
                    update(hedges)
                    .where(hedges.c.name == name)
                    .values(net_delta=net, loss=loss, updated_at=ts)
                )

    def states(self) -> dict[str, str]:
        """Each program's ledger (JSON) by name."""
        with self._store.reading() as conn:
            return {r.name: r.state for r in conn.execute(select(hedges.c.name, hedges.c.state))}

    def rows(self) -> list[HedgeRow]:
        with self._store.reading() as conn:
            return [HedgeRow.of(r) for r in conn.execute(select(hedges).order_by(hedges.c.name))]
