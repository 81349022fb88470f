"""Saving and restoring the paper exchange, so that `marginbot run` on paper venues survives a restart.

A real exchange does not forget transfers in flight or positions when the bot restarts; neither does the
paper one: its state is kept in the store after every cycle and restored at start.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.core.margin import Position, scale_params
from bot.venues.base import OrderReceipt, OrderRequest, TransferRequest, TransferState
from bot.venues.paper import Liquidation, PaperExchange, PaperTransfer
from bot.venues.paper_orders import PaperOrder

PAPER_BLOB = "blob:paper-exchange"  # the store key the paper world is kept under between runs


def _dec(d: dict[str, Decimal]) -> dict[str, str]:
    return {k: str(v) for k, v in d.items()}


KEEP_SECONDS = 7 * 86_400  # settled transfers older than this are no longer looked up: not kept


def dump(x: PaperExchange) -> dict[str, Any]:
    """The exchange as JSON-ready data; settled transfers older than a week are dropped so it stays small."""
    horizon = x.now() - KEEP_SECONDS
    kept = [t for t in x.transfers.values() if t.state is TransferState.PENDING or t.submitted_at > horizon]
    return {
        "version": 1,
        "prices": dict(x.market.prices),
        "books": {
            name: {
                "collateral": _dec(b.collateral),
                "positions": [[p.symbol, p.base, p.qty, p.entry] for p in b.positions],
                "haircuts": dict(b.haircuts),
                "funding": dict(b.funding),
                "margin_factor": b.margin_factor,
                "symbols": sorted(b.symbols),
            }
            for name, b in x.books.items()
        },
        "accounts": {name: _dec(bal) for name, bal in x.accounts.items()},
        "transfers": [
            {
                "client_id": t.req.client_id,
                "route": t.req.route,
                "source": t.req.source,
                "destination": t.req.destination,
                "asset": t.req.asset,
                "amount": str(t.req.amount),
                "method": t.req.method,
                "network": t.req.network,
                "address": t.req.address,
                "fee": str(t.req.fee),
                "settle_seconds": t.req.settle_seconds,
                "submitted_at": t.submitted_at,
                "settle_at": t.settle_at,
                "state": t.state.value,
                "ref": t.ref,
                "settled_at": t.settled_at,
            }
            for t in kept
        ],
        "effects": [t.req.client_id for t in kept],
        "fees_paid": _dec(x.fees_paid),
        "liquidation_fees": _dec(x.liquidation_fees),
        "liquidations": [[q.venue, q.ts, q.equity_before, q.fee] for q in x.liquidations],
        "last_funding_period": x.last_funding_period,
        "orders": [
            {
                "client_id": o.req.client_id,
                "venue": o.req.venue,
                "symbol": o.req.symbol,
                "side": o.req.side,
                "qty": str(o.req.qty),
                "reduce_only": o.req.reduce_only,
                "ref": o.receipt.venue_ref,
                "filled": str(o.receipt.filled),
                "avg_price": o.receipt.avg_price,
                "fee": o.receipt.fee,
                "ts": o.receipt.ts,
            }
            for o in x.matching.orders.values()
            if o.receipt.ts > horizon
        ],
        "depth": [[v, sym, f] for (v, sym), f in x.matching.depth.items()],
        "order_fees": _dec(x.matching.fees_paid),
        "realized": _dec(x.matching.realized),
    }


def restore(x: PaperExchange, state: dict[str, Any]) -> None:
    """Overwrite a freshly built exchange with saved state (books or accounts no longer configured are dropped)."""
    # every saved price carries on; an asset the config no longer prices (no [market] entry) holds still
    x.market.prices.update({k: float(v) for k, v in state["prices"].items()})
    x.market.version += 1
    for name, b in state["books"].items():
        book = x.books.get(name)
        if book is None:
            continue
        book.collateral = {k: Decimal(v) for k, v in b["collateral"].items()}
        book.positions = tuple(Position(s, base, float(q), float(e)) for s, base, q, e in b["positions"])
        book.haircuts = {k: float(v) for k, v in b["haircuts"].items()}
        book.funding = {k: float(v) for k, v in b["funding"].items()}
        book.margin_factor = float(b["margin_factor"])
        book.params = scale_params(book.base_params, book.margin_factor)
        book.symbols |= set(b.get("symbols", []))
        book.refresh()
    for name, bal in state["accounts"].items():
        if name in x.accounts:
            x.accounts[name] = {k: Decimal(v) for k, v in bal.items()}
    x.transfers = {}
    for t in state["transfers"]:
        req = TransferRequest(
            client_id=t["client_id"],
            route=t["route"],
            source=t["source"],
            destination=t["destination"],
            asset=t["asset"],
            amount=Decimal(t["amount"]),
            method=t["method"],
            network=t["network"],
            address=t["address"],
            fee=Decimal(t["fee"]),
            settle_seconds=float(t["settle_seconds"]),
        )
        x.transfers[req.client_id] = PaperTransfer(
            req,
            float(t["submitted_at"]),
            float(t["settle_at"]),
            TransferState(t["state"]),
            t["ref"],
            t["settled_at"],
        )
    x.pending = {k: t for k, t in x.transfers.items() if t.state is TransferState.PENDING}
    x.effects = list(state["effects"])
    x.fees_paid = {k: Decimal(v) for k, v in state["fees_paid"].items()}
    x.liquidation_fees = {k: Decimal(v) for k, v in state.get("liquidation_fees", {}).items()}
    x.liquidations = [
        Liquidation(v, float(ts), float(eq), float(fee)) for v, ts, eq, fee in state["liquidations"]
    ]
    x.last_funding_period = state["last_funding_period"]
    m = x.matching
    m.orders = {}
    for o in state.get("orders", []):
        order = OrderRequest(
            o["client_id"], o["venue"], o["symbol"], o["side"], Decimal(o["qty"]), bool(o["reduce_only"])
        )
        receipt = OrderReceipt(
            order.client_id,
            o["ref"],
            Decimal(o["filled"]),
            float(o["avg_price"]),
            float(o["fee"]),
            float(o["ts"]),
        )
        m.orders[order.client_id] = PaperOrder(order, receipt)
    m.depth = {(v, sym): float(f) for v, sym, f in state.get("depth", [])}
    m.fees_paid = {k: Decimal(v) for k, v in state.get("order_fees", {}).items()}
    m.realized = {k: Decimal(v) for k, v in state.get("realized", {}).items()}
