"""The notification outbox: notifications are enqueued inside the write they belong to, and delivered later by
`bot.notify.OutboxWorker`, which never blocks money movement.

A store keeps only notifications at or above its severity filter; a simulation's are enqueued `simulated`,
a status no outbox ever picks up (see bot/store/purpose.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, insert, select, update

from bot.store.rows import Note, NotificationRow
from bot.store.tables import notifications

if TYPE_CHECKING:
    from bot.store.repo import Store

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}

_INSERT_NOTE = insert(notifications)  # built once: compiled once, then cached


def enqueue(conn: Connection, ts: float, notes: Iterable[Note], *, min_rank: int, status: str) -> None:
    """Insert `notes` at or above `min_rank` into the outbox, inside the caller's transaction."""
    rows = [
        {
            "created_at": ts,
            "severity": n.severity,
            "kind": n.kind,
            "venue": n.venue,
            "asset": n.asset,
            "title": n.title,
            "body": n.body,
            "status": status,
            "attempts": 0,
            "delivered": "[]",
            "next_attempt_at": ts,
        }
        for n in notes
        if SEVERITY_RANK[n.severity] >= min_rank
    ]
    if rows:
        conn.execute(_INSERT_NOTE, rows)


class OutboxRepo:
    """`store.outbox`: what is due for delivery, and what became of each attempt."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def due(self, now: float, limit: int = 50) -> list[NotificationRow]:
        """Pending notifications whose next attempt is due, oldest first."""
        q = (
            select(notifications)
            .where(notifications.c.status == "pending", notifications.c.next_attempt_at <= now)
            .order_by(notifications.c.id)
            .limit(limit)
        )
        with self._store.reading() as conn:
            return [NotificationRow.of(r) for r in conn.execute(q)]

    def sent(self, note_id: int) -> None:
        with self._store.transaction() as tx:
            tx.conn.execute(update(notifications).where(notifications.c.id == note_id).values(status="sent"))

    def retry(
        self,
        note_id: int,
        *,
        attempts: int,
        next_at: float,
        error: str,
        give_up: bool,
        delivered: Sequence[int] = (),
    ) -> None:
        """Record a failed delivery: when to try again, and which destinations already have the message."""
        with self._store.transaction() as tx:
            tx.conn.execute(
                update(notifications)
                .where(notifications.c.id == note_id)
                .values(
                    attempts=attempts,
                    next_attempt_at=next_at,
                    last_error=error[:500],
                    delivered=json.dumps(list(delivered)),
                    status="failed" if give_up else "pending",
                )
            )

    def count(self) -> int:
        with self._store.reading() as conn:
            return int(conn.execute(select(func.count()).select_from(notifications)).scalar_one())
