"""A fake Binance over the paper world: USDⓈ-M futures, portfolio margin, the spot and funding wallets, sapi.

Wallets on the wire: MAIN (spot, a treasury account), FUNDING, UMFUTURE (a venue) and PORTFOLIO_MARGIN. The
rehearsal files every venue under MARGIN_WALLET; a venue with margin_model "portfolio" is served as a
portfolio-margin account (papi, transfers of type …_PORTFOLIO_MARGIN) and, leniently, on the classic USDⓈ-M
endpoints too (fapi, UMFUTURE), with the paper venue's portfolio figures: a live config that does not say
wallet = "portfolio" (the rehearsal's does not) still reaches it. Tests of the PM path check the paths used.

Served (enough for what marginbot calls through ccxt):
    public   GET  /fapi/v1/exchangeInfo, /fapi/v1/premiumIndex (marks and funding), /fapi/v1/fundingInfo
                  (intervals other than 8 h, set in `funding_hours`), /fapi/v1/depth
    USDⓈ-M   GET  /fapi/v2|v3/account, /fapi/v2|v3/positionRisk; POST, GET /fapi/v1/order
    PM       GET  /papi/v1/balance, /papi/v1/account, /papi/v1/um/positionRisk; POST, GET /papi/v1/um/order
    spot     GET  /api/v3/account; POST /sapi/v1/asset/get-funding-asset
    sapi     POST, GET /sapi/v1/asset/transfer (universal transfer: no client id, answers a tranId);
             POST /sapi/v1/capital/withdraw/apply, GET /sapi/v1/capital/withdraw/history (withdrawOrderId),
             GET /sapi/v1/capital/deposit/hisrec, GET /sapi/v1/account/apiRestrictions

Signatures are checked as Binance does: HMAC-SHA256 (hex) with the account's secret over the query string
concatenated with the body, the `signature` parameter removed; the key in the X-MBX-APIKEY header; the
timestamp within recvWindow of the server's clock.

Errors are Binance's body {"code": -NNNN, "msg": …}. The fake is reached on loopback, so ccxt applies only
its exchange-wide error maps (its per-market maps match the real host names): insufficient balance is sent
with the message ccxt maps to InsufficientFunds, unknown orders as -2013 (OrderNotFound), bad signatures as
-1022 and unknown keys as -2015 (AuthenticationError), rate limits as HTTP 429 / 418 with -1003. A 5xx
carries no code, so that ccxt classes it by status (ExchangeNotAvailable, RequestTimeout: outcome unknown);
`status_unknown` arms Binance's own 5xx after an effect instead (HTTP 500, -1006 "Execution status unknown").

Endpoint kinds for faults and the hit log: premiumIndex serves marks and funding rates alike and counts as
"tickers"; the histories (transfers, withdrawals, deposits) are "history". Lookups respect `hidden()`, deposit
rows included (a deposit that lags the sender's "completed"). USDⓈ-M contracts are 1 unit of the base; a
Market with another contract size is published with a `contractSize` field, as COIN-M listings are, so that
the contract conversion can be tested end to end.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from bot.core.margin import tiered_mm
from bot.errors import OrderRefused, TransferRefused
from bot.settings import SYMBOL_RE, RouteModel
from bot.venues.base import OrderRequest, TransferState
from bot.venues.fakes.base import FakeExchange, Market, deposit_history
from bot.venues.paper import PaperBook

UM = "UMFUTURE"
PM = "PORTFOLIO_MARGIN"
WALLET_IDS = (PM, UM, "CMFUTURE", "FUNDING", "MARGIN", "OPTION", "MAIN")  # longest first: ids hold "_"
PUBLIC = frozenset(
    {
        "/fapi/v1/exchangeInfo",
        "/fapi/v1/premiumIndex",
        "/fapi/v1/fundingInfo",
        "/fapi/v1/depth",
        "/fapi/v1/ping",
    }
)
NETWORKS = {"TRC20": "TRX", "ERC20": "ETH", "BEP20": "BSC", "BEP2": "BNB"}  # ccxt's network code → Binance id
INSUFFICIENT = "Account has insufficient balance for requested action."  # ccxt maps it to InsufficientFunds
WITHDRAW_STATUS = {TransferState.PENDING: 4, TransferState.SETTLED: 6, TransferState.FAILED: 5}
TRANSFER_STATUS = {
    TransferState.PENDING: "PENDING",
    TransferState.SETTLED: "CONFIRMED",
    TransferState.FAILED: "FAILED",
}
PM_POSITION_KEYS = (  # GET /papi/v1/um/positionRisk carries no margin fields
    "symbol",
    "positionAmt",
    "entryPrice",
    "markPrice",
    "unRealizedProfit",
    "liquidationPrice",
    "positionSide",
    "notional",
    "updateTime",
)
FUNDING_MS = 8 * 3600 * 1000
ENDPOINTS = (  # (method or "", path suffix, endpoint kind): first match wins
    ("", "/exchangeInfo", "markets"),
    ("", "/premiumIndex", "tickers"),
    ("", "/fundingInfo", "funding"),
    ("", "/depth", "book"),
    ("", "/positionRisk", "positions"),
    ("", "/leverageBracket", "positions"),
    ("", "/papi/v1/account", "account"),
    ("", "/account/apiRestrictions", "permissions"),
    ("", "/account", "balance"),
    ("", "/papi/v1/balance", "balance"),
    ("", "/get-funding-asset", "balance"),
    ("POST", "/order", "order"),
    ("GET", "/order", "lookup"),
    ("POST", "/asset/transfer", "transfer"),
    ("GET", "/asset/transfer", "history"),
    ("", "/withdraw/apply", "withdraw"),
    ("", "/withdraw/history", "history"),
    ("", "/deposit/hisrec", "history"),
)


@dataclass
class Tran:
    """One universal transfer as Binance keeps it; `client_id` is the fake's id in the paper world."""

    tran_id: int
    kind: str
    asset: str
    amount: str
    client_id: str
    ms: int


@dataclass
class Withdraw:
    wid: str
    client_id: str
    coin: str
    address: str
    tag: str
    network: str
    ms: int


@dataclass
class OrderMeta:
    order_id: int
    market: Market
    orig_qty: str
    reduce_only: bool
    ms: int


def fmt(v: float | Decimal) -> str:
    """A number as Binance writes it: a plain decimal string, no exponent, nothing lost."""
    d = v if isinstance(v, Decimal) else Decimal(repr(float(v)))
    return format(d.normalize() if d == d.to_integral() else d, "f")


def amount_of(p: dict[str, str]) -> Decimal | None:
    try:
        amount = Decimal(p.get("amount", ""))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount > 0 else None


def decimals(step: str) -> int:
    exponent = Decimal(step).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def split_signature(raw: str) -> tuple[str, str]:
    """(the raw parameters without `signature`, the signature) of a query string or form body."""
    keep, sig = [], ""
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            sig = part[len("signature=") :]
        else:
            keep.append(part)
    return "&".join(keep), sig


def split_type(kind: str) -> tuple[str, str] | None:
    """A universal transfer type ("MAIN_PORTFOLIO_MARGIN") as (from wallet id, to wallet id)."""
    for a in WALLET_IDS:
        if kind.startswith(a + "_") and kind[len(a) + 1 :] in WALLET_IDS:
            return a, kind[len(a) + 1 :]
    return None


def deposit_row(d: dict[str, Any], asset: str, ms: int) -> dict[str, Any]:
    """One row of GET /sapi/v1/capital/deposit/hisrec (status 1: credited, 0: pending)."""
    settled = d["state"] is TransferState.SETTLED
    return {
        "id": d["txid"][-20:],
        "amount": fmt(d["amount"]),
        "coin": asset,
        "network": "",
        "status": 1 if settled else 0,
        "address": "",
        "addressTag": "",
        "txId": d["txid"],
        "insertTime": ms,
        "transferType": 0,
        "confirmTimes": "20/20" if settled else "1/20",
        "unlockConfirm": 0,
        "walletType": 0,
    }


class FakeBinance(FakeExchange):
    exchange_id = "binance"
    MARGIN_WALLET = UM
    FUNDING_WALLET = "MAIN"

    @classmethod
    def market_for(cls, symbol: str) -> Market:
        m = SYMBOL_RE.match(symbol)
        if m is None:
            raise ValueError(f"binance: {symbol} is not a linear perpetual symbol")
        base, quote, settle = m.groups()
        return Market(symbol, f"{base}{quote}", base, quote, settle, 1.0, 0.001)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        portfolio = {v.name for v in self.settings.venues if v.margin_model == "portfolio"}
        if self.account.wallets.get(UM) in portfolio:  # see the module docstring: served on both
            self.account.wallets[PM] = self.account.wallets[UM]
        self.trans: dict[int, Tran] = {}
        self.withdrawals: dict[str, Withdraw] = {}
        self.order_meta: dict[str, OrderMeta] = {}
        # (endpoint kind, parameters) of every money move received, for tests to check what was sent
        self.received: list[tuple[str, dict[str, str]]] = []
        self.restrictions: dict[str, Any] = {
            "ipRestrict": True,
            "createTime": 1_700_000_000_000,
            "enableReading": True,
            "enableFutures": True,
            "enablePortfolioMarginTrading": True,
            "enableWithdrawals": True,
            "enableInternalTransfer": True,
            "permitsUniversalTransfer": True,
            "enableSpotAndMarginTrading": False,
            "enableMargin": False,
            "enableVanillaOptions": False,
        }
        # this many next money moves take effect, then answer HTTP 500 -1006 "execution status unknown"
        self.status_unknown = 0
        self.funding_hours: dict[str, int] = {}  # venue id -> funding interval where it is not 8 h
        self._ids = itertools.count(1)
        self._rejection: tuple[int, int, str] | None = None

    # --- wiring -----------------------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        get, post = app.router.add_get, app.router.add_post
        get("/fapi/v1/exchangeInfo", self._exchange_info)
        get("/fapi/v1/premiumIndex", self._premium_index)
        get("/fapi/v1/fundingInfo", self._funding_info)
        get("/fapi/v1/depth", self._depth)
        for v in ("v2", "v3"):
            get(f"/fapi/{v}/account", self._um_account)
            get(f"/fapi/{v}/positionRisk", self._um_positions)
        post("/fapi/v1/order", self._new_order)
        get("/fapi/v1/order", self._get_order)
        get("/papi/v1/balance", self._pm_balance)
        get("/papi/v1/account", self._pm_account)
        get("/papi/v1/um/positionRisk", self._pm_positions)
        post("/papi/v1/um/order", self._new_order)
        get("/papi/v1/um/order", self._get_order)
        get("/api/v3/account", self._spot_account)
        post("/sapi/v1/asset/get-funding-asset", self._funding_asset)
        post("/sapi/v1/asset/transfer", self._transfer)
        get("/sapi/v1/asset/transfer", self._transfer_history)
        post("/sapi/v1/capital/withdraw/apply", self._withdraw)
        get("/sapi/v1/capital/withdraw/history", self._withdraw_history)
        get("/sapi/v1/capital/deposit/hisrec", self._deposit_history)
        get("/sapi/v1/account/apiRestrictions", self._api_restrictions)

    def endpoint_of(self, request: web.Request) -> str:
        for method, suffix, kind in ENDPOINTS:
            if (not method or method == request.method) and request.path.endswith(suffix):
                return kind
        return "any"

    async def verify(self, request: web.Request, body: str) -> bool:
        if request.path in PUBLIC:
            return True
        self._rejection = None
        if request.headers.get("X-MBX-APIKEY") != self.account.api_key:
            self._rejection = (401, -2015, "Invalid API-key, IP, or permissions for action.")
            return False
        query, q_sig = split_signature(request.rel_url.raw_query_string)
        form, b_sig = split_signature(body)
        expected = hmac.new(self.account.secret.encode(), (query + form).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(q_sig or b_sig, expected):
            self._rejection = (400, -1022, "Signature for this request is not valid.")
            return False
        params = dict(parse_qsl(query)) | dict(parse_qsl(form))
        now, window = time.time() * 1000, float(params.get("recvWindow") or 5000)
        stamp = float(params.get("timestamp") or 0)
        if stamp > now + 1000 or now - stamp > window:
            self._rejection = (400, -1021, "Timestamp for this request is outside of the recvWindow.")
            return False
        return True

    def error(self, status: int, message: str, code: str | int = "") -> web.Response:
        if code != "":
            return web.json_response({"code": int(code), "msg": message}, status=status)
        if status == 401 and self._rejection is not None:
            status, rejected, text = self._rejection
            return web.json_response({"code": rejected, "msg": text}, status=status)
        if status == 429:
            text = "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute."
            return web.json_response({"code": -1003, "msg": text}, status=429)
        if status == 418:
            text = "Way too many requests; IP(127.0.0.1) banned. Please use the websocket for live updates."
            return web.json_response({"code": -1003, "msg": text}, status=418)
        if status >= 500:
            return web.json_response({"msg": message}, status=status)
        return web.json_response({"code": -1102, "msg": message}, status=status)

    def refusal(self, e: Exception) -> web.Response:
        """A paper-world refusal as Binance's answer: nothing moved."""
        text = str(e)
        if "insufficient" in text:
            return self.error(400, INSUFFICIENT, -2010 if isinstance(e, OrderRefused) else -5002)
        if "frozen" in text:
            return self.error(400, "Transferring out has been banned for this account.", -3019)
        if "reduce-only" in text:
            return self.error(400, "ReduceOnly Order is rejected.", -2022)
        return self.error(400, f"Data sent for a parameter is not valid: {text}", -1130)

    def answer(self, payload: dict[str, Any]) -> web.Response:
        """A money move's answer, after its effect (or Binance's 5xx that leaves the outcome unknown)."""
        if self.status_unknown > 0:
            self.status_unknown -= 1
            text = "An unexpected response was received from the message bus. Execution status unknown."
            return self.error(500, text, -1006)
        return web.json_response(payload)

    # --- helpers ------------------------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, str]:
        body = await request.text()
        return dict(request.query) | dict(parse_qsl(body))

    def _ms(self) -> int:
        return max(1, int(self.paper.now() * 1000))

    def _book(self, wallet: str) -> PaperBook | None:
        name = self.account.wallets.get(wallet)
        return None if name is None else self.paper.books.get(name)

    def _no_account(self) -> web.Response:
        return self.error(401, "Invalid API-key, IP, or permissions for action.", -2015)

    def _margin_venue(self) -> str | None:
        return self.account.wallets.get(UM) or self.account.wallets.get(PM)

    def _position_rows(self, book: PaperBook) -> list[dict[str, Any]]:
        prices, out = self.paper.market.prices, []
        for p in book.positions:
            m = self.by_symbol.get(p.symbol) or self.market_for(p.symbol)
            mark = prices[p.base]
            notional = p.qty * mark
            out.append(
                {
                    "symbol": m.venue_id,
                    "positionSide": "BOTH",
                    "positionAmt": fmt(p.qty / m.contract_size),
                    "entryPrice": fmt(p.entry),
                    "breakEvenPrice": fmt(p.entry),
                    "markPrice": fmt(mark),
                    "unRealizedProfit": fmt(p.qty * (mark - p.entry)),
                    "liquidationPrice": "0",
                    "notional": fmt(notional),
                    "marginAsset": m.settle,
                    "initialMargin": fmt(abs(notional) * book.params.im_rate),
                    "maintMargin": fmt(tiered_mm(abs(notional), book.params.tiers)),
                    "updateTime": self._ms(),
                }
            )
        return out

    def _upnl(self, book: PaperBook) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in book.positions:
            settle = p.symbol.rsplit(":", 1)[-1]
            out[settle] = out.get(settle, 0.0) + p.qty * (self.paper.market.prices[p.base] - p.entry)
        return out

    # --- public -------------------------------------------------------------------------------------------
    async def _exchange_info(self, request: web.Request) -> web.Response:
        symbols = [self._symbol_info(m) for m in self.markets]
        assets = sorted({m.settle for m in self.markets})
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self._ms(),
                "futuresType": "U_MARGINED",
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 2400,
                    },
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
                ],
                "exchangeFilters": [],
                "assets": [
                    {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"} for a in assets
                ],
                "symbols": symbols,
            }
        )

    def _symbol_info(self, m: Market) -> dict[str, Any]:
        step = fmt(m.qty_step)
        return {
            "symbol": m.venue_id,
            "pair": m.venue_id,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "baseAsset": m.base,
            "quoteAsset": m.quote,
            "marginAsset": m.settle,
            "pricePrecision": 2,
            "quantityPrecision": decimals(step),
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            **({"contractSize": m.contract_size} if m.contract_size != 1 else {}),  # COIN-M style, for tests
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01",
                    "maxPrice": "10000000",
                    "tickSize": "0.01",
                },
                {"filterType": "LOT_SIZE", "stepSize": step, "minQty": step, "maxQty": "100000000"},
                {"filterType": "MARKET_LOT_SIZE", "stepSize": step, "minQty": step, "maxQty": "100000000"},
                {"filterType": "MIN_NOTIONAL", "notional": "5"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        }

    async def _premium_index(self, request: web.Request) -> web.Response:
        name = self._margin_venue()
        book = self.paper.books.get(name) if name else None
        now = self._ms()
        rows = []
        for m in self.markets:
            mark = self.paper.market.prices.get(m.base)
            if mark is None:
                continue
            rate = book.funding.get(m.symbol, book.default_funding) if book is not None else 0.0001
            rate *= self.funding_hours.get(m.venue_id, 8) / 8.0  # the paper rate is per 8 h
            rows.append(
                {
                    "symbol": m.venue_id,
                    "markPrice": fmt(mark),
                    "indexPrice": fmt(mark),
                    "estimatedSettlePrice": fmt(mark),
                    "lastFundingRate": fmt(rate),
                    "interestRate": "0.00010000",
                    "nextFundingTime": (now // FUNDING_MS + 1) * FUNDING_MS,
                    "time": now,
                }
            )
        one = request.query.get("symbol")
        if one is not None:
            match = [r for r in rows if r["symbol"] == one]
            return web.json_response(match[0]) if match else self.error(400, "Invalid symbol.", -1121)
        return web.json_response(rows)

    async def _funding_info(self, request: web.Request) -> web.Response:
        """Symbols whose funding interval or cap differs from the default (Binance lists only those)."""
        rows = [
            {
                "symbol": symbol,
                "adjustedFundingRateCap": "0.02000000",
                "adjustedFundingRateFloor": "-0.02000000",
                "fundingIntervalHours": hours,
                "disclaimer": False,
            }
            for symbol, hours in sorted(self.funding_hours.items())
        ]
        return web.json_response(rows)

    async def _depth(self, request: web.Request) -> web.Response:
        m = self.by_id.get(request.query.get("symbol", ""))
        venue = self._margin_venue()
        if m is None or venue is None:
            return self.error(400, "Invalid symbol.", -1121)
        try:
            book = self.paper.matching.order_book(venue, m.symbol)
        except OrderRefused:
            return self.error(400, "Invalid symbol.", -1121)
        limit = int(request.query.get("limit") or 500)

        def side(levels: tuple[tuple[float, float], ...]) -> list[list[str]]:
            return [[fmt(p), fmt(q / m.contract_size)] for p, q in levels[:limit]]

        now = self._ms()
        return web.json_response(
            {"lastUpdateId": now, "E": now, "T": now, "bids": side(book.bids), "asks": side(book.asks)}
        )

    # --- USDⓈ-M -------------------------------------------------------------------------------------------
    async def _um_account(self, request: web.Request) -> web.Response:
        book = self._book(UM)
        if book is None:
            return self._no_account()
        f = self.paper.figures(book)
        upnl = self._upnl(book)
        rows = self._position_rows(book)
        assets = [
            self._um_asset(book, a, upnl.get(a, 0.0), rows) for a in sorted(set(book.collateral) | set(upnl))
        ]
        wallet_usd = sum(float(q) * self.paper.market.prices.get(a, 1.0) for a, q in book.collateral.items())
        available = fmt(max(0.0, f.equity - f.im))
        return web.json_response(
            {
                "totalInitialMargin": fmt(f.im),
                "totalMaintMargin": fmt(f.mm),
                "totalWalletBalance": fmt(wallet_usd),
                "totalUnrealizedProfit": fmt(sum(upnl.values())),
                "totalMarginBalance": fmt(f.equity),
                "totalPositionInitialMargin": fmt(f.im),
                "totalOpenOrderInitialMargin": "0",
                "totalCrossWalletBalance": fmt(wallet_usd),
                "totalCrossUnPnl": fmt(sum(upnl.values())),
                "availableBalance": available,
                "maxWithdrawAmount": available,
                "assets": assets,
                "positions": [
                    {k: r[k] for k in ("symbol", "positionSide", "positionAmt", "notional", "initialMargin")}
                    | {"unrealizedProfit": r["unRealizedProfit"], "maintMargin": r["maintMargin"]}
                    | {"isolatedMargin": "0", "isolatedWallet": "0", "updateTime": r["updateTime"]}
                    for r in rows
                ],
            }
        )

    def _um_asset(
        self, book: PaperBook, asset: str, upnl: float, rows: list[dict[str, Any]]
    ) -> dict[str, Any]:
        wallet = float(book.collateral.get(asset, Decimal(0)))
        mine = [r for r in rows if r["marginAsset"] == asset]
        im = sum(float(r["initialMargin"]) for r in mine)
        mm = sum(float(r["maintMargin"]) for r in mine)
        return {
            "asset": asset,
            "walletBalance": fmt(book.collateral.get(asset, Decimal(0))),
            "unrealizedProfit": fmt(upnl),
            "marginBalance": fmt(wallet + upnl),
            "maintMargin": fmt(mm),
            "initialMargin": fmt(im),
            "positionInitialMargin": fmt(im),
            "openOrderInitialMargin": "0",
            "crossWalletBalance": fmt(book.collateral.get(asset, Decimal(0))),
            "crossUnPnl": fmt(upnl),
            "availableBalance": fmt(max(0.0, wallet + upnl - im)),
            "maxWithdrawAmount": fmt(max(0.0, wallet + upnl - im)),
            "marginAvailable": True,
            "updateTime": self._ms(),
        }

    async def _um_positions(self, request: web.Request) -> web.Response:
        book = self._book(UM)
        if book is None:
            return self._no_account()
        rows = self._position_rows(book)
        for r in rows:
            r.update(isolatedMargin="0", isolatedWallet="0", positionInitialMargin=r["initialMargin"])
            r.update(openOrderInitialMargin="0", adl=1, bidNotional="0", askNotional="0")
        one = request.query.get("symbol")
        return web.json_response([r for r in rows if one is None or r["symbol"] == one])

    # --- portfolio margin ---------------------------------------------------------------------------------
    async def _pm_balance(self, request: web.Request) -> web.Response:
        book = self._book(PM)
        if book is None:
            return self._no_account()
        upnl = self._upnl(book)
        rows = []
        for a in sorted(set(book.collateral) | set(upnl)):
            wallet = book.collateral.get(a, Decimal(0))
            rows.append(
                {
                    "asset": a,
                    "totalWalletBalance": fmt(wallet),
                    "crossMarginAsset": "0",
                    "crossMarginBorrowed": "0",
                    "crossMarginFree": "0",
                    "crossMarginInterest": "0",
                    "crossMarginLocked": "0",
                    "umWalletBalance": fmt(wallet),
                    "umUnrealizedPNL": fmt(upnl.get(a, 0.0)),
                    "cmWalletBalance": "0",
                    "cmUnrealizedPNL": "0",
                    "updateTime": self._ms(),
                    "negativeBalance": "0",
                }
            )
        return web.json_response(rows)

    async def _pm_account(self, request: web.Request) -> web.Response:
        book = self._book(PM)
        if book is None:
            return self._no_account()
        f = self.paper.figures(book)
        prices = self.paper.market.prices
        actual = sum(float(q) * prices.get(a, 1.0) for a, q in book.collateral.items()) + sum(
            self._upnl(book).values()
        )
        return web.json_response(
            {
                "uniMMR": fmt(f.equity / f.mm) if f.mm > 0 else "999.00000000",
                "accountEquity": fmt(f.equity),
                "actualEquity": fmt(actual),
                "accountInitialMargin": fmt(f.im),
                "accountMaintMargin": fmt(f.mm),
                "accountStatus": "NORMAL",
                "virtualMaxWithdrawAmount": fmt(max(0.0, f.equity - f.im)),
                "totalAvailableBalance": fmt(max(0.0, f.equity - f.im)),
                "totalMarginOpenLoss": "0",
                "updateTime": self._ms(),
            }
        )

    async def _pm_positions(self, request: web.Request) -> web.Response:
        book = self._book(PM)
        if book is None:
            return self._no_account()
        rows = [
            {k: r[k] for k in PM_POSITION_KEYS} | {"leverage": "10", "maxNotionalValue": "50000000"}
            for r in self._position_rows(book)
        ]
        return web.json_response(rows)

    # --- spot and funding wallets ---------------------------------------------------------------------------
    async def _spot_account(self, request: web.Request) -> web.Response:
        name = self.account.wallets.get("MAIN")
        bal = self.balances(name) if name else {}
        return web.json_response(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "updateTime": self._ms(),
                "accountType": "SPOT",
                "balances": [{"asset": a, "free": fmt(q), "locked": "0"} for a, q in sorted(bal.items())],
                "permissions": ["SPOT"],
            }
        )

    async def _funding_asset(self, request: web.Request) -> web.Response:
        name = self.account.wallets.get("FUNDING")
        bal = self.balances(name) if name else {}
        return web.json_response(
            [
                {
                    "asset": a,
                    "free": fmt(q),
                    "locked": "0",
                    "freeze": "0",
                    "withdrawing": "0",
                    "btcValuation": "0",
                }
                for a, q in sorted(bal.items())
            ]
        )

    async def _api_restrictions(self, request: web.Request) -> web.Response:
        return web.json_response(self.restrictions)

    # --- universal transfer ---------------------------------------------------------------------------------
    def _transfer_route(self, p: dict[str, str]) -> RouteModel | web.Response:
        pair = split_type(p.get("type", ""))
        src = None if pair is None else self.account.wallets.get(pair[0])
        dst = None if pair is None else self.account.wallets.get(pair[1])
        if src is None or dst is None:
            return self.error(400, f"Invalid transfer type {p.get('type')!r} for this account.", -1130)
        route = self.route_between(src, dst, p.get("asset", ""))
        if route is None:
            return self.error(400, f"No route for {p.get('type')} {p.get('asset')} in this world.", -1130)
        return route

    async def _transfer(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        route, amount = self._transfer_route(p), amount_of(p)
        if not isinstance(route, RouteModel):
            return route
        if amount is None:
            return self.error(400, "Illegal characters found in parameter 'amount'.", -1100)
        self.received.append(("transfer", p))
        tran_id = 100_000_000 + next(self._ids)
        t = Tran(tran_id, p["type"], route.asset, p["amount"], f"binance-tran-{tran_id}", self._ms())
        self.trans[tran_id] = t  # before the effect: an answer lost after it still leaves the history row
        try:
            self.send(route, t.client_id, amount)
        except TransferRefused as e:
            del self.trans[tran_id]
            return self.refusal(e)
        except BaseException:
            if self.transfer_record(t.client_id) is None:
                del self.trans[tran_id]
            raise
        return self.answer({"tranId": tran_id})

    async def _transfer_history(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        start, end = int(p.get("startTime") or 0), int(p.get("endTime") or 2**62)
        rows = []
        for t in sorted(self.trans.values(), key=lambda t: t.tran_id, reverse=True):
            rec = self.transfer_record(t.client_id)
            if rec is None or t.kind != p.get("type") or not start <= t.ms <= end:
                continue
            if self.hidden(t.client_id):
                continue
            status = TRANSFER_STATUS[rec.state] if rec.state is not None else "PENDING"
            rows.append(
                {
                    "asset": t.asset,
                    "amount": t.amount,
                    "type": t.kind,
                    "status": status,
                    "tranId": t.tran_id,
                    "timestamp": t.ms,
                }
            )
        size = int(p.get("size") or 10)
        page = rows[(int(p.get("current") or 1) - 1) * size :][:size]
        return web.json_response({"total": len(rows), "rows": page})

    # --- withdrawals and deposits -------------------------------------------------------------------------
    def _withdraw_route(self, p: dict[str, str]) -> RouteModel | web.Response:
        """The route a withdrawal takes: from the spot wallet (walletType 0) or the funding wallet (1)."""
        source = self.account.wallets.get("FUNDING" if p.get("walletType") == "1" else "MAIN")
        coin, address = p.get("coin", ""), p.get("address", "")
        route = None if source is None else self.route_to_address(source, coin, address)
        if route is None:
            return self.error(400, f"Withdrawal address {address} is not whitelisted for {coin}.", -1130)
        if route.network and p.get("network") not in (route.network, NETWORKS.get(route.network)):
            return self.error(400, f"Network {p.get('network')} is not valid for this address.", -1130)
        if (route.tag or "") != p.get("addressTag", ""):
            return self.error(400, "The address tag does not match the address.", -1130)
        return route

    async def _withdraw(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        route, amount = self._withdraw_route(p), amount_of(p)
        if not isinstance(route, RouteModel):
            return route
        if amount is None:
            return self.error(400, "Illegal characters found in parameter 'amount'.", -1100)
        self.received.append(("withdraw", p))
        cid = p.get("withdrawOrderId") or f"binance-wd-{next(self._ids)}"
        known = self.withdrawals.get(cid)
        wid = hashlib.sha256(cid.encode()).hexdigest()[:32]
        w = known or Withdraw(
            wid, cid, route.asset, p["address"], route.tag or "", p.get("network", ""), self._ms()
        )
        self.withdrawals[cid] = w
        try:
            self.send(route, cid, amount)  # the paper world keeps one effect per client id
        except TransferRefused as e:
            if known is None:
                del self.withdrawals[cid]
            return self.refusal(e)
        except BaseException:
            if known is None and self.transfer_record(cid) is None:
                del self.withdrawals[cid]
            raise
        return self.answer({"id": w.wid})

    async def _withdraw_history(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        start, end = int(p.get("startTime") or 0), int(p.get("endTime") or 2**62)
        rows = []
        for w in sorted(self.withdrawals.values(), key=lambda w: w.ms, reverse=True):
            rec, req = self.transfer_record(w.client_id), self.transfer_request(w.client_id)
            if rec is None or req is None or not start <= w.ms <= end:
                continue
            if p.get("coin") not in (None, w.coin) or p.get("withdrawOrderId") not in (None, w.client_id):
                continue
            if self.hidden(w.client_id):
                continue
            rows.append(self._withdraw_row(w, rec.state, req.amount, req.fee, rec.settled_at))
        return web.json_response(rows[: int(p.get("limit") or 1000)])

    def _withdraw_row(
        self, w: Withdraw, state: TransferState | None, amount: Decimal, fee: Decimal, settled: float | None
    ) -> dict[str, Any]:
        def stamp(t: float) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))

        done = state is TransferState.SETTLED
        return {
            "id": w.wid,
            "amount": fmt(amount - fee),
            "transactionFee": fmt(fee),
            "coin": w.coin,
            "status": WITHDRAW_STATUS.get(state, 4) if state is not None else 4,
            "address": w.address,
            "addressTag": w.tag,
            "txId": f"0x{w.client_id}" if done else "",
            "applyTime": stamp(w.ms / 1000),
            "network": w.network,
            "transferType": 0,
            "withdrawOrderId": w.client_id,
            "info": "",
            "confirmNo": 12 if done else 0,
            "walletType": 0,
            "txKey": "",
            **({"completeTime": stamp(settled)} if done and settled is not None else {}),
        }

    async def _deposit_history(self, request: web.Request) -> web.Response:
        """Withdrawals from anywhere in the paper world into this account's wallets, as Binance deposits."""
        p = await self._params(request)
        start, end = int(p.get("startTime") or 0), int(p.get("endTime") or 2**62)
        assets = {p["coin"]} if p.get("coin") else {r.asset for r in self.settings.routes}
        rows = []
        for name in sorted(set(self.account.wallets.values())):
            for asset in sorted(assets):
                for d in deposit_history(self.paper, name, asset):
                    ms = int(d["ts"] * 1000)
                    if not start <= ms <= end or p.get("txId") not in (None, d["txid"]):
                        continue
                    if not self.hidden(f"deposit:{d['txid']}"):
                        rows.append(deposit_row(d, asset, ms))
        return web.json_response(rows)

    # --- orders ---------------------------------------------------------------------------------------------
    def _order_request(self, p: dict[str, str], path: str) -> OrderRequest | web.Response:
        venue = self.account.wallets.get(PM if path.startswith("/papi/") else UM)
        m = self.by_id.get(p.get("symbol", ""))
        if venue is None:
            return self._no_account()
        if m is None:
            return self.error(400, "Invalid symbol.", -1121)
        if p.get("type") != "MARKET":
            return self.error(400, "Invalid orderType.", -1116)
        try:
            contracts = Decimal(p.get("quantity", ""))
        except InvalidOperation:
            return self.error(400, "Illegal characters found in parameter 'quantity'.", -1100)
        cid = p.get("newClientOrderId") or f"fake-{next(self._ids)}"
        reduce = p.get("reduceOnly", "false").lower() == "true"
        qty = contracts * Decimal(repr(m.contract_size))
        return OrderRequest(cid, venue, m.symbol, p.get("side", "").lower(), qty, reduce)

    async def _new_order(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        req = self._order_request(p, request.path)
        if not isinstance(req, OrderRequest):
            return req
        self.received.append(("order", p))
        cid, m = req.client_id, self.by_symbol[req.symbol]
        meta = self.order_meta.get(cid) or OrderMeta(
            next(self._ids), m, p["quantity"], req.reduce_only, self._ms()
        )
        try:
            self.place(req)
        except OrderRefused as e:
            return self.refusal(e)
        finally:
            if self.order_record(cid) is not None:  # also when the answer is lost after the fill
                self.order_meta.setdefault(cid, meta)
        return self.answer(self._order_json(cid))

    async def _get_order(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        cid = p.get("origClientOrderId")
        if cid is None and p.get("orderId"):
            cid = next((c for c, o in self.order_meta.items() if str(o.order_id) == p["orderId"]), None)
        if cid is None or cid not in self.order_meta or self.hidden(cid):
            return self.error(400, "Order does not exist.", -2013)
        return web.json_response(self._order_json(cid))

    def _order_json(self, cid: str) -> dict[str, Any]:
        meta = self.order_meta[cid]
        record = self.order_record(cid)
        assert record is not None
        req, receipt = record
        filled = receipt.filled / Decimal(repr(meta.market.contract_size))
        status = "FILLED" if filled >= Decimal(meta.orig_qty) else "EXPIRED"  # a market order's rest expires
        return {
            "orderId": meta.order_id,
            "symbol": meta.market.venue_id,
            "status": status,
            "clientOrderId": cid,
            "price": "0",
            "avgPrice": fmt(receipt.avg_price),
            "origQty": meta.orig_qty,
            "executedQty": fmt(filled),
            "cumQty": fmt(filled),
            "cumQuote": fmt(float(filled) * receipt.avg_price),
            "timeInForce": "GTC",
            "type": "MARKET",
            "reduceOnly": meta.reduce_only,
            "closePosition": False,
            "side": req.side.upper(),
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": "MARKET",
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": meta.ms,
            "updateTime": int(receipt.ts * 1000),
        }
