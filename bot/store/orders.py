"""Order intents and hedge ledgers in the store, with the same discipline as transfers.

`create_order` commits the order intent and its audit record before the venue is called;
`order_result` commits the venue's answer, its audit record and the hedge program's new ledger in one
transaction, so a fill is never recorded without the ledger that counts it (nor the reverse).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from bot.core.hedge import OPEN_ORDER_STATUSES, OrderAction, OrderReason, OrderStatus, OrderView
from bot.errors import IntegrityError
from bot.store.tables import hedges, orders, venue_status

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from bot.store.repo import Note


@dataclass(frozen=True, slots=True)
class LedgerUpdate:
    """A hedge program's ledger to commit with an order's result (or alone)."""

    name: str
    state: str  # JSON
    net_delta: float | None
    target: float
    band: float
    loss: float | None
    stopped: bool
    stop_reason: str


def already_recorded(
    conn: Connection, table: Table, key: str, params_hash: str, *, what: str, error: Exception
) -> bool:
    """After an insert refused by the primary key: True when the same move was already recorded (a no-op).

    Raises IntegrityError when the key holds other parameters (a key is never reused for another move), or
    when nothing holds it (the insert failed for another reason).
    """
    existing = conn.execute(select(table.c.params_hash).where(table.c.id == key)).first()
    if existing is None:
        raise IntegrityError(
            f"{what} {key} could not be recorded: {getattr(error, 'orig', error)}"
        ) from error
    if existing.params_hash != params_hash:
        raise IntegrityError(f"{what} {key} exists with different parameters") from None
    return True


def _order_view(r: Any) -> OrderView:
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


def _put_ledger(conn: Connection, u: LedgerUpdate, ts: float) -> None:
    conn.execute(delete(hedges).where(hedges.c.name == u.name))
    conn.execute(
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


class OrderRecords:
    """Order and hedge-ledger writes of `Store` (kept apart so each file reads in one sitting)."""

    engine: Engine
    config_hash: str | None

    if TYPE_CHECKING:  # provided by Store, which mixes these writes in

        def _read(self) -> Connection: ...

        def _audit(
            self, conn: Connection, ts: float, kind: str, data: dict[str, Any], venue: str | None
        ) -> None: ...

        def _notes(self, conn: Connection, ts: float, notes: Iterable[Note]) -> None: ...

    def create_order(self, action: OrderAction, ts: float, notes: Iterable[Note] = ()) -> bool:
        """Commit the order intent with its audit record; False when the same intent already exists."""
        row = {
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
            "config_hash": self.config_hash,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(orders), row)
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
                self._audit(conn, ts, "order.created", data, action.venue)
                self._notes(conn, ts, notes)
        except SAIntegrityError as e:
            with self._read() as conn:
                already_recorded(conn, orders, action.intent_id, action.params_hash, what="order", error=e)
            return False
        return True

    def order_result(
        self,
        order_id: str,
        status: OrderStatus,
        ts: float,
        *,
        venue: str,
        filled: Decimal | None = None,
        avg_price: float | None = None,
        fee: float | None = None,
        venue_ref: str | None = None,
        error: str | None = None,
        ledgers: Iterable[LedgerUpdate] = (),
        positions: str | None = None,
        data: dict[str, Any] | None = None,
        notes: Iterable[Note] = (),
    ) -> None:
        """Commit an order's result, with the program's ledger and the venue's expected positions."""
        values: dict[str, Any] = {"status": status.value, "updated_at": ts}
        payload: dict[str, Any] = {"id": order_id, "status": status.value, **(data or {})}
        for key, value in (
            ("filled", filled),
            ("avg_price", avg_price),
            ("fee", fee),
            ("venue_ref", venue_ref),
            ("error", error),
        ):
            if value is not None:
                values[key] = value
                payload[key] = str(value) if isinstance(value, Decimal) else value
        with self.engine.begin() as conn:
            conn.execute(update(orders).where(orders.c.id == order_id).values(**values))
            self._audit(conn, ts, f"order.{status.value}", payload, venue)
            # what the venue should now show: a restart must not take the bot's own fill for a surprise
            if positions is not None:
                done = conn.execute(
                    update(venue_status).where(venue_status.c.venue == venue).values(positions=positions)
                ).rowcount
                if not done:
                    conn.execute(
                        insert(venue_status).values(
                            venue=venue, state="stale", since=ts, positions=positions, updated_at=ts
                        )
                    )
            for ledger in ledgers:
                _put_ledger(conn, ledger, ts)
                self._audit(conn, ts, "hedge.ledger", {"program": ledger.name, "state": ledger.state}, None)
            self._notes(conn, ts, notes)

    def open_orders(self) -> list[OrderView]:
        q = (
            select(orders)
            .where(orders.c.status.in_([s.value for s in OPEN_ORDER_STATUSES]))
            .order_by(orders.c.created_at, orders.c.id)
        )
        with self._read() as conn:
            return [_order_view(r) for r in conn.execute(q)]

    def order_row(self, order_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            r = conn.execute(select(orders).where(orders.c.id == order_id)).first()
            return None if r is None else dict(r._mapping)

    def get_order(self, order_id: str) -> OrderView | None:
        with self._read() as conn:
            r = conn.execute(select(orders).where(orders.c.id == order_id)).first()
            return None if r is None else _order_view(r)

    def order_rows(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            q = select(orders).order_by(orders.c.created_at, orders.c.id)
            return [dict(r._mapping) for r in conn.execute(q)]

    def save_ledger(
        self,
        update_: LedgerUpdate,
        ts: float,
        *,
        events: Iterable[tuple[str, str | None, dict[str, Any]]] = (),
        notes: Iterable[Note] = (),
    ) -> None:
        """Commit a hedge ledger with its audit records (a stop, a resume, an exposure change, funding)."""
        with self.engine.begin() as conn:
            _put_ledger(conn, update_, ts)
            for kind, venue, payload in events:
                self._audit(conn, ts, kind, payload, venue)
            self._notes(conn, ts, notes)

    def save_hedge_summaries(self, rows: Iterable[tuple[str, float | None, float | None]], ts: float) -> None:
        """Telemetry for `status`: (name, net delta, running cost) per program; never audited."""
        with self.engine.begin() as conn:
            for name, net, loss in rows:
                conn.execute(
                    update(hedges)
                    .where(hedges.c.name == name)
                    .values(net_delta=net, loss=loss, updated_at=ts)
                )

    def ledgers(self) -> dict[str, str]:
        with self._read() as conn:
            return {r.name: r.state for r in conn.execute(select(hedges.c.name, hedges.c.state))}

    def hedge_rows(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(select(hedges).order_by(hedges.c.name))]
