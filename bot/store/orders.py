"""Order intents and hedge ledgers in the store, with the same discipline as transfers.

`create_order` commits the order intent and its audit record before the venue is called;
`transition_order` commits the venue's answer (or a person's resolution), its audit record and the hedge
program's new ledger in one transaction, so a fill is never recorded without the ledger that counts it (nor the
reverse). Like intents, an order's status changes only through its lifecycle table, with compare-and-set on the
status the caller read: a lost race is `Lost(actual)`, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from bot.core.hedge import OPEN_ORDER_STATUSES, OrderAction, OrderReason, OrderStatus, OrderView
from bot.core.lifecycle import Applied, Lost, OrderEvent, order_after
from bot.errors import IntegrityError
from bot.store.tables import hedges, orders, venue_status

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from bot.store.repo import Note


# what a recorded fill changes besides the order: the programs' ledgers and the venue's expected positions
# (canonical JSON). Called only once the order's compare-and-set has succeeded, inside its transaction, so a
# fill that lost its race is never counted.
FillEffects = Callable[[], tuple[Sequence["LedgerUpdate"], str | None]]


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

    def transition_order(
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
            done = conn.execute(
                update(orders)
                .where(orders.c.id == order_id, orders.c.status == expected.value)
                .values(**values)
            ).rowcount
            if not done:
                actual = conn.execute(select(orders.c.status).where(orders.c.id == order_id)).scalar()
                return Lost(None if actual is None else OrderStatus(actual))
            self._audit(conn, ts, f"order.{new.value}", payload, venue)
            ledgers, positions = effects() if effects is not None else ((), None)
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
        return Applied(new)

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
