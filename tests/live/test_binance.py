"""Binance through real ccxt and the fake server: USDⓈ-M and portfolio-margin figures, transfers looked up by
history, withdrawals and orders by our client id, signatures, and the engine acting as it does on paper."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from bot.core.decide import crosscheck_gap
from bot.engine.clock import SimClock
from bot.errors import (
    KeyRejected,
    OrderRefused,
    RateLimited,
    TransferRefused,
    UnknownOutcome,
    VenueBanned,
    VenueUnavailable,
)
from bot.settings import Settings, settings_from_dict
from bot.sim.market import Market
from bot.venues.base import OrderRequest, TransferRequest, TransferState
from bot.venues.fakes.binance import FakeBinance
from bot.venues.fakes.rehearsal import Rehearsal
from bot.venues.live.ports import LiveOrders, LiveTransfers, LiveVenue, LiveWorld
from bot.venues.live.profiles.binance import (
    binance_time,
    key_permissions,
    pm_collateral,
    pm_figures,
    um_collateral,
    um_figures,
)
from bot.venues.paper import PaperExchange
from tests.live.harness import START, Twin, intents, orders

BTC = "BTC/USDT:USDT"
ADDRESS = "TColdWalletDepositAddr000000000000"
DEPOSIT = "TBinanceVenueDepositAddr0000000000"
MEMO_ADDRESS = "rColdWalletMemoAddr000000000000000"
EXCHANGE_OF = {"bn": "binance", "fund": "binance"}
PM_USDT = 3_000_000  # portfolio margin charges the naked short's 15% shock: 1M would be over-used


def route(name: str, src: str, dst: str, method: str = "internal", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "from": src,
        "to": dst,
        "asset": "USDT",
        "method": method,
        "max_amount": 5_000_000,
        "daily_limit": 50_000_000,
        "settle_seconds": 0,
        **extra,
    }


def withdrawal(name: str, dst: str, address: str, **extra: Any) -> dict[str, Any]:
    """A TRC20 withdrawal from the Binance spot wallet, settling after a minute."""
    return route(
        name, "fund", dst, "withdrawal", network="TRC20", address=address, settle_seconds=60, **extra
    )


def config(model: str = "cross", usdt: float = 1_000_000, exposure: float = 0.0) -> Settings:
    """A Binance venue (100 BTC short, 60% used at 1M USDT), its spot wallet, a paper venue "cold" reached by
    withdrawal, and a static BTC hedge program on the Binance venue."""
    venue: dict[str, Any] = {
        "collateral": {"USDT": usdt, "BTC": 2},
        "haircuts": {"BTC": 0.05},
        "positions": [{"symbol": BTC, "qty": -100, "entry": 59000}],
        "mm_tiers": [{"up_to": 1_000_000, "rate": 0.005}, {"rate": 0.01}],
        "im_rate": 0.1,
        "funding_rate_8h": 0.0,
    }
    data: dict[str, Any] = {
        "approvals": {
            "approvers": ["alice", "bob"],
            "quorum": 2,
            "auto_limit_usd": 5_000_000,
            "daily_auto_limit_usd": 50_000_000,
        },
        "market": {"prices": {"BTC": 60000.0}},
        "venues": [
            {"name": "bn", "margin_model": model, "paper": venue},
            {"name": "cold", "paper": {"collateral": {"USDT": 1000}, "funding_rate_8h": 0.0}},
        ],
        "accounts": [
            {"name": "fund", "bucket": "buffer", "owner": "treasury", "balances": {"USDT": 20_000_000}}
        ],
        "routes": [
            route("fund-bn", "fund", "bn"),
            route("bn-fund", "bn", "fund"),
            withdrawal("fund-cold", "cold", ADDRESS, fee=1),
            withdrawal("fund-cold-memo", "cold", MEMO_ADDRESS, tag="700123"),
            withdrawal("fund-bn-chain", "bn", DEPOSIT),
        ],
        "hedges": [
            {
                "name": "btc-hedge",
                "asset": "BTC",
                "exposure": exposure,
                "strategy": "static",
                "band": 1,
                "min_trade": 0.1,
                "instruments": [{"venue": "bn", "symbol": BTC}],
            }
        ],
    }
    return settings_from_dict(data)


@dataclasses.dataclass
class Served:
    """One paper world behind a fake Binance, and a LiveWorld reaching it through ccxt."""

    settings: Settings
    clock: SimClock
    paper: PaperExchange
    rehearsal: Rehearsal
    world: LiveWorld

    @property
    def fake(self) -> FakeBinance:
        fake = self.rehearsal.fakes["binance"]
        assert isinstance(fake, FakeBinance)
        return fake

    def request(
        self, name: str, client_id: str, amount: str, created_at: float | None = None
    ) -> TransferRequest:
        r = next(r for r in self.settings.routes if r.name == name)
        return TransferRequest(
            client_id,
            r.name,
            r.from_,
            r.to,
            r.asset,
            Decimal(amount),
            r.method,
            r.network,
            r.address,
            r.fee,
            r.settle_seconds,
            created_at,
            r.tag,
        )

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.paper.advance()


def with_wallet(live: Settings, venue: str, wallet: str) -> Settings:
    data = live.model_dump(mode="json", by_alias=True, exclude_none=True)
    for v in data["venues"]:
        if v["name"] == venue:
            v.setdefault("live", {})["wallet"] = wallet
    return settings_from_dict(data)


async def serve(s: Settings, *, wallet: str | None = None) -> Served:
    clock = SimClock(START)
    paper = PaperExchange(s, Market(dict(s.market.prices), seed=1), clock.now)
    rehearsal = Rehearsal(s, EXCHANGE_OF, paper, hang_seconds=0.5)
    live = await rehearsal.start()
    if wallet is not None:
        live = with_wallet(live, "bn", wallet)
    world = LiveWorld(live, clock=clock.now, env=rehearsal.env, read_attempts=1, read_wait_max=0.01)
    return Served(s, clock, paper, rehearsal, world)


@pytest.fixture
async def um() -> AsyncIterator[Served]:
    served = await serve(config())
    try:
        yield served
    finally:
        await served.world.close()
        await served.rehearsal.stop()


@pytest.fixture
async def pm() -> AsyncIterator[Served]:
    served = await serve(config("portfolio", usdt=PM_USDT), wallet="portfolio")
    try:
        yield served
    finally:
        await served.world.close()
        await served.rehearsal.stop()


# --- account figures ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["cross", "portfolio"])
async def test_the_snapshot_reports_the_paper_venues_figures(model: str) -> None:
    """USDⓈ-M and portfolio margin: reported figures, positions, prices and collateral are the paper's."""
    usdt = PM_USDT if model == "portfolio" else 1_000_000
    served = await serve(config(model, usdt=usdt), wallet="portfolio" if model == "portfolio" else None)
    try:
        snap = await LiveVenue(served.world, "bn").snapshot()
        book = served.paper.books["bn"]
        truth = served.paper.figures(book)
        assert snap.reported is not None
        for got, want in zip(dataclasses.astuple(snap.reported), dataclasses.astuple(truth), strict=True):
            assert got == pytest.approx(want, rel=1e-6)
        assert snap.positions == book.positions
        assert snap.prices == {"BTC": 60000.0}
        assert snap.collateral == {"USDT": usdt, "BTC": 2.0}  # wallet balances: the short's uPnL is not in
        assert snap.own is not None
        assert crosscheck_gap(snap.reported, snap.own) < 1e-9
        paths = {h.path for h in served.fake.hits}
        wanted = "/papi/v1/account" if model == "portfolio" else "/fapi/v3/account"
        assert wanted in paths
    finally:
        await served.world.close()
        await served.rehearsal.stop()


async def test_no_hidden_request_leaves_for_currencies_brackets_or_other_markets(um: Served) -> None:
    """Markets come from /fapi/v1/exchangeInfo alone: no currency list, leverage brackets or spot markets."""
    await LiveVenue(um.world, "bn").snapshot()
    await LiveTransfers(um.world, None).submit(um.request("fund-bn", "a" * 32, "1000"))
    paths = [h.path for h in um.fake.hits]
    assert paths.count("/fapi/v1/exchangeInfo") == 1
    assert not [p for p in paths if "capital/config" in p or "allPairs" in p or "leverageBracket" in p]
    assert not [p for p in paths if p.startswith(("/api/v3/exchangeInfo", "/dapi/"))]


async def test_positions_carry_the_venues_own_margin_per_position(um: Served) -> None:
    """No leverage brackets are loaded: each position's IM and MM are the venue's (tiered MM with its cum)."""
    conn = um.world.by_name["bn"]
    await LiveVenue(um.world, "bn").snapshot()
    (p,) = await conn.profile.positions(conn.caller)
    book = um.paper.books["bn"]
    assert p["initialMargin"] == pytest.approx(6_000_000 * book.params.im_rate)
    assert p["maintenanceMargin"] == pytest.approx(1_000_000 * 0.005 + 5_000_000 * 0.01)
    assert (p["side"], p["contracts"], p["markPrice"]) == ("short", 100.0, 60000.0)


async def test_funding_is_per_8h_whatever_the_symbols_interval(um: Served) -> None:
    """A symbol on 4 h funding quotes half the 8 h rate on premiumIndex; fundingInfo says so and it is doubled."""
    um.paper.set_funding("bn", BTC, 0.0002)
    um.fake.funding_hours["BTCUSDT"] = 4
    snap = await LiveVenue(um.world, "bn").snapshot()
    assert snap.funding == {BTC: pytest.approx(0.0002)}
    await LiveVenue(um.world, "bn").snapshot()
    assert [h.path for h in um.fake.hits].count("/fapi/v1/fundingInfo") == 1  # read once an hour


def test_usdm_figures_normalise_the_fapi_account_fields() -> None:
    """GET /fapi/v3/account (fields as in ccxt 4.5.90's binance.fetch_balance comment and Binance's docs)."""
    info = {
        "feeTier": 0,
        "canTrade": True,
        "totalInitialMargin": "600000.00000000",
        "totalMaintMargin": "55000.00000000",
        "totalWalletBalance": "1120000.00000000",
        "totalUnrealizedProfit": "-100000.00000000",
        "totalMarginBalance": "1014000.00000000",
        "availableBalance": "414000.00000000",
        "assets": [
            {"asset": "USDT", "walletBalance": "1000000.00000000", "unrealizedProfit": "-100000.00000000"},
            {"asset": "BTC", "walletBalance": "2.00000000", "unrealizedProfit": "0.00000000"},
            {"asset": "BNB", "walletBalance": "0.00000000", "unrealizedProfit": "0.00000000"},
        ],
    }
    f = um_figures(info)
    assert f is not None
    assert (f.equity, f.im, f.mm) == (1_014_000.0, 600_000.0, 55_000.0)
    assert f.utilization == pytest.approx(600_000 / 1_014_000)
    assert f.mm_ratio == pytest.approx(55_000 / 1_014_000)
    assert um_collateral(info) == {"USDT": 1_000_000.0, "BTC": 2.0}
    assert um_figures({"totalMarginBalance": "1"}) is None


def test_portfolio_figures_normalise_the_papi_account_fields() -> None:
    """GET /papi/v1/account (Binance's documented example): m = MM / equity = 1 / uniMMR, u = IM / equity."""
    info = {
        "uniMMR": "5167.92171923",
        "accountEquity": "122607.35137903",
        "actualEquity": "73.47428058",
        "accountInitialMargin": "23.72469206",
        "accountMaintMargin": "23.72469206",
        "accountStatus": "NORMAL",
        "virtualMaxWithdrawAmount": "1627523.32459208",
        "totalAvailableBalance": "",
        "totalMarginOpenLoss": "",
        "updateTime": 1657707212154,
    }
    f = pm_figures(info)
    assert f is not None
    assert f.equity == pytest.approx(122607.35137903)
    assert f.utilization == pytest.approx(23.72469206 / 122607.35137903)
    assert f.mm_ratio == pytest.approx(1 / 5167.92171923, rel=1e-6)
    without_mm = {k: v for k, v in info.items() if k != "accountMaintMargin"}
    g = pm_figures(without_mm)
    assert g is not None
    assert g.mm_ratio == pytest.approx(1 / 5167.92171923)


def test_portfolio_collateral_is_the_wallet_balance_per_asset() -> None:
    """GET /papi/v1/balance (fields as in ccxt 4.5.90's comment): totalWalletBalance less debt, no uPnL."""
    rows = [
        {
            "asset": "USDT",
            "totalWalletBalance": "66.9923261",
            "crossMarginAsset": "35.9697141",
            "crossMarginBorrowed": "1.5",
            "crossMarginFree": "35.9697141",
            "crossMarginInterest": "0.5",
            "crossMarginLocked": "0.0",
            "umWalletBalance": "31.022612",
            "umUnrealizedPNL": "-12.5",
            "cmWalletBalance": "0.0",
            "cmUnrealizedPNL": "0.0",
            "updateTime": 0,
            "negativeBalance": "0.0",
        },
        {"asset": "BNB", "totalWalletBalance": "0.0"},
    ]
    assert pm_collateral(rows) == {"USDT": pytest.approx(64.9923261)}


def test_key_restrictions_become_key_info() -> None:
    """GET /sapi/v1/account/apiRestrictions (Binance's documented example) as KeyInfo, per margin mode."""
    r = {
        "ipRestrict": False,
        "createTime": 1698645219000,
        "enableReading": True,
        "enableWithdrawals": False,
        "enableInternalTransfer": True,
        "enableMargin": False,
        "enableFutures": False,
        "permitsUniversalTransfer": True,
        "enableVanillaOptions": False,
        "enableFixApiTrade": False,
        "enableFixReadOnly": True,
        "enableSpotAndMarginTrading": False,
        "enablePortfolioMarginTrading": True,
    }
    info = key_permissions(r, portfolio=False)
    assert (info.can_trade, info.can_withdraw, info.can_transfer, info.ip_restricted) == (
        False,
        False,
        True,
        False,
    )
    assert info.read_only is False
    assert key_permissions(r, portfolio=True).can_trade is True
    reading = {"enableReading": True, "ipRestrict": True}
    assert key_permissions(reading, portfolio=None).read_only is True


def test_history_times_are_read_as_utc() -> None:
    """Withdrawal history writes "YYYY-MM-DD HH:MM:SS" in UTC."""
    assert binance_time("2026-02-25 06:13:20") == 1772000000.0
    assert binance_time("") is None
    assert binance_time(None) is None


async def test_a_withdrawal_key_without_ip_whitelist_is_refused_at_start(um: Served) -> None:
    """Preflight reads apiRestrictions: a key that may withdraw without an IP whitelist stops the start."""
    um.fake.restrictions["ipRestrict"] = False
    with pytest.raises(KeyRejected, match="IP whitelist"):
        await um.world.preflight()
    um.fake.restrictions["ipRestrict"] = True
    assert await um.world.preflight() == []


# --- internal transfers -------------------------------------------------------------------------------------
async def test_a_transfer_is_sent_without_client_id_and_found_by_history(um: Served) -> None:
    """The universal transfer carries type, asset and amount only; the lookup matches them and the time."""
    transfers = LiveTransfers(um.world, None)
    receipt = await transfers.submit(um.request("fund-bn", "a" * 32, "1234.56"))
    assert receipt.state is TransferState.PENDING
    assert receipt.venue_ref
    ((kind, sent),) = um.fake.received
    assert (kind, sent["type"], sent["asset"], sent["amount"]) == (
        "transfer",
        "MAIN_UMFUTURE",
        "USDT",
        "1234.56",
    )
    assert not any("a" * 32 in v for v in sent.values())
    found = await transfers.lookup(um.request("fund-bn", "a" * 32, "1234.56", created_at=START))
    assert found is not None
    assert (found.state, found.venue_ref, found.amount) == (
        TransferState.SETTLED,
        receipt.venue_ref,
        Decimal("1234.56"),
    )
    assert await transfers.lookup(um.request("fund-bn", "b" * 32, "1234.57", created_at=START)) is None
    assert await transfers.lookup(um.request("fund-bn", "a" * 32, "1234.56", created_at=START + 60)) is None
    assert await transfers.lookup(um.request("bn-fund", "a" * 32, "1234.56", created_at=START)) is None
    assert um.paper.accounts["fund"]["USDT"] == Decimal(20_000_000) - Decimal("1234.56")


async def test_the_newest_matching_transfer_is_the_one_looked_up(um: Served) -> None:
    """Two equal transfers on a route: the lookup for the later intent returns the later tranId."""
    transfers = LiveTransfers(um.world, None)
    first = await transfers.submit(um.request("fund-bn", "a" * 32, "1000"))
    um.advance(30)
    second = await transfers.submit(um.request("bn-fund", "b" * 32, "1000"))
    third = await transfers.submit(um.request("fund-bn", "c" * 32, "1000"))
    found = await transfers.lookup(um.request("fund-bn", "c" * 32, "1000", created_at=START + 30))
    assert found is not None
    assert found.venue_ref == third.venue_ref != first.venue_ref
    back = await transfers.lookup(um.request("bn-fund", "b" * 32, "1000", created_at=START + 30))
    assert back is not None
    assert back.venue_ref == second.venue_ref


async def test_a_transfer_tied_to_one_intent_is_never_matched_to_another(um: Served) -> None:
    """An intent whose transfer never left does not borrow the tranId of an equal transfer sent just before."""
    transfers = LiveTransfers(um.world, None)
    sent = await transfers.submit(um.request("fund-bn", "a" * 32, "1000"))
    um.advance(1)
    assert await transfers.lookup(um.request("fund-bn", "b" * 32, "1000", created_at=START + 1)) is None
    found = await transfers.lookup(um.request("fund-bn", "a" * 32, "1000", created_at=START))
    assert found is not None
    assert found.venue_ref == sent.venue_ref


async def test_portfolio_margin_transfers_use_the_portfolio_wallet(pm: Served) -> None:
    """With wallet = "portfolio" a top-up is MAIN_PORTFOLIO_MARGIN and a sweep PORTFOLIO_MARGIN_MAIN."""
    transfers = LiveTransfers(pm.world, None)
    await transfers.submit(pm.request("fund-bn", "a" * 32, "1000"))
    await transfers.submit(pm.request("bn-fund", "b" * 32, "400"))
    assert [p["type"] for _, p in pm.fake.received] == ["MAIN_PORTFOLIO_MARGIN", "PORTFOLIO_MARGIN_MAIN"]
    found = await transfers.lookup(pm.request("bn-fund", "b" * 32, "400", created_at=START))
    assert found is not None
    assert found.state is TransferState.SETTLED
    assert pm.paper.books["bn"].collateral["USDT"] == Decimal(PM_USDT + 600)


async def test_an_insufficient_balance_refuses_the_transfer(um: Served) -> None:
    """More than the wallet holds: Binance's insufficient-balance answer, InsufficientFunds, nothing moved."""
    with pytest.raises(TransferRefused, match="InsufficientFunds"):
        await LiveTransfers(um.world, None).submit(um.request("bn-fund", "a" * 32, "2000000"))
    assert um.paper.effects == []


# --- withdrawals and deposits -----------------------------------------------------------------------------
async def test_a_withdrawal_sends_our_id_and_a_repeat_moves_money_once(um: Served) -> None:
    """withdrawOrderId is our client id, the network Binance's id for TRC20; one id twice is one effect."""
    transfers = LiveTransfers(um.world, None)
    first = await transfers.submit(um.request("fund-cold", "a" * 32, "5000"))
    again = await transfers.submit(um.request("fund-cold", "a" * 32, "5000"))
    assert first.venue_ref == again.venue_ref
    assert first.state is TransferState.PENDING
    for kind, sent in um.fake.received:
        assert kind == "withdraw"
        assert (sent["withdrawOrderId"], sent["network"], sent["address"]) == ("a" * 32, "TRX", ADDRESS)
    assert um.paper.effects == ["a" * 32]
    pending = await transfers.lookup(um.request("fund-cold", "a" * 32, "5000", created_at=START))
    assert pending is not None
    assert pending.state is TransferState.PENDING
    um.advance(61)
    done = await transfers.lookup(um.request("fund-cold", "a" * 32, "5000", created_at=START))
    assert done is not None
    assert (done.state, done.settled_at) == (TransferState.SETTLED, START + 61)
    found = await um.world.by_name["fund"].profile.lookup_withdrawal(
        um.world.by_name["fund"].caller, um.request("fund-cold", "a" * 32, "5000", created_at=START)
    )
    assert found is not None
    assert found.txid == "0x" + "a" * 32
    assert um.paper.books["cold"].collateral["USDT"] == Decimal(1000 + 4999)
    await transfers.submit(um.request("fund-cold-memo", "b" * 32, "3000"))
    assert um.fake.received[-1][1]["addressTag"] == "700123"


async def test_a_withdrawal_into_a_binance_venue_waits_for_its_deposit(um: Served) -> None:
    """Sent is not arrived: completed at the sender, pending until the venue's deposit history shows it."""
    transfers = LiveTransfers(um.world, None)
    await transfers.submit(um.request("fund-bn-chain", "a" * 32, "7000"))
    um.advance(61)
    um.fake.not_found_polls = 1  # each history row shows from its second poll on
    req = um.request("fund-bn-chain", "a" * 32, "7000", START)
    assert await transfers.lookup(req) is None
    sent = await transfers.lookup(req)
    assert sent is not None
    assert sent.state is TransferState.PENDING
    done = await transfers.lookup(req)
    assert done is not None
    assert (done.state, done.settled_at) == (TransferState.SETTLED, START + 61)
    assert any(h.path == "/sapi/v1/capital/deposit/hisrec" for h in um.fake.hits)


# --- lookups that lag ---------------------------------------------------------------------------------------
async def test_lookups_not_found_for_two_polls_return_none_then_the_receipt(um: Served) -> None:
    """A transfer, a withdrawal and an order the venue shows only from the third poll on."""
    transfers, venue_orders = LiveTransfers(um.world, None), LiveOrders(um.world, None)
    await LiveVenue(um.world, "bn").snapshot()
    um.fake.not_found_polls = 2
    await transfers.submit(um.request("fund-bn", "a" * 32, "1000"))
    await transfers.submit(um.request("fund-cold", "b" * 32, "2000"))
    order = OrderRequest("c" * 32, "bn", BTC, "buy", Decimal("1"), False)
    await venue_orders.place(order)
    for req in (
        um.request("fund-bn", "a" * 32, "1000", START),
        um.request("fund-cold", "b" * 32, "2000", START),
    ):
        assert [await transfers.lookup(req) for _ in range(2)] == [None, None]
        assert await transfers.lookup(req) is not None
    assert [await venue_orders.lookup_order(order) for _ in range(2)] == [None, None]
    found = await venue_orders.lookup_order(order)
    assert found is not None
    assert found.filled == Decimal(1)


# --- orders -------------------------------------------------------------------------------------------------
async def test_an_order_carries_our_client_id_and_reduce_only_and_is_found_by_it(um: Served) -> None:
    """newClientOrderId is ours (no broker id), reduceOnly true, RESULT answers; the lookup gives the fill."""
    venue_orders = LiveOrders(um.world, None)
    await LiveVenue(um.world, "bn").snapshot()
    order = OrderRequest("d" * 32, "bn", BTC, "buy", Decimal("3.5"), True)
    placed = await venue_orders.place(order)
    ((kind, sent),) = um.fake.received
    assert (kind, sent["newClientOrderId"], sent["reduceOnly"]) == ("order", "d" * 32, "true")
    assert (sent["type"], sent["quantity"], sent["newOrderRespType"]) == ("MARKET", "3.5", "RESULT")
    assert placed.done
    assert placed.filled == Decimal("3.5")
    assert placed.avg_price > 60000
    found = await venue_orders.lookup_order(order)
    assert found is not None
    assert (found.venue_ref, found.filled) == (placed.venue_ref, Decimal("3.5"))
    assert await venue_orders.lookup_order(dataclasses.replace(order, client_id="e" * 32)) is None
    assert um.paper.books["bn"].positions[0].qty == -96.5


async def test_an_order_lookup_waits_until_the_margin_mode_is_known(pm: Served) -> None:
    """After a restart nothing says yet whether orders live on fapi or papi: the lookup fails this cycle."""
    order = OrderRequest("f" * 32, "bn", BTC, "sell", Decimal("2"), False)
    with pytest.raises(VenueUnavailable, match="margin mode"):
        await LiveOrders(pm.world, None).lookup_order(order)
    await LiveVenue(pm.world, "bn").snapshot()
    assert await LiveOrders(pm.world, None).lookup_order(order) is None


async def test_portfolio_margin_orders_go_to_the_papi(pm: Served) -> None:
    """A PM account trades on /papi/v1/um/order, and finds the order there."""
    venue_orders = LiveOrders(pm.world, None)
    await LiveVenue(pm.world, "bn").snapshot()
    order = OrderRequest("f" * 32, "bn", BTC, "sell", Decimal("2"), False)
    placed = await venue_orders.place(order)
    assert placed.filled == Decimal(2)
    assert (await venue_orders.lookup_order(order)) is not None
    assert {h.path for h in pm.fake.hits if h.endpoint in ("order", "lookup")} == {"/papi/v1/um/order"}


async def test_contract_sizes_convert_between_contracts_and_base_units(um: Served) -> None:
    """Contracts of 0.1 BTC: 0.5 BTC goes out as 5 contracts; the fill and the book come back in BTC."""
    fake = um.fake
    fake.markets = [dataclasses.replace(m, contract_size=0.1) for m in fake.markets]
    fake.by_symbol = {m.symbol: m for m in fake.markets}
    fake.by_id = {m.venue_id: m for m in fake.markets}
    venue_orders = LiveOrders(um.world, None)
    await LiveVenue(um.world, "bn").snapshot()
    book = await venue_orders.order_book("bn", BTC)
    truth = um.paper.matching.order_book("bn", BTC)
    assert book.asks[0] == pytest.approx(truth.asks[0])
    placed = await venue_orders.place(OrderRequest("a" * 32, "bn", BTC, "buy", Decimal("0.5"), False))
    assert um.fake.received[-1][1]["quantity"] == "5"
    assert placed.filled == Decimal("0.5")


async def test_an_order_beyond_the_margin_is_refused(um: Served) -> None:
    """An order the paper venue cannot margin: Binance's refusal, OrderRefused, no fill."""
    await LiveVenue(um.world, "bn").snapshot()
    um.paper.set_liquidity("bn", BTC, 5.0)  # deep enough to fill it, too big to margin
    with pytest.raises(OrderRefused, match="InsufficientFunds"):
        await LiveOrders(um.world, None).place(
            OrderRequest("a" * 32, "bn", BTC, "sell", Decimal("200"), False)
        )
    assert um.paper.matching.fills == []


# --- signatures, rate limits, unknown outcomes --------------------------------------------------------------
async def test_a_wrongly_signed_request_is_refused_as_a_key_problem(um: Served) -> None:
    """The fake recomputes the HMAC: a wrong secret gets -1022, an unknown key -2015; both are KeyRejected."""
    for part, value, code in (("_SECRET", "0" * 48, "-1022"), ("_API_KEY", "f" * 32, "-2015")):
        env = dict(um.rehearsal.env)
        key = next(k for k in env if k.endswith(part))
        env[key] = value
        world = LiveWorld(um.world.settings, clock=um.clock.now, env=env, read_attempts=1)
        try:
            with pytest.raises(KeyRejected, match=f"AuthenticationError.*{code}"):
                await LiveVenue(world, "bn").snapshot()
        finally:
            await world.close()
    assert len([h for h in um.fake.hits if not h.signed]) == 2
    await LiveVenue(um.world, "bn").snapshot()  # the right secret still passes
    assert um.fake.hits[-1].signed


async def test_rate_limits_and_bans_map_to_their_errors(um: Served) -> None:
    """HTTP 429 (-1003) is RateLimited, HTTP 418 is VenueBanned."""
    venue = LiveVenue(um.world, "bn")
    await venue.snapshot()
    um.fake.add_fault("429", "balance", retry_after=30)
    with pytest.raises(RateLimited):
        await venue.snapshot()
    um.world.by_name["bn"].caller.gate.paused_until = 0.0
    um.fake.add_fault("418", "balance", retry_after=60)
    with pytest.raises(VenueBanned):
        await venue.snapshot()


async def test_a_timeout_after_the_transfer_is_an_unknown_outcome_found_later(um: Served) -> None:
    """The paper world moves the money and the answer is lost: UnknownOutcome, then the history shows it."""
    um.paper.timeout_after_effect("fund-bn", 1)
    transfers = LiveTransfers(um.world, None)
    await um.world.by_name["fund"].ensure()
    with pytest.raises(UnknownOutcome):
        await transfers.submit(um.request("fund-bn", "a" * 32, "1000"))
    found = await transfers.lookup(um.request("fund-bn", "a" * 32, "1000", START))
    assert found is not None
    assert found.state is TransferState.SETTLED
    assert len(um.paper.effects) == 1


async def test_an_execution_status_unknown_answer_is_an_unknown_outcome(um: Served) -> None:
    """Binance's HTTP 500 -1006 after the effect must read as UnknownOutcome, never as a refusal."""
    await um.world.by_name["fund"].ensure()
    um.fake.status_unknown = 1
    with pytest.raises(UnknownOutcome):
        await LiveTransfers(um.world, None).submit(um.request("fund-bn", "a" * 32, "1000"))


# --- the engine, on paper and through ccxt ------------------------------------------------------------------
async def twin(tmp_path: Any, s: Settings) -> Twin:
    return await Twin(s, EXCHANGE_OF, tmp_path).start(hang_seconds=0.6, timeout_seconds=0.3)


def assert_same(t: Twin) -> None:
    assert intents(t.ccxt) == intents(t.paper)
    assert orders(t.ccxt) == orders(t.paper)
    for name in ("bn", "cold"):
        a, b = t.paper.paper.books[name], t.ccxt.paper.books[name]
        assert (a.collateral, a.positions) == (b.collateral, b.positions)
    assert t.paper.paper.accounts == t.ccxt.paper.accounts
    kinds = {r.alert.kind for r in t.ccxt.wired.bot.alert_log}
    assert "crosscheck" not in kinds
    assert "stale" not in kinds


async def test_engine_tops_up_after_a_shock_as_on_paper(tmp_path: Any) -> None:
    """BTC +10% pushes the short past its band: one confirmed top-up on each side, same amount."""
    t = await twin(tmp_path, config())
    try:
        await t.cycle()
        t.shock("BTC", 0.10)
        for _ in range(3):
            await t.cycle()
        assert [i[:2] + i[3:] for i in intents(t.paper)] == [("topup", "fund-bn", "confirmed")]
        assert_same(t)
    finally:
        await t.stop()


async def test_engine_sweeps_excess_collateral_as_on_paper(tmp_path: Any) -> None:
    """5M USDT on a 6M short is far above the band: a sweep back to the spot wallet, same amount."""
    t = await twin(tmp_path, config(usdt=5_000_000))
    try:
        for _ in range(3):
            await t.cycle()
        assert ("sweep", "bn-fund") in {i[:2] for i in intents(t.paper)}
        assert_same(t)
    finally:
        await t.stop()


async def test_engine_rebalances_a_hedge_as_on_paper(tmp_path: Any) -> None:
    """A new 5 BTC exposure on both bots: the static program sells 5 BTC on the Binance venue on each side."""
    t = await twin(tmp_path, config())
    try:
        await t.cycle()
        for side in (t.paper, t.ccxt):
            hedger = side.wired.bot.hedger
            assert hedger is not None
            hedger.set_exposure("btc-hedge", 5.0, t.clock.now())
        for _ in range(3):
            await t.cycle()
        assert [o[1:] for o in orders(t.paper)] == [(BTC, "sell", Decimal(5), Decimal(5), "filled")]
        assert_same(t)
    finally:
        await t.stop()


async def test_engine_reconciles_a_transfer_whose_answer_was_lost(tmp_path: Any) -> None:
    """A timeout after the top-up's effect on both sides: unknown, then confirmed, with exactly one effect."""
    t = await twin(tmp_path, config())
    try:
        await t.cycle()
        for side in (t.paper, t.ccxt):
            side.paper.timeout_after_effect("fund-bn", 1)
        t.shock("BTC", 0.10)
        await t.cycle()
        assert [i[3] for i in intents(t.ccxt)] == [i[3] for i in intents(t.paper)] == ["unknown"]
        for _ in range(3):
            await t.cycle()
        assert [i[3] for i in intents(t.paper)] == ["confirmed"]
        assert len(t.ccxt.paper.effects) == len(t.paper.paper.effects) == 1
        assert_same(t)
    finally:
        await t.stop()
