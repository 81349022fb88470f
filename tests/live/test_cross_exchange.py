"""A withdrawal from one exchange to another through real ccxt: in flight until the destination shows the
deposit, no second top-up meanwhile, and the same outcome as on the paper venue."""

from __future__ import annotations

from typing import Any

from bot.settings import Settings, settings_from_dict
from tests.live.harness import Twin, intents


def config() -> Settings:
    """bybit-main at 90% utilization; its top-up comes on-chain from the OKX funding wallet (10 min)."""
    data: dict[str, Any] = {
        "approvals": {
            "approvers": ["alice", "bob"],
            "quorum": 2,
            "auto_limit_usd": 5_000_000,
            "daily_auto_limit_usd": 50_000_000,
        },
        "market": {"prices": {"BTC": 60000.0}},
        "venues": [
            {
                "name": "bybit-main",
                "paper": {
                    "collateral": {"USDT": 1_000_000},
                    "positions": [{"symbol": "BTC/USDT:USDT", "qty": -150, "entry": 60000}],
                    "funding_rate_8h": 0.0,
                },
            },
            {"name": "okx-main", "paper": {"collateral": {"USDT": 1_000}, "funding_rate_8h": 0.0}},
        ],
        "accounts": [
            {"name": "okx-funding", "bucket": "buffer", "owner": "treasury", "balances": {"USDT": 20_000_000}}
        ],
        "routes": [
            {
                "name": "okx-to-bybit",
                "from": "okx-funding",
                "to": "bybit-main",
                "asset": "USDT",
                "method": "withdrawal",
                "network": "TRC20",
                "address": "TBybitDepositAddress000000000000000",
                "max_amount": 5_000_000,
                "daily_limit": 50_000_000,
                "fee": 1,
                "settle_seconds": 600,
            }
        ],
    }
    return settings_from_dict(data)


async def test_an_on_chain_top_up_is_in_flight_until_the_deposit_lands(tmp_path: Any) -> None:
    """One withdrawal OKX → Bybit; while the chain carries it, no second top-up; then confirmed on both sides."""
    exchange_of = {"bybit-main": "bybit", "okx-main": "okx", "okx-funding": "okx"}
    twin = await Twin(config(), exchange_of, tmp_path).start()
    try:
        await twin.cycle()
        for _ in range(10):  # 5 minutes: sent, not arrived
            await twin.cycle(30)
        live = intents(twin.ccxt)
        assert len(live) == 1, live
        assert live[0][3] in ("submitted", "pending")
        assert intents(twin.paper) == live
        for _ in range(12):  # past the 10 minutes the chain takes
            await twin.cycle(30)
        live = intents(twin.ccxt)
        assert [i[3] for i in live] == ["confirmed"]
        assert live == intents(twin.paper)
        assert (
            twin.ccxt.paper.books["bybit-main"].collateral == twin.paper.paper.books["bybit-main"].collateral
        )
        assert len(twin.ccxt.paper.effects) == 1
    finally:
        await twin.stop()
