"""Every exchange through real ccxt and its fake server: fault runs end like the paper venue, and no key,
secret, passphrase or signature reaches a log line, an audit record, a notification or an intent's error."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from bot import logs
from bot.settings import Settings, settings_from_dict
from bot.store.audit import export_lines
from tests.live.harness import Twin, intents

EXCHANGES = ["binance", "okx", "bybit", "deribit"]


def config(exchange: str) -> Settings:
    """One venue at 75% utilization (band 20/30/60 → a top-up is due after a 10% move) and its funding wallet."""
    settle = "USDC" if exchange == "deribit" else "USDT"
    sym = f"BTC/{settle}:{settle}"
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
                "name": "venue",
                "paper": {
                    "collateral": {settle: 1_000_000},
                    "positions": [{"symbol": sym, "qty": -100, "entry": 60000}],
                    "im_rate": 0.1,
                    "funding_rate_8h": 0.0,
                },
            }
        ],
        "accounts": [
            {"name": "funding", "bucket": "buffer", "owner": "treasury", "balances": {settle: 20_000_000}}
        ],
        "routes": [
            {
                "name": "fund-venue",
                "from": "funding",
                "to": "venue",
                "asset": settle,
                "method": "internal",
                "max_amount": 5_000_000,
                "daily_limit": 50_000_000,
                "settle_seconds": 0,
            },
            {
                "name": "venue-to-funding",
                "from": "venue",
                "to": "funding",
                "asset": settle,
                "method": "internal",
                "max_amount": 5_000_000,
                "daily_limit": 50_000_000,
                "settle_seconds": 0,
            },
        ],
    }
    return settings_from_dict(data)


async def fault_run(twin: Twin, exchange: str) -> None:
    fake = twin.fake(exchange)
    await twin.cycle()
    fake.add_fault("429", "balance", retry_after=0.05)
    await twin.cycle()
    fake.add_fault("5xx", "balance", count=3)
    await twin.cycle()
    await twin.cycle()
    for side in (twin.paper, twin.ccxt):
        side.paper.timeout_after_effect("fund-venue", 1)
    twin.shock("BTC", 0.10)
    for _ in range(4):
        await twin.cycle(30)
    fake.add_fault("418", "any", retry_after=600)
    await twin.cycle()


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_a_fault_run_ends_as_on_paper_and_leaks_no_secret(
    exchange: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """429, 5xx, a timeout after the top-up's effect and a 418: one top-up each side, and no secret anywhere."""
    logs.configure("debug")
    twin = await Twin(config(exchange), {"venue": exchange, "funding": exchange}, tmp_path).start()
    try:
        await fault_run(twin, exchange)
        paper_moves = [i for i in intents(twin.paper) if i[3] == "confirmed"]
        live_moves = [i for i in intents(twin.ccxt) if i[3] == "confirmed"]
        assert paper_moves, "the shock should have made the paper bot top up"
        assert live_moves == paper_moves
        # one effect per intent (Binance's internal transfer takes no client id: the venue names its own)
        assert len(twin.paper.paper.effects) == len(twin.ccxt.paper.effects) == len(paper_moves)
        assert twin.ccxt.wired.bot.states["venue"].value == "halted"  # the 418
        venue_usdt = {
            s: dict(side.paper.books["venue"].collateral) for s, side in (("p", twin.paper), ("c", twin.ccxt))
        }
        assert venue_usdt["p"] == venue_usdt["c"]
        fake = twin.fake(exchange)
        store = twin.ccxt.wired.store
        texts = [capsys.readouterr().err]
        texts += list(export_lines(store.engine, "jsonl"))
        texts += [str(n) for n in store.outbox.due(math.inf, limit=10_000)]
        texts += [str(r) for r in store.intents.rows()]
        blob = "\n".join(texts)
        assert "venue" in blob  # the capture did see the run
        secrets = [v for v in twin.rehearsal.env.values() if v] if twin.rehearsal else []
        assert secrets
        assert fake.signatures, "the fake saw signed requests"
        for secret in [*secrets, *fake.signatures]:
            assert secret not in blob, f"a secret or signature leaked ({len(secret)} chars)"
        assert "signature=" not in blob.lower().replace("signature=***", "")
    finally:
        await twin.stop()
        logs.configure()


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_a_wrongly_signed_request_is_refused_as_a_key_problem(exchange: str, tmp_path: Any) -> None:
    """The fake checks ccxt's real signature: a wrong secret gets the venue's auth error → KeyRejected."""
    from bot.errors import KeyRejected
    from bot.venues.live.ports import LiveVenue, LiveWorld

    twin = await Twin(config(exchange), {"venue": exchange, "funding": exchange}, tmp_path).start()
    try:
        assert twin.rehearsal is not None
        env = dict(twin.rehearsal.env)
        key = next(k for k in env if k.endswith("_SECRET"))
        env[key] = "0" * len(env[key])
        world = LiveWorld(twin.live_settings, clock=twin.clock.now, env=env, read_wait_max=0.01)
        try:
            with pytest.raises(KeyRejected):
                await LiveVenue(world, "venue").snapshot()
        finally:
            await world.close()
    finally:
        await twin.stop()


def test_the_config_here_tops_up_after_the_shock() -> None:
    """Sanity of the scenario: 100 BTC short at 60k on 1M USDT is 60% used; +10% pushes it past 80%."""
    s = config("okx")
    v = s.venues[0].paper
    assert v is not None
    notional = 100 * 66000
    equity = 1_000_000 - 100 * 6000
    assert notional * 0.1 / equity > 0.8
    assert Decimal(str(v.im_rate)) == Decimal("0.1")
