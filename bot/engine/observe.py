"""Reading every venue and account at once, each under the cycle's read deadline.

A venue that cannot answer in time (a hang, retries, a long Retry-After) is stale this cycle; the others go on,
so one slow exchange never holds another venue's top-up back. Each snapshot carries the time it was read;
freshness is judged later, at decision time. A port that answers at once (`snapshot_now` / `balances_now`: a
local paper venue) is read directly, without a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from bot.core.world import AccountSnapshot, VenueSnapshot
from bot.engine.clock import Clock
from bot.errors import MarginbotError, VenueBanned
from bot.venues.base import AccountPort, VenuePort

log = structlog.get_logger("marginbot.observe")

T = TypeVar("T")


@dataclass(slots=True)
class Observation:
    snapshots: dict[str, VenueSnapshot | None] = field(default_factory=dict)
    accounts: dict[str, AccountSnapshot | None] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # how long each awaited read took (clock time)
    banned: dict[str, str] = field(default_factory=dict)  # venue -> why, for a venue that answered HTTP 418
    late: tuple[str, ...] = ()  # reads cut off at the deadline

    def slowest(self) -> tuple[str, float] | None:
        return max(self.seconds.items(), key=lambda kv: kv[1]) if self.seconds else None


class Observer:
    def __init__(
        self,
        venues: Sequence[VenuePort],
        accounts: Sequence[AccountPort],
        clock: Clock,
        *,
        deadline_seconds: float,
    ) -> None:
        self.clock = clock
        self.deadline = deadline_seconds
        self._instant_venues = [(v.name, v.snapshot_now) for v in venues if hasattr(v, "snapshot_now")]
        self._awaited_venues = [(v.name, v.snapshot) for v in venues if not hasattr(v, "snapshot_now")]
        self._instant_accounts = [(a.name, a.balances_now) for a in accounts if hasattr(a, "balances_now")]
        self._awaited_accounts = [(a.name, a.balances) for a in accounts if not hasattr(a, "balances_now")]
        self._venue_order = [v.name for v in venues]
        self._account_order = [a.name for a in accounts]

    @property
    def instant(self) -> bool:
        """Every venue answers at once (paper): a quiet cycle may read them alone first."""
        return not self._awaited_venues

    def venues_now(self) -> dict[str, VenueSnapshot | None]:
        """The instant venues' snapshots, in config order (an unreadable one is None)."""
        return {name: _guard(name, read_now, None) for name, read_now in self._instant_venues}

    async def observe(self, venues_read: Mapping[str, VenueSnapshot | None] | None = None) -> Observation:
        """Every read at once; a read past the deadline is cut off (that venue or account is None).
        `venues_read`: the instant venues already read this cycle (`venues_now`), not read again."""
        obs = Observation()
        late: list[str] = []
        venues: dict[str, VenueSnapshot | None] = dict(venues_read or {})
        accounts: dict[str, AccountSnapshot | None] = {}
        if self._awaited_venues or self._awaited_accounts:
            got_v, got_a = await asyncio.gather(
                asyncio.gather(*(self._timed(n, r, obs, late) for n, r in self._awaited_venues)),
                asyncio.gather(*(self._timed(n, r, obs, late) for n, r in self._awaited_accounts)),
            )
            venues.update(zip((n for n, _ in self._awaited_venues), got_v, strict=True))
            accounts.update(zip((n for n, _ in self._awaited_accounts), got_a, strict=True))
        if venues_read is None:
            for name, read_now in self._instant_venues:
                venues[name] = _guard(name, read_now, obs.banned)
        for name, balances_now in self._instant_accounts:
            accounts[name] = _guard(name, balances_now, None)
        obs.snapshots = {n: venues[n] for n in self._venue_order}  # in config order, whatever answered first
        obs.accounts = {n: accounts[n] for n in self._account_order}
        obs.late = tuple(late)
        return obs

    async def _timed(
        self, name: str, read: Callable[[], Awaitable[T]], obs: Observation, late: list[str]
    ) -> T | None:
        started = self.clock.now()
        try:
            return await asyncio.wait_for(_awaited(name, read, obs.banned), self.deadline)
        except TimeoutError:
            log.warning("read cut off at the deadline", venue=name, deadline=self.deadline)
            late.append(name)
            return None
        finally:
            obs.seconds[name] = self.clock.now() - started


def _guard(name: str, read: Callable[[], T], banned: dict[str, str] | None) -> T | None:
    try:
        return read()
    except Exception as e:  # an unreadable venue is stale, never guessed at
        _failed(name, e, banned)
        return None


async def _awaited(name: str, read: Callable[[], Awaitable[T]], banned: dict[str, str]) -> T | None:
    try:
        return await read()
    except Exception as e:  # an unreadable venue is stale, never guessed at
        _failed(name, e, banned)
        return None


def _failed(name: str, e: Exception, banned: Mapping[str, str] | None) -> None:
    if isinstance(e, VenueBanned) and isinstance(banned, dict):
        banned[name] = str(e)  # an IP ban: the bot halts that venue (persisted, paged)
    elif isinstance(e, MarginbotError):
        log.debug("read failed", venue=name, error=str(e))
    else:
        log.error("read raised", venue=name, error=type(e).__name__)
