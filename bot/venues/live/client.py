"""The one module that imports ccxt: exchange clients, the call wrapper, and error translation.

Every ccxt call goes through `Caller`, which
  - waits for the venue's rate budget (ccxt's own limiter and its retry-on-failure are off);
  - translates ccxt's errors once into marginbot's tree (`translate`), with secrets and signed URLs redacted;
  - retries reads (capped, jittered, tenacity) on temporary errors only;
  - never retries a money-moving call: a timeout, a 5xx or a malformed answer is `UnknownOutcome`.

How a ccxt error class maps (read = fetch_*, move = transfer / withdraw / create_order):

    ccxt error                          read                          move
    RateLimitExceeded, DDoSProtection   RateLimited (retried once     RateLimited (nothing moved)
                                        the Retry-After has passed)
    HTTP 418                            VenueBanned                   VenueBanned (nothing moved)
    RequestTimeout                      VenueUnavailable, retried     UnknownOutcome
    ExchangeNotAvailable, OnMaintenance VenueUnavailable, retried     UnknownOutcome; VenueUnavailable when
      NetworkError, BadResponse, other                                the connection was never made, or 4xx
      OperationFailed, any HTTP 5xx
    InvalidNonce                        VenueUnavailable, retried     VenueUnavailable (rejected: nothing moved)
    AuthenticationError, PermissionDenied KeyRejected                 KeyRejected
    InsufficientFunds, InvalidOrder,    VenueError (not retried)      TransferRefused / OrderRefused
      BadRequest, other ExchangeError
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt
import ccxt.async_support as ccxt_async
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from bot.errors import (
    ConfigError,
    KeyRejected,
    MarginbotError,
    PermanentError,
    RateLimited,
    TemporaryError,
    UnknownOutcome,
    VenueBanned,
    VenueError,
    VenueUnavailable,
)
from bot.logs import redact_text
from bot.venues.live.budget import RateGate
from bot.venues.live.keys import Credentials

MAX_RETRY_AFTER = 10.0  # a read waits at most this long for a Retry-After before giving up for this cycle


def rebase_urls(api: Any, api_url: str, hostname: str | None) -> Any:
    """Point every API base URL at `api_url`, keeping each URL's own path (`/fapi/v1`, `/sapi/v1`, `/api/v5`)."""
    base = urlsplit(api_url.rstrip("/"))

    def one(url: str) -> str:
        if hostname is not None:
            url = url.replace("{hostname}", hostname)
        parts = urlsplit(url)
        return urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, ""))

    if isinstance(api, str):
        return one(api)
    if isinstance(api, dict):
        return {k: rebase_urls(v, api_url, hostname) for k, v in api.items()}
    return api


def make_exchange(
    exchange_id: str,
    creds: Credentials | None,
    *,
    sandbox: bool = False,
    api_url: str | None = None,
    timeout_seconds: float = 10.0,
    options: dict[str, Any] | None = None,
) -> Any:
    """One ccxt async exchange object: our limiter instead of ccxt's, no retry-on-failure, our URLs."""
    cls = getattr(ccxt_async, exchange_id, None)
    if cls is None:
        raise ConfigError(f"exchange {exchange_id!r} is not a ccxt exchange")
    config: dict[str, Any] = {
        "enableRateLimit": False,
        "timeout": int(timeout_seconds * 1000),
        "options": {"maxRetriesOnFailure": 0, **(options or {})},
    }
    if creds is not None:
        config["apiKey"] = creds.api_key.get_secret_value()
        config["secret"] = creds.secret.get_secret_value()
        if creds.password is not None:
            config["password"] = creds.password.get_secret_value()
    ex = cls(config)
    if sandbox:
        ex.set_sandbox_mode(True)  # replaces urls['api'] wholesale: rebase after it
    if api_url:
        ex.urls["api"] = rebase_urls(ex.urls["api"], api_url, getattr(ex, "hostname", None))
    ex.last_status = None
    original = ex.on_rest_response

    def on_rest_response(code: Any, reason: Any, url: Any, method: Any, *rest: Any) -> Any:
        ex.last_status = int(code) if code is not None else None
        return original(code, reason, url, method, *rest)

    ex.on_rest_response = on_rest_response  # remembers the HTTP status: 418 and 4xx are told apart by it
    return ex


def _retry_after(ex: Any) -> float | None:
    headers = getattr(ex, "last_response_headers", None) or {}
    for k, v in headers.items():
        if str(k).lower() == "retry-after":
            try:
                return max(0.0, float(v))
            except (TypeError, ValueError):
                return None
    return None


def clean(text: str) -> str:
    """An error text fit for logs, audit and notifications: no signed URL, no query string, no known secret."""
    text = re.sub(r"\?[^\s\"']*", "?…", text)
    return redact_text(text)[:300]


def translate(
    e: BaseException,
    *,
    venue: str,
    what: str,
    move: bool,
    refused: type[PermanentError],
    status: int | None,
    retry_after: float | None,
) -> MarginbotError:
    """One ccxt exception as marginbot's error (see the module table)."""
    text = f"{venue}: {what}: {type(e).__name__}: {clean(str(e))}"
    if status == 418:
        return VenueBanned(f"{venue}: HTTP 418, our address is banned: {clean(str(e))}", retry_after)
    if isinstance(e, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)) or status == 429:
        return RateLimited(text, retry_after)
    if isinstance(e, (ccxt.AuthenticationError, ccxt.AccountSuspended)):
        return KeyRejected(text)
    if isinstance(e, ccxt.InvalidNonce):
        return VenueUnavailable(text)
    if isinstance(e, ccxt.OperationFailed) or (move and status is not None and status >= 500):
        # network errors, garbled answers, and the venue's own "execution status unknown" (Binance -1000,
        # -1001, -1006 arrive as OperationFailed; a 5xx documents the outcome as unknown)
        if not move:
            return VenueUnavailable(text)
        never_connected = status is None and isinstance(e, ccxt.ExchangeNotAvailable) and _refused(e)
        rejected = status is not None and 400 <= status < 500 and status not in (408, 425)
        if never_connected or rejected:
            return VenueUnavailable(text + " (not sent)" if never_connected else text)
        return UnknownOutcome(text + " (outcome unknown: it will be looked up, never re-sent)")
    if isinstance(e, ccxt.BaseError):
        return refused(text) if move else VenueError(text)
    return UnknownOutcome(text) if move else VenueUnavailable(text)


def _refused(e: BaseException) -> bool:
    """True when the connection itself failed (nothing reached the venue): refused, unreachable, DNS."""
    cause = e.__cause__
    name = type(cause).__name__ if cause is not None else ""
    return name in {
        "ClientConnectorError",
        "ClientConnectorDNSError",
        "gaierror",
        "ClientConnectorCertificateError",
    }


def _retryable(e: BaseException) -> bool:
    if isinstance(e, RateLimited):
        return e.retry_after is None or e.retry_after <= MAX_RETRY_AFTER
    return isinstance(e, TemporaryError)


class Caller:
    """Calls one ccxt exchange object under a rate gate, translating errors, retrying reads only."""

    def __init__(
        self,
        venue: str,
        ex: Any,
        gate: RateGate,
        *,
        read_attempts: int = 3,
        read_wait_max: float = 2.0,
    ) -> None:
        self.venue = venue
        self.ex = ex
        self.gate = gate
        self.read_attempts = read_attempts
        self.read_wait_max = read_wait_max
        self.calls: dict[str, int] = {}  # method -> requests attempted (tests count retries with it)
        self.last_wait = 0.0  # seconds the last call waited for the budget

    async def _once(
        self,
        kind: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        move: bool,
        refused: type[PermanentError],
    ) -> Any:
        if self.gate.banned():
            raise VenueBanned(
                f"{self.venue}: banned by the venue (HTTP 418); halted until a person resumes it"
            )
        self.last_wait = await self.gate.acquire(kind)
        self.calls[method] = self.calls.get(method, 0) + 1
        fn: Callable[..., Awaitable[Any]] = getattr(self.ex, method)
        self.ex.last_status = None
        try:
            return await fn(*args, **kwargs)
        except Exception as e:
            status = getattr(self.ex, "last_status", None)
            err = translate(
                e,
                venue=self.venue,
                what=method,
                move=move,
                refused=refused,
                status=status,
                retry_after=_retry_after(self.ex) if status in (418, 429) else None,
            )
            if isinstance(err, RateLimited) and err.retry_after:
                self.gate.pause(err.retry_after)
            if isinstance(err, VenueBanned):
                self.gate.ban(err.retry_after)
            raise err from None  # the ccxt exception's text can carry a signed URL: never chained

    async def read(self, kind: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """A read: retried on temporary errors (capped, jittered); a 429 waits its Retry-After first."""
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.read_attempts),
            wait=wait_random_exponential(multiplier=0.1, max=self.read_wait_max),
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                return await self._once(kind, method, args, kwargs, move=False, refused=PermanentError)
        raise AssertionError("unreachable")  # pragma: no cover

    async def move(
        self, kind: str, method: str, *args: Any, refused: type[PermanentError], **kwargs: Any
    ) -> Any:
        """A money-moving call: sent once. Unknown outcomes are raised as UnknownOutcome, never retried."""
        return await self._once(kind, method, args, kwargs, move=True, refused=refused)
