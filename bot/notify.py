"""Notifications: written to an outbox with the action they describe, delivered after commit through apprise.

Delivery is off the decision path: a notifier that raises or hangs is bounded by a timeout and retried
with backoff, and never delays money movement. apprise is imported only here.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Protocol

import apprise
import structlog

from bot.store.repo import Store
from bot.store.rows import Note

log = structlog.get_logger("marginbot.notify")

_TYPES = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "critical": apprise.NotifyType.FAILURE,
}
MAX_ATTEMPTS = 12


class Sender(Protocol):
    async def send(self, title: str, body: str, severity: str) -> None:
        """Deliver one message or raise."""
        ...


class AppriseSender:
    """Sends through apprise, one apprise object per configured URL, so each destination is tracked apart."""

    def __init__(self, urls: list[str], timeout: float) -> None:
        self._targets: list[apprise.Apprise] = []
        problems = []
        for i, url in enumerate(urls):
            ap = apprise.Apprise()
            if not ap.add(url):
                problems.append(f"notify.urls[{i}]: apprise cannot use {redact_url(url)} (scheme or format)")
            self._targets.append(ap)
        if problems:
            raise ValueError("\n".join(problems))
        self._timeout = timeout

    @property
    def target_count(self) -> int:
        return len(self._targets)

    async def send_to(self, index: int, title: str, body: str, severity: str) -> None:
        """Deliver to one destination, or raise (TimeoutError when it does not answer in time)."""
        ap = self._targets[index]
        ok = await asyncio.wait_for(
            asyncio.to_thread(ap.notify, body=body, title=title, notify_type=_TYPES[severity]),
            timeout=self._timeout,
        )
        if not ok:
            raise RuntimeError(f"notify.urls[{index}]: delivery failed")

    async def send(self, title: str, body: str, severity: str) -> None:
        """Deliver to every destination; raise when any of them failed."""
        for k in range(len(self._targets)):
            await self.send_to(k, title, body, severity)


def url_problems(urls: list[str]) -> list[str]:
    """One line per notify URL apprise cannot use (checked without sending anything)."""
    try:
        AppriseSender(urls, 1.0)
    except ValueError as e:
        return str(e).splitlines()
    return []


def redact_url(url: str) -> str:
    """Keep the scheme only: apprise URLs carry tokens."""
    return url.split("://", 1)[0] + "://…" if "://" in url else "…"


def note(
    severity: str,
    kind: str,
    message: str,
    *,
    desk: str,
    venue: str | None = None,
    asset: str | None = None,
    detail: str = "",
) -> Note:
    """A human-readable notification tagged by desk, venue, asset and severity."""
    tags = f"desk={desk} venue={venue or '-'} asset={asset or '-'} severity={severity} kind={kind}"
    body = f"{message}\n{detail}\n{tags}" if detail else f"{message}\n{tags}"
    return Note(severity, kind, f"[marginbot] {severity.upper()} {message}", body, venue, asset)


@dataclass
class OutboxWorker:
    """Delivers due outbox rows; one flush at a time; failures back off exponentially (5 s · 2^n, ≤ 15 min)."""

    store: Store
    sender: Sender

    async def flush(self, now: float) -> int:
        """Deliver what is due; a destination that times out ends this pass (the rest would wait on it too)."""
        sent = 0
        rows = await asyncio.to_thread(self.store.outbox.due, now)
        per_target = isinstance(self.sender, AppriseSender)
        for row in rows:
            delivered: set[int] = set(row.delivered)
            error: Exception | None = None
            if per_target:
                assert isinstance(self.sender, AppriseSender)
                for k in range(self.sender.target_count):
                    if k in delivered:
                        continue  # already accepted there: never sent twice to a working destination
                    try:
                        await self.sender.send_to(k, row.title, row.body, row.severity)
                        delivered.add(k)
                    except Exception as e:  # retried later, never raised into the bot
                        error = e
            else:
                try:
                    await self.sender.send(row.title, row.body, row.severity)
                except Exception as e:  # retried later, never raised into the bot
                    error = e
            if error is None:
                await asyncio.to_thread(self.store.outbox.sent, row.id)
                sent += 1
                continue
            attempts = row.attempts + 1
            give_up = attempts >= MAX_ATTEMPTS
            await asyncio.to_thread(
                functools.partial(
                    self.store.outbox.retry,
                    row.id,
                    attempts=attempts,
                    next_at=now + min(5.0 * 2**attempts, 900.0),
                    error=f"{type(error).__name__}: {error}",
                    give_up=give_up,
                    delivered=sorted(delivered),
                )
            )
            log.warning(
                "notification delivery failed",
                id=row.id,
                attempts=attempts,
                error=type(error).__name__,
                gave_up=give_up,
            )
            if isinstance(error, TimeoutError):
                break
        return sent
