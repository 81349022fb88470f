"""The ccxt call wrapper: error translation per ccxt class, read-only retries, rate gate, URL rebasing."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt
import pytest

from bot.errors import (
    KeyRejected,
    OrderRefused,
    RateLimited,
    TransferRefused,
    UnknownOutcome,
    VenueBanned,
    VenueError,
    VenueUnavailable,
)
from bot.logs import redact_text, register_secret
from bot.venues.live.budget import Budget, RateGate
from bot.venues.live.client import Caller, clean, rebase_urls, translate


class ScriptedExchange:
    """A stand-in ccxt exchange whose calls raise the scripted errors, then answer."""

    def __init__(
        self, errors: list[BaseException], status: int | None = None, headers: dict[str, str] | None = None
    ):
        self.errors = list(errors)
        self.status = status
        self.last_status: int | None = None
        self.last_response_headers = headers or {}

    async def _call(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if self.errors:
            self.last_status = self.status
            raise self.errors.pop(0)
        return {"ok": True}

    fetch_balance = _call
    transfer = _call
    create_order = _call


def caller(ex: ScriptedExchange, attempts: int = 3) -> Caller:
    return Caller("okx-main", ex, RateGate(Budget(1000, 1.0)), read_attempts=attempts, read_wait_max=0.0)


READ_CASES = [
    (ccxt.RequestTimeout("t"), VenueUnavailable, 3),
    (ccxt.ExchangeNotAvailable("x"), VenueUnavailable, 3),
    (ccxt.OnMaintenance("m"), VenueUnavailable, 3),
    (ccxt.NetworkError("n"), VenueUnavailable, 3),
    (ccxt.InvalidNonce("nonce"), VenueUnavailable, 3),
    (ccxt.BadResponse("b"), VenueUnavailable, 3),
    (ccxt.RateLimitExceeded("r"), RateLimited, 3),
    (ccxt.DDoSProtection("d"), RateLimited, 3),
    (ccxt.AuthenticationError("a"), KeyRejected, 1),
    (ccxt.PermissionDenied("p"), KeyRejected, 1),
    (ccxt.InsufficientFunds("f"), VenueError, 1),
    (ccxt.BadRequest("q"), VenueError, 1),
    (ccxt.ExchangeError("e"), VenueError, 1),
]


@pytest.mark.parametrize(("error", "ours", "attempts"), READ_CASES, ids=lambda v: type(v).__name__)
async def test_a_read_is_retried_only_on_temporary_errors_up_to_the_cap(
    error: BaseException, ours: type[Exception], attempts: int
) -> None:
    """A read that keeps failing is tried 3 times on temporary errors and once on permanent ones."""
    ex = ScriptedExchange([error] * 5)
    c = caller(ex)
    with pytest.raises(ours):
        await c.read("balance", "fetch_balance")
    assert c.calls["fetch_balance"] == attempts


async def test_a_read_that_recovers_on_the_second_attempt_returns_the_answer() -> None:
    """One timeout, then an answer: the read succeeds after two requests."""
    ex = ScriptedExchange([ccxt.RequestTimeout("t")])
    c = caller(ex)
    assert await c.read("balance", "fetch_balance") == {"ok": True}
    assert c.calls["fetch_balance"] == 2


MOVE_CASES = [
    (ccxt.RequestTimeout("t"), None, UnknownOutcome),
    (ccxt.ExchangeNotAvailable("503"), 503, UnknownOutcome),
    (ccxt.NetworkError("n"), None, UnknownOutcome),
    (ccxt.BadResponse("b"), 200, UnknownOutcome),
    (ccxt.NullResponse("null"), 200, UnknownOutcome),
    (ccxt.ExchangeNotAvailable("403"), 403, VenueUnavailable),
    (ccxt.RateLimitExceeded("r"), 429, RateLimited),
    (ccxt.DDoSProtection("ban"), 418, VenueBanned),
    (ccxt.InvalidNonce("nonce"), 400, VenueUnavailable),
    (ccxt.AuthenticationError("a"), 401, KeyRejected),
    (ccxt.InsufficientFunds("f"), 200, TransferRefused),
    (ccxt.InvalidOrder("o"), 200, TransferRefused),
    (ccxt.ExchangeError("e"), 200, TransferRefused),
    (ValueError("parse"), 200, UnknownOutcome),
]


@pytest.mark.parametrize(("error", "status", "ours"), MOVE_CASES, ids=str)
async def test_a_money_move_is_sent_once_whatever_the_error(
    error: BaseException, status: int | None, ours: type[Exception]
) -> None:
    """Transfers are never retried; timeouts, 5xx and garbled answers are unknown, refusals are refusals."""
    ex = ScriptedExchange([error] * 3, status=status)
    c = caller(ex)
    with pytest.raises(ours):
        await c.move("transfer", "transfer", "USDT", 1, "a", "b", refused=TransferRefused)
    assert c.calls["transfer"] == 1


async def test_an_order_refusal_is_an_order_refused() -> None:
    """The refusal class follows the call: an order the venue rejects is OrderRefused."""
    c = caller(ScriptedExchange([ccxt.InsufficientFunds("margin")], status=200))
    with pytest.raises(OrderRefused):
        await c.move("order", "create_order", "BTC/USDT:USDT", "market", "buy", 1, refused=OrderRefused)


async def test_a_connection_that_was_never_made_means_nothing_was_sent() -> None:
    """Connection refused (no HTTP status at all) on a move: the request never left, so nothing moved."""
    import aiohttp

    try:
        raise ccxt.ExchangeNotAvailable("okx POST http://127.0.0.1:1/x") from aiohttp.ClientConnectorError(
            None,  # type: ignore[arg-type]
            OSError(111, "refused"),
        )
    except ccxt.ExchangeNotAvailable as e:
        err = translate(
            e, venue="v", what="transfer", move=True, refused=TransferRefused, status=None, retry_after=None
        )
    assert isinstance(err, VenueUnavailable)
    assert "not sent" in str(err)


async def test_a_429_with_retry_after_pauses_the_venue_before_the_next_call() -> None:
    """Retry-After is honoured: the retried read waits it out at the gate."""
    ex = ScriptedExchange([ccxt.RateLimitExceeded("slow down")], status=429, headers={"Retry-After": "0.2"})
    c = caller(ex)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await c.read("balance", "fetch_balance") == {"ok": True}
    assert loop.time() - t0 >= 0.19
    assert c.calls["fetch_balance"] == 2


async def test_a_long_retry_after_gives_up_the_read_for_this_cycle() -> None:
    """A Retry-After beyond the cap is not waited out inside a cycle: RateLimited is raised at once."""
    ex = ScriptedExchange([ccxt.RateLimitExceeded("slow")] * 3, status=429, headers={"Retry-After": "120"})
    c = caller(ex)
    with pytest.raises(RateLimited) as info:
        await c.read("balance", "fetch_balance")
    assert info.value.retry_after == 120.0
    assert c.calls["fetch_balance"] == 1


async def test_a_418_bans_the_venue_and_no_further_request_is_sent() -> None:
    """After an IP ban every call fails fast with VenueBanned, without touching the venue."""
    ex = ScriptedExchange([ccxt.DDoSProtection("banned")], status=418, headers={"Retry-After": "600"})
    c = caller(ex)
    with pytest.raises(VenueBanned):
        await c.read("balance", "fetch_balance")
    with pytest.raises(VenueBanned):
        await c.read("balance", "fetch_balance")
    assert c.calls["fetch_balance"] == 1
    assert c.gate.banned()


async def test_the_gate_admits_calls_at_once_while_the_budget_has_room() -> None:
    """No client-side wait before a call while the venue's budget has room."""
    gate = RateGate(Budget(100, 60.0, {"transfer": 1, "balance": 5}))
    waited = [await gate.acquire("balance") for _ in range(10)]
    assert max(waited) < 0.05
    assert await gate.acquire("transfer") < 0.05


async def test_the_gate_makes_a_call_wait_when_the_budget_is_spent() -> None:
    """Weights add up: a spent budget makes the next call wait for the window to roll."""
    gate = RateGate(Budget(4, 0.2, {"balance": 2}))
    await gate.acquire("balance")
    await gate.acquire("balance")
    assert await gate.acquire("balance") >= 0.15


def test_error_texts_lose_query_strings_and_known_secrets() -> None:
    """A ccxt error text with a signed URL and the key itself comes out clean."""
    register_secret("K3YVALUE-abcdef")
    text = (
        "binance GET https://fapi.binance.com/fapi/v2/account?timestamp=1&signature=deadbeef K3YVALUE-abcdef"
    )
    out = clean(text)
    assert "deadbeef" not in out
    assert "K3YVALUE-abcdef" not in out
    assert "K3YVALUE-abcdef" not in redact_text("key K3YVALUE-abcdef")


def test_api_url_rebases_every_endpoint_and_keeps_its_path() -> None:
    """The override points every base URL at the fake or proxy, keeping /fapi/v1, /sapi/v1 apart."""
    api = {"sapi": "https://api.binance.com/sapi/v1", "fapiPrivate": "https://fapi.binance.com/fapi/v1"}
    out = rebase_urls(api, "http://127.0.0.1:9000", None)
    assert out == {"sapi": "http://127.0.0.1:9000/sapi/v1", "fapiPrivate": "http://127.0.0.1:9000/fapi/v1"}
    assert rebase_urls({"rest": "https://{hostname}"}, "http://127.0.0.1:9/p", "www.okx.com") == {
        "rest": "http://127.0.0.1:9/p"
    }


@pytest.mark.parametrize(
    ("exchange", "marker"),
    [
        ("binance", "testnet.binancefuture.com"),
        ("okx", "x-simulated-trading"),
        ("bybit", "api-testnet."),
        ("deribit", "test.deribit.com"),
    ],
)
async def test_sandbox_points_each_exchange_at_its_testnet_and_never_retries_or_throttles(
    exchange: str, marker: str
) -> None:
    """`sandbox = true` selects the testnet; ccxt's limiter and retry-on-failure are off either way."""
    from bot.venues.live.client import make_exchange

    ex = make_exchange(exchange, None, sandbox=True)
    try:
        assert marker in str(ex.urls["api"]) + str(ex.headers)
        assert ex.enableRateLimit is False
        assert ex.options["maxRetriesOnFailure"] == 0
    finally:
        await ex.close()
