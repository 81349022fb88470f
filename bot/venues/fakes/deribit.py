"""A fake Deribit over the paper world: JSON-RPC over HTTP GET, `deri-hmac-sha256` signatures checked.

Served (GET /api/v2/public/… and /api/v2/private/…, results as {"jsonrpc": "2.0", "result": …}, errors as
{"jsonrpc": "2.0", "error": {"code": …, "message": …}} with Deribit's codes so ccxt maps them as on the
real venue):
  public   get_currencies, get_instruments (USDC linear perpetuals, filtered by currency and kind), ticker,
           get_index_price, get_funding_rate_value, get_order_book, auth (grant_type client_signature)
  private  get_subaccounts, get_account_summaries, get_account_summary, get_positions, buy, sell,
           get_order_state_by_label, submit_transfer_between_subaccounts, submit_transfer_to_subaccount,
           get_transfers, withdraw, get_withdrawals, get_deposits

The account: the main account `MARGIN_WALLET` (the venue; orders and withdrawals go from it, as on Deribit)
and one subaccount `FUNDING_WALLET`. Summaries are cross collateral (margin_model cross_sm): margin_balance,
initial_margin and maintenance_margin are the paper venue's account-wide figures in each row's currency.
A transfer's or withdrawal's `nonce` is the paper world's client id (Deribit answers a repeated nonce with
the first transaction; so does the paper world).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from aiohttp import web

from bot.core.margin import Position, tiered_mm
from bot.errors import OrderRefused, TransferRefused, VenueUnavailable
from bot.settings import STABLES
from bot.venues.base import OrderReceipt, OrderRequest, TransferState
from bot.venues.fakes.base import FakeExchange, Market, deposit_history
from bot.venues.paper import PaperBook

Handler = Callable[[dict[str, str]], Awaitable[web.Response]]

CONTRACT_SIZES = {"BTC": 0.001, "ETH": 0.01}  # get_instruments of BTC_USDC-PERPETUAL lists 0.001 (2025)
TICK_SIZES = {"BTC": 1.0, "ETH": 0.1}
PERPETUAL_EXPIRY = 32503708800000  # what Deribit lists as a perpetual's expiration_timestamp
KINDS = {
    "get_currencies": "markets",
    "get_instruments": "markets",
    "ticker": "tickers",
    "get_index_price": "tickers",
    "get_funding_rate_value": "funding",
    "get_order_book": "book",
    "auth": "permissions",
    "get_subaccounts": "account",
    "get_account_summaries": "balance",
    "get_account_summary": "balance",
    "get_positions": "positions",
    "buy": "order",
    "sell": "order",
    "get_order_state_by_label": "lookup",
    "submit_transfer_between_subaccounts": "transfer",
    "submit_transfer_to_subaccount": "transfer",
    "get_transfers": "history",
    "withdraw": "withdraw",
    "get_withdrawals": "history",
    "get_deposits": "history",
}
TRANSFER_STATE = {
    TransferState.PENDING: "prepared",
    TransferState.SETTLED: "confirmed",
    TransferState.FAILED: "cancelled",
}
WITHDRAWAL_STATE = {
    TransferState.PENDING: "confirmed",  # confirmed by the user, being processed
    TransferState.SETTLED: "completed",
    TransferState.FAILED: "rejected",
}
DEPOSIT_STATE = {
    TransferState.PENDING: "pending",
    TransferState.SETTLED: "completed",
    TransferState.FAILED: "rejected",
}
HTTP_CODES = {  # the error a base-middleware fault answers with
    401: (13009, "unauthorized"),
    429: (10028, "too_many_requests"),
    418: (10028, "too_many_requests"),
    503: (10040, "retry"),
    504: (10040, "retry"),
}


class RpcError(Exception):
    """A Deribit JSON-RPC error answer."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass
class Move:
    """A transfer or withdrawal the fake accepted: Deribit's id and the fields its history shows."""

    id: int
    kind: str  # transfer | withdrawal
    cid: str  # the paper world's client id (the nonce when one was sent)
    nonce: str | None
    currency: str
    amount: Decimal
    source: str
    destination: str  # account id (transfer) or address (withdrawal)
    created_ms: int
    fee: Decimal = Decimal(0)


def refusal_code(message: str) -> int:
    """Deribit's error code for a paper-world refusal."""
    text = message.lower()
    if "insufficient" in text:
        return 10009  # not_enough_funds
    if "frozen" in text:
        return 12100  # transfer_not_allowed
    if "reused" in text:
        return 11029  # invalid_arguments
    if "reduce-only" in text:
        return 11030  # other_reject
    if "no market" in text or "no such" in text:
        return 10020  # invalid_or_unsupported_instrument
    return 11030


class FakeDeribit(FakeExchange):
    exchange_id = "deribit"
    MARGIN_WALLET = "71001"  # the main account's id
    FUNDING_WALLET = "71002"  # a subaccount's id
    USERNAMES: ClassVar[dict[str, str]] = {"71001": "marginbot_desk", "71002": "marginbot_desk_1"}

    @classmethod
    def market_for(cls, symbol: str) -> Market:
        """BTC/USDC:USDC → BTC_USDC-PERPETUAL, a linear perpetual amounted in base coin."""
        base, rest = symbol.split("/", 1)
        quote, _, settle = rest.partition(":")
        size = CONTRACT_SIZES.get(base, 1.0)
        return Market(symbol, f"{base}_{settle or quote}-PERPETUAL", base, quote, settle or quote, size, 1.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scope = "connection mainaccount account:read trade:read_write wallet:read_write"
        self.received: list[tuple[str, dict[str, str]]] = []  # money moves and orders, as sent
        self.moves: dict[str, Move] = {}  # paper client id -> move
        self.order_ids: dict[str, str] = {}  # label -> Deribit order id
        self._seq = 0
        self.handlers: dict[str, Handler] = {
            "public/get_currencies": self.get_currencies,
            "public/get_instruments": self.get_instruments,
            "public/ticker": self.ticker,
            "public/get_index_price": self.get_index_price,
            "public/get_funding_rate_value": self.get_funding_rate_value,
            "public/get_order_book": self.get_order_book,
            "public/auth": self.auth,
            "private/get_subaccounts": self.get_subaccounts,
            "private/get_account_summaries": self.get_account_summaries,
            "private/get_account_summary": self.get_account_summary,
            "private/get_positions": self.get_positions,
            "private/buy": self.buy,
            "private/sell": self.sell,
            "private/get_order_state_by_label": self.get_order_state_by_label,
            "private/submit_transfer_between_subaccounts": self.submit_transfer_between_subaccounts,
            "private/submit_transfer_to_subaccount": self.submit_transfer_to_subaccount,
            "private/get_transfers": self.get_transfers,
            "private/withdraw": self.withdraw,
            "private/get_withdrawals": self.get_withdrawals,
            "private/get_deposits": self.get_deposits,
        }

    # --- the FakeExchange hooks ---------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v2/{scope}/{method}", self.dispatch)

    def endpoint_of(self, request: web.Request) -> str:
        return KINDS.get(request.path.rsplit("/", 1)[-1], "any")

    async def verify(self, request: web.Request, body: str) -> bool:
        """Public calls pass; a private one needs Authorization: deri-hmac-sha256 id=…,ts=…,sig=…,nonce=…
        with sig = hex HMAC-SHA256(secret, ts\\nnonce\\nGET\\n/api/v2/…?query\\nbody\\n)."""
        if request.path.startswith("/api/v2/public/"):
            return True
        scheme, _, fields = request.headers.get("Authorization", "").partition(" ")
        if scheme != "deri-hmac-sha256":
            return False
        parts = dict(p.split("=", 1) for p in fields.split(",") if "=" in p)
        if parts.get("id") != self.account.api_key:
            return False
        ts, nonce = parts.get("ts", ""), parts.get("nonce", "")
        message = f"{ts}\n{nonce}\n{request.method}\n{request.raw_path}\n{body}\n"
        expected = hmac.new(self.account.secret.encode(), message.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, parts.get("sig", ""))

    def error(self, status: int, message: str, code: str | int = "") -> web.Response:
        known, text = HTTP_CODES.get(status, (11094, "internal_server_error"))
        number = (
            int(code)
            if isinstance(code, int) or (isinstance(code, str) and code.lstrip("-").isdigit())
            else known
        )
        body = {"jsonrpc": "2.0", "error": {"code": number, "message": text, "data": {"reason": message}}}
        return web.json_response({**body, **self._stamp()}, status=status)

    # --- plumbing -----------------------------------------------------------------------------------
    def _ms(self) -> int:
        return int(self.paper.now() * 1000)

    def _stamp(self) -> dict[str, Any]:
        us = self._ms() * 1000
        return {"usIn": us, "usOut": us + 50, "usDiff": 50, "testnet": False}

    def ok(self, result: Any) -> web.Response:
        return web.json_response({"jsonrpc": "2.0", "result": result, **self._stamp()})

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    async def dispatch(self, request: web.Request) -> web.Response:
        name = f"{request.match_info['scope']}/{request.match_info['method']}"
        handler = self.handlers.get(name)
        if handler is None:
            return self.error(400, f"{name} is not served", -32601)
        try:
            return await handler(dict(request.query))
        except RpcError as e:
            return self.error(e.status, str(e), e.code)

    def _price(self, asset: str) -> float | None:
        return 1.0 if asset in STABLES else self.paper.market.prices.get(asset)

    def _instrument(self, params: dict[str, str]) -> Market:
        market = self.by_id.get(params.get("instrument_name", ""))
        if market is None:
            raise RpcError(10020, "invalid_or_unsupported_instrument")
        return market

    def _amount(self, params: dict[str, str]) -> Decimal:
        try:
            value = Decimal(params.get("amount", ""))
        except InvalidOperation as e:
            raise RpcError(-32602, "Invalid params") from e
        if not value.is_finite() or value <= 0:
            raise RpcError(10021, "invalid_amount")
        return value

    def _venue(self) -> str:
        name = self.account.wallets.get(self.MARGIN_WALLET)
        if name is None or name not in self.paper.books:
            raise RpcError(13020, "not_found")
        return name

    def _account_of(self, params: dict[str, str]) -> str:
        account = params.get("subaccount_id") or self.MARGIN_WALLET
        if account not in self.USERNAMES:
            raise RpcError(13020, "not_found")
        return account

    # --- public -------------------------------------------------------------------------------------
    async def get_currencies(self, params: dict[str, str]) -> web.Response:
        codes = sorted({"BTC", "ETH", "USDC", "USDT", *(m.base for m in self.markets)})
        return self.ok(
            [
                {
                    "currency": c,
                    "currency_long": c,
                    "coin_type": "ETHER" if c in STABLES else c,
                    "withdrawal_fee": 1.0 if c in STABLES else 0.0001,
                    "min_withdrawal_fee": 1.0 if c in STABLES else 0.0001,
                    "min_confirmations": 1,
                    "fee_precision": 4,
                    "withdrawal_priorities": [],
                    "in_cross_collateral_pool": True,
                }
                for c in codes
            ]
        )

    def instrument(self, i: int, m: Market) -> dict[str, Any]:
        minimum = m.contract_size * m.qty_step
        return {
            "price_index": f"{m.base.lower()}_{m.settle.lower()}",
            "rfq": False,
            "kind": "future",
            "instrument_name": m.venue_id,
            "maker_commission": 0.0,
            "taker_commission": 0.0005,
            "instrument_type": "linear",
            "expiration_timestamp": PERPETUAL_EXPIRY,
            "creation_timestamp": 1646824342000,
            "is_active": True,
            "contract_size": m.contract_size,
            "tick_size": TICK_SIZES.get(m.base, 0.0001),
            "tick_size_steps": [],
            "instrument_id": 211704 + i,
            "settlement_period": "perpetual",
            "min_trade_amount": minimum,
            "future_type": "linear",
            "max_leverage": 50,
            "max_liquidation_commission": 0.0075,
            "block_trade_commission": 0.0001,
            "block_trade_min_trade_amount": 200000,
            "block_trade_tick_size": TICK_SIZES.get(m.base, 0.0001),
            "settlement_currency": m.settle,
            "base_currency": m.base,
            "counter_currency": m.quote,
            "quote_currency": m.quote,
        }

    async def get_instruments(self, params: dict[str, str]) -> web.Response:
        currency, kind = params.get("currency", "any"), params.get("kind", "future")
        rows = [
            self.instrument(i, m)
            for i, m in enumerate(self.markets)
            if currency in ("any", m.settle) and kind == "future"
        ]
        return self.ok(rows)

    def _book(self, market: Market) -> Any:
        return self.paper.matching.order_book(self._venue(), market.symbol)

    def _funding(self, market: Market) -> float:
        book = self.paper.books[self._venue()]
        return book.funding.get(market.symbol, book.default_funding)

    async def ticker(self, params: dict[str, str]) -> web.Response:
        m = self._instrument(params)
        mark = self._price(m.base) or 0.0
        book = self._book(m)
        rate = self._funding(m)
        return self.ok(
            {
                "timestamp": self._ms(),
                "stats": {"volume": 1000.0, "price_change": 0.0, "low": mark, "high": mark},
                "state": "open",
                "settlement_price": mark,
                "open_interest": 1000.0,
                "min_price": mark * 0.95,
                "max_price": mark * 1.05,
                "mark_price": mark,
                "last_price": mark,
                "instrument_name": m.venue_id,
                "index_price": mark,
                "estimated_delivery_price": mark,
                "interest_value": 0.0,
                "funding_8h": rate,
                "current_funding": rate,
                "best_bid_price": book.bids[0][0] if book.bids else 0.0,
                "best_bid_amount": book.bids[0][1] if book.bids else 0.0,
                "best_ask_price": book.asks[0][0] if book.asks else 0.0,
                "best_ask_amount": book.asks[0][1] if book.asks else 0.0,
            }
        )

    async def get_index_price(self, params: dict[str, str]) -> web.Response:
        base = params.get("index_name", "").split("_", 1)[0].upper()
        price = self._price(base)
        if price is None:
            raise RpcError(-32602, "Invalid params")
        return self.ok({"index_price": price, "estimated_delivery_price": price})

    async def get_funding_rate_value(self, params: dict[str, str]) -> web.Response:
        """The funding paid over [start, end]: the 8 h rate scaled to the window."""
        m = self._instrument(params)
        try:
            window = float(params["end_timestamp"]) - float(params["start_timestamp"])
        except (KeyError, ValueError) as e:
            raise RpcError(-32602, "Invalid params") from e
        return self.ok(self._funding(m) * window / (8 * 3600 * 1000))

    async def get_order_book(self, params: dict[str, str]) -> web.Response:
        """Levels as [price, amount]; a linear instrument's amount is in base coin."""
        m = self._instrument(params)
        depth = int(params.get("depth", "20"))
        book = self._book(m)
        mark = self._price(m.base) or 0.0
        bids = [[p, q] for p, q in book.bids[:depth]]
        asks = [[p, q] for p, q in book.asks[:depth]]
        return self.ok(
            {
                "timestamp": self._ms(),
                "change_id": self._ms(),
                "instrument_name": m.venue_id,
                "state": "open",
                "mark_price": mark,
                "index_price": mark,
                "last_price": mark,
                "settlement_price": mark,
                "bids": bids,
                "asks": asks,
                "best_bid_price": bids[0][0] if bids else 0.0,
                "best_bid_amount": bids[0][1] if bids else 0.0,
                "best_ask_price": asks[0][0] if asks else 0.0,
                "best_ask_amount": asks[0][1] if asks else 0.0,
            }
        )

    async def auth(self, params: dict[str, str]) -> web.Response:
        """grant_type=client_signature: signature = HMAC-SHA256(secret, timestamp\\nnonce\\ndata)."""
        if params.get("grant_type") != "client_signature" or params.get("client_id") != self.account.api_key:
            raise RpcError(13004, "invalid_credentials", 401)
        message = f"{params.get('timestamp', '')}\n{params.get('nonce', '')}\n{params.get('data', '')}"
        expected = hmac.new(self.account.secret.encode(), message.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params.get("signature", "")):
            raise RpcError(13004, "invalid_credentials", 401)
        return self.ok(
            {
                "access_token": secrets.token_hex(16),
                "expires_in": 900,
                "refresh_token": secrets.token_hex(16),
                "scope": self.scope,
                "sid": "fake",
                "state": "",
                "token_type": "bearer",
                "enabled_features": [],
            }
        )

    # --- accounts -----------------------------------------------------------------------------------
    async def get_subaccounts(self, params: dict[str, str]) -> web.Response:
        return self.ok(
            [
                {
                    "id": int(account),
                    "username": name,
                    "system_name": name,
                    "type": "main" if account == self.MARGIN_WALLET else "subaccount",
                    "email": f"{name}@desk.example",
                    "login_enabled": account == self.MARGIN_WALLET,
                    "is_password": account == self.MARGIN_WALLET,
                    "receive_notifications": False,
                    "security_keys_enabled": False,
                    "security_keys_assignments": [],
                }
                for account, name in self.USERNAMES.items()
            ]
        )

    def summaries(self, account: str) -> list[dict[str, Any]]:
        name = self.account.wallets.get(account)
        if name in self.paper.books:
            return self._venue_summaries(self.paper.books[name])
        holdings = {a: float(q) for a, q in self.paper.accounts.get(name or "", {}).items()}
        return self._wallet_summaries(holdings)

    def _row(self, currency: str, model: str) -> dict[str, Any]:
        return {
            "currency": currency,
            "margin_model": model,
            "cross_collateral_enabled": model.startswith("cross"),
            "portfolio_margining_enabled": model.endswith("pm"),
            "session_rpl": 0.0,
            "futures_session_rpl": 0.0,
            "options_session_upl": 0.0,
            "options_session_rpl": 0.0,
            "options_pl": 0.0,
            "options_value": 0.0,
            "options_delta": 0.0,
            "options_gamma": 0.0,
            "options_vega": 0.0,
            "options_theta": 0.0,
            "fee_balance": 0.0,
            "spot_reserve": 0.0,
            "deposit_address": f"0xdesk{currency.lower()}",
            "limits": {"non_matching_engine": {"rate": 20, "burst": 100}},
        }

    def _venue_summaries(self, book: PaperBook) -> list[dict[str, Any]]:
        """One row per held currency (USDC always): cash, session PnL, and the account-wide figures."""
        f = self.paper.figures(book)
        model = "cross_pm" if book.params.model == "portfolio" else "cross_sm"
        prices = self.paper.market.prices
        rows = []
        for c in sorted({"USDC", *book.collateral}):
            price = self._price(c)
            if not price:
                continue
            cash = float(book.collateral.get(c, Decimal(0)))
            upl = sum(
                p.qty * (prices[p.base] - p.entry) for p in book.positions if p.symbol.endswith(f":{c}")
            )
            free = max(0.0, f.equity - f.im) / price
            rows.append(
                {
                    **self._row(c, model),
                    "balance": cash,
                    "equity": cash + upl,
                    "session_upl": upl,
                    "futures_session_upl": upl,
                    "total_pl": upl,
                    "futures_pl": upl,
                    "margin_balance": f.equity / price,
                    "initial_margin": f.im / price,
                    "maintenance_margin": f.mm / price,
                    "projected_initial_margin": f.im / price,
                    "projected_maintenance_margin": f.mm / price,
                    "available_funds": free,
                    "available_withdrawal_funds": max(0.0, min(cash, free)),
                    "delta_total": sum(p.qty for p in book.positions if p.base == c),
                    "estimated_liquidation_ratio": f.mm_ratio if f.equity > 0 else None,
                }
            )
        return rows

    def _wallet_summaries(self, holdings: dict[str, float]) -> list[dict[str, Any]]:
        total = sum(q * (self._price(a) or 0.0) for a, q in holdings.items())
        rows = []
        for c in sorted({"USDC", *holdings}):
            price = self._price(c)
            if not price:
                continue
            cash = holdings.get(c, 0.0)
            rows.append(
                {
                    **self._row(c, "cross_sm"),
                    "balance": cash,
                    "equity": cash,
                    "session_upl": 0.0,
                    "futures_session_upl": 0.0,
                    "total_pl": 0.0,
                    "futures_pl": 0.0,
                    "margin_balance": total / price,
                    "initial_margin": 0.0,
                    "maintenance_margin": 0.0,
                    "projected_initial_margin": 0.0,
                    "projected_maintenance_margin": 0.0,
                    "available_funds": total / price,
                    "available_withdrawal_funds": cash,
                    "delta_total": 0.0,
                }
            )
        return rows

    async def get_account_summaries(self, params: dict[str, str]) -> web.Response:
        account = self._account_of(params)
        name = self.USERNAMES[account]
        return self.ok(
            {
                "summaries": self.summaries(account),
                "id": int(account),
                "username": name,
                "system_name": name,
                "type": "main" if account == self.MARGIN_WALLET else "subaccount",
                "email": f"{name}@desk.example",
                "creation_timestamp": 1646824342000,
                "login_enabled": True,
                "mmp_enabled": False,
                "interuser_transfers_enabled": False,
                "security_keys_enabled": False,
            }
        )

    async def get_account_summary(self, params: dict[str, str]) -> web.Response:
        rows = [
            r for r in self.summaries(self._account_of(params)) if r["currency"] == params.get("currency")
        ]
        if not rows:
            raise RpcError(-32602, "Invalid params")
        return self.ok(rows[0])

    def position(self, book: PaperBook, p: Position) -> dict[str, Any]:
        """Deribit's position row; size and size_currency in base coin for a linear instrument."""
        market = self.by_symbol.get(p.symbol) or self.market_for(p.symbol)
        mark = self.paper.market.prices[p.base]
        notional = abs(p.qty * mark)
        upl = p.qty * (mark - p.entry)
        return {
            "instrument_name": market.venue_id,
            "kind": "future",
            "direction": "buy" if p.qty > 0 else "sell",
            "size": p.qty,
            "size_currency": p.qty,
            "average_price": p.entry,
            "mark_price": mark,
            "index_price": mark,
            "settlement_price": p.entry,  # no daily settlement in the paper world since entry
            "floating_profit_loss": upl,
            "total_profit_loss": upl,
            "realized_profit_loss": 0.0,
            "realized_funding": 0.0,
            "initial_margin": notional * book.params.im_rate,
            "maintenance_margin": tiered_mm(notional, book.params.tiers),
            "open_orders_margin": 0.0,
            "leverage": max(1, round(1 / book.params.im_rate)),
            "delta": p.qty,
            "estimated_liquidation_price": None,
            "interest_value": 0.0,
        }

    async def get_positions(self, params: dict[str, str]) -> web.Response:
        name = self.account.wallets.get(self._account_of(params))
        book = self.paper.books.get(name or "")
        if book is None:
            return self.ok([])
        currency = params.get("currency", "any")
        rows = [
            self.position(book, p) for p in book.positions if currency in ("any", p.symbol.rsplit(":", 1)[-1])
        ]
        return self.ok(rows)

    # --- orders -------------------------------------------------------------------------------------
    async def buy(self, params: dict[str, str]) -> web.Response:
        return await self.order("buy", params)

    async def sell(self, params: dict[str, str]) -> web.Response:
        return await self.order("sell", params)

    async def order(self, side: str, params: dict[str, str]) -> web.Response:
        """A market order, immediate-or-cancel in the paper matching; `amount` in base coin, a multiple of
        min_trade_amount; label = the paper world's client id."""
        self.received.append((f"private/{side}", params))
        m = self._instrument(params)
        amount = self._amount(params)
        if params.get("type", "limit") != "market":
            raise RpcError(11029, "invalid_arguments")
        minimum = Decimal(repr(m.contract_size * m.qty_step))
        if amount < minimum:
            raise RpcError(10002, "qty_too_low")
        if amount % minimum != 0:
            raise RpcError(10021, "invalid_amount")
        label = params.get("label") or f"deribit-order-{self._next()}"
        req = OrderRequest(label, self._venue(), m.symbol, side, amount, params.get("reduce_only") == "true")
        try:
            receipt = self.place(req)
        except OrderRefused as e:
            raise RpcError(refusal_code(str(e)), str(e)) from e
        order = self.order_row(req, receipt)
        trade = {
            "trade_id": f"{m.settle}-{order['order_id']}",
            "order_id": order["order_id"],
            "instrument_name": m.venue_id,
            "direction": side,
            "amount": float(receipt.filled),
            "price": receipt.avg_price,
            "fee": receipt.fee,
            "fee_currency": m.settle,
            "label": label,
            "timestamp": int(receipt.ts * 1000),
            "liquidity": "T",
            "order_type": "market",
            "state": order["order_state"],
        }
        return self.ok({"order": order, "trades": [trade] if receipt.filled else []})

    def order_row(self, req: OrderRequest, receipt: OrderReceipt) -> dict[str, Any]:
        m = self.by_symbol.get(req.symbol) or self.market_for(req.symbol)
        if req.client_id not in self.order_ids:
            self.order_ids[req.client_id] = f"{m.settle}-{self._next()}"
        ms = int(receipt.ts * 1000)
        return {
            "order_id": self.order_ids[req.client_id],
            "label": req.client_id,
            "instrument_name": m.venue_id,
            "direction": req.side,
            "order_type": "market",
            "order_state": "filled" if receipt.filled == req.qty else "cancelled",
            "time_in_force": "immediate_or_cancel",
            "amount": float(req.qty),
            "filled_amount": float(receipt.filled),
            "average_price": receipt.avg_price,
            "price": "market_price",
            "commission": receipt.fee,
            "creation_timestamp": ms,
            "last_update_timestamp": ms,
            "reduce_only": req.reduce_only,
            "post_only": False,
            "is_liquidation": False,
            "api": True,
            "web": False,
            "mmp": False,
            "risk_reducing": False,
            "replaced": False,
            "max_show": float(req.qty),
        }

    async def get_order_state_by_label(self, params: dict[str, str]) -> web.Response:
        label = params.get("label", "")
        record = self.order_record(label)
        if record is None or self.hidden(f"order-{label}"):
            return self.ok([])
        req, receipt = record
        settle = req.symbol.rsplit(":", 1)[-1]
        return self.ok([self.order_row(req, receipt)] if params.get("currency") == settle else [])

    # --- transfers and withdrawals ------------------------------------------------------------------
    def _nonce(self, params: dict[str, str]) -> str | None:
        nonce = params.get("nonce")
        if nonce is not None and not 8 <= len(nonce) <= 128:
            raise RpcError(-32602, "Invalid params")
        return nonce

    def _send(self, move: Move, route: Any) -> None:
        """Into the paper world under the move's client id; a refusal undoes the record."""
        known = move.cid in self.moves
        self.moves.setdefault(move.cid, move)
        try:
            self.send(route, move.cid, move.amount)
        except (TransferRefused, VenueUnavailable) as e:
            if not known:  # nothing moved: the venue has no such transfer
                del self.moves[move.cid]
            if isinstance(e, VenueUnavailable):
                raise
            raise RpcError(refusal_code(str(e)), str(e)) from e

    async def submit_transfer_between_subaccounts(self, params: dict[str, str]) -> web.Response:
        self.received.append(("private/submit_transfer_between_subaccounts", params))
        return self.ok(self.internal(params, params.get("source") or self.MARGIN_WALLET))

    async def submit_transfer_to_subaccount(self, params: dict[str, str]) -> web.Response:
        self.received.append(("private/submit_transfer_to_subaccount", params))
        return self.ok(self.internal({k: v for k, v in params.items() if k != "nonce"}, self.MARGIN_WALLET))

    def internal(self, params: dict[str, str], source: str) -> dict[str, Any]:
        currency, destination = params.get("currency", ""), params.get("destination", "")
        if source not in self.USERNAMES or destination not in self.USERNAMES or source == destination:
            raise RpcError(11029, "invalid_arguments")
        route = self.route_between(
            self.account.wallets.get(source, ""), self.account.wallets.get(destination, ""), currency
        )
        if route is None:
            raise RpcError(12100, "transfer_not_allowed")
        nonce = self._nonce(params)
        cid = nonce or f"deribit-transfer-{self._seq + 1}"
        move = self.moves.get(cid) or Move(
            self._next(),
            "transfer",
            cid,
            nonce,
            currency,
            self._amount(params),
            source,
            destination,
            self._ms(),
        )
        self._send(move, route)
        return self.transfer_row(move)

    def transfer_row(self, move: Move) -> dict[str, Any]:
        t = self.paper.transfers.get(move.cid)
        state = TRANSFER_STATE[t.state] if t is not None else "prepared"
        outgoing = move.destination != self.MARGIN_WALLET
        row = {
            "id": move.id,
            "amount": float(move.amount),
            "currency": move.currency,
            "created_timestamp": move.created_ms,
            "updated_timestamp": int((t.settled_at or t.submitted_at) * 1000) if t else move.created_ms,
            "direction": "payment" if outgoing else "income",
            "other_side": self.USERNAMES[move.destination if outgoing else move.source],
            "state": state,
            "type": "subaccount",
        }
        return {**row, "nonce": move.nonce} if move.nonce else row

    async def get_transfers(self, params: dict[str, str]) -> web.Response:
        rows = [
            self.transfer_row(m)
            for m in self.moves.values()
            if m.kind == "transfer" and m.currency == params.get("currency")
        ]
        return self.ok(self._page(rows, params, "transfer"))

    def _page(self, rows: list[dict[str, Any]], params: dict[str, str], kind: str) -> dict[str, Any]:
        shown = [r for r in rows if not self.hidden(f"{kind}-{r['id']}")]
        shown.sort(key=lambda r: -int(r["id"]))
        offset, count = int(params.get("offset", "0")), int(params.get("count", "10"))
        return {"count": len(shown), "data": shown[offset : offset + count]}

    async def withdraw(self, params: dict[str, str]) -> web.Response:
        """From the main account only (Deribit: subaccounts cannot withdraw), to an address-book address."""
        self.received.append(("private/withdraw", params))
        currency, address = params.get("currency", ""), params.get("address", "")
        source = self.account.wallets.get(self.MARGIN_WALLET, "")
        route = self.route_to_address(source, currency, address)
        if route is None:
            raise RpcError(11091, "invalid_transfer_address")
        nonce = self._nonce(params)
        cid = nonce or f"deribit-withdrawal-{self._seq + 1}"
        move = self.moves.get(cid) or Move(
            self._next(),
            "withdrawal",
            cid,
            nonce,
            currency,
            self._amount(params),
            self.MARGIN_WALLET,
            address,
            self._ms(),
            route.fee,
        )
        self._send(move, route)
        return self.ok(self.withdrawal_row(move))

    def withdrawal_row(self, move: Move) -> dict[str, Any]:
        t = self.paper.transfers.get(move.cid)
        state = WITHDRAWAL_STATE[t.state] if t is not None else "unconfirmed"
        updated = int((t.settled_at or t.submitted_at) * 1000) if t else move.created_ms
        row = {
            "id": move.id,
            "address": move.destination,
            "amount": float(move.amount),
            "currency": move.currency,
            "fee": float(move.fee),
            "priority": 1.0,
            "state": state,
            "transaction_id": f"0x{move.cid}" if state == "completed" else None,
            "created_timestamp": move.created_ms,
            "confirmed_timestamp": move.created_ms,
            "updated_timestamp": updated,
        }
        return {**row, "nonce": move.nonce} if move.nonce else row

    async def get_withdrawals(self, params: dict[str, str]) -> web.Response:
        rows = [
            self.withdrawal_row(m)
            for m in self.moves.values()
            if m.kind == "withdrawal" and m.currency == params.get("currency")
        ]
        return self.ok(self._page(rows, params, "withdrawal"))

    async def get_deposits(self, params: dict[str, str]) -> web.Response:
        """Withdrawals from elsewhere into the signing account (or `subaccount_id`), as Deribit lists them."""
        name = self.account.wallets.get(self._account_of(params), "")
        currency = params.get("currency", "")
        rows = [
            {
                "address": f"0xdesk{currency.lower()}",
                "amount": float(d["amount"]),
                "currency": currency,
                "received_timestamp": int(d["ts"] * 1000),
                "updated_timestamp": int(d["ts"] * 1000),
                "state": DEPOSIT_STATE[d["state"]],
                "transaction_id": d["txid"],
            }
            for d in deposit_history(self.paper, name, currency)
        ]
        return self.ok({"count": len(rows), "data": rows})
