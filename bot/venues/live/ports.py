"""The live ports: ccxt-backed venues, accounts, transfers and orders, indistinguishable to the engine.

`LiveWorld` holds one exchange client per (exchange, key set, sandbox, api_url), so a venue and a treasury
account of the same exchange account share one client and one rate budget, reconciliation included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from bot.core.execution import Book
from bot.core.margin import Figures, MarginParams, Position, build_tiers, figures
from bot.core.world import AccountSnapshot, VenueSnapshot
from bot.errors import ConfigError, KeyRejected, VenueUnavailable
from bot.settings import STABLES, LiveVenueModel, Settings
from bot.venues.base import (
    OrderPort,
    OrderReceipt,
    OrderRequest,
    TransferPort,
    TransferReceipt,
    TransferRequest,
    TransferState,
)
from bot.venues.live.budget import RateGate
from bot.venues.live.client import Caller, make_exchange
from bot.venues.live.keys import Credentials, load_credentials
from bot.venues.live.profile import KeyInfo, Profile, num, position_from, ratio_figures
from bot.venues.live.profiles import PROFILES

log = structlog.get_logger("marginbot.live")

BOOK_DEPTH = 50

ConnKey = tuple[str, str, bool, str | None]


@dataclass
class Connection:
    """One exchange client: its profile, its call wrapper (budget, errors, retries), markets loaded once."""

    key: ConnKey
    profile: Profile
    caller: Caller
    names: list[str] = field(default_factory=list)  # venues and accounts on this key
    ready: bool = False

    @property
    def exchange(self) -> str:
        return self.key[0]

    async def ensure(self) -> None:
        if not self.ready:
            await self.profile.prepare(self.caller)
            self.ready = True

    def contract_size(self, symbol: str) -> float:
        try:
            market = self.caller.ex.market(symbol)
        except Exception as e:  # ccxt raises BadSymbol: a symbol the exchange does not list
            raise VenueUnavailable(f"{self.exchange}: unknown symbol {symbol}") from e
        return num(market.get("contractSize")) or 1.0

    def price_symbol(self, asset: str) -> str | None:
        """A listed market that prices `asset` in dollars (a USDT or USDC perpetual, else a spot pair)."""
        markets = self.caller.ex.markets or {}
        for sym in (f"{asset}/USDT:USDT", f"{asset}/USDC:USDC", f"{asset}/USDT", f"{asset}/USDC"):
            if sym in markets:
                return sym
        return None

    def lists_currency(self, asset: str) -> bool:
        """Whether the exchange lists `asset` (its currency list, or a market's base or quote)."""
        if asset in (self.caller.ex.currencies or {}):
            return True
        return any(asset in (m.get("base"), m.get("quote")) for m in (self.caller.ex.markets or {}).values())

    def base(self, symbol: str) -> str:
        try:
            return str(self.caller.ex.market(symbol)["base"])
        except Exception:  # a symbol the exchange does not list: read it from the unified form
            return symbol.split("/", maxsplit=1)[0]


def _params(live: LiveVenueModel, model: str) -> MarginParams:
    tiers = build_tiers([(None if t.up_to is None else float(t.up_to), t.rate) for t in live.mm_tiers])
    return MarginParams(
        model=model,
        tiers=tiers,
        im_rate=live.im_rate,
        im_multiplier=live.im_multiplier,
        pm_min_rate=live.pm_min_rate,
        pm_shocks=tuple(live.pm_shocks),
    )


def own_figures(  # noqa: PLR0917 -- the snapshot's parts, positional like `figures`
    collateral: Mapping[str, float],
    positions: tuple[Position, ...],
    raw: list[dict[str, Any]],
    prices: Mapping[str, float],
    haircuts: Mapping[str, float],
    params: MarginParams,
) -> Figures:
    """Our computation: equity from cash and marks; IM/MM summed from the venue's per-position figures where
    every position carries them (cross margin), else from the configured model (portfolio margin)."""
    model = figures(collateral, positions, prices, haircuts, params)
    if params.model == "portfolio" or not raw:
        return model
    ims = [num(p.get("initialMargin")) for p in raw]
    mms = [num(p.get("maintenanceMargin")) for p in raw]
    im = sum(v for v in ims if v is not None) if all(v is not None for v in ims) else model.im
    mm = sum(v for v in mms if v is not None) if all(v is not None for v in mms) else model.mm
    return ratio_figures(model.equity, im, mm)


class LiveWorld:
    """Every live venue and account of a config, with their exchange clients."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        env: Mapping[str, str] | None = None,
        read_attempts: int = 3,
        read_wait_max: float = 2.0,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.connections: dict[ConnKey, Connection] = {}
        self.by_name: dict[str, Connection] = {}
        self.wallets: dict[str, str] = {}
        creds: dict[str, Credentials] = {}
        problems: list[str] = []
        missing: set[str] = set()
        ends: list[tuple[str, str, str | None, float]] = []
        models = {v.name: v.margin_model for v in settings.venues}
        for v in settings.venues:
            if v.kind == "ccxt" and v.exchange:
                ends.append((v.name, v.exchange, v.live_keys.wallet, v.live_keys.timeout_seconds))
        for a in settings.accounts:
            if a.kind == "ccxt" and a.exchange:
                live = a.live
                ends.append(
                    (a.name, a.exchange, live.wallet if live else None, live.timeout_seconds if live else 10)
                )
        for name, exchange, wallet, timeout in ends:
            key = settings.connection(name)
            assert key is not None
            profile_cls = PROFILES[exchange]
            conn = self.connections.get(key)
            if conn is None:
                if key[1] in missing:
                    continue
                try:
                    cred = creds.get(key[1]) or load_credentials(key[1], exchange, env=env)
                except ConfigError as e:
                    problems.extend(e.problems)
                    missing.add(key[1])
                    continue
                creds[key[1]] = cred
                profile = profile_cls()
                ex = make_exchange(
                    exchange,
                    cred,
                    sandbox=key[2],
                    api_url=key[3],
                    timeout_seconds=timeout,
                    options=profile.options(),
                )
                caller = Caller(
                    name,
                    ex,
                    RateGate(profile.budget),
                    read_attempts=read_attempts,
                    read_wait_max=read_wait_max,
                )
                conn = Connection(key, profile, caller)
                self.connections[key] = conn
            conn.names.append(name)
            self.by_name[name] = conn
            model = models.get(name)
            default = conn.profile.funding_wallet if model is None else conn.profile.default_wallet(model)
            self.wallets[name] = wallet or default
        if problems:
            raise ConfigError(problems)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    async def close(self) -> None:
        for conn in self.connections.values():
            try:
                await conn.caller.ex.close()
            except Exception as e:  # closing is best effort; the process is ending anyway
                log.debug("closing an exchange client failed", exchange=conn.exchange, error=type(e).__name__)

    def route_asset_problems(self) -> list[str]:
        """Routes whose live venue end does not list their asset, or lists no market to price it."""
        problems = []
        for r in self.settings.routes:
            venue = _venue_end(self.settings, r.from_, r.to)
            conn = self.by_name.get(venue or "")
            if venue is None or conn is None:
                continue
            if not conn.lists_currency(r.asset):
                problems.append(
                    f"routes[{r.name}].asset: {venue} ({conn.exchange}) lists no currency {r.asset}"
                )
            elif r.asset not in STABLES and conn.price_symbol(r.asset) is None:
                problems.append(
                    f"routes[{r.name}].asset: {venue} ({conn.exchange}) lists no {r.asset}/USDT or /USDC market "
                    "to price it"
                )
        return problems

    def needs(self, conn: Connection) -> dict[str, bool]:
        """What the config asks of this key: trade (hedges), withdraw, transfer (routes)."""
        s = self.settings
        names = set(conn.names)
        trade = any(i.venue in names for h in s.hedges for i in h.instruments)
        withdraw = any(r.method == "withdrawal" and r.from_ in names for r in s.routes)
        transfer = any(r.method == "internal" and r.from_ in names for r in s.routes)
        return {"trade": trade, "withdraw": withdraw, "transfer": transfer}

    async def preflight(self) -> list[str]:
        """Load markets, check that every route's asset is a currency its live venue lists and can price
        (ConfigError naming the route), and each key's permissions (KeyRejected); return warnings."""
        problems: list[str] = []
        warnings: list[str] = []
        for conn in self.connections.values():
            await conn.ensure()
        unlisted = self.route_asset_problems()
        if unlisted:
            raise ConfigError(unlisted)
        for conn in self.connections.values():
            label = f"{conn.exchange} key {conn.key[1]!r}"
            info = await conn.profile.key_info(conn.caller)
            refused, warned = key_problems(label, info, self.needs(conn))
            problems += refused
            warnings += warned
        if problems:
            raise KeyRejected("; ".join(problems))
        for w in warnings:
            log.info("api key", detail=w)
        return warnings


def _venue_end(settings: Settings, source: str, destination: str) -> str | None:
    venues = {v.name for v in settings.venues}
    return destination if destination in venues else source if source in venues else None


def key_problems(label: str, info: KeyInfo | None, needs: Mapping[str, bool]) -> tuple[list[str], list[str]]:
    """Refusals and warnings for one key. Pure: the rules of the API-key runbook."""
    problems: list[str] = []
    warnings: list[str] = []
    if info is None:
        warnings.append(f"{label}: the venue does not report key permissions; check them by hand (runbook)")
        return problems, warnings
    if info.can_withdraw and info.ip_restricted is False:
        problems.append(f"{label}: withdrawals are enabled but the key has no IP whitelist; restrict it")
    if info.read_only and any(needs.values()):
        problems.append(f"{label}: the key is read-only but the config moves money or trades with it")
    for need, have in (
        ("trade", info.can_trade),
        ("withdraw", info.can_withdraw),
        ("transfer", info.can_transfer),
    ):
        if needs.get(need) and have is False:
            problems.append(f"{label}: the config needs the {need} permission, which the key lacks")
        if have and not needs.get(need) and need == "withdraw":
            warnings.append(
                f"{label}: the key may withdraw but no route withdraws from it; remove the permission"
            )
    return problems, warnings


class LiveVenue:
    """A ccxt margin account as a VenuePort."""

    def __init__(self, world: LiveWorld, name: str) -> None:
        self.world = world
        self.name = name
        self.conn = world.by_name[name]
        v = next(v for v in world.settings.venues if v.name == name)
        self.live = v.live_keys
        self.params = _params(self.live, v.margin_model)
        self.haircuts = dict(self.live.haircuts)
        hedged = {i.symbol for h in world.settings.hedges for i in h.instruments if i.venue == name}
        self.hedged = sorted(hedged)
        self.symbols = sorted(hedged | set(self.live.symbols))
        s = world.settings
        # a route's asset is priced every cycle, held or not: a top-up in it is sized by value
        self.route_assets = sorted(
            {r.asset for r in s.routes if _venue_end(s, r.from_, r.to) == name and r.asset not in STABLES}
        )

    async def snapshot(self) -> VenueSnapshot:
        conn, x = self.conn, self.conn.caller
        await conn.ensure()
        balance = await conn.profile.balance(x, self.world.wallets[self.name])
        reported = await conn.profile.reported(x, balance)
        raw = [p for p in await conn.profile.positions(x) if num(p.get("contracts"))]
        positions: list[Position] = []
        prices: dict[str, float] = {}
        for p in raw:
            base = conn.base(str(p["symbol"]))
            pos = position_from(p, base)
            if pos is None:
                continue
            positions.append(pos)
            mark = num(p.get("markPrice"))
            if mark:
                prices[base] = mark
        collateral = conn.profile.collateral(balance)
        wanted = list(self.symbols)
        for asset in collateral:
            if asset not in STABLES and asset not in prices:
                wanted.append(f"{asset}/USDT:USDT")
        for asset in self.route_assets:
            sym = conn.price_symbol(asset)
            if asset not in prices and sym is not None:
                wanted.append(sym)
        missing = [s for s in dict.fromkeys(wanted) if conn.base(s) not in prices]
        for sym, price in (await conn.profile.tickers(x, missing)).items():
            prices.setdefault(conn.base(sym), price)
        funding = await conn.profile.funding(x, self.hedged) if self.hedged else {}
        pos_t = tuple(positions)
        own = own_figures(collateral, pos_t, raw, prices, self.haircuts, self.params)
        return VenueSnapshot(
            venue=self.name,
            ts=self.world.clock(),
            collateral=collateral,
            positions=pos_t,
            prices=prices,
            haircuts=self.haircuts,
            params=self.params,
            reported=reported,
            funding=funding,
            own=own,
        )


class LiveAccount:
    """A ccxt treasury wallet as an AccountPort: what it may send now (free balances)."""

    def __init__(self, world: LiveWorld, name: str, bucket: str) -> None:
        self.world = world
        self.name = name
        self.bucket = bucket
        self.conn = world.by_name[name]

    async def balances(self) -> AccountSnapshot:
        await self.conn.ensure()
        bal = await self.conn.profile.balance(self.conn.caller, self.world.wallets[self.name])
        free = bal.get("free") or {}
        out = {a: Decimal(str(q)) for a, q in free.items() if num(q)}
        return AccountSnapshot(self.name, self.bucket, self.world.clock(), out)


class LiveTransfers:
    """Transfers along routes: live routes through the source's exchange client, paper routes to `paper`."""

    def __init__(self, world: LiveWorld, paper: TransferPort | None) -> None:
        self.world = world
        self.paper = paper

    def _port(self, req: TransferRequest) -> Connection | None:
        return self.world.by_name.get(req.source)

    async def submit(self, req: TransferRequest) -> TransferReceipt:
        conn = self._port(req)
        if conn is None:
            if self.paper is None:
                raise VenueUnavailable(f"{req.source}: no venue client for this route")
            return await self.paper.submit(req)
        await conn.ensure()
        if req.method == "internal":
            w = self.world.wallets
            return await conn.profile.transfer(conn.caller, req, w[req.source], w[req.destination])
        return await conn.profile.withdraw(conn.caller, req, from_wallet=self.world.wallets[req.source])

    async def lookup(self, req: TransferRequest) -> TransferReceipt | None:
        conn = self._port(req)
        if conn is None:
            return None if self.paper is None else await self.paper.lookup(req)
        await conn.ensure()
        if req.method == "internal":
            w = self.world.wallets
            return await conn.profile.lookup_transfer(conn.caller, req, w[req.source], w[req.destination])
        found = await conn.profile.lookup_withdrawal(conn.caller, req)
        if found is None:
            return None
        receipt = found.receipt
        dest = self.world.by_name.get(req.destination)
        if receipt.state is TransferState.SETTLED and dest is not None:
            # sent is not arrived: the top-up counts as in flight until the destination shows the deposit
            await dest.ensure()
            at = await dest.profile.deposit_settled_at(
                dest.caller, req.asset, found.txid, req.amount - req.fee, req.created_at
            )
            if at is None:
                return TransferReceipt(
                    receipt.client_id, receipt.venue_ref, TransferState.PENDING, receipt.amount, receipt.ts
                )
            return TransferReceipt(
                receipt.client_id, receipt.venue_ref, TransferState.SETTLED, receipt.amount, receipt.ts, at
            )
        return receipt


class LiveOrders:
    """Orders on live venues through their exchange clients; paper venues to `paper`."""

    def __init__(self, world: LiveWorld, paper: OrderPort | None) -> None:
        self.world = world
        self.paper = paper

    def _conn(self, venue: str) -> Connection | None:
        return self.world.by_name.get(venue)

    async def order_book(self, venue: str, symbol: str) -> Book:
        conn = self._conn(venue)
        if conn is None:
            if self.paper is None:
                raise VenueUnavailable(f"{venue}: no venue client")
            return await self.paper.order_book(venue, symbol)
        await conn.ensure()
        cs = conn.contract_size(symbol)
        raw = await conn.profile.order_book(conn.caller, symbol, BOOK_DEPTH)

        def side(levels: Any) -> tuple[tuple[float, float], ...]:
            return tuple(
                (float(lv[0]), float(lv[1]) * cs) for lv in levels or () if num(lv[0]) and num(lv[1])
            )

        return Book(side(raw.get("bids")), side(raw.get("asks")))

    async def place(self, req: OrderRequest) -> OrderReceipt:
        conn = self._conn(req.venue)
        if conn is None:
            if self.paper is None:
                raise VenueUnavailable(f"{req.venue}: no venue client")
            return await self.paper.place(req)
        await conn.ensure()
        return await conn.profile.place(conn.caller, req, conn.contract_size(req.symbol), self.world.clock())

    async def lookup_order(self, req: OrderRequest) -> OrderReceipt | None:
        conn = self._conn(req.venue)
        if conn is None:
            return None if self.paper is None else await self.paper.lookup_order(req)
        await conn.ensure()
        return await conn.profile.lookup_order(
            conn.caller, req, conn.contract_size(req.symbol), self.world.clock()
        )
