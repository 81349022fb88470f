"""Bybit (unified trading account, v5) through real ccxt against the fake Bybit server over a paper world:
account figures, transfers, withdrawals, orders, key permissions, signatures, and parity with the paper venue."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import ccxt
import pytest

from bot.core.decide import crosscheck_gap
from bot.errors import KeyRejected, OrderRefused, RateLimited, TransferRefused, UnknownOutcome
from bot.settings import Settings, settings_from_dict
from bot.venues.base import OrderRequest, TransferRequest, TransferState
from bot.venues.fakes.bybit import FakeBybit, envelope
from bot.venues.fakes.rehearsal import key_set
from bot.venues.live.keys import env_name
from bot.venues.live.ports import LiveOrders, LiveTransfers, LiveVenue, LiveWorld
from bot.venues.live.profiles.bybit import (
    BybitProfile,
    collateral_from_wallet,
    figures_from_wallet,
    key_info_from,
    transfer_uuid,
    wallet_row,
    withdrawal_matches,
)
from bot.venues.paper import PaperExchange
from tests.live.harness import Side, Twin, intents, orders

EXCHANGE_OF = {"bybit-main": "bybit", "bybit-funding": "bybit"}
COLD = "TColdStorageAddr00000000000000000"
VAULT = "TVaultAddr0000000000000000000000000"
SECRETS = {  # sha256 of the paper demo secrets of config/paper.toml
    "alice": "77ab7f86074412f8cc19ed68acafb404e567c40f34084d146f22374a1e2c218b",
    "bob": "cbe9b91ed05729329b810232d75600b717f36991117fae3eed26882f647d3824",
}
CID = "0123456789abcdef0123456789abcdef"


def route(name: str, src: str, dst: str, method: str = "internal", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "from": src,
        "to": dst,
        "asset": "USDT",
        "method": method,
        "max_amount": 1_000_000,
        "daily_limit": 5_000_000,
        "settle_seconds": 0,
        **extra,
    }


def config(*, vault: bool = False) -> dict[str, Any]:
    """bybit-main (cross, USDT and BTC collateral, an ETH/USDT long and a BTC/USDC short), bybit-funding on the
    same key, internal routes both ways, a withdrawal to the paper venue `cold`, a static BTC hedge."""
    venues: list[dict[str, Any]] = [
        {
            "name": "bybit-main",
            "margin_model": "cross",
            "paper": {
                "collateral": {"USDT": 400_000, "BTC": 3},
                "haircuts": {"BTC": 0.05},
                "mm_tiers": [{"up_to": 2_000_000, "rate": 0.01}, {"rate": 0.02}],
                "im_rate": 0.10,
                "positions": [
                    {"symbol": "ETH/USDT:USDT", "qty": 1000, "entry": 3000},
                    {"symbol": "BTC/USDC:USDC", "qty": -2, "entry": 61000},
                ],
                "funding_rate_8h": 0.0001,
            },
        },
        {"name": "cold", "paper": {"collateral": {}, "haircuts": {"USDT": 0.0}}},  # takes USDT
    ]
    accounts: list[dict[str, Any]] = [
        {
            "name": "bybit-funding",
            "bucket": "buffer",
            "owner": "treasury-ops",
            "balances": {"USDT": 2_000_000},
        }
    ]
    routes = [
        route("funding-to-bybit", "bybit-funding", "bybit-main"),
        route("bybit-to-funding", "bybit-main", "bybit-funding"),
        route(
            "funding-to-cold",
            "bybit-funding",
            "cold",
            "withdrawal",
            network="TRC20",
            address=COLD,
            fee=1,
            settle_seconds=600,
        ),
    ]
    if vault:  # a withdrawal leaving from the venue's unified wallet
        accounts.append({"name": "vault", "bucket": "emergency", "owner": "cfo-office"})
        routes.append(
            route(
                "bybit-to-vault", "bybit-main", "vault", "withdrawal", network="TRC20", address=VAULT, fee=1
            )
        )
    return {
        "approvals": {
            "auto_limit_usd": 5_000_000,
            "daily_auto_limit_usd": 50_000_000,
            "approvers": ["alice", "bob"],
            "quorum": 2,
            "approver_secrets": SECRETS,
        },
        "market": {"prices": {"BTC": 60_000, "ETH": 3_000}},
        "venues": venues,
        "accounts": accounts,
        "routes": routes,
        "hedges": [
            {
                "name": "btc-hedge",
                "asset": "BTC",
                "strategy": "static",
                "band": 0.5,
                "min_trade": 0.1,
                "instruments": [{"venue": "bybit-main", "symbol": "BTC/USDT:USDT"}],
            }
        ],
    }


@asynccontextmanager
async def twin(tmp_path: Path, **kw: Any) -> AsyncIterator[Twin]:
    t = Twin(settings_from_dict(config(**kw)), EXCHANGE_OF, tmp_path)
    await t.start()
    try:
        yield t
    finally:
        await t.stop()


def fake(t: Twin) -> FakeBybit:
    return cast(FakeBybit, t.fake("bybit"))


def world(t: Twin) -> LiveWorld:
    assert t.world is not None
    return t.world


def paper(t: Twin) -> PaperExchange:
    """The paper world behind the fake."""
    return t.ccxt.paper


def request(
    s: Settings, name: str, amount: str, cid: str = CID, created_at: float | None = None
) -> TransferRequest:
    r = next(r for r in s.routes if r.name == name)
    return TransferRequest(
        client_id=cid,
        route=r.name,
        source=r.from_,
        destination=r.to,
        asset=r.asset,
        amount=Decimal(amount),
        method=r.method,
        network=r.network,
        address=r.address,
        fee=r.fee,
        settle_seconds=r.settle_seconds,
        created_at=created_at,
        tag=r.tag,
    )


def sent(t: Twin, path: str) -> list[dict[str, Any]]:
    return [params for p, params in fake(t).received if p == path]


def balances(side: Side) -> tuple[Any, ...]:
    books = {n: (dict(b.collateral), b.positions) for n, b in side.paper.books.items()}
    return books, {n: dict(a) for n, a in side.paper.accounts.items()}


def assert_parity(t: Twin) -> None:
    assert intents(t.ccxt) == intents(t.paper)
    assert orders(t.ccxt) == orders(t.paper)
    assert balances(t.ccxt) == balances(t.paper)


# --- raw-field normalisers on canned payloads ---------------------------------------------------------------
# Source: the GET /v5/account/wallet-balance example that ccxt 4.5.90 quotes in bybit.parse_balance (Bybit v5
# docs): accountIMRate 0.0101 = totalInitialMargin / totalMarginBalance, rounded to 4 decimals.
WALLET_BALANCE = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "list": [
            {
                "totalEquity": "18070.32797922",
                "accountIMRate": "0.0101",
                "totalMarginBalance": "18070.32797922",
                "totalInitialMargin": "182.60183684",
                "accountType": "UNIFIED",
                "totalAvailableBalance": "17887.72614237",
                "accountMMRate": "0",
                "totalPerpUPL": "-0.11001349",
                "totalWalletBalance": "18070.43799271",
                "accountLTV": "0.017",
                "totalMaintenanceMargin": "0.38106773",
                "coin": [
                    {
                        "availableToBorrow": "2.5",
                        "bonus": "0",
                        "accruedInterest": "0",
                        "availableToWithdraw": "0.805994",
                        "totalOrderIM": "0",
                        "equity": "0.805994",
                        "totalPositionMM": "0",
                        "usdValue": "12920.95352538",
                        "unrealisedPnl": "0",
                        "borrowAmount": "0",
                        "totalPositionIM": "0",
                        "walletBalance": "0.805994",
                        "cumRealisedPnl": "0",
                        "coin": "BTC",
                    },
                    {
                        "coin": "USDT",
                        "equity": "5149.26",
                        "walletBalance": "5149.37001349",
                        "unrealisedPnl": "-0.11001349",
                        "totalPositionIM": "182.60183684",
                        "totalPositionMM": "0.38106773",
                    },
                ],
            }
        ]
    },
    "retExtInfo": {},
    "time": 1672125441042,
}


def test_account_figures_are_the_totals_over_the_margin_balance() -> None:
    """u and m are totalInitialMargin and totalMaintenanceMargin over totalMarginBalance, Bybit's rates unrounded."""
    balance = ccxt.bybit().parse_balance(WALLET_BALANCE)
    row = wallet_row(balance["info"])
    assert row is not None
    f = figures_from_wallet(row)
    assert f is not None
    assert f.equity == pytest.approx(18070.32797922)
    assert f.im == pytest.approx(182.60183684)
    assert f.mm == pytest.approx(0.38106773)
    assert round(f.utilization, 4) == pytest.approx(0.0101)  # the venue's accountIMRate
    assert round(f.mm_ratio, 4) == 0.0  # its accountMMRate


def test_the_rates_stand_in_when_the_totals_are_missing() -> None:
    """Without totals, IM and MM are the venue's rates times the margin balance."""
    row = {"totalMarginBalance": "1000", "accountIMRate": "0.25", "accountMMRate": "0.05"}
    f = figures_from_wallet(row)
    assert f is not None
    assert (f.utilization, f.mm_ratio, f.im, f.mm) == pytest.approx((0.25, 0.05, 250.0, 50.0))


def test_the_margin_balance_not_total_equity_is_the_equity() -> None:
    """Collateral ratios count: totalMarginBalance is preferred, totalEquity is only the fallback."""
    row = {
        "totalEquity": "1100",
        "totalMarginBalance": "1000",
        "totalInitialMargin": "100",
        "totalMaintenanceMargin": "10",
    }
    f = figures_from_wallet(row)
    assert f is not None
    assert f.equity == 1000.0
    assert f.utilization == pytest.approx(0.1)
    row.pop("totalMarginBalance")
    f = figures_from_wallet(row)
    assert f is not None
    assert f.equity == 1100.0


def test_empty_account_fields_give_no_figures() -> None:
    """Isolated-margin and classic accounts leave the account-level fields empty: nothing is reported."""
    assert figures_from_wallet({"totalEquity": "", "totalMarginBalance": "", "accountIMRate": ""}) is None
    assert wallet_row({"result": {"memberId": "1", "accountType": "FUND", "balance": []}}) is None


def test_collateral_is_each_coins_wallet_balance_without_unrealized_pnl() -> None:
    """Collateral is walletBalance per coin: the USDT row's equity includes its PnL, the collateral does not."""
    row = wallet_row(WALLET_BALANCE)
    assert row is not None
    assert collateral_from_wallet(row) == {"BTC": 0.805994, "USDT": 5149.37001349}


def test_key_permissions_are_read_from_query_api() -> None:
    """readOnly, the IP list (["*"] is no whitelist) and the permission groups become our KeyInfo."""
    # Source: GET /v5/user/query-api as ccxt 4.5.90 quotes it in bybit.is_unified_enabled, with Bybit's groups
    result = {
        "id": "13770661",
        "apiKey": "XXXXXX",
        "readOnly": 0,
        "permissions": {
            "ContractTrade": ["Order", "Position"],
            "Spot": ["SpotTrade"],
            "Wallet": ["AccountTransfer", "SubMemberTransfer"],
            "Options": ["OptionsTrade"],
            "Derivatives": ["DerivativesTrade"],
            "Exchange": ["ExchangeHistory"],
            "NFT": [],
        },
        "ips": ["*"],
        "uta": 1,
    }
    info = key_info_from(result)
    assert (info.can_trade, info.can_transfer, info.can_withdraw) == (True, True, False)
    assert (info.ip_restricted, info.read_only) == (False, False)
    result.update(readOnly=1, ips=["10.0.0.1"], permissions={"Wallet": ["Withdraw"]})
    info = key_info_from(result)
    assert (info.can_trade, info.can_transfer, info.can_withdraw) == (False, False, True)
    assert (info.ip_restricted, info.read_only) == (True, True)


def test_an_intent_id_is_sent_as_the_uuid_bybit_requires() -> None:
    """The 32-hex intent id becomes a hyphenated UUID (36 characters, fits orderLinkId too), reversibly."""
    assert transfer_uuid(CID) == "01234567-89ab-cdef-0123-456789abcdef"
    assert BybitProfile().client_id(CID).replace("-", "") == CID
    assert transfer_uuid("not-hex") == transfer_uuid("not-hex") != transfer_uuid("other")


def test_a_withdrawal_is_matched_by_address_amount_and_time() -> None:
    """A history row is ours when the address and the gross amount (received plus fee) agree and it is recent."""
    # Source: GET /v5/asset/withdraw/query-record as ccxt 4.5.90 quotes it in bybit.fetch_withdrawals
    row = {
        "coin": "USDT",
        "chain": "ETH",
        "amount": "77",
        "txID": "",
        "status": "SecurityCheck",
        "toAddress": "0x99ced129603abc771c0dabe935c326ff6c86645d",
        "tag": "",
        "withdrawFee": "10",
        "createTime": "1670922217000",
        "updateTime": "1670922217000",
        "withdrawId": "9976",
        "withdrawType": 0,
    }
    tx = ccxt.bybit().parse_transaction(row)
    s = settings_from_dict(config())
    mine = replace(
        request(s, "funding-to-cold", "87", created_at=1670922210.0),
        network="ERC20",
        address="0x99ced129603abc771c0dabe935c326ff6c86645d",
        fee=Decimal(10),
    )
    assert withdrawal_matches(tx, mine, mine.created_at)
    assert withdrawal_matches(tx, replace(mine, amount=Decimal(77)), mine.created_at)  # gross given as net
    assert not withdrawal_matches(tx, mine, 1670922300.0)  # older than the intent
    assert not withdrawal_matches(tx, replace(mine, amount=Decimal(88)), mine.created_at)
    assert not withdrawal_matches(tx, replace(mine, address="0xother"), mine.created_at)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (10006, ccxt.RateLimitExceeded),
        (10003, ccxt.AuthenticationError),
        (10004, ccxt.AuthenticationError),
        (10001, ccxt.BadRequest),
        (110001, ccxt.OrderNotFound),
        (110007, ccxt.InsufficientFunds),
        (110017, ccxt.InvalidOrder),
        (110072, ccxt.InvalidOrder),
        (131212, ccxt.InsufficientFunds),
        (131214, ccxt.BadRequest),
        (131093, ccxt.ExchangeError),
    ],
)
def test_the_fakes_error_bodies_map_to_the_intended_ccxt_classes(code: int, error: type[Exception]) -> None:
    """Each retCode the fake answers raises the ccxt class the real venue's does, through ccxt's own handler."""
    body = envelope(None, code, "refused", 1_772_000_000_000)
    with pytest.raises(error):
        ccxt.bybit().handle_errors(200, "OK", "https://x/v5/a", "POST", {}, json.dumps(body), body, {}, "{}")


# --- snapshot -------------------------------------------------------------------------------------------------
async def test_the_live_snapshot_reports_the_paper_venues_figures(tmp_path: Path) -> None:
    """Reported figures, positions (USDT- and USDC-settled), marks and funding match the paper venue; our own
    figures agree with the venue's and collateral is cash without unrealized PnL."""
    async with twin(tmp_path) as t:
        t.shock("ETH", -0.03)  # unrealized PnL on both sides of the book
        live = await LiveVenue(world(t), "bybit-main").snapshot()
        ref = paper(t).snapshot("bybit-main")
        assert live.reported is not None
        assert ref.reported is not None
        for field in ("equity", "im", "mm", "utilization", "mm_ratio"):
            assert getattr(live.reported, field) == pytest.approx(getattr(ref.reported, field), rel=1e-6)
        key = sorted((p.symbol, p.base, p.qty, p.entry) for p in live.positions)
        assert key == sorted((p.symbol, p.base, p.qty, p.entry) for p in ref.positions)
        assert live.prices == pytest.approx({"ETH": 2910.0, "BTC": 60_000.0})
        assert live.collateral == {"USDT": 400_000.0, "BTC": 3.0}
        assert live.funding == {"BTC/USDT:USDT": pytest.approx(0.0001)}
        assert live.own is not None
        assert crosscheck_gap(live.reported, live.own) < 1e-9
        await t.cycle()
        raised = [a.alert.kind for a in t.ccxt.wired.bot.alert_log]
        assert "crosscheck" not in raised
        assert "stale" not in raised


async def test_loading_markets_asks_for_linear_instruments_and_coins_only(tmp_path: Path) -> None:
    """No unified-account probe, no spot, inverse or option listing: coins, linear and its pre-launch list."""
    async with twin(tmp_path) as t:
        await LiveVenue(world(t), "bybit-main").snapshot()
        paths = [h.path for h in fake(t).hits]
        assert paths[:3] == [
            "/v5/asset/coin/query-info",
            "/v5/market/instruments-info",
            "/v5/market/instruments-info",
        ]
        assert "/v5/user/query-api" not in paths
        assert "/v5/account/info" not in paths
        assert sorted(p["settleCoin"] for p in sent(t, "/v5/position/list")) == ["USDC", "USDT"]
        assert all(h.signed for h in fake(t).hits)


# --- internal transfers ---------------------------------------------------------------------------------------
async def test_a_transfer_carries_our_uuid_and_a_repeat_moves_money_once(tmp_path: Path) -> None:
    """The transferId is our id as a UUID; Bybit refuses a repeat of it (131214), so money moves once."""
    async with twin(tmp_path) as t:
        transfers = LiveTransfers(world(t), None)
        req = request(t.live_settings, "funding-to-bybit", "25000.5")
        receipt = await transfers.submit(req)
        assert (receipt.client_id, receipt.state, receipt.amount) == (
            CID,
            TransferState.SETTLED,
            Decimal("25000.5"),
        )
        body = sent(t, "/v5/asset/transfer/inter-transfer")[0]
        assert body["transferId"] == transfer_uuid(CID) == receipt.venue_ref
        assert (body["fromAccountType"], body["toAccountType"], body["coin"]) == ("FUND", "UNIFIED", "USDT")
        with pytest.raises(TransferRefused, match="TransferId exist"):
            await transfers.submit(req)
        assert paper(t).effects == [CID]
        assert paper(t).accounts["bybit-funding"]["USDT"] == Decimal("1974999.5")


async def test_a_transfer_not_found_for_two_polls_is_then_found_by_its_id(tmp_path: Path) -> None:
    """A lookup by transferId answers None while the history lags, then the transfer with its state."""
    async with twin(tmp_path) as t:
        transfers = LiveTransfers(world(t), None)
        await transfers.submit(request(t.live_settings, "bybit-to-funding", "1000"))
        fake(t).not_found_polls = 2
        req = request(t.live_settings, "bybit-to-funding", "1000", created_at=t.clock.now())
        assert await transfers.lookup(req) is None
        assert await transfers.lookup(req) is None
        found = await transfers.lookup(req)
        assert found is not None
        assert (found.client_id, found.venue_ref, found.state) == (
            CID,
            transfer_uuid(CID),
            TransferState.SETTLED,
        )
        assert [p["transferId"] for p in sent(t, "/v5/asset/transfer/query-inter-transfer-list")] == [
            transfer_uuid(CID)
        ] * 3


async def test_a_transfer_beyond_the_funding_balance_is_refused(tmp_path: Path) -> None:
    """Insufficient balance (131212, ccxt InsufficientFunds) is a refusal: nothing moved."""
    async with twin(tmp_path) as t:
        with pytest.raises(TransferRefused, match="Insufficient balance"):
            await LiveTransfers(world(t), None).submit(
                request(t.live_settings, "funding-to-bybit", "2000000.01")
            )
        assert paper(t).effects == []


async def test_an_amount_the_coins_precision_would_change_is_refused_before_sending(tmp_path: Path) -> None:
    """ccxt would round the amount to the coin's precision (8 decimals here): refused, nothing is sent."""
    async with twin(tmp_path) as t:
        with pytest.raises(TransferRefused, match="precision"):
            await LiveTransfers(world(t), None).submit(
                request(t.live_settings, "funding-to-bybit", "1000.123456789")
            )
        assert sent(t, "/v5/asset/transfer/inter-transfer") == []


async def test_a_rate_limited_transfer_sends_nothing_and_a_503_is_an_unknown_outcome(tmp_path: Path) -> None:
    """A 429 on a transfer means nothing was sent; a 503 is an unknown outcome, which the lookup settles."""
    async with twin(tmp_path) as t:
        transfers = LiveTransfers(world(t), None)
        fake(t).add_fault("429", "transfer")
        with pytest.raises(RateLimited):
            await transfers.submit(request(t.live_settings, "funding-to-bybit", "1000"))
        fake(t).add_fault("5xx", "transfer")
        with pytest.raises(UnknownOutcome):
            await transfers.submit(request(t.live_settings, "funding-to-bybit", "1000"))
        assert paper(t).effects == []
        assert (
            await transfers.lookup(request(t.live_settings, "funding-to-bybit", "1000", created_at=0.0))
            is None
        )


# --- withdrawals ----------------------------------------------------------------------------------------------
async def test_a_withdrawal_sends_our_request_id_and_a_repeat_moves_money_once(tmp_path: Path) -> None:
    """The withdrawal leaves the funding wallet on the route's chain with our id as requestId, the fee taken out
    of the amount; a repeat with the same requestId is the same withdrawal."""
    async with twin(tmp_path) as t:
        transfers = LiveTransfers(world(t), None)
        req = request(t.live_settings, "funding-to-cold", "5000")
        first = await transfers.submit(req)
        again = await transfers.submit(req)
        assert first.state is TransferState.PENDING
        assert first.venue_ref == again.venue_ref != ""
        body = sent(t, "/v5/asset/withdraw/create")[0]
        assert body["requestId"] == CID
        assert (body["accountType"], body["chain"], body["address"], body["feeType"]) == (
            "FUND",
            "TRX",
            COLD,
            1,
        )
        assert Decimal(body["amount"]) == Decimal(5000)
        assert paper(t).effects == [CID]
        assert paper(t).accounts["bybit-funding"]["USDT"] == Decimal(1_995_000)


async def test_a_withdrawal_is_found_in_the_history_by_address_amount_and_time(tmp_path: Path) -> None:
    """Not in the history for two polls, then pending, then settled with the chain's transaction id."""
    async with twin(tmp_path) as t:
        transfers = LiveTransfers(world(t), None)
        created = t.clock.now()
        await transfers.submit(request(t.live_settings, "funding-to-cold", "5000"))
        fake(t).not_found_polls = 2
        req = request(t.live_settings, "funding-to-cold", "5000", created_at=created)
        assert await transfers.lookup(req) is None
        assert await transfers.lookup(req) is None
        pending = await transfers.lookup(req)
        assert pending is not None
        assert pending.state is TransferState.PENDING
        t.clock.advance(601)
        paper(t).advance()
        found = (
            await world(t)
            .by_name["bybit-funding"]
            .profile.lookup_withdrawal(world(t).by_name["bybit-funding"].caller, req)
        )
        assert found is not None
        assert found.receipt.state is TransferState.SETTLED
        assert found.txid == f"0x{CID}"
        assert found.receipt.settled_at == pytest.approx(created + 601)
        assert found.receipt.amount == Decimal(5000)
        assert (
            await transfers.lookup(request(t.live_settings, "funding-to-cold", "4000", created_at=created))
            is None
        )
        params = sent(t, "/v5/asset/withdraw/query-record")[0]
        assert params["withdrawType"] == "2"
        assert int(params["startTime"]) <= created * 1000


async def test_a_withdrawal_from_the_unified_wallet_is_sent_as_uta(tmp_path: Path) -> None:
    """Told the source is the unified wallet, the withdrawal says accountType UTA and leaves the venue."""
    async with twin(tmp_path, vault=True) as t:
        conn = world(t).by_name["bybit-main"]
        req = request(t.live_settings, "bybit-to-vault", "1000")
        receipt = await cast(BybitProfile, conn.profile).withdraw(conn.caller, req, "unified")
        assert receipt.state is TransferState.PENDING
        assert sent(t, "/v5/asset/withdraw/create")[0]["accountType"] == "UTA"
        assert paper(t).books["bybit-main"].collateral["USDT"] == Decimal(399_000)


# --- orders ---------------------------------------------------------------------------------------------------
async def test_a_reduce_only_order_carries_our_link_id_and_its_fill_is_read_back(tmp_path: Path) -> None:
    """orderLinkId is our id, reduceOnly is sent, the qty is base units (contract size 1), and the create
    answer (ids only) is followed by a read of the fill, which a later lookup finds again."""
    async with twin(tmp_path) as t:
        port = LiveOrders(world(t), None)
        req = OrderRequest(CID, "bybit-main", "ETH/USDT:USDT", "sell", Decimal("2.5"), True)
        receipt = await port.place(req)
        assert receipt.done
        assert receipt.filled == Decimal("2.5")
        assert receipt.fee > 0
        ref = paper(t).matching.orders[CID].receipt
        assert (receipt.avg_price, receipt.fee) == (pytest.approx(ref.avg_price), pytest.approx(ref.fee))
        body = sent(t, "/v5/order/create")[0]
        assert body["orderLinkId"] == transfer_uuid(CID)
        assert body["reduceOnly"] is True
        assert (body["qty"], body["side"], body["orderType"], body["category"]) == (
            "2.5",
            "Sell",
            "Market",
            "linear",
        )
        assert world(t).by_name["bybit-main"].contract_size("ETH/USDT:USDT") == 1.0
        again = await port.lookup_order(req)
        assert again is not None
        assert (again.filled, again.done, again.venue_ref) == (
            Decimal("2.5"),
            True,
            receipt.venue_ref,
        )
        held = {p.symbol: p.qty for p in paper(t).books["bybit-main"].positions}
        assert held["ETH/USDT:USDT"] == pytest.approx(997.5)


async def test_an_order_not_found_for_two_polls_is_unknown_then_found(tmp_path: Path) -> None:
    """When the history lags, the placed order is unknown (not done); the next lookups find its fill."""
    async with twin(tmp_path) as t:
        port = LiveOrders(world(t), None)
        fake(t).not_found_polls = 2
        req = OrderRequest(CID, "bybit-main", "BTC/USDT:USDT", "buy", Decimal("0.5"), False)
        placed = await port.place(req)
        assert not placed.done
        assert placed.venue_ref != ""
        assert await port.lookup_order(req) is None
        found = await port.lookup_order(req)
        assert found is not None
        assert found.done
        assert found.filled == Decimal("0.5")
        assert paper(t).matching.fills == [CID]


async def test_a_reduce_only_order_with_nothing_to_reduce_is_refused(tmp_path: Path) -> None:
    """Reduce-only rule not satisfied (110017, ccxt InvalidOrder) is an order refusal; nothing traded."""
    async with twin(tmp_path) as t:
        req = OrderRequest(CID, "bybit-main", "BTC/USDT:USDT", "sell", Decimal(1), True)
        with pytest.raises(OrderRefused, match="Reduce-only"):
            await LiveOrders(world(t), None).place(req)
        assert paper(t).matching.fills == []


async def test_the_order_book_is_the_paper_book_in_base_units(tmp_path: Path) -> None:
    """Book levels come through ccxt unchanged: linear sizes are base units (contract size 1)."""
    async with twin(tmp_path) as t:
        book = await LiveOrders(world(t), None).order_book("bybit-main", "BTC/USDT:USDT")
        ref = paper(t).matching.order_book("bybit-main", "BTC/USDT:USDT")
        for ours, theirs in ((book.bids, ref.bids), (book.asks, ref.asks)):
            assert [x for level in ours for x in level] == pytest.approx(
                [x for level in theirs for x in level]
            )


# --- keys and signatures -----------------------------------------------------------------------------------
async def test_preflight_reads_the_keys_permissions_and_ip_whitelist(tmp_path: Path) -> None:
    """A whitelisted key with trade, transfer and withdraw passes; an open one or a read-only one is refused."""
    async with twin(tmp_path) as t:
        assert await world(t).preflight() == []
        fake(t).key_ips = ["*"]
        with pytest.raises(KeyRejected, match="no IP whitelist"):
            await world(t).preflight()
        fake(t).key_ips, fake(t).key_read_only = ["127.0.0.1"], 1
        with pytest.raises(KeyRejected, match="read-only"):
            await world(t).preflight()


async def test_a_request_signed_with_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    """The fake checks Bybit's HMAC: a client with the wrong secret is refused (10004) and gets KeyRejected."""
    async with twin(tmp_path) as t:
        assert t.rehearsal is not None
        env = dict(t.rehearsal.env)
        env[env_name(key_set("bybit"), "secret")] = "not-the-secret"
        wrong = LiveWorld(t.live_settings, clock=t.clock.now, env=env, read_wait_max=0.01)
        try:
            with pytest.raises(KeyRejected):
                await LiveVenue(wrong, "bybit-main").snapshot()
        finally:
            await wrong.close()
        refused = [h for h in fake(t).hits if not h.signed]
        assert refused
        assert all(h.status == 401 for h in refused)
        assert paper(t).effects == []


# --- engine parity ------------------------------------------------------------------------------------------
async def test_a_top_up_runs_the_same_through_ccxt_as_on_paper(tmp_path: Path) -> None:
    """A price drop past the band tops the venue up from the funding wallet, identically on both sides."""
    async with twin(tmp_path) as t:
        await t.cycle()
        t.shock("ETH", -0.08)
        for _ in range(3):
            await t.cycle()
        assert [(k, r, s) for k, r, _, s in intents(t.ccxt)] == [("topup", "funding-to-bybit", "confirmed")]
        assert_parity(t)


async def test_a_sweep_runs_the_same_through_ccxt_as_on_paper(tmp_path: Path) -> None:
    """Excess collateral after a rally is swept back to the funding wallet, identically on both sides."""
    async with twin(tmp_path) as t:
        t.shock("ETH", 0.30)
        for _ in range(3):
            await t.cycle()
        assert [(k, r, s) for k, r, _, s in intents(t.ccxt)] == [("sweep", "bybit-to-funding", "confirmed")]
        assert_parity(t)


async def test_a_hedge_rebalance_runs_the_same_through_ccxt_as_on_paper(tmp_path: Path) -> None:
    """A new exposure is hedged with the same market order and fill on both sides."""
    async with twin(tmp_path) as t:
        await t.cycle()
        for side in (t.paper, t.ccxt):
            hedger = side.wired.bot.hedger
            assert hedger is not None
            hedger.set_exposure("btc-hedge", 4.25, t.clock.now())
        for _ in range(2):
            await t.cycle()
        assert [(s, q, f, st) for _, _, s, q, f, st in orders(t.ccxt)] == [
            ("sell", Decimal("4.25"), Decimal("4.25"), "filled")
        ]
        assert_parity(t)


async def test_a_transfer_that_times_out_after_its_effect_is_reconciled_once(tmp_path: Path) -> None:
    """The answer is lost after the money moved: unknown, then confirmed by lookup, with exactly one effect."""
    async with twin(tmp_path) as t:
        for side in (t.paper, t.ccxt):
            side.paper.timeout_after_effect("funding-to-bybit", 1)
        t.shock("ETH", -0.08)
        await t.cycle()
        assert [s for *_, s in intents(t.ccxt)] == [s for *_, s in intents(t.paper)] == ["unknown"]
        for _ in range(2):
            await t.cycle()
        assert [s for *_, s in intents(t.ccxt)] == ["confirmed"]
        assert_parity(t)
        for side in (t.paper, t.ccxt):
            assert len(side.paper.effects) == 1
        assert len(sent(t, "/v5/asset/transfer/inter-transfer")) == 1
