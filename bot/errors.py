"""The error tree, grouped by what the operator (or the engine) must do.

MarginbotError
├── BadInput                 exit 2: fix the config, scenario or arguments
│   ├── ConfigError          one line per problem, naming the key
│   ├── ScenarioError
│   └── StoreMissing         the database URL names no marginbot store (nothing there, or not ours)
├── TemporaryError           retry reads later (network blip, outage)
│   ├── VenueUnavailable     venue unreachable this cycle -> venue goes `stale`
│   └── RateLimited          back off (carries retry_after seconds)
├── UnknownOutcome           money-moving call may or may not have happened: reconcile, never re-send
├── PermanentError           stop and page a human
│   ├── VenueError           the venue answered a read with an error (bad request, unknown symbol): not retried
│   ├── VenueBanned          the venue banned our IP (HTTP 418): that venue is halted until a person resumes it
│   ├── KeyRejected          an API key is missing a permission or is unsafe (withdrawals without an IP whitelist)
│   ├── TransferRefused      the venue refused the transfer (frozen, insufficient funds, not whitelisted)
│   ├── OrderRefused         the venue refused the order (reduce-only would grow, margin, unknown symbol)
│   └── IntegrityError       the store or the audit chain is inconsistent
├── StrategyError            a hedge strategy raised: that program stops, the rest of the bot runs on
└── InvalidTransition        a programming error: a pair a transition table (venue, intent, order) lacks
"""

from __future__ import annotations


class MarginbotError(Exception):
    """Base of every error marginbot raises on purpose."""


class BadInput(MarginbotError):
    """Invalid user input: the CLI prints one line per problem and exits 2."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class ConfigError(BadInput):
    """The config file or its environment overrides are invalid."""


class ScenarioError(BadInput):
    """A scenario file is invalid."""


class StoreMissing(BadInput):
    """The database URL names no marginbot store: nothing there, or something that is not ours."""


class TemporaryError(MarginbotError):
    """A failure that may go away by itself; safe to retry reads."""


class VenueUnavailable(TemporaryError):
    """The venue did not answer (network error, outage, maintenance)."""


class RateLimited(TemporaryError):
    """The venue asked us to slow down."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(TemporaryError):
    """The database cannot be opened or reached."""


class UnknownOutcome(MarginbotError):
    """A money-moving call may have taken effect; only a lookup at the venue can tell."""


class PermanentError(MarginbotError):
    """A failure that will not go away by retrying: a human must look."""


class VenueError(PermanentError):
    """The venue answered a read with an error that retrying will not change."""


class VenueBanned(PermanentError):
    """The venue banned our address (HTTP 418 after ignored 429s): halt that venue and page."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class KeyRejected(PermanentError):
    """An API key lacks a permission the config needs, or holds one it must not hold unguarded."""


class TransferRefused(PermanentError):
    """The venue refused a transfer outright; nothing moved."""


class OrderRefused(PermanentError):
    """The venue refused an order outright; nothing traded."""


class StrategyError(MarginbotError):
    """A hedge strategy raised; the engine stops that program and pages."""


class IntegrityError(PermanentError):
    """Stored state contradicts itself (duplicate key with other parameters, broken chain)."""


class InvalidTransition(MarginbotError):
    """A venue, intent or order status change that its transition table does not allow."""


class NotBuilt(MarginbotError):
    """A feature the config or scenario asks for that this release does not provide yet."""
