"""The shared part of every fake exchange server: the paper world behind it, faults, signatures, lifecycle."""

from __future__ import annotations

import asyncio
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from aiohttp import web

from bot.errors import UnknownOutcome, VenueUnavailable
from bot.settings import RouteModel, Settings
from bot.venues.base import OrderReceipt, OrderRequest, TransferReceipt, TransferRequest
from bot.venues.paper import PaperExchange

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FAULT_KINDS = ("429", "418", "5xx", "timeout", "timeout_after_effect", "malformed")


@dataclass
class Fault:
    kind: str  # one of FAULT_KINDS
    endpoint: str  # an endpoint kind ("balance", "positions", "transfer", "withdraw", "order", "lookup", …) or "any"
    count: int = 1
    retry_after: float | None = None


@dataclass
class Market:
    """One instrument the fake lists: unified symbol, the venue's own id, contract size in base units."""

    symbol: str  # BTC/USDT:USDT
    venue_id: str  # BTC-USDT-SWAP, BTCUSDT, BTC_USDC-PERPETUAL …
    base: str
    quote: str
    settle: str
    contract_size: float = 1.0
    qty_step: float = 0.001  # in contracts


@dataclass
class Hit:
    method: str
    path: str
    endpoint: str
    status: int
    signed: bool
    at: float = 0.0  # time.perf_counter() when the request arrived (the bench measures client-side waits)


@dataclass
class Account:
    """The exchange account one API key opens: its wallets, each a paper venue or paper account."""

    api_key: str
    secret: str
    password: str | None = None
    wallets: dict[str, str] = field(default_factory=dict)  # venue's wallet id -> paper venue/account name


class FakeExchange(ABC):
    """An aiohttp app over a PaperExchange. Subclasses add the exchange's routes in `routes()`."""

    exchange_id: ClassVar[str]
    MARGIN_WALLET: ClassVar[str]  # the venue's own id of the derivatives margin wallet
    FUNDING_WALLET: ClassVar[str]  # the venue's own id of the funding / spot wallet

    @classmethod
    @abstractmethod
    def market_for(cls, symbol: str) -> Market:
        """The instrument this fake lists for a unified symbol (venue id, contract size)."""

    def __init__(
        self,
        paper: PaperExchange,
        settings: Settings,
        account: Account,
        markets: list[Market],
        *,
        hang_seconds: float = 2.0,
    ) -> None:
        self.paper = paper
        self.settings = settings
        self.account = account
        self.markets = markets
        self.by_symbol = {m.symbol: m for m in markets}
        self.by_id = {m.venue_id: m for m in markets}
        self.latency = 0.0  # seconds added to every answer (the bench's distant exchanges)
        self.hang_seconds = (
            hang_seconds  # how long a "timeout" holds the answer (longer than the client waits)
        )
        self.faults: list[Fault] = []
        self.not_found_polls = 0  # lookups answer "not found" this many times for each new transfer / order
        self._polls: dict[str, int] = {}
        self.hits: list[Hit] = []
        self.signatures: set[str] = set()  # every signature value received (tests check none leaks anywhere)
        self.app = web.Application(middlewares=[self._middleware])
        self.routes(self.app)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- to override --------------------------------------------------------------------------------
    @abstractmethod
    def routes(self, app: web.Application) -> None:
        """Add the exchange's endpoints to the app."""

    def endpoint_of(self, request: web.Request) -> str:
        """The endpoint kind of a request (faults and the hit log use it)."""
        return "any"

    async def verify(self, request: web.Request, body: str) -> bool:
        """True when the request carries a valid signature by `account.secret` (public calls: True)."""
        return True

    def error(self, status: int, message: str, code: str | int = "") -> web.Response:
        """The exchange's error body for `status` (subclasses use the venue's codes)."""
        return web.json_response({"code": code, "msg": message}, status=status)

    def malformed(self) -> web.Response:
        """An answer with a 200 status that carries no usable data (a gateway's HTML page)."""
        return web.Response(
            text="<html><body>upstream answered nothing</body></html>", content_type="text/html"
        )

    # --- lifecycle ----------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- faults ---------------------------------------------------------------------------------------
    def add_fault(
        self, kind: str, endpoint: str = "any", count: int = 1, retry_after: float | None = None
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        self.faults.append(Fault(kind, endpoint, count, retry_after))

    def _take(self, endpoint: str) -> Fault | None:
        for f in self.faults:
            if f.count > 0 and f.endpoint in (endpoint, "any"):
                f.count -= 1
                return f
        return None

    def hidden(self, key: str) -> bool:
        """Consume one "not found" poll for `key` (a transfer or order id); True while it should stay hidden."""
        n = self._polls.get(key, self.not_found_polls)
        if n > 0:
            self._polls[key] = n - 1
            return True
        return False

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived = time.perf_counter()
        if self.latency > 0:  # a distant exchange: every answer takes this long
            await asyncio.sleep(self.latency)
        endpoint = self.endpoint_of(request)
        body = await request.text()
        self._collect_signatures(request)
        signed = await self.verify(request, body)
        fault = self._take(endpoint)

        def hit(status: int) -> None:
            self.hits.append(Hit(request.method, request.path, endpoint, status, signed, arrived))

        early = await self._before_effect(fault, signed, hit)
        if early is not None:
            return early
        try:
            response = await handler(request)
        except web.HTTPException:
            raise
        except UnknownOutcome:  # the paper world applied the effect and lost the answer
            return await self._hang(hit)
        except VenueUnavailable as e:
            hit(503)
            return self.error(503, str(e))
        if fault is not None and fault.kind == "timeout_after_effect":
            return await self._hang(hit)
        if fault is not None and fault.kind == "malformed":
            hit(200)
            return self.malformed()
        hit(response.status)
        return response

    def _collect_signatures(self, request: web.Request) -> None:
        """Every signature a request carries (the secrets test looks for them in logs and records)."""
        for key, value in [*request.headers.items(), *request.query.items()]:
            if "sign" in key.lower() or key.lower() == "authorization":
                self.signatures.add(value.split("sig=")[-1].split(",")[0] if "sig=" in value else value)

    async def _before_effect(
        self, fault: Fault | None, signed: bool, hit: Callable[[int], None]
    ) -> web.StreamResponse | None:
        """The answer a fault (or a bad signature) gives before the request reaches the paper world."""
        if fault is not None and fault.kind in ("429", "418"):
            status = int(fault.kind)
            hit(status)
            resp = self.error(status, "too many requests" if status == 429 else "IP banned")
            if fault.retry_after is not None:
                resp.headers["Retry-After"] = f"{fault.retry_after:g}"
            return resp
        if fault is not None and fault.kind == "5xx":
            hit(503)
            return self.error(503, "service unavailable")
        if fault is not None and fault.kind == "timeout":
            return await self._hang(hit)
        if not signed:
            hit(401)
            return self.error(401, "invalid signature")
        return None

    async def _hang(self, hit: Callable[[int], None]) -> web.StreamResponse:
        """A timeout as the client sees it: the answer held past its patience, then a 504."""
        hit(0)
        await asyncio.sleep(self.hang_seconds)
        return self.error(504, "gateway timeout")

    # --- the paper world, as every fake needs it --------------------------------------------------------
    def wallet(self, wallet_id: str) -> str:
        """The paper venue or account behind one of this account's wallets."""
        name = self.account.wallets.get(wallet_id)
        if name is None:
            raise web.HTTPBadRequest(
                text=json.dumps({"code": "wallet", "msg": f"unknown wallet {wallet_id}"})
            )
        return name

    def wallet_id(self, name: str) -> str | None:
        for w, n in self.account.wallets.items():
            if n == name:
                return w
        return None

    def route_between(self, source: str, destination: str, asset: str) -> RouteModel | None:
        for r in self.settings.routes:
            if r.from_ == source and r.to == destination and r.asset == asset and r.method == "internal":
                return r
        return None

    def route_to_address(self, source: str, asset: str, address: str) -> RouteModel | None:
        for r in self.settings.routes:
            if r.from_ == source and r.asset == asset and r.method == "withdrawal" and r.address == address:
                return r
        return None

    def send(self, route: RouteModel, client_id: str, amount: Decimal) -> TransferReceipt:
        """Move money in the paper world along `route` (raises TransferRefused, UnknownOutcome, …)."""
        req = TransferRequest(
            client_id=client_id,
            route=route.name,
            source=route.from_,
            destination=route.to,
            asset=route.asset,
            amount=amount,
            method=route.method,
            network=route.network,
            address=route.address,
            fee=route.fee,
            settle_seconds=route.settle_seconds,
            tag=route.tag,
        )
        return self.paper.submit(req)

    def transfer_record(self, client_id: str) -> TransferReceipt | None:
        t = self.paper.transfers.get(client_id)
        if t is None:
            return None
        return TransferReceipt(t.req.client_id, t.ref, t.state, t.req.amount, t.submitted_at, t.settled_at)

    def transfer_request(self, client_id: str) -> TransferRequest | None:
        t = self.paper.transfers.get(client_id)
        return None if t is None else t.req

    def balances(self, name: str) -> dict[str, Decimal]:
        """Cash balances of a paper venue (collateral) or account."""
        book = self.paper.books.get(name)
        if book is not None:
            return dict(book.collateral)
        return dict(self.paper.accounts.get(name, {}))

    def place(self, req: OrderRequest) -> OrderReceipt:
        """A market order in the paper world (raises OrderRefused, UnknownOutcome, VenueUnavailable)."""
        return self.paper.matching.place(req)

    def order_record(self, client_id: str) -> tuple[OrderRequest, OrderReceipt] | None:
        o = self.paper.matching.orders.get(client_id)
        return None if o is None else (o.req, o.receipt)


def deposit_history(paper: PaperExchange, destination: str, asset: str) -> list[dict[str, Any]]:
    """Withdrawals into `destination` as its deposit history: txid = the sender's reference."""
    out = []
    for t in paper.transfers.values():
        if t.req.destination == destination and t.req.asset == asset and t.req.method == "withdrawal":
            out.append(
                {
                    "txid": f"0x{t.req.client_id}",
                    "amount": t.req.amount - t.req.fee,
                    "state": t.state,
                    "ts": t.settled_at or t.submitted_at,
                }
            )
    return out
