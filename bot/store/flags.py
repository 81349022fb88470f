"""Flags: small persisted values by key — the kill switch and its requests (`ctl:…`, see
bot/engine/killswitch.py), what the store is for (`store:mode`, bot/store/purpose.py), and unaudited blobs kept
for convenience (`blob:…`, the paper exchange between runs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select

from bot.store.guards import integrity
from bot.store.rows import Event, Note
from bot.store.tables import flags

if TYPE_CHECKING:
    from bot.store.repo import Store


class FlagRepo:
    """`store.flags`. `version` is bumped by every flag this process sets, so cached readers know to re-read."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.version = 0

    def get(self, key: str) -> str | None:
        with self._store.reading() as conn:
            row = conn.execute(select(flags.c.value).where(flags.c.key == key)).first()
            return None if row is None else str(row.value)

    def with_prefix(self, prefix: str) -> dict[str, str]:
        with self._store.reading() as conn:
            q = select(flags.c.key, flags.c.value).where(flags.c.key.startswith(prefix, autoescape=True))
            return {r.key: str(r.value) for r in conn.execute(q)}

    def set(
        self,
        key: str,
        value: str | None,
        ts: float,
        *,
        events: Sequence[Event] = (),
        notes: Iterable[Note] = (),
    ) -> None:
        """Set (or, with None, clear) a persisted flag, with its audit records and notifications."""
        with integrity(f"flag {key}"), self._store.transaction() as tx:
            tx.conn.execute(delete(flags).where(flags.c.key == key))
            if value is not None:
                tx.conn.execute(insert(flags).values(key=key, value=value, updated_at=ts))
            tx.events(ts, events)
            tx.notes(ts, notes)
        self.version += 1

    def put_blob(self, key: str, value: str, ts: float) -> None:
        """Unaudited state kept for convenience (the paper exchange between runs); never money decisions."""
        with self._store.transaction() as tx:
            tx.conn.execute(delete(flags).where(flags.c.key == key))
            tx.conn.execute(insert(flags).values(key=key, value=value, updated_at=ts))
