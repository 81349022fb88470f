"""Serve a paper world over fake exchange APIs, and derive the live config that reaches it through ccxt.

    paper config ──► PaperExchange ◄── fake okx / bybit / binance / deribit servers (loopback)
                                                 ▲
    live config (same names, kind = "ccxt", api_url → the fakes) ──► ccxt ──► LiveWorld ──► the bot

The same scenario can then run against the paper venue directly and through real ccxt code, and the
outcomes compared. `marginbot fake-exchange` uses this to rehearse a live deployment offline.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Mapping
from typing import Any

from bot.settings import Settings, settings_from_dict
from bot.venues.fakes.base import Account, FakeExchange
from bot.venues.live.keys import env_name
from bot.venues.paper import PaperExchange

FAKES = {
    "binance": "bot.venues.fakes.binance:FakeBinance",
    "okx": "bot.venues.fakes.okx:FakeOkx",
    "bybit": "bot.venues.fakes.bybit:FakeBybit",
    "deribit": "bot.venues.fakes.deribit:FakeDeribit",
}

MODEL_KEYS = ("haircuts", "mm_tiers", "im_rate", "im_multiplier", "pm_min_rate", "pm_shocks")


def fake_class(exchange: str) -> type[FakeExchange]:
    module, _, name = FAKES[exchange].partition(":")
    cls: type[FakeExchange] = getattr(importlib.import_module(module), name)
    return cls


def key_set(exchange: str) -> str:
    return f"fake-{exchange}"


def live_config(settings: Settings, exchange_of: Mapping[str, str], urls: Mapping[str, str]) -> Settings:
    """The paper config with the named venues and accounts turned into ccxt ones reaching the fakes."""
    data: dict[str, Any] = settings.model_dump(mode="json", by_alias=True, exclude_none=True)
    for v in data["venues"]:
        x = exchange_of.get(v["name"])
        if x is None:
            continue
        paper = v.pop("paper")
        v.update(kind="ccxt", exchange=x, api_url=urls[x])
        v["live"] = {"credentials": key_set(x), **{k: paper[k] for k in MODEL_KEYS if k in paper}}
    for a in data.get("accounts", []):
        x = exchange_of.get(a["name"])
        if x is None:
            continue
        a.pop("balances", None)
        a.update(kind="ccxt", exchange=x, api_url=urls[x], live={"credentials": key_set(x)})
    return settings_from_dict(data)


class Rehearsal:
    """Fake servers for the exchanges named in `exchange_of`, over one paper world."""

    def __init__(
        self,
        settings: Settings,
        exchange_of: Mapping[str, str],
        paper: PaperExchange,
        *,
        hang_seconds: float = 2.0,
    ) -> None:
        self.settings = settings
        self.exchange_of = dict(exchange_of)
        self.paper = paper
        self.hang_seconds = hang_seconds
        self.fakes: dict[str, FakeExchange] = {}
        self.env: dict[str, str] = {}
        self.live: Settings | None = None

    async def start(self) -> Settings:
        venues = {v.name for v in self.settings.venues}
        symbols = self._symbols()
        urls: dict[str, str] = {}
        for x in sorted(set(self.exchange_of.values())):
            cls = fake_class(x)
            account = Account(
                secrets.token_hex(16), secrets.token_hex(24), secrets.token_hex(8) if x == "okx" else None
            )
            for name, ex in self.exchange_of.items():
                if ex != x:
                    continue
                wallet = cls.MARGIN_WALLET if name in venues else cls.FUNDING_WALLET
                if wallet in account.wallets:
                    raise ValueError(
                        f"{x}: {name} and {account.wallets[wallet]} would share the {wallet} wallet"
                    )
                account.wallets[wallet] = name
            markets = [cls.market_for(sym) for sym in sorted(symbols.get(x, set()))]
            fake = cls(self.paper, self.settings, account, markets, hang_seconds=self.hang_seconds)
            urls[x] = await fake.start()
            self.fakes[x] = fake
            ks = key_set(x)
            self.env[env_name(ks, "api_key")] = account.api_key
            self.env[env_name(ks, "secret")] = account.secret
            if account.password:
                self.env[env_name(ks, "password")] = account.password
        self.live = live_config(self.settings, self.exchange_of, urls)
        return self.live

    def _symbols(self) -> dict[str, set[str]]:
        """The markets each fake lists: positions, priced collateral and route assets, hedge instruments."""
        s = self.settings
        symbols: dict[str, set[str]] = {}
        for v in s.venues:
            x = self.exchange_of.get(v.name)
            if x is None or v.paper is None:
                continue
            syms = symbols.setdefault(x, set())
            syms.update(p.symbol for p in v.paper.positions)
            syms.update(f"{a}/USDT:USDT" for a in v.paper.collateral if a in s.market.prices)
            syms.update(  # a route's asset is priced at its live venue end, held or not
                f"{r.asset}/USDT:USDT"
                for r in s.routes
                if v.name in (r.from_, r.to) and r.asset in s.market.prices
            )
        for h in s.hedges:
            for i in h.instruments:
                if i.venue in self.exchange_of:
                    symbols.setdefault(self.exchange_of[i.venue], set()).add(i.symbol)
        return symbols

    async def stop(self) -> None:
        for fake in self.fakes.values():
            await fake.stop()
