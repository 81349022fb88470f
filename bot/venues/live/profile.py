"""What differs between exchanges, behind one small base class; pure parsing helpers shared by all.

A `Profile` knows one exchange's raw fields and parameters: where the account-level margin figures live,
how a client id is sent with a transfer, a withdrawal and an order, and how each is looked up again. It
never imports ccxt: it calls the exchange through a `Caller` (`x.read` / `x.move`), which owns the rate
budget, the error translation and the retry policy. The subclasses live in `bot/venues/live/profiles/`.

Quantities at this boundary: ccxt amounts for derivatives are in contracts; the engine speaks base-asset
units. `contract_size` converts, and every receipt is in base units.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, ClassVar, Protocol

from bot.core.margin import Figures, Position
from bot.errors import MarginbotError, OrderRefused
from bot.venues.base import OrderReceipt, OrderRequest, TransferReceipt, TransferRequest, TransferState
from bot.venues.live.budget import Budget


class Calls(Protocol):
    """What a profile may use of `client.Caller` (kept as a protocol so profiles never see ccxt)."""

    ex: Any

    async def read(self, kind: str, method: str, *args: Any, **kwargs: Any) -> Any: ...

    async def move(self, kind: str, method: str, *args: Any, refused: type[Any], **kwargs: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the venue reports about an API key; None where it does not say."""

    can_trade: bool | None = None
    can_withdraw: bool | None = None
    can_transfer: bool | None = None
    ip_restricted: bool | None = None
    read_only: bool | None = None


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A withdrawal as the sending venue shows it, with the chain transaction id once broadcast."""

    receipt: TransferReceipt
    txid: str | None


# --- pure helpers ---------------------------------------------------------------------------------
def num(value: Any) -> float | None:
    """A venue's number (string, int, float) as a finite float, or None for missing, empty or invalid."""
    if value is None or value == "":
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def ratio_figures(equity: float, im: float, mm: float) -> Figures:
    """Figures from USD equity, IM and MM: u = IM / equity, m = MM / equity (∞ when equity ≤ 0)."""
    if equity <= 0:
        inf = math.inf if (im > 0 or mm > 0 or equity < 0) else 0.0
        return Figures(equity, im, mm, inf, inf)
    return Figures(equity, im, mm, im / equity, mm / equity)


TRANSFER_STATES = {
    "ok": TransferState.SETTLED,
    "pending": TransferState.PENDING,
    "failed": TransferState.FAILED,
    "canceled": TransferState.FAILED,
    "cancelled": TransferState.FAILED,
}


def transfer_state(status: Any) -> TransferState | None:
    """ccxt's unified transfer / transaction status; None (unknown) for a missing or unrecognised one."""
    return TRANSFER_STATES.get(str(status).lower()) if status is not None else None


def seconds(ms: Any) -> float | None:
    v = num(ms)
    return None if v is None else v / 1000.0


def base_qty(contracts: Any, contract_size: Any) -> float:
    return (num(contracts) or 0.0) * (num(contract_size) or 1.0)


def position_from(p: dict[str, Any], base: str) -> Position | None:
    """A ccxt unified position as ours: signed base-asset quantity, entry price. None for a flat one."""
    qty = base_qty(p.get("contracts"), p.get("contractSize"))
    if qty == 0:
        return None
    side = p.get("side")
    if side == "short" and qty > 0:
        qty = -qty
    entry = num(p.get("entryPrice")) or num(p.get("markPrice")) or 0.0
    return Position(str(p["symbol"]), base, qty, entry)


def order_amount(qty: Decimal, contract_size: float) -> float:
    """Base units to the venue's contracts (ccxt's `amount`), rounded down to a whole contract fraction."""
    contracts = qty / Decimal(repr(contract_size)) if contract_size != 1 else qty
    return float(contracts.quantize(Decimal("1e-8"), rounding=ROUND_DOWN))


FINAL_ORDER = frozenset({"closed", "canceled", "cancelled", "expired", "rejected"})


def order_receipt(order: dict[str, Any], req: OrderRequest, contract_size: float, ts: float) -> OrderReceipt:
    """A ccxt unified order as our receipt: filled in base units, average price, fee; done when final."""
    filled = base_qty(order.get("filled"), contract_size)
    avg = num(order.get("average")) or num(order.get("price")) or 0.0
    fee = 0.0
    fees = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
    for f in fees:
        if f:
            fee += num(f.get("cost")) or 0.0
    status = order.get("status")
    done = status in FINAL_ORDER and order.get("filled") is not None
    return OrderReceipt(
        client_id=req.client_id,
        venue_ref=str(order.get("id") or ""),
        filled=Decimal(repr(filled)).quantize(Decimal("1e-12")).normalize() if filled else Decimal(0),
        avg_price=avg,
        fee=abs(fee),
        ts=seconds(order.get("timestamp")) or ts,
        done=done,
    )


class Profile(ABC):
    """One exchange's particulars. Subclasses override what their exchange does differently."""

    exchange_id: ClassVar[str]
    budget: ClassVar[Budget]
    margin_wallet: ClassVar[str]  # ccxt account type of a venue's margin account
    funding_wallet: ClassVar[str]  # default ccxt account type of a treasury account
    takes_transfer_client_id: ClassVar[bool] = True  # False: one open intent per route and asset (Binance)
    takes_withdrawal_client_id: ClassVar[bool] = True  # False: withdrawals are found by history (Bybit)

    def default_wallet(self, margin_model: str) -> str:
        """The margin wallet of a venue whose config names none, by its `margin_model`."""
        return self.margin_wallet

    def options(self) -> dict[str, Any]:
        """ccxt options set when the exchange object is made (hidden requests switched off here)."""
        return {}

    def client_id(self, intent_id: str) -> str:
        """The id sent to the venue for an intent (32 hex characters fit every venue's format)."""
        return intent_id

    async def prepare(self, x: Calls) -> None:
        """Load markets once per process (one request batch; later calls reuse them)."""
        await x.read("markets", "load_markets")

    # --- reads --------------------------------------------------------------------------------------
    async def balance(self, x: Calls, wallet: str) -> dict[str, Any]:
        result: dict[str, Any] = await x.read("balance", "fetch_balance", {"type": wallet})
        return result

    def collateral(self, balance: dict[str, Any]) -> dict[str, float]:
        """Cash collateral per asset, unrealized PnL excluded (it is counted from the positions)."""
        total = balance.get("total") or {}
        return {a: float(q) for a, q in total.items() if num(q)}

    @abstractmethod
    async def reported(self, x: Calls, balance: dict[str, Any]) -> Figures | None:
        """The venue's own account-level figures (normalised), from raw fields; None where it has none."""
        ...

    async def positions(self, x: Calls) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await x.read("positions", "fetch_positions")
        return result

    async def tickers(self, x: Calls, symbols: list[str]) -> dict[str, float]:
        """Mark (else last) price per symbol."""
        out: dict[str, float] = {}
        if not symbols:
            return out
        got: dict[str, Any] = await x.read("tickers", "fetch_tickers", symbols)
        for sym, t in got.items():
            info_mark = (
                num((t.get("info") or {}).get("markPrice")) if isinstance(t.get("info"), dict) else None
            )
            price = num(t.get("markPrice")) or info_mark or num(t.get("last")) or num(t.get("close"))
            if price:
                out[sym] = price
        return out

    async def funding(self, x: Calls, symbols: list[str]) -> dict[str, float]:
        """Funding rate per 8 h per symbol."""
        out: dict[str, float] = {}
        if not symbols:
            return out
        got: dict[str, Any] = await x.read("funding", "fetch_funding_rates", symbols)
        for sym, r in got.items():
            rate = num(r.get("fundingRate"))
            if rate is None:
                continue
            hours = 8.0
            interval = r.get("interval")
            if isinstance(interval, str) and interval.endswith("h") and num(interval[:-1]):
                hours = float(interval[:-1])
            out[sym] = rate * 8.0 / hours
        return out

    async def order_book(self, x: Calls, symbol: str, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = await x.read("book", "fetch_order_book", symbol, depth)
        return result

    async def key_info(self, x: Calls) -> KeyInfo | None:
        """What the venue says about our key's permissions; None where it offers no such call."""
        return None

    # --- money moves --------------------------------------------------------------------------------
    @abstractmethod
    async def transfer(
        self, x: Calls, req: TransferRequest, from_wallet: str, to_wallet: str
    ) -> TransferReceipt: ...

    @abstractmethod
    async def lookup_transfer(
        self, x: Calls, req: TransferRequest, from_wallet: str, to_wallet: str
    ) -> TransferReceipt | None: ...

    @abstractmethod
    async def withdraw(
        self, x: Calls, req: TransferRequest, from_wallet: str | None = None
    ) -> TransferReceipt:
        """Withdraw from `from_wallet` (the source's wallet) to the route's address."""
        ...

    @abstractmethod
    async def lookup_withdrawal(self, x: Calls, req: TransferRequest) -> Withdrawal | None: ...

    async def deposit_settled_at(
        self, x: Calls, asset: str, txid: str | None, amount: Decimal, since: float | None
    ) -> float | None:
        """When a deposit arrived here (matched by txid, else by asset, amount and time); None if not yet."""
        params: dict[str, Any] = {}
        rows: list[dict[str, Any]] = await x.read(
            "history", "fetch_deposits", asset, int(since * 1000) if since else None, None, params
        )
        for d in rows:
            if transfer_state(d.get("status")) is not TransferState.SETTLED:
                continue
            if txid and d.get("txid") == txid:
                return seconds(d.get("updated")) or seconds(d.get("timestamp")) or 0.0
            if not txid and num(d.get("amount")) is not None and Decimal(str(d["amount"])) == amount:
                return seconds(d.get("updated")) or seconds(d.get("timestamp")) or 0.0
        return None

    def order_params(self, req: OrderRequest) -> dict[str, Any]:
        """Our client id and reduce-only in ccxt's unified names (ccxt maps them to the venue's)."""
        params: dict[str, Any] = {"clientOrderId": self.client_id(req.client_id)}
        if req.reduce_only:
            params["reduceOnly"] = True
        return params

    def order_size(self, x: Calls, req: OrderRequest, contract_size: float) -> tuple[float, float]:
        """(ccxt's amount for `req.qty` base units, base units per unit of that amount)."""
        return order_amount(req.qty, contract_size), contract_size

    async def place(self, x: Calls, req: OrderRequest, contract_size: float, now: float) -> OrderReceipt:
        """One market order, sent once; an answer without the fill (OKX, Bybit) is read back once by client
        id, and if that read fails the receipt stays not done (unknown) for reconciliation."""
        amount, unit = self.order_size(x, req, contract_size)
        order: dict[str, Any] = await x.move(
            "order",
            "create_order",
            req.symbol,
            "market",
            req.side,
            amount,
            None,
            self.order_params(req),
            refused=OrderRefused,
        )
        placed = order_receipt(order, req, unit, now)
        if placed.done:
            return placed
        try:
            found = await self.lookup_order(x, req, contract_size, now)
        except MarginbotError:  # placed, but the fill could not be read: unknown until reconciled
            found = None
        return found if found is not None else placed

    @abstractmethod
    async def lookup_order(
        self, x: Calls, req: OrderRequest, contract_size: float, now: float
    ) -> OrderReceipt | None: ...
