"""Order intents, with the same discipline as transfers.

`create` commits the order intent and its audit record before the venue is called; `transition` commits the
venue's answer (or a person's resolution), its audit record and the hedge program's new ledger in one
transaction, so a fill is never recorded without the ledger that counts it (nor the reverse). Like intents, an
order's status changes only through its lifecycle table, with compare-and-set on the status the caller read: a
lost race is `Lost(actual)`, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from bot.core.hedge import OPEN_ORDER_STATUSES, OrderAction, OrderReason, OrderStatus, OrderView
from bot.core.lifecycle import Applied, Lost, OrderEvent, order_after
from bot.store.guards import already_recorded
from bot.store.rows import FillEffects, Note, OrderRow
from bot.store.tables import orders

if TYPE_CHECKING:
    from bot.store.repo import Store, Tx

_RESULT_FIELDS = ("filled", "avg_price", "fee", "venue_ref", "error")


class OrderRepo:
    """`store.orders`: the `orders` table; a result's ledgers through `store.ledgers`, in the same transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, action: OrderAction, ts: float, notes: Iterable[Note] = ()) -> bool:
        """Commit the order intent with its audit record; False when the same intent already exists."""
        row = self._row(action, ts)
        try:
            with self._store.transaction() as tx:
                tx.conn.execute(insert(orders), row)
                data = {k: row[k] for k in ("id", "program", "symbol", "side", "reduce_only", "reason")}
                data |= {
                    "qty": str(action.qty),
                    "est_price": round(action.est_price, 8),
                    "est_slippage_bps": round(action.est_slippage_bps, 3),
                    "params_hash": action.params_hash,
                    "note": action.note,
                }
                if action.effect:
                    data["projected"] = action.effect
                tx.audit(ts, "order.created", data, action.venue)
                tx.notes(ts, notes)
        except SAIntegrityError as e:
            with self._store.reading() as conn:
                already_recorded(conn, orders, action.intent_id, action.params_hash, what="order", error=e)
            return False
        return True

    def _row(self, action: OrderAction, ts: float) -> dict[str, Any]:
        return {
            "id": action.intent_id,
            "program": action.program,
            "venue": action.venue,
            "symbol": action.symbol,
            "side": action.side,
            "qty": action.qty,
            "reduce_only": action.reduce_only,
            "reason": action.reason.value,
            "status": OrderStatus.APPROVED.value,
            "est_price": action.est_price,
            "est_slippage_bps": action.est_slippage_bps,
            "params_hash": action.params_hash,
            "created_at": ts,
            "updated_at": ts,
            "note": action.note,
            "config_hash": self._store.config_hash,
        }

    def transition(
        self,
        order_id: str,
        event: OrderEvent,
        *,
        expected: OrderStatus,
        ts: float,
        venue: str,
        filled: Decimal | None = None,
        avg_price: float | None = None,
        fee: float | None = None,
        venue_ref: str | None = None,
        error: str | None = None,
        effects: FillEffects | None = None,
        data: dict[str, Any] | None = None,
        notes: Iterable[Note] = (),
    ) -> Applied[OrderStatus] | Lost[OrderStatus]:
        """Apply `event` to an order that had `expected` when the caller read it: its result, audit record
        (from, to, event), and what `effects` returns (ledgers, expected positions) in one transaction.

        `Lost(actual)` when the row no longer has `expected`: nothing is written and `effects` is not called.
        """
        new = order_after(expected, event)
        values: dict[str, Any] = {"status": new.value, "updated_at": ts}
        payload: dict[str, Any] = {
            "id": order_id,
            "status": new.value,
            "from": expected.value,
            "event": event.value,
            **(data or {}),
        }
        for key, value in zip(_RESULT_FIELDS, (filled, avg_price, fee, venue_ref, error), strict=True):
            if value is not None:
                values[key] = value
                payload[key] = str(value) if isinstance(value, Decimal) else value
        with self._store.transaction() as tx:
            done = tx.conn.execute(
                update(orders)
                .where(orders.c.id == order_id, orders.c.status == expected.value)
                .values(**values)
            ).rowcount
            if not done:
                actual = tx.conn.execute(select(orders.c.status).where(orders.c.id == order_id)).scalar()
                return Lost(None if actual is None else OrderStatus(actual))
            tx.audit(ts, f"order.{new.value}", payload, venue)
            self._apply_effects(tx, effects, venue, ts)
            tx.notes(ts, notes)
        return Applied(new)

    def _apply_effects(self, tx: Tx, effects: FillEffects | None, venue: str, ts: float) -> None:
        """A fill's ledgers and the venue's expected positions, inside the order's transaction."""
        ledgers, positions = effects() if effects is not None else ((), None)
        if positions is not None:
            self._store.figures.expect_positions(tx, venue, positions, ts)
        for ledger in ledgers:
            self._store.ledgers.put(tx, ledger, ts)
            tx.audit(ts, "hedge.ledger", {"program": ledger.name, "state": ledger.state}, None)

    def open(self) -> list[OrderView]:
        """Orders not yet finished (approved, or of unknown outcome), oldest first."""
        q = (
            select(orders)
            .where(orders.c.status.in_([s.value for s in OPEN_ORDER_STATUSES]))
            .order_by(orders.c.created_at, orders.c.id)
        )
        with self._store.reading() as conn:
            return [_view(r) for r in conn.execute(q)]

    def get(self, order_id: str) -> OrderView | None:
        with self._store.reading() as conn:
            r = conn.execute(select(orders).where(orders.c.id == order_id)).first()
            return None if r is None else _view(r)

    def row(self, order_id: str) -> OrderRow | None:
        """The whole stored order (its fill, price and fee included)."""
        with self._store.reading() as conn:
            r = conn.execute(select(orders).where(orders.c.id == order_id)).first()
            return None if r is None else OrderRow.of(r)

    def rows(self) -> list[OrderRow]:
        with self._store.reading() as conn:
            q = select(orders).order_by(orders.c.created_at, orders.c.id)
            return [OrderRow.of(r) for r in conn.execute(q)]

    def ids_starting(self, prefix: str, limit: int = 5) -> list[str]:
        """A few order ids that start with `prefix`, in order."""
        q = select(orders.c.id).where(orders.c.id.startswith(prefix, autoescape=True))
        with self._store.reading() as conn:
            return [str(r[0]) for r in conn.execute(q.order_by(orders.c.id).limit(limit))]


def _view(r: Any) -> OrderView:
    return OrderView(
        id=r.id,
        program=r.program,
        venue=r.venue,
        symbol=r.symbol,
        side=r.side,
        qty=r.qty,
        reduce_only=bool(r.reduce_only),
        reason=OrderReason(r.reason),
        status=OrderStatus(r.status),
        created_at=r.created_at,
        acknowledged=r.venue_ref is not None,
    )
