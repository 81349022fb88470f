"""A fake Bybit v5 (unified trading account) over the paper world: the REST endpoints ccxt's bybit calls.

Every answer is Bybit's envelope `{"retCode", "retMsg", "result", "retExtInfo", "time"}`; a refusal is HTTP 200
with a non-zero `retCode` (the codes ccxt's bybit maps to the intended classes), a gateway failure (5xx) a
plain-text page, as the real venue's edge answers.

    public   GET  /v5/market/instruments-info   linear perpetuals (status=PreLaunch: none listed)
             GET  /v5/market/tickers            mark, index and last price, funding rate (linear)
             GET  /v5/market/orderbook          the paper matching book
    private  GET  /v5/asset/coin/query-info     coins and their chains (ccxt's load_markets asks with a key)
             GET  /v5/account/wallet-balance    UNIFIED: account IM / MM rates and totals, per-coin rows
             GET  /v5/asset/transfer/query-account-coins-balance   FUND wallet balances
             GET  /v5/position/list             per settleCoin or symbol, with positionIM / positionMM
             POST /v5/order/create              market orders (immediate-or-cancel), orderLinkId, reduceOnly
             GET  /v5/order/history, /v5/order/realtime   by orderLinkId / orderId
             POST /v5/asset/transfer/inter-transfer           transferId (a UUID; a repeat is refused, 131214)
             GET  /v5/asset/transfer/query-inter-transfer-list  by transferId
             POST /v5/asset/withdraw/create     accountType FUND | UTA, chain, tag, feeType, requestId
             GET  /v5/asset/withdraw/query-record, /v5/asset/deposit/query-record
             GET  /v5/user/query-api            the key's permissions and IP whitelist

Private calls are checked as Bybit checks them: X-BAPI-SIGN = hex HMAC-SHA256(secret, timestamp + api key +
recv window + query string (GET) or body (POST)), with the timestamp inside the receive window.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from bot.core.margin import tiered_mm
from bot.errors import OrderRefused, TransferRefused
from bot.settings import RouteModel, Settings
from bot.venues.base import OrderReceipt, OrderRequest, TransferState
from bot.venues.fakes.base import Account, FakeExchange, Market, deposit_history
from bot.venues.paper import PaperBook, PaperExchange

# Bybit's chain ids for the unified network names routes use (the venue's wire values)
CHAINS = {
    "TRC20": "TRX",
    "ERC20": "ETH",
    "BEP20": "BSC",
    "ARBITRUM": "ARBI",
    "POLYGON": "MATIC",
    "OPTIMISM": "OP",
    "AVAXC": "CAVAX",
}
DEFAULT_CHAIN = {"USDT": "ETH", "USDC": "ETH", "ETH": "ETH", "BTC": "BTC"}
WITHDRAW_ACCOUNT_TYPES = {"FUND": "FUND", "UTA": "UNIFIED", "FUND,UTA": "FUND"}
TRANSFER_STATUS = {
    TransferState.SETTLED: "SUCCESS",
    TransferState.PENDING: "PENDING",
    TransferState.FAILED: "FAILED",
}
WITHDRAW_STATUS = {
    TransferState.SETTLED: "success",
    TransferState.PENDING: "Pending",
    TransferState.FAILED: "Fail",
}
DEPOSIT_STATUS = {TransferState.SETTLED: 3, TransferState.PENDING: 1, TransferState.FAILED: 4}
FUNDING_PERIOD_MS = 8 * 3600 * 1000
DEFAULT_CODES = {400: 10001, 401: 10004, 403: 10005, 404: 10017, 418: 10009, 429: 10006}

ENDPOINTS = {
    "/v5/market/instruments-info": "markets",
    "/v5/asset/coin/query-info": "markets",
    "/v5/market/tickers": "tickers",
    "/v5/market/orderbook": "book",
    "/v5/account/wallet-balance": "balance",
    "/v5/asset/transfer/query-account-coins-balance": "balance",
    "/v5/position/list": "positions",
    "/v5/order/create": "order",
    "/v5/order/history": "lookup",
    "/v5/order/realtime": "lookup",
    "/v5/asset/transfer/inter-transfer": "transfer",
    "/v5/asset/transfer/query-inter-transfer-list": "lookup",
    "/v5/asset/withdraw/create": "withdraw",
    "/v5/asset/withdraw/query-record": "history",
    "/v5/asset/deposit/query-record": "history",
    "/v5/user/query-api": "permissions",
}


class Refusal(Exception):
    """A request the venue refuses: answered with `code` and `message` in Bybit's envelope."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class OrderMeta:
    order_id: str
    link_id: str  # as the client sent it ("" when none)
    client_id: str  # the paper world's id of the order
    market: Market
    created_ms: int


@dataclass
class WithdrawalMeta:
    withdraw_id: str
    client_id: str  # the paper world's id of the transfer
    request_id: str | None
    coin: str
    chain: str
    address: str
    tag: str
    fee: Decimal
    created_ms: int


def dec_str(value: float | Decimal) -> str:
    """A number as Bybit writes it: plain decimal notation, exact for the float given."""
    d = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "") else text


def envelope(result: Any, code: int, message: str, time_ms: int) -> dict[str, Any]:
    """Bybit's answer envelope; `retCode` 0 is success."""
    return {
        "retCode": code,
        "retMsg": message,
        "result": {} if result is None else result,
        "retExtInfo": {},
        "time": time_ms,
    }


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def hex_id(text: str) -> str:
    """The paper world's id for a UUID the client sent (its 32 hex digits); other ids unchanged."""
    try:
        return uuid.UUID(text).hex if len(text) == 36 else text
    except ValueError:
        return text


def uuid_of(client_id: str) -> str:
    """The UUID form of a 32-hex id (how a transferId appears on the wire)."""
    try:
        return str(uuid.UUID(hex=client_id))
    except ValueError:
        return client_id


class FakeBybit(FakeExchange):
    exchange_id = "bybit"
    MARGIN_WALLET = "UNIFIED"
    FUNDING_WALLET = "FUND"

    @classmethod
    def market_for(cls, symbol: str) -> Market:
        base, _, rest = symbol.partition("/")
        quote, _, settle = rest.partition(":")
        settle = settle or quote
        venue_id = f"{base}PERP" if settle == "USDC" and base in ("BTC", "ETH") else f"{base}{quote}"
        return Market(symbol, venue_id, base, quote, settle, contract_size=1.0, qty_step=0.001)

    def __init__(
        self,
        paper: PaperExchange,
        settings: Settings,
        account: Account,
        markets: list[Market],
        *,
        hang_seconds: float = 2.0,
    ) -> None:
        super().__init__(paper, settings, account, markets, hang_seconds=hang_seconds)
        self.received: list[tuple[str, dict[str, Any]]] = []  # (path, parameters) of every private call
        self.orders: dict[str, OrderMeta] = {}  # orderId -> order
        self.withdrawals: dict[str, WithdrawalMeta] = {}  # withdrawId -> withdrawal
        self.key_read_only = 0
        self.key_ips: list[str] = ["127.0.0.1"]
        self.key_permissions: dict[str, list[str]] = {
            "ContractTrade": ["Order", "Position"],
            "Spot": ["SpotTrade"],
            "Wallet": ["AccountTransfer", "SubMemberTransfer", "Withdraw"],
            "Options": ["OptionsTrade"],
            "Derivatives": ["DerivativesTrade"],
            "Exchange": ["ExchangeHistory"],
            "Earn": [],
            "NFT": [],
            "CopyTrading": [],
            "BlockTrade": [],
            "Affiliate": [],
        }

    # --- the exchange's shape -----------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        get = {
            "/v5/market/instruments-info": self.instruments,
            "/v5/market/tickers": self.tickers,
            "/v5/market/orderbook": self.orderbook,
            "/v5/asset/coin/query-info": self.coins,
            "/v5/account/wallet-balance": self.wallet_balance,
            "/v5/asset/transfer/query-account-coins-balance": self.fund_balance,
            "/v5/position/list": self.position_list,
            "/v5/order/history": self.order_history,
            "/v5/order/realtime": self.order_realtime,
            "/v5/asset/transfer/query-inter-transfer-list": self.transfer_list,
            "/v5/asset/withdraw/query-record": self.withdraw_records,
            "/v5/asset/deposit/query-record": self.deposit_records,
            "/v5/user/query-api": self.query_api,
        }
        post = {
            "/v5/order/create": self.order_create,
            "/v5/asset/transfer/inter-transfer": self.inter_transfer,
            "/v5/asset/withdraw/create": self.withdraw_create,
        }
        for path, fn in get.items():
            app.router.add_get(path, self._wrap(fn))
        for path, fn in post.items():
            app.router.add_post(path, self._wrap(fn))

    def endpoint_of(self, request: web.Request) -> str:
        return ENDPOINTS.get(request.path, "any")

    async def verify(self, request: web.Request, body: str) -> bool:
        if request.path.startswith("/v5/market/"):
            return True
        h = request.headers
        key, ts, window, sign = (
            h.get("X-BAPI-API-KEY"),
            h.get("X-BAPI-TIMESTAMP"),
            h.get("X-BAPI-RECV-WINDOW"),
            h.get("X-BAPI-SIGN"),
        )
        if not key or not ts or not window or not sign or key != self.account.api_key:
            return False
        if not ts.isdigit() or not window.isdigit():
            return False
        now_ms = int(time.time() * 1000)
        if not (now_ms - int(window) <= int(ts) < now_ms + 1000):
            return False
        payload = body if request.method == "POST" else request.raw_path.partition("?")[2]
        expected = hmac.new(
            self.account.secret.encode(), (ts + key + window + payload).encode(), hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, sign)

    def error(self, status: int, message: str, code: str | int = "") -> web.Response:
        if status >= 500:  # the edge's page, not the API's envelope: ccxt maps it by the HTTP status
            return web.Response(status=status, text=f"{status} {message}", content_type="text/plain")
        ret = int(code) if str(code).lstrip("-").isdigit() else DEFAULT_CODES.get(status, 10001)
        return web.json_response(self.envelope(None, ret, message), status=status)

    def envelope(self, result: Any, code: int = 0, message: str = "OK") -> dict[str, Any]:
        return envelope(result, code, message, self.now_ms())

    def now_ms(self) -> int:
        return ms(self.paper.now())

    def _wrap(self, fn: Any) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                params = await self._params(request)
                if not request.path.startswith("/v5/market/"):
                    self.received.append((request.path, params))
                result = fn(params)
            except Refusal as r:
                return web.json_response(self.envelope(None, r.code, r.message))
            return web.json_response(self.envelope(result))

        return handler

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        if request.method == "POST":
            text = await request.text()
            try:
                data = json.loads(text or "{}")
            except ValueError:
                raise Refusal(10001, "request body is not JSON") from None
            if not isinstance(data, dict):
                raise Refusal(10001, "request body is not an object")
            return data
        return dict(request.query)

    # --- helpers over the paper world -------------------------------------------------------------------
    def _venue(self) -> str | None:
        return self.account.wallets.get(self.MARGIN_WALLET)

    def _book(self) -> PaperBook | None:
        name = self._venue()
        return None if name is None else self.paper.books.get(name)

    def _market(self, venue_id: Any) -> Market:
        m = self.by_id.get(str(venue_id))
        if m is None:
            raise Refusal(10001, f"params error: symbol invalid {venue_id}")
        return m

    def _linear(self, p: dict[str, Any]) -> None:
        if p.get("category") != "linear":
            raise Refusal(10001, "params error: this account trades the linear category only")

    @staticmethod
    def _amount(value: Any) -> Decimal:
        try:
            amount = Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise Refusal(10001, f"params error: amount {value!r}") from None
        if not amount.is_finite() or amount <= 0:
            raise Refusal(10001, f"params error: amount {value!r}")
        return amount

    def _position_rows(self, book: PaperBook) -> list[tuple[Market, dict[str, Any], str]]:
        """(market, row, settle coin) for each open position of the margin wallet's book."""
        prices = self.paper.market.prices
        rows = []
        ms = self.now_ms()
        for p in book.positions:
            m = self.by_symbol.get(p.symbol)
            if m is None or p.qty == 0:
                continue
            mark = prices[p.base]
            notional = abs(p.qty * mark)
            im = notional * book.params.im_rate
            mm = tiered_mm(notional, book.params.tiers)
            size = abs(p.qty) / m.contract_size
            rows.append(
                (
                    m,
                    {
                        "positionIdx": 0,
                        "riskId": 1,
                        "riskLimitValue": "2000000",
                        "symbol": m.venue_id,
                        "side": "Buy" if p.qty > 0 else "Sell",
                        "size": dec_str(size),
                        "avgPrice": dec_str(p.entry),
                        "positionValue": dec_str(abs(p.qty) * p.entry),
                        "tradeMode": 0,
                        "autoAddMargin": 0,
                        "positionStatus": "Normal",
                        "leverage": dec_str(round(1 / book.params.im_rate, 2)),
                        "markPrice": dec_str(mark),
                        "liqPrice": "",
                        "bustPrice": "",
                        "positionIM": dec_str(im),
                        "positionIMByMp": dec_str(im),
                        "positionMM": dec_str(mm),
                        "positionMMByMp": dec_str(mm),
                        "positionBalance": "",
                        "takeProfit": "",
                        "stopLoss": "",
                        "trailingStop": "0",
                        "sessionAvgPrice": "",
                        "unrealisedPnl": dec_str(p.qty * (mark - p.entry)),
                        "curRealisedPnl": "0",
                        "cumRealisedPnl": "0",
                        "adlRankIndicator": 2,
                        "createdTime": str(ms),
                        "updatedTime": str(ms),
                        "seq": 1,
                        "isReduceOnly": False,
                        "mmrSysUpdatedTime": "",
                        "leverageSysUpdatedTime": "",
                    },
                    m.settle,
                )
            )
        return rows

    # --- public market data -----------------------------------------------------------------------------
    def instruments(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        listed = [] if p.get("status") == "PreLaunch" else self.markets
        if p.get("symbol"):
            listed = [m for m in listed if m.venue_id == p["symbol"]]
        rows = [
            {
                "symbol": m.venue_id,
                "contractType": "LinearPerpetual",
                "status": "Trading",
                "baseCoin": m.base,
                "quoteCoin": m.quote,
                "settleCoin": m.settle,
                "launchTime": "1585526400000",
                "deliveryTime": "0",
                "deliveryFeeRate": "",
                "priceScale": "2",
                "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                "priceFilter": {"minPrice": "0.01", "maxPrice": "1999999.98", "tickSize": "0.01"},
                "lotSizeFilter": {
                    "maxOrderQty": "1000000",
                    "maxMktOrderQty": "1000000",
                    "minOrderQty": dec_str(m.qty_step),
                    "qtyStep": dec_str(m.qty_step),
                    "postOnlyMaxOrderQty": "1000000",
                    "minNotionalValue": "5",
                },
                "unifiedMarginTrade": True,
                "fundingInterval": 480,
                "copyTrading": "both",
                "upperFundingRate": "0.00375",
                "lowerFundingRate": "-0.00375",
                "isPreListing": False,
                "preListingInfo": None,
            }
            for m in listed
        ]
        return {"category": "linear", "list": rows, "nextPageCursor": ""}

    def _funding_rate(self, m: Market) -> float:
        book = self._book()
        return 0.0001 if book is None else book.funding.get(m.symbol, book.default_funding)

    def tickers(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        listed = [self._market(p["symbol"])] if p.get("symbol") else self.markets
        prices = self.paper.market.prices
        venue = self._venue()
        next_funding = (self.now_ms() // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
        rows = []
        for m in listed:
            mark = prices.get(m.base)
            if mark is None:
                continue
            bid, ask = mark, mark
            if venue is not None:
                ob = self.paper.matching.order_book(venue, m.symbol)
                bid = ob.bids[0][0] if ob.bids else mark
                ask = ob.asks[0][0] if ob.asks else mark
            rows.append(
                {
                    "symbol": m.venue_id,
                    "lastPrice": dec_str(mark),
                    "indexPrice": dec_str(mark),
                    "markPrice": dec_str(mark),
                    "prevPrice24h": dec_str(mark),
                    "price24hPcnt": "0",
                    "highPrice24h": dec_str(mark),
                    "lowPrice24h": dec_str(mark),
                    "prevPrice1h": dec_str(mark),
                    "openInterest": "0",
                    "openInterestValue": "0",
                    "turnover24h": "0",
                    "volume24h": "0",
                    "fundingRate": dec_str(self._funding_rate(m)),
                    "nextFundingTime": str(next_funding),
                    "predictedDeliveryPrice": "",
                    "basisRate": "",
                    "deliveryFeeRate": "",
                    "deliveryTime": "0",
                    "bid1Price": dec_str(bid),
                    "bid1Size": "1",
                    "ask1Price": dec_str(ask),
                    "ask1Size": "1",
                    "preOpenPrice": "",
                    "preQty": "",
                    "curPreListingPhase": "",
                }
            )
        return {"category": "linear", "list": rows}

    def orderbook(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        m = self._market(p.get("symbol"))
        venue = self._venue()
        if venue is None:
            raise Refusal(10001, "params error: no order book on this account")
        limit = int(p.get("limit") or 25)
        ob = self.paper.matching.order_book(venue, m.symbol)

        def side(levels: tuple[tuple[float, float], ...]) -> list[list[str]]:
            return [[dec_str(px), dec_str(qty / m.contract_size)] for px, qty in levels[:limit]]

        ms = self.now_ms()
        return {
            "s": m.venue_id,
            "b": side(ob.bids),
            "a": side(ob.asks),
            "ts": ms,
            "u": 1,
            "seq": 1,
            "cts": ms,
        }

    # --- account --------------------------------------------------------------------------------------
    def coins(self, p: dict[str, Any]) -> dict[str, Any]:
        names = set(self.account.wallets.values())
        coins: set[str] = set()
        for m in self.markets:
            coins.update((m.base, m.quote, m.settle))
        for name in names:
            coins.update(self.balances(name))
        chains: dict[str, dict[str, RouteModel | None]] = {}
        for r in self.settings.routes:
            coins.add(r.asset)
            if r.method == "withdrawal" and r.network:
                chains.setdefault(r.asset, {}).setdefault(CHAINS.get(r.network, r.network), r)
        if p.get("coin"):
            coins &= {str(p["coin"])}
        rows = []
        for coin in sorted(coins):
            by_chain = chains.get(coin) or {DEFAULT_CHAIN.get(coin, coin): None}
            rows.append(
                {
                    "name": coin,
                    "coin": coin,
                    "remainAmount": "10000000",
                    "chains": [
                        {
                            "chainType": chain,
                            "confirmation": "20",
                            "withdrawFee": dec_str(route.fee) if route else "0",
                            "depositMin": "0",
                            "withdrawMin": "0",
                            "chain": chain,
                            "chainDeposit": "1",
                            "chainWithdraw": "1",
                            "minAccuracy": "8",
                            "withdrawPercentageFee": "0",
                            "contractAddress": "",
                        }
                        for chain, route in by_chain.items()
                    ],
                }
            )
        return {"rows": rows}

    def wallet_balance(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("accountType") != self.MARGIN_WALLET:
            raise Refusal(10001, "accountType only support UNIFIED")
        book = self._book()
        if book is None:
            return {"list": []}
        return {"list": [self.unified_row(book)]}

    def unified_row(self, book: PaperBook) -> dict[str, Any]:
        """The UNIFIED wallet as Bybit reports it: account-level totals and rates, then one row per coin."""
        prices = self.paper.market.prices
        f = self.paper.figures(book)
        per_coin: dict[str, dict[str, float]] = {}
        for a, q in book.collateral.items():
            per_coin.setdefault(a, {"wb": 0.0, "upl": 0.0, "im": 0.0, "mm": 0.0})["wb"] = float(q)
        for _, row, settle in self._position_rows(book):
            c = per_coin.setdefault(settle, {"wb": 0.0, "upl": 0.0, "im": 0.0, "mm": 0.0})
            c["upl"] += float(row["unrealisedPnl"])
            c["im"] += float(row["positionIM"])
            c["mm"] += float(row["positionMM"])
        coins = []
        total_equity = wallet_usd = upl_usd = 0.0
        for coin, c in sorted(per_coin.items()):
            price = prices.get(coin, 1.0)
            equity = c["wb"] + c["upl"]
            total_equity += equity * price
            wallet_usd += c["wb"] * price * (1.0 - book.haircuts.get(coin, 0.0))
            upl_usd += c["upl"] * price
            coins.append(
                {
                    "coin": coin,
                    "equity": dec_str(equity),
                    "usdValue": dec_str(equity * price),
                    "walletBalance": dec_str(c["wb"]),
                    "free": "",
                    "locked": "0",
                    "spotHedgingQty": "0",
                    "borrowAmount": "0",
                    "availableToBorrow": "",
                    "availableToWithdraw": "",  # deprecated for UTA 2.0: ccxt derives free from the IM fields
                    "accruedInterest": "0",
                    "totalOrderIM": "0",
                    "totalPositionIM": dec_str(c["im"]),
                    "totalPositionMM": dec_str(c["mm"]),
                    "unrealisedPnl": dec_str(c["upl"]),
                    "cumRealisedPnl": "0",
                    "bonus": "0",
                    "marginCollateral": True,
                    "collateralSwitch": True,
                }
            )

        def rate(x: float) -> str:
            return f"{x / f.equity:.4f}" if f.equity > 0 else ""

        return {
            "accountType": self.MARGIN_WALLET,
            "accountLTV": "0",
            "accountIMRate": rate(f.im),
            "accountIMRateByMp": rate(f.im),
            "accountMMRate": rate(f.mm),
            "accountMMRateByMp": rate(f.mm),
            "totalEquity": dec_str(total_equity),
            "totalWalletBalance": dec_str(wallet_usd),
            "totalMarginBalance": dec_str(f.equity),
            "totalAvailableBalance": dec_str(max(0.0, f.equity - f.im)),
            "totalPerpUPL": dec_str(upl_usd),
            "totalInitialMargin": dec_str(f.im),
            "totalInitialMarginByMp": dec_str(f.im),
            "totalMaintenanceMargin": dec_str(f.mm),
            "totalMaintenanceMarginByMp": dec_str(f.mm),
            "coin": coins,
        }

    def fund_balance(self, p: dict[str, Any]) -> dict[str, Any]:
        wallet = str(p.get("accountType") or "")
        name = self.account.wallets.get(wallet)
        if name is None:
            raise Refusal(10001, f"params error: accountType {wallet or 'missing'}")
        balances = self.balances(name)
        if p.get("coin"):
            wanted = set(str(p["coin"]).split(","))
            balances = {a: q for a, q in balances.items() if a in wanted}
        rows = [
            {"coin": a, "walletBalance": dec_str(q), "transferBalance": dec_str(q), "bonus": ""}
            for a, q in sorted(balances.items())
        ]
        return {"memberId": "533285", "accountType": wallet, "balance": rows}

    def position_list(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        symbol, settle = p.get("symbol"), p.get("settleCoin")
        if not symbol and not settle and not p.get("baseCoin"):
            raise Refusal(10001, "params error: symbol or settleCoin is required")
        book = self._book()
        rows = []
        for m, row, coin in [] if book is None else self._position_rows(book):
            if symbol and m.venue_id != symbol:
                continue
            if settle and coin != settle:
                continue
            if p.get("baseCoin") and m.base != p["baseCoin"]:
                continue
            rows.append(row)
        return {"category": "linear", "list": rows, "nextPageCursor": ""}

    def query_api(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "13770661",
            "note": "marginbot",
            "apiKey": self.account.api_key,
            "readOnly": self.key_read_only,
            "secret": "",
            "permissions": {k: list(v) for k, v in self.key_permissions.items()},
            "ips": list(self.key_ips),
            "type": 1,
            "deadlineDay": 83,
            "expiredAt": "2026-12-31T00:00:00Z",
            "createdAt": "2025-01-01T00:00:00Z",
            "unified": 0,
            "uta": 1,
            "userID": 24600000,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
            "parentUid": "0",
            "kycLevel": "LEVEL_1",
            "kycRegion": "",
        }

    # --- orders ---------------------------------------------------------------------------------------
    def order_create(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        m = self._market(p.get("symbol"))
        venue = self._venue()
        if venue is None:
            raise Refusal(10001, "params error: this account has no unified trading wallet")
        side, qty, link = self._order_params(p, m)
        order_id = str(uuid.uuid4())
        client_id = hex_id(link) if link else order_id
        meta = OrderMeta(order_id, link, client_id, m, self.now_ms())
        self.orders[order_id] = meta
        req = OrderRequest(
            client_id=client_id,
            venue=venue,
            symbol=m.symbol,
            side=side,
            qty=qty * Decimal(dec_str(m.contract_size)),
            reduce_only=bool(p.get("reduceOnly")),
        )
        try:
            self.place(req)
        except OrderRefused as e:
            del self.orders[order_id]
            raise _order_refusal(str(e)) from None
        except BaseException:
            if self.order_record(client_id) is None:  # failed before the book: no order exists
                del self.orders[order_id]
            raise
        return {"orderId": order_id, "orderLinkId": link}

    def _order_params(self, p: dict[str, Any], m: Market) -> tuple[str, Decimal, str]:
        """Side, quantity (contracts) and orderLinkId of a create request, refused as Bybit refuses them."""
        side = {"Buy": "buy", "Sell": "sell"}.get(str(p.get("side")))
        if side is None:
            raise Refusal(10001, f"params error: side {p.get('side')!r}")
        if p.get("orderType") != "Market":
            raise Refusal(10001, "params error: this venue takes market orders only")
        qty = self._amount(p.get("qty"))
        step = Decimal(dec_str(m.qty_step))
        if qty % step != 0:
            raise Refusal(10001, f"Qty invalid: {qty} is not a multiple of the step {step}")
        link = str(p.get("orderLinkId") or "")
        if len(link) > 36 or not all(ch.isalnum() or ch in "-_" for ch in link):
            raise Refusal(10001, "params error: orderLinkId is at most 36 letters, digits, - or _")
        if link and any(o.link_id == link for o in self.orders.values()):
            raise Refusal(110072, "OrderLinkedID is duplicate")
        return side, qty, link

    def _order_row(self, meta: OrderMeta, req: OrderRequest, r: OrderReceipt) -> dict[str, Any]:
        cs = Decimal(dec_str(meta.market.contract_size))
        qty, filled = req.qty / cs, r.filled / cs
        if filled >= qty:
            status, reason = "Filled", "EC_NoError"
        elif filled > 0:
            status, reason = "PartiallyFilledCanceled", "EC_CancelForNoFullFill"
        else:
            status, reason = "Cancelled", "EC_CancelForNoFullFill"
        mark = self.paper.market.prices.get(meta.market.base, r.avg_price)
        updated = str(ms(r.ts))
        return {
            "orderId": meta.order_id,
            "orderLinkId": meta.link_id,
            "blockTradeId": "",
            "symbol": meta.market.venue_id,
            "price": dec_str(r.avg_price or mark),
            "qty": dec_str(qty),
            "side": "Buy" if req.side == "buy" else "Sell",
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": status,
            "createType": "CreateByUser",
            "cancelType": "UNKNOWN",
            "rejectReason": reason,
            "avgPrice": dec_str(r.avg_price) if r.filled > 0 else "",
            "leavesQty": "0",
            "leavesValue": "0",
            "cumExecQty": dec_str(filled),
            "cumExecValue": dec_str(float(r.filled) * r.avg_price),
            "cumExecFee": dec_str(r.fee),
            "cumFeeDetail": {meta.market.settle: dec_str(r.fee)} if r.filled > 0 else {},
            "timeInForce": "IOC",
            "orderType": "Market",
            "stopOrderType": "",
            "orderIv": "",
            "marketUnit": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "tpslMode": "",
            "ocoTriggerBy": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": dec_str(mark),
            "basePrice": "",
            "reduceOnly": req.reduce_only,
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "slippageToleranceType": "UNKNOWN",
            "slippageTolerance": "0",
            "createdTime": str(meta.created_ms),
            "updatedTime": updated,
            "extraFees": "",
        }

    def _orders(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        self._linear(p)
        link, oid = p.get("orderLinkId"), p.get("orderId")
        rows = []
        for meta in self.orders.values():
            if p.get("symbol") and meta.market.venue_id != p["symbol"]:
                continue
            if (link and meta.link_id != link) or (oid and meta.order_id != oid):
                continue
            record = self.order_record(meta.client_id)
            if record is None:
                continue
            if (link or oid) and self.hidden(meta.link_id or meta.order_id):
                continue
            row = self._order_row(meta, *record)
            if p.get("orderStatus") and row["orderStatus"] != p["orderStatus"]:
                continue
            rows.append(row)
        rows.sort(key=lambda r: int(r["createdTime"]), reverse=True)
        return rows[: int(p.get("limit") or 20)]

    def order_history(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"category": "linear", "list": self._orders(p), "nextPageCursor": ""}

    def order_realtime(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)  # market orders leave the book at once: none is ever open here
        return {"category": "linear", "list": [], "nextPageCursor": ""}

    # --- internal transfers -------------------------------------------------------------------------------
    def inter_transfer(self, p: dict[str, Any]) -> dict[str, Any]:
        tid = str(p.get("transferId") or "")
        try:
            if str(uuid.UUID(tid)) != tid.lower():
                raise ValueError(tid)
        except ValueError:
            raise Refusal(10001, "params error: transferId must be a UUID") from None
        src_wallet, dst_wallet = str(p.get("fromAccountType")), str(p.get("toAccountType"))
        if src_wallet == dst_wallet:
            raise Refusal(131211, "fromAccountType can't be the same as toAccountType")
        src, dst = self.account.wallets.get(src_wallet), self.account.wallets.get(dst_wallet)
        if src is None or dst is None:
            raise Refusal(131207, "Account not exist")
        coin = str(p.get("coin") or "")
        amount = self._amount(p.get("amount"))
        route = self.route_between(src, dst, coin)
        if route is None:
            raise Refusal(
                131232, f"Transfers out of {src_wallet} to {dst_wallet} in {coin} are not supported"
            )
        client_id = hex_id(tid)
        if client_id in self.paper.transfers:
            raise Refusal(131214, "TransferId exist")
        try:
            receipt = self.send(route, client_id, amount)
        except TransferRefused as e:
            text = str(e)
            if "insufficient" in text:
                raise Refusal(131212, f"Insufficient balance: {text}") from None
            if "frozen" in text:
                raise Refusal(131208, f"Forbid transfer: {text}") from None
            raise Refusal(131206, f"Fail to transfer: {text}") from None
        status = "STATUS_UNKNOWN" if receipt.state is None else TRANSFER_STATUS[receipt.state]
        return {"transferId": tid, "status": status}

    def transfer_list(self, p: dict[str, Any]) -> dict[str, Any]:
        wanted = p.get("transferId")
        start, end = int(p.get("startTime") or 0), int(p.get("endTime") or 0)
        names = {n: w for w, n in self.account.wallets.items()}
        rows = []
        for t in self.paper.transfers.values():
            r = t.req
            if r.method != "internal" or r.source not in names or r.destination not in names:
                continue
            tid = uuid_of(r.client_id)
            ts = ms(t.submitted_at)
            if (wanted and tid != wanted) or (p.get("coin") and r.asset != p["coin"]):
                continue
            if (start and ts < start) or (end and ts > end):
                continue
            status = TRANSFER_STATUS[t.state]
            if p.get("status") and status != p["status"]:
                continue
            if wanted and self.hidden(tid):
                continue
            rows.append(
                {
                    "transferId": tid,
                    "coin": r.asset,
                    "amount": dec_str(r.amount),
                    "fromAccountType": names[r.source],
                    "toAccountType": names[r.destination],
                    "timestamp": str(ts),
                    "status": status,
                }
            )
        rows.sort(key=lambda row: int(row["timestamp"]), reverse=True)
        return {"list": rows[: int(p.get("limit") or 20)], "nextPageCursor": ""}

    # --- withdrawals and deposits -----------------------------------------------------------------------
    def withdraw_create(self, p: dict[str, Any]) -> dict[str, Any]:
        source = self._withdraw_source(p)
        request_id = str(p["requestId"]) if p.get("requestId") else None
        if request_id is not None:
            for w in self.withdrawals.values():
                if w.request_id == request_id:
                    return {"id": w.withdraw_id}  # idempotent on requestId: the first withdrawal's id
        coin, address, tag = str(p["coin"]), str(p["address"]), str(p.get("tag") or "")
        route = self.route_to_address(source, coin, address)
        if route is None:
            raise Refusal(131093, "The withdrawal address is not in the whitelist")
        chain = str(p.get("chain") or "")
        expected = CHAINS.get(route.network, route.network) if route.network else ""
        if chain != expected or tag != (route.tag or ""):
            raise Refusal(131002, "Withdraw address chain or destination tag are not equal")
        amount = self._amount(p["amount"])
        gross = amount if str(p.get("feeType")) == "1" else amount + route.fee
        wid = str(9_000_000 + len(self.withdrawals) + 1)
        client_id = request_id or uuid.uuid4().hex
        self.withdrawals[wid] = WithdrawalMeta(
            wid, client_id, request_id, coin, chain, address, tag, route.fee, self.now_ms()
        )
        try:
            self.send(route, client_id, gross)
        except TransferRefused as e:
            del self.withdrawals[wid]
            if "insufficient" in str(e):
                raise Refusal(131212, f"Insufficient balance: {e}") from None
            raise Refusal(131090, f"User withdraw has been banned: {e}") from None
        return {"id": wid}

    def _withdraw_source(self, p: dict[str, Any]) -> str:
        """The paper account a withdrawal leaves from, after Bybit's checks of the request's fields."""
        for key in ("coin", "address", "amount", "timestamp"):
            if not p.get(key):
                raise Refusal(10001, f"params error: {key} is required")
        account_type = str(p.get("accountType") or "SPOT")
        wallet = WITHDRAW_ACCOUNT_TYPES.get(account_type)
        if wallet is None:
            raise Refusal(10001, f"params error: accountType {account_type} (SPOT is for classic accounts)")
        source = self.account.wallets.get(wallet)
        if source is None:
            raise Refusal(131207, "Account not exist")
        return source

    def withdraw_records(self, p: dict[str, Any]) -> dict[str, Any]:
        start, end = int(p.get("startTime") or 0), int(p.get("endTime") or 0)
        rows = []
        for w in self.withdrawals.values():
            t = self.paper.transfers.get(w.client_id)
            if t is None:
                continue
            if p.get("coin") and w.coin != p["coin"]:
                continue
            if p.get("withdrawID") and w.withdraw_id != p["withdrawID"]:
                continue
            if str(p.get("withdrawType") or "0") == "1":  # internal (Bybit to Bybit) only: none here
                continue
            if (start and w.created_ms < start) or (end and w.created_ms > end):
                continue
            if self.hidden(w.withdraw_id):
                continue
            settled = t.state is TransferState.SETTLED
            rows.append(
                {
                    "coin": w.coin,
                    "chain": w.chain,
                    "amount": dec_str(t.req.amount - w.fee),
                    "txID": f"0x{w.client_id}" if settled else "",
                    "status": WITHDRAW_STATUS[t.state],
                    "toAddress": w.address,
                    "tag": w.tag,
                    "withdrawFee": dec_str(w.fee),
                    "createTime": str(w.created_ms),
                    "updateTime": str(ms(t.settled_at or t.submitted_at)),
                    "withdrawId": w.withdraw_id,
                    "withdrawType": 0,
                    "fee": "",
                    "tax": "",
                    "taxRate": "",
                    "taxType": "",
                }
            )
        rows.sort(key=lambda row: int(str(row["createTime"])), reverse=True)
        return {"rows": rows[: int(p.get("limit") or 50)], "nextPageCursor": ""}

    def deposit_records(self, p: dict[str, Any]) -> dict[str, Any]:
        start = int(p.get("startTime") or 0)
        rows = []
        for wallet, name in sorted(self.account.wallets.items()):
            for asset in sorted({t.req.asset for t in self.paper.transfers.values()}):
                if p.get("coin") and asset != p["coin"]:
                    continue
                for d in deposit_history(self.paper, name, asset):
                    ts = ms(float(d["ts"]))
                    if start and ts < start:
                        continue
                    rows.append(
                        {
                            "id": str(d["txid"]),
                            "coin": asset,
                            "chain": DEFAULT_CHAIN.get(asset, asset),
                            "amount": dec_str(d["amount"]),
                            "txID": str(d["txid"]),
                            "status": DEPOSIT_STATUS[d["state"]],
                            "toAddress": wallet,
                            "tag": "",
                            "depositFee": "",
                            "successAt": str(ts),
                            "confirmations": "20",
                            "txIndex": "0",
                            "blockHash": "",
                            "batchReleaseLimit": "-1",
                            "depositType": "0",
                            "fromAddress": "",
                        }
                    )
        return {"rows": rows[: int(p.get("limit") or 50)], "nextPageCursor": ""}


def _order_refusal(text: str) -> Refusal:
    """The paper venue's refusal of an order, in Bybit's codes."""
    if "reduce-only" in text:
        return Refusal(110017, f"Reduce-only rule not satisfied: {text}")
    if "insufficient" in text:
        return Refusal(110007, f"ab not enough for new order: {text}")
    return Refusal(10001, text)
