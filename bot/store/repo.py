"""The store: one unit of work over the database, and a repository per aggregate.

    store.intents    transfer intents (bot/store/intents.py)
    store.approvals  their approval requests and votes (bot/store/approvals.py)
    store.orders     order intents (bot/store/orders.py)
    store.ledgers    hedge programs' ledgers (bot/store/ledgers.py)
    store.figures    venue states, last figures, last positions (bot/store/figures.py)
    store.outbox     notifications waiting for delivery (bot/store/outbox.py)
    store.flags      kill switch, requests, store mode, blobs (bot/store/flags.py)
    store.audit      the hash-chained audit trail (bot/store/audit.py)

Every write is one transaction (`Store.transaction`, a `Tx`) that carries its audit records and its
notifications; a write that spans aggregates — a vote moves its request and its intent, an order's result its
ledgers and its venue's expected positions — passes the same `Tx` to the other repository. An audit insert that
fails rolls the whole transaction back. Reads return frozen rows (bot/store/rows.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, Engine

from bot.store import audit as chain
from bot.store.approvals import ApprovalRepo
from bot.store.figures import FigureRepo
from bot.store.flags import FlagRepo
from bot.store.intents import IntentRepo
from bot.store.ledgers import LedgerRepo
from bot.store.orders import OrderRepo
from bot.store.outbox import SEVERITY_RANK, OutboxRepo, enqueue
from bot.store.rows import Event, Note


class Tx:
    """One open transaction: its connection, and the audit records and notifications that commit with it."""

    __slots__ = ("_store", "conn")

    def __init__(self, conn: Connection, store: Store) -> None:
        self.conn = conn
        self._store = store

    def audit(self, ts: float, kind: str, data: dict[str, Any], venue: str | None) -> int:
        """Append one audit record (stamped with the store's config hash); its seq."""
        return chain.append(
            self.conn, ts=ts, kind=kind, data=data, venue=venue, config_hash=self._store.config_hash
        )

    def events(self, ts: float, events: Iterable[Event]) -> None:
        """Append several audit records (kind, venue, data), in order."""
        for kind, venue, data in events:
            self.audit(ts, kind, data, venue)

    def notes(self, ts: float, notes: Iterable[Note]) -> None:
        """Enqueue notifications at or above the store's severity, with the store's notification status."""
        enqueue(self.conn, ts, notes, min_rank=self._store.min_rank, status=self._store.note_status)


class Store:
    """The unit of work: the engine, the config hash stamped on every record, the notification severity filter
    and status, and the repositories that share them."""

    def __init__(self, engine: Engine, *, config_hash: str | None = None, min_severity: str = "info") -> None:
        self.engine = engine
        self.config_hash = config_hash
        self.min_rank = SEVERITY_RANK[min_severity]
        # "pending" notifications wait in the outbox for delivery; a simulation's are written "simulated",
        # which no outbox ever picks up (see bot/store/purpose.py)
        self.note_status = "pending"
        self.intents = IntentRepo(self)
        self.approvals = ApprovalRepo(self)
        self.orders = OrderRepo(self)
        self.ledgers = LedgerRepo(self)
        self.figures = FigureRepo(self)
        self.outbox = OutboxRepo(self)
        self.flags = FlagRepo(self)
        self.audit = chain.AuditLog(self)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One write transaction (SQLite: BEGIN IMMEDIATE); committed on leaving, rolled back on an error."""
        with self.engine.begin() as conn:
            yield Tx(conn, self)

    def reading(self) -> Connection:
        """A connection for reading: no write lock on SQLite."""
        return self.engine.connect().execution_options(readonly=True)

    def ids_starting(self, prefix: str, limit: int = 5) -> dict[str, list[str]]:
        """Ids of approval requests, intents and orders that start with `prefix` (a few of each)."""
        return {
            "approval": self.approvals.ids_starting(prefix, limit),
            "intent": self.intents.ids_starting(prefix, limit),
            "order": self.orders.ids_starting(prefix, limit),
        }
