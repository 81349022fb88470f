"""A fake OKX v5 REST server over the paper world: the requests ccxt's `okx` class makes for marginbot.

Served, all under /api/v5 (OKX's paths and field names):
  public   GET public/instruments (SWAP), public/mark-price, public/funding-rate (an instId, or ANY),
           market/books, market/tickers
  private  GET asset/currencies (load_markets asks it when a key is set), asset/balances (funding, "6"),
           account/balance (trading, "18", with adjEq / imr / mmr and per-currency cashBal), account/positions,
           account/config (the key's perm and ip); POST asset/transfer + GET asset/transfer-state; POST
           asset/withdrawal + GET asset/withdrawal-history; GET asset/deposit-history; POST trade/order +
           GET trade/order (by clOrdId or ordId)

The wire as OKX documents it: {"code": "0", "msg": "", "data": [...]}. Business errors come with HTTP 200 and
a code ccxt maps (58350 insufficient balance → InsufficientFunds, 51603 → OrderNotFound, …); a transfer-state
lookup of a clientId OKX does not know answers 58129 (`UNKNOWN_CLIENT_ID`; ccxt 4.5.90 does not map it, so it
arrives as a plain ExchangeError; before March 2023 OKX answered 51000 "Parameter clientId error", kept as
`LEGACY_UNKNOWN_CLIENT_ID`; `unknown_client_id` selects the answer); an order's refusal is code "1" with
data[0].sCode / sMsg; auth errors are HTTP 401 (50111 key, 50105 passphrase, 50113 signature, 50102
timestamp); 429 carries 50011. Private requests must carry OK-ACCESS-KEY, OK-ACCESS-PASSPHRASE,
OK-ACCESS-TIMESTAMP (ISO, within 30 s) and OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp + method +
path with query + body)).

Amounts of swaps are contracts (ctVal: 0.01 BTC, 0.1 ETH, 1 for anything else). A withdrawal's amt excludes
its fee (the account pays amt + fee, the paper world moves that gross amount). Where OKX documents nothing,
the paper world's rule holds: a repeated clientId / clOrdId with the same parameters answers the first
transfer / order again. Per-position imr / mmr are modelled for cross margin only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import zlib
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from bot.core.margin import Position, tiered_mm
from bot.core.world import VenueSnapshot
from bot.errors import OrderRefused, TransferRefused
from bot.settings import RouteModel, Settings
from bot.venues.base import OrderReceipt, OrderRequest, TransferRequest, TransferState
from bot.venues.fakes.base import Account, FakeExchange, Market, deposit_history
from bot.venues.paper import PaperExchange, PaperTransfer

API = "/api/v5"
CONTRACT_SIZES = {"BTC": 0.01, "ETH": 0.1}  # ctVal of BTC-USDT-SWAP and ETH-USDT-SWAP
LOT_SIZE = 0.01  # lotSz (contracts)
CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
MAX_SKEW_SECONDS = 30.0
FUNDING_PERIOD_MS = 8 * 3600 * 1000
DEFAULT_NETWORKS = {"BTC": "BTC", "USDT": "TRC20"}  # the chain listed for an asset no route withdraws
CHAINS = {"BEP20": "BSC", "BTC": "Bitcoin", "ARBITRUM": "Arbitrum One", "SOL": "Solana", "MATIC": "Polygon"}
WITHDRAWAL_STATES = {TransferState.PENDING: "1", TransferState.SETTLED: "2", TransferState.FAILED: "-1"}
TRANSFER_STATES = {
    TransferState.PENDING: "pending",
    TransferState.SETTLED: "success",
    TransferState.FAILED: "failed",
}
STATUS_CODES = {401: "50113", 418: "50011", 429: "50011", 500: "50026", 503: "50013", 504: "50004"}
# GET asset/transfer-state?clientId= for an id OKX does not know. The code and a msg naming clientId are what
# OKX answers in production (tiagosiebler/okx-api test/private.read.test.ts, getFundsTransferState with an
# unknown clientId: 51000 until its commit 119d767 of March 2023, 58129 since; GaloyMoney/stablesats-rs #313 and
# #314, okex-client/src/client/error.rs "58129" => ParameterClientIdNotFound). OKX's exact wording is not
# published with the code: the msg here is a stand-in that names the parameter, as the real one does.
UNKNOWN_CLIENT_ID = ("58129", "clientId is incorrect or does not match")
LEGACY_UNKNOWN_CLIENT_ID = ("51000", "Parameter clientId error")

ENDPOINTS = {
    ("GET", "/public/instruments"): "markets",
    ("GET", "/asset/currencies"): "markets",
    ("GET", "/public/mark-price"): "tickers",
    ("GET", "/market/tickers"): "tickers",
    ("GET", "/public/funding-rate"): "funding",
    ("GET", "/market/books"): "book",
    ("GET", "/asset/balances"): "balance",
    ("GET", "/account/balance"): "balance",
    ("GET", "/account/positions"): "positions",
    ("GET", "/account/config"): "permissions",
    ("POST", "/asset/transfer"): "transfer",
    ("GET", "/asset/transfer-state"): "lookup",
    ("POST", "/asset/withdrawal"): "withdraw",
    ("GET", "/asset/withdrawal-history"): "lookup",
    ("GET", "/asset/deposit-history"): "history",
    ("POST", "/trade/order"): "order",
    ("GET", "/trade/order"): "lookup",
}


# --- the wire's formats -----------------------------------------------------------------------------
def fmt(value: float | Decimal) -> str:
    """A number as OKX writes it: a plain decimal string, never exponent notation."""
    d = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def ms(seconds: float) -> str:
    return str(round(seconds * 1000))


def ok(data: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"code": "0", "msg": "", "data": data})


def fail(code: str, msg: str) -> web.Response:
    """A business error: HTTP 200 and the code in the body, as OKX answers them."""
    return web.json_response({"code": code, "msg": msg, "data": []})


def order_fail(client_id: str, code: str, msg: str) -> web.Response:
    """A refused order: code "1" at the top, the reason in data[0].sCode / sMsg."""
    row = {"clOrdId": client_id, "ordId": "", "sCode": code, "sMsg": msg, "tag": "", "ts": ms(time.time())}
    return web.json_response({"code": "1", "msg": "All operations failed", "data": [row]})


def okx_chain(asset: str, network: str | None) -> str:
    """OKX's chain name for a network: USDT + TRC20 → USDT-TRC20, USDT + BEP20 → USDT-BSC."""
    net = (network or DEFAULT_NETWORKS.get(asset, "ERC20")).upper()
    return f"{asset}-{CHAINS.get(net, net)}"


def number_of(ref: str) -> str:
    """A paper reference ("paper-7", "paper-order-3") as OKX's numeric id."""
    return ref.rsplit("-", 1)[-1]


def transfer_code(e: TransferRefused) -> str:
    return "58350" if "insufficient" in str(e).lower() else "58112"


def withdrawal_code(e: TransferRefused) -> str:
    return "58350" if "insufficient" in str(e).lower() else "58200"


def order_code(e: OrderRefused) -> str:
    text = str(e).lower()
    if "insufficient margin" in text:
        return "51008"
    if "would not reduce" in text:
        return "51169"
    if "reused" in text:
        return "51016"
    if "no market" in text or "no such" in text:
        return "51001"
    return "51000"


class FakeOkx(FakeExchange):
    """OKX's v5 REST API in front of a paper world (see the module docstring for what it serves)."""

    exchange_id = "okx"
    MARGIN_WALLET = "18"  # OKX account type: trading
    FUNDING_WALLET = "6"  # OKX account type: funding

    def __init__(
        self,
        paper: PaperExchange,
        settings: Settings,
        account: Account,
        markets: list[Market],
        *,
        hang_seconds: float = 2.0,
    ) -> None:
        self.perm = "read_only,withdraw,trade"  # account/config: the key's permissions
        self.ip = "127.0.0.1"  # account/config: the key's IP whitelist ("" = none)
        self.received: list[tuple[str, dict[str, Any]]] = []  # (endpoint kind, body or query) of every write
        self._auth_code = STATUS_CODES[401]
        self.unknown_client_id = UNKNOWN_CLIENT_ID  # (code, msg) of transfer-state for a clientId not shown
        super().__init__(paper, settings, account, markets, hang_seconds=hang_seconds)

    @classmethod
    def market_for(cls, symbol: str) -> Market:
        base, _, rest = symbol.partition("/")
        quote, _, settle = rest.partition(":")
        return Market(
            symbol,
            f"{base}-{quote}-SWAP",
            base,
            quote,
            settle or quote,
            CONTRACT_SIZES.get(base, 1.0),
            qty_step=LOT_SIZE,
        )

    def routes(self, app: web.Application) -> None:
        get, post = app.router.add_get, app.router.add_post
        get(f"{API}/public/instruments", self.instruments)
        get(f"{API}/public/mark-price", self.mark_prices)
        get(f"{API}/market/tickers", self.tickers)
        get(f"{API}/public/funding-rate", self.funding_rates)
        get(f"{API}/market/books", self.book)
        get(f"{API}/asset/currencies", self.currencies)
        get(f"{API}/asset/balances", self.funding_balance)
        get(f"{API}/account/balance", self.trading_balance)
        get(f"{API}/account/positions", self.positions)
        get(f"{API}/account/config", self.config)
        post(f"{API}/asset/transfer", self.transfer)
        get(f"{API}/asset/transfer-state", self.transfer_state)
        post(f"{API}/asset/withdrawal", self.withdraw)
        get(f"{API}/asset/withdrawal-history", self.withdrawal_history)
        get(f"{API}/asset/deposit-history", self.deposit_history)
        post(f"{API}/trade/order", self.create_order)
        get(f"{API}/trade/order", self.get_order)

    def endpoint_of(self, request: web.Request) -> str:
        path = request.path.removeprefix(API)
        return ENDPOINTS.get((request.method, path), "any")

    # --- signatures and errors ---------------------------------------------------------------------------
    async def verify(self, request: web.Request, body: str) -> bool:
        path = request.path.removeprefix(API)
        if path.startswith(("/public/", "/market/")):
            return True
        h = request.headers
        key, sign = h.get("OK-ACCESS-KEY", ""), h.get("OK-ACCESS-SIGN", "")
        stamp, passphrase = h.get("OK-ACCESS-TIMESTAMP", ""), h.get("OK-ACCESS-PASSPHRASE", "")
        problem = self._auth_problem(key, sign, stamp, passphrase)
        if problem is None:
            prehash = stamp + request.method + request.raw_path + body
            digest = hmac.new(self.account.secret.encode(), prehash.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(base64.b64encode(digest).decode(), sign):
                problem = "50113"
        self._auth_code = problem or STATUS_CODES[401]
        return problem is None

    def _auth_problem(self, key: str, sign: str, stamp: str, passphrase: str) -> str | None:
        if not key:
            return "50103"
        if not passphrase:
            return "50104"
        if not sign:
            return "50106"
        if not stamp:
            return "50107"
        if key != self.account.api_key:
            return "50111"
        if self.account.password is not None and passphrase != self.account.password:
            return "50105"
        try:
            sent = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return "50112"
        return "50102" if abs(time.time() - sent) > MAX_SKEW_SECONDS else None

    def error(self, status: int, message: str, code: str | int = "") -> web.Response:
        if not code:
            code = self._auth_code if status == 401 else STATUS_CODES.get(status, "50000")
        return web.json_response({"code": str(code), "msg": message, "data": []}, status=status)

    # --- markets ------------------------------------------------------------------------------------------
    def _market(self, symbol: str) -> Market:
        return self.by_symbol.get(symbol) or self.market_for(symbol)

    async def instruments(self, request: web.Request) -> web.Response:
        if request.query.get("instType", "SWAP") != "SWAP":
            return ok([])
        return ok([self._instrument(m) for m in self.markets])

    @staticmethod
    def _instrument(m: Market) -> dict[str, Any]:
        family = f"{m.base}-{m.quote}"
        return {
            "instType": "SWAP",
            "instId": m.venue_id,
            "uly": family,
            "instFamily": family,
            "baseCcy": "",
            "quoteCcy": "",
            "settleCcy": m.settle,
            "ctVal": fmt(m.contract_size),
            "ctMult": "1",
            "ctValCcy": m.base,
            "ctType": "linear" if m.settle == m.quote else "inverse",
            "lotSz": fmt(m.qty_step),
            "minSz": fmt(m.qty_step),
            "tickSz": "0.1",
            "lever": "100",
            "maxLmtSz": "100000000",
            "maxMktSz": "100000000",
            "state": "live",
            "listTime": "1611916828000",
            "expTime": "",
            "alias": "",
            "category": "1",
            "optType": "",
            "stk": "",
            "ruleType": "normal",
        }

    def _assets(self) -> set[str]:
        names = set(self.account.wallets.values())
        assets = {m.settle for m in self.markets} | {m.base for m in self.markets}
        assets |= {r.asset for r in self.settings.routes if r.from_ in names or r.to in names}
        for name in names:
            assets |= set(self.balances(name))
        return assets

    async def currencies(self, request: web.Request) -> web.Response:
        names = set(self.account.wallets.values())
        chains: dict[tuple[str, str], Decimal] = {}
        for r in self.settings.routes:
            if r.method == "withdrawal" and r.from_ in names:
                chains[(r.asset, okx_chain(r.asset, r.network))] = r.fee
        for asset in self._assets():
            if not any(a == asset for a, _ in chains):
                chains[(asset, okx_chain(asset, None))] = Decimal(0)
        wanted = set(filter(None, request.query.get("ccy", "").split(",")))
        rows = [
            {
                "ccy": asset,
                "name": asset,
                "chain": chain,
                "canDep": True,
                "canWd": True,
                "canInternal": True,
                "fee": fmt(fee),
                "minWd": "0.000001",
                "maxWd": "100000000",
                "wdTickSz": "8",
                "mainNet": False,
                "needTag": False,
                "minDep": "0.00000001",
            }
            for (asset, chain), fee in sorted(chains.items())
            if not wanted or asset in wanted
        ]
        return ok(rows)

    async def mark_prices(self, request: web.Request) -> web.Response:
        wanted = request.query.get("instId")
        now = ms(self.paper.now())
        rows = [
            {
                "instType": "SWAP",
                "instId": m.venue_id,
                "markPx": fmt(self.paper.market.prices[m.base]),
                "ts": now,
            }
            for m in self.markets
            if m.base in self.paper.market.prices and wanted in (None, m.venue_id)
        ]
        return ok(rows)

    async def tickers(self, request: web.Request) -> web.Response:
        now = ms(self.paper.now())
        rows = []
        for m in self.markets:
            px = self.paper.market.prices.get(m.base)
            if px is None:
                continue
            last = fmt(px)
            rows.append(
                {
                    "instType": "SWAP",
                    "instId": m.venue_id,
                    "last": last,
                    "lastSz": "1",
                    "askPx": last,
                    "askSz": "1",
                    "bidPx": last,
                    "bidSz": "1",
                    "open24h": last,
                    "high24h": last,
                    "low24h": last,
                    "volCcy24h": "0",
                    "vol24h": "0",
                    "ts": now,
                    "sodUtc0": last,
                    "sodUtc8": last,
                }
            )
        return ok(rows)

    async def funding_rates(self, request: web.Request) -> web.Response:
        wanted = request.query.get("instId", "ANY")
        venue = self.account.wallets.get(self.MARGIN_WALLET)
        book = self.paper.books.get(venue) if venue else None
        now = int(self.paper.now() * 1000)
        due = (now // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
        rows = []
        for m in self.markets:
            if wanted not in ("ANY", m.venue_id):
                continue
            rate = book.funding.get(m.symbol, book.default_funding) if book is not None else 0.0
            rows.append(
                {
                    "instType": "SWAP",
                    "instId": m.venue_id,
                    "fundingRate": fmt(rate),
                    "nextFundingRate": "",
                    "fundingTime": str(due),
                    "nextFundingTime": str(due + FUNDING_PERIOD_MS),
                    "method": "current_period",
                    "maxFundingRate": "0.0375",
                    "minFundingRate": "-0.0375",
                    "premium": "0",
                    "settFundingRate": fmt(rate),
                    "settState": "settled",
                    "ts": str(now),
                }
            )
        if wanted != "ANY" and not rows:
            return fail("51001", "Instrument ID does not exist")
        return ok(rows)

    async def book(self, request: web.Request) -> web.Response:
        m = self.by_id.get(request.query.get("instId", ""))
        venue = self.account.wallets.get(self.MARGIN_WALLET)
        if m is None or venue is None:
            return fail("51001", "Instrument ID does not exist")
        try:
            ob = self.paper.matching.order_book(venue, m.symbol)
        except OrderRefused as e:
            return fail("51001", str(e))
        depth = int(request.query.get("sz", "400") or 400)
        cs = m.contract_size

        def side(levels: tuple[tuple[float, float], ...]) -> list[list[str]]:
            return [[fmt(px), fmt(qty / cs), "0", "1"] for px, qty in levels[:depth]]

        return ok([{"asks": side(ob.asks), "bids": side(ob.bids), "ts": ms(self.paper.now())}])

    # --- balances and positions ---------------------------------------------------------------------------
    async def funding_balance(self, request: web.Request) -> web.Response:
        name = self.account.wallets.get(self.FUNDING_WALLET)
        if name is None:
            return fail("58000", "Account type 6 is not supported")
        wanted = set(filter(None, request.query.get("ccy", "").split(",")))
        rows = [
            {"ccy": a, "bal": fmt(q), "availBal": fmt(q), "frozenBal": "0"}
            for a, q in sorted(self.balances(name).items())
            if q != 0 and (not wanted or a in wanted)
        ]
        return ok(rows)

    async def trading_balance(self, request: web.Request) -> web.Response:
        name = self.account.wallets.get(self.MARGIN_WALLET)
        if name is None or name not in self.paper.books:
            return fail("58000", "Account type 18 is not supported")
        snap = self.paper.snapshot(name)  # an outage raises (→ 503); a stale venue serves its old figures
        return ok([self._account(snap)])

    def _account(self, snap: VenueSnapshot) -> dict[str, Any]:
        prices, f = snap.prices, snap.reported
        assert f is not None
        upl: dict[str, float] = {}
        notional = 0.0
        for p in snap.positions:
            settle = p.symbol.rsplit(":", 1)[-1]
            upl[settle] = upl.get(settle, 0.0) + p.qty * (prices[p.base] - p.entry)
            notional += abs(p.qty * prices[p.base])
        details = []
        total_eq = 0.0
        for ccy in sorted(set(snap.collateral) | set(upl)):
            cash = snap.collateral.get(ccy, 0.0)
            eq = cash + upl.get(ccy, 0.0)
            price = prices.get(ccy, 1.0)
            total_eq += eq * price
            details.append(
                {
                    "ccy": ccy,
                    "cashBal": fmt(cash),
                    "eq": fmt(eq),
                    "upl": fmt(upl.get(ccy, 0.0)),
                    "availBal": fmt(cash),
                    "availEq": fmt(eq),
                    "frozenBal": "0",
                    "ordFrozen": "0",
                    "eqUsd": fmt(eq * price),
                    "disEq": fmt(cash * price * (1.0 - snap.haircuts.get(ccy, 0.0))),
                    "isoEq": "0",
                    "liab": "",
                    "crossLiab": "",
                    "interest": "",
                    "mgnRatio": "",
                    "imr": "",
                    "mmr": "",
                    "twap": "0",
                    "uTime": ms(snap.ts),
                }
            )
        return {
            "adjEq": fmt(f.equity),
            "imr": fmt(f.im),
            "mmr": fmt(f.mm),
            "mgnRatio": fmt(f.equity / f.mm) if f.mm > 0 else "",
            "totalEq": fmt(total_eq),
            "availEq": fmt(max(0.0, f.equity - f.im)),
            "notionalUsd": fmt(notional),
            "upl": fmt(sum(upl.values())),
            "isoEq": "0",
            "ordFroz": "0",
            "borrowFroz": "0",
            "uTime": ms(snap.ts),
            "details": details,
        }

    async def positions(self, request: web.Request) -> web.Response:
        name = self.account.wallets.get(self.MARGIN_WALLET)
        if name is None or name not in self.paper.books:
            return ok([])
        snap = self.paper.snapshot(name)
        wanted = set(filter(None, request.query.get("instId", "").split(",")))
        rows = [self._position(snap, p) for p in snap.positions]
        return ok([r for r in rows if not wanted or r["instId"] in wanted])

    def _position(self, snap: VenueSnapshot, p: Position) -> dict[str, Any]:
        m = self._market(p.symbol)
        mark = snap.prices[p.base]
        notional = abs(p.qty * mark)
        cross = snap.params.model == "cross"
        im = notional * snap.params.im_rate if cross else 0.0
        mm = tiered_mm(notional, snap.params.tiers) if cross else 0.0
        upl = p.qty * (mark - p.entry)
        contracts = Decimal(repr(p.qty)) / Decimal(repr(m.contract_size))
        return {
            "instType": "SWAP",
            "instId": m.venue_id,
            "mgnMode": "cross",
            "posId": str(zlib.crc32(p.symbol.encode())),
            "posSide": "net",
            "pos": fmt(contracts),
            "ccy": m.settle,
            "posCcy": "",
            "avgPx": fmt(p.entry),
            "markPx": fmt(mark),
            "last": fmt(mark),
            "upl": fmt(upl),
            "uplRatio": fmt(upl / im) if im else "0",
            "notionalUsd": fmt(notional),
            "imr": fmt(im),
            "mmr": fmt(mm),
            "margin": "",
            "mgnRatio": "",
            "lever": fmt(1.0 / snap.params.im_rate) if snap.params.im_rate else "",
            "liqPx": "",
            "adl": "1",
            "interest": "0",
            "availPos": "",
            "cTime": ms(snap.ts),
            "uTime": ms(snap.ts),
        }

    async def config(self, request: web.Request) -> web.Response:
        row = {
            "uid": "44000000000001",
            "mainUid": "44000000000001",
            "acctLv": "3",
            "posMode": "net_mode",
            "autoLoan": False,
            "greeksType": "PA",
            "level": "Lv1",
            "levelTmp": "",
            "ctIsoMode": "automatic",
            "mgnIsoMode": "automatic",
            "roleType": "0",
            "traderInsts": [],
            "spotRoleType": "0",
            "spotTraderInsts": [],
            "opAuth": "0",
            "kycLv": "2",
            "label": "marginbot",
            "ip": self.ip,
            "perm": self.perm,
            "liquidationGear": "-1",
            "enableSpotBorrow": False,
            "spotBorrowAutoRepay": False,
            "type": "0",
            "settleCcy": "USDT",
            "settleCcyList": ["USDT", "USDC"],
        }
        return ok([row])

    # --- internal transfers ---------------------------------------------------------------------------
    async def _body(self, request: web.Request, kind: str) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except (json.JSONDecodeError, ValueError):
            return None
        if not isinstance(body, dict):
            return None
        self.received.append((kind, body))
        return body

    @staticmethod
    def _decimal(value: Any) -> Decimal | None:
        try:
            d = Decimal(str(value))
        except (InvalidOperation, ValueError):
            return None
        return d if d.is_finite() else None

    @classmethod
    def _amount(cls, value: Any) -> Decimal | None:
        d = cls._decimal(value)
        return d if d is not None and d > 0 else None

    @staticmethod
    def _client_id(body: dict[str, Any], key: str) -> str | None:
        """Our client id from a body; a fresh one where none was sent; None for one OKX refuses."""
        cid = str(body.get(key) or "")
        if not cid:
            return secrets.token_hex(16)
        return cid if CLIENT_ID.match(cid) else None

    async def transfer(self, request: web.Request) -> web.Response:
        body = await self._body(request, "transfer")
        if body is None:
            return fail("50002", "Json data format error")
        cid = self._client_id(body, "clientId")
        if cid is None:
            return fail("51000", "Parameter clientId error")
        if str(body.get("type", "0")) != "0":
            return fail("58127", "Main account API Key does not support current transfer type parameter")
        src = self.account.wallets.get(str(body.get("from")))
        dst = self.account.wallets.get(str(body.get("to")))
        if src is None or dst is None or src == dst:
            return fail("51000", "Parameter from error" if src is None else "Parameter to error")
        amount = self._amount(body.get("amt"))
        if amount is None:
            return fail("58114", "Transfer amount must be more than 0")
        ccy = str(body.get("ccy") or "")
        route = self.route_between(src, dst, ccy)
        if route is None:
            return fail("58112", "Your fund transfer failed. Please try again later")
        try:
            receipt = self.send(route, cid, amount)
        except TransferRefused as e:
            return fail(transfer_code(e), str(e))
        row = {
            "transId": number_of(receipt.venue_ref),
            "clientId": str(body.get("clientId") or ""),
            "ccy": ccy,
            "from": str(body.get("from")),
            "amt": str(body.get("amt")),
            "to": str(body.get("to")),
        }
        return ok([row])

    def _internal(self, t: PaperTransfer) -> bool:
        names = set(self.account.wallets.values())
        return t.req.method == "internal" and t.req.source in names and t.req.destination in names

    async def transfer_state(self, request: web.Request) -> web.Response:
        q = request.query
        tid, cid = q.get("transId"), q.get("clientId")
        found: PaperTransfer | None = None
        if tid:
            found = next((t for t in self.paper.transfers.values() if number_of(t.ref) == tid), None)
        elif cid:
            found = self.paper.transfers.get(cid)
        else:
            return fail("50014", "Parameter transId can not be empty")
        if found is None or not self._internal(found) or self.hidden(found.req.client_id):
            return fail("51000", "Parameter transId error") if tid else fail(*self.unknown_client_id)
        r = found.req
        row = {
            "transId": number_of(found.ref),
            "clientId": r.client_id,
            "ccy": r.asset,
            "amt": fmt(r.amount),
            "type": "0",
            "from": self.wallet_id(r.source) or "",
            "to": self.wallet_id(r.destination) or "",
            "subAcct": "",
            "instId": "",
            "toInstId": "",
            "state": TRANSFER_STATES[found.state],
        }
        return ok([row])

    # --- withdrawals and deposits -------------------------------------------------------------------------
    def _withdrawal_route(self, body: dict[str, Any], source: str) -> tuple[RouteModel | None, str]:
        """The route a withdrawal request takes, or None and the OKX code refusing it."""
        if str(body.get("dest", "4")) != "4":
            return None, "51000"
        address, _, tag = str(body.get("toAddr") or "").partition(":")
        ccy = str(body.get("ccy") or "")
        route = self.route_to_address(source, ccy, address)
        if route is None:
            return None, "58207"
        if (route.tag or "") != tag:
            return None, "58221"
        chain = body.get("chain")
        if chain and chain != okx_chain(ccy, route.network):
            return None, "51000"
        fee = body.get("fee")
        if fee is not None and self._decimal(fee) != route.fee:
            return None, "58211"  # the fee must be the chain's (ccxt takes it from asset/currencies)
        return route, ""

    async def withdraw(self, request: web.Request) -> web.Response:
        body = await self._body(request, "withdraw")
        if body is None:
            return fail("50002", "Json data format error")
        cid = self._client_id(body, "clientId")
        if cid is None:
            return fail("51000", "Parameter clientId error")
        source = self.account.wallets.get(self.FUNDING_WALLET)
        amount = self._amount(body.get("amt"))
        if source is None or amount is None:
            return fail("58200", "Withdrawal from this account is unavailable for this currency")
        route, code = self._withdrawal_route(body, source)
        if route is None:
            return fail(
                code, "Withdrawal refused: address, tag, chain or fee does not match a whitelisted one"
            )
        try:
            receipt = self.send(route, cid, amount + route.fee)  # the account pays amt + fee
        except TransferRefused as e:
            return fail(withdrawal_code(e), str(e))
        row = {
            "amt": str(body.get("amt")),
            "wdId": number_of(receipt.venue_ref),
            "ccy": route.asset,
            "clientId": str(body.get("clientId") or ""),
            "chain": okx_chain(route.asset, route.network),
        }
        return ok([row])

    @staticmethod
    def _window(q: Any, ts_ms: int) -> bool:
        """OKX's history pagination: `before` = newer than, `after` = older than (ms)."""
        before, after = q.get("before"), q.get("after")
        return (not before or ts_ms > int(before)) and (not after or ts_ms < int(after))

    async def withdrawal_history(self, request: web.Request) -> web.Response:
        q = request.query
        source = self.account.wallets.get(self.FUNDING_WALLET)
        rows: list[dict[str, Any]] = []
        for t in reversed(list(self.paper.transfers.values())):
            r = t.req
            if r.source != source or r.method != "withdrawal":
                continue
            if q.get("ccy") and q["ccy"] != r.asset:
                continue
            if q.get("clientId") and q["clientId"] != r.client_id:
                continue
            if q.get("wdId") and q["wdId"] != number_of(t.ref):
                continue
            if not self._window(q, int(t.submitted_at * 1000)) or self.hidden(r.client_id):
                continue
            rows.append(self._withdrawal_row(t, r))
        return ok(rows[: int(q.get("limit", "100") or 100)])

    @staticmethod
    def _withdrawal_row(t: PaperTransfer, r: TransferRequest) -> dict[str, Any]:
        row = {
            "ccy": r.asset,
            "chain": okx_chain(r.asset, r.network),
            "nonTradableAsset": False,
            "amt": fmt(r.amount - r.fee),
            "ts": ms(t.submitted_at),
            "from": "treasury@example.com",
            "areaCodeFrom": "",
            "to": r.address or "",
            "areaCodeTo": "",
            "toAddrType": "1",
            "txId": "" if t.state is TransferState.FAILED else f"0x{r.client_id}",
            "fee": fmt(r.fee),
            "feeCcy": r.asset,
            "state": WITHDRAWAL_STATES[t.state],
            "wdId": number_of(t.ref),
            "clientId": r.client_id,
            "note": "",
        }
        if r.tag:
            row["tag"] = r.tag
        return row

    async def deposit_history(self, request: web.Request) -> web.Response:
        q = request.query
        names = set(self.account.wallets.values())
        assets = [q["ccy"]] if q.get("ccy") else sorted({t.req.asset for t in self.paper.transfers.values()})
        rows: list[dict[str, Any]] = []
        for name in sorted(names):
            for asset in assets:
                for d in deposit_history(self.paper, name, asset):
                    ts = int(float(d["ts"]) * 1000)
                    if (q.get("txId") and q["txId"] != d["txid"]) or not self._window(q, ts):
                        continue
                    settled = d["state"] is TransferState.SETTLED
                    rows.append(
                        {
                            "ccy": asset,
                            "chain": okx_chain(asset, None),
                            "amt": fmt(d["amount"]),
                            "from": "",
                            "areaCodeFrom": "",
                            "to": "",
                            "txId": d["txid"],
                            "ts": str(ts),
                            "state": "2" if settled else "0",
                            "depId": d["txid"][-12:],
                            "fromWdId": "",
                            "actualDepBlkConfirm": "12" if settled else "0",
                        }
                    )
        rows.sort(key=lambda r: -int(r["ts"]))
        return ok(rows[: int(q.get("limit", "100") or 100)])

    # --- orders -------------------------------------------------------------------------------------------
    async def create_order(self, request: web.Request) -> web.Response:
        body = await self._body(request, "order")
        if body is None:
            return fail("50002", "Json data format error")
        cid = self._client_id(body, "clOrdId")
        if cid is None:
            return order_fail(str(body.get("clOrdId")), "51000", "Parameter clOrdId error")
        m = self.by_id.get(str(body.get("instId")))
        venue = self.account.wallets.get(self.MARGIN_WALLET)
        if m is None or venue is None:
            return order_fail(cid, "51001", "Instrument ID does not exist")
        problem = self._order_problem(body)
        if problem:
            return order_fail(cid, "51000", problem)
        contracts = Decimal(str(body["sz"]))
        if contracts % Decimal(repr(m.qty_step)) != 0:
            return order_fail(cid, "51121", "Order quantity should be an integer multiple of the lot size")
        qty = (contracts * Decimal(repr(m.contract_size))).normalize()
        reduce_only = str(body.get("reduceOnly", "false")).lower() == "true"
        req = OrderRequest(cid, venue, m.symbol, str(body["side"]), qty, reduce_only)
        try:
            receipt = self.place(req)
        except OrderRefused as e:
            return order_fail(cid, order_code(e), str(e))
        row = {
            "clOrdId": cid,
            "ordId": number_of(receipt.venue_ref),
            "tag": str(body.get("tag") or ""),
            "ts": ms(self.paper.now()),
            "sCode": "0",
            "sMsg": "Order placed",
        }
        return ok([row])

    def _order_problem(self, body: dict[str, Any]) -> str:
        if body.get("ordType") != "market":
            return "Parameter ordType error"
        if body.get("side") not in ("buy", "sell"):
            return "Parameter side error"
        if body.get("tdMode") != "cross":
            return "Parameter tdMode error"
        if self._amount(body.get("sz")) is None:
            return "Parameter sz error"
        return ""

    async def get_order(self, request: web.Request) -> web.Response:
        q = request.query
        m = self.by_id.get(q.get("instId", ""))
        if m is None:
            return fail("51001", "Instrument ID does not exist")
        found: tuple[OrderRequest, OrderReceipt] | None = None
        if q.get("clOrdId"):
            found = self.order_record(q["clOrdId"])
        elif q.get("ordId"):
            found = next(
                (
                    (o.req, o.receipt)
                    for o in self.paper.matching.orders.values()
                    if number_of(o.receipt.venue_ref) == q["ordId"]
                ),
                None,
            )
        else:
            return fail("51003", "Either client order ID or order ID is required")
        venue = self.account.wallets.get(self.MARGIN_WALLET)
        if found is None or found[0].symbol != m.symbol or found[0].venue != venue:
            return fail("51603", "Order does not exist")
        if self.hidden(found[0].client_id):
            return fail("51603", "Order does not exist")
        return ok([self._order_row(m, *found)])

    @staticmethod
    def _order_row(m: Market, req: OrderRequest, r: OrderReceipt) -> dict[str, Any]:
        cs = Decimal(repr(m.contract_size))
        traded = r.filled > 0
        return {
            "instType": "SWAP",
            "instId": m.venue_id,
            "ccy": "",
            "ordId": number_of(r.venue_ref),
            "clOrdId": req.client_id,
            "tag": "",
            "px": "",
            "sz": fmt(req.qty / cs),
            "ordType": "market",
            "side": req.side,
            "posSide": "net",
            "tdMode": "cross",
            "accFillSz": fmt(r.filled / cs),
            "fillPx": fmt(r.avg_price) if traded else "",
            "fillSz": fmt(r.filled / cs),
            "fillTime": ms(r.ts) if traded else "",
            "avgPx": fmt(r.avg_price) if traded else "",
            "state": "filled" if r.filled >= req.qty else "canceled",
            "lever": "",
            "feeCcy": m.settle,
            "fee": fmt(-r.fee) if r.fee else "0",
            "rebateCcy": m.settle,
            "rebate": "0",
            "pnl": "0",
            "category": "normal",
            "reduceOnly": "true" if req.reduce_only else "false",
            "cancelSource": "" if r.filled >= req.qty else "14",
            "stpMode": "cancel_maker",
            "source": "",
            "uTime": ms(r.ts),
            "cTime": ms(r.ts),
        }
