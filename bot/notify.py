"""Notifications: written to an outbox with the action they describe, delivered after commit through apprise.

Delivery is off the decision path: a notifier that raises or hangs is bounded by a timeout and retried
with backoff, and never delays money movement. apprise is imported only here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import apprise
import structlog

from bot.store.repo import Note, Store

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
    """Sends through apprise to every configured URL; raises when no URL accepted the message."""

    def __init__(self, urls: list[str], timeout: float) -> None:
        self._ap = apprise.Apprise()
        for url in urls:
            if not self._ap.add(url):
                raise ValueError(
                    f"notify.urls: apprise does not understand the URL scheme of {redact_url(url)}"
                )
        self._timeout = timeout

    async def send(self, title: str, body: str, severity: str) -> None:
        ok = await asyncio.wait_for(
            asyncio.to_thread(self._ap.notify, body=body, title=title, notify_type=_TYPES[severity]),
            timeout=self._timeout,
        )
        if not ok:
            raise RuntimeError("apprise reported a delivery failure")


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
        sent = 0
        rows = await asyncio.to_thread(self.store.due_notifications, now)
        for row in rows:
            try:
                await self.sender.send(row["title"], row["body"], row["severity"])
            except Exception as e:  # any notifier failure is retried later, never raised into the bot
                attempts = row["attempts"] + 1
                delay = min(5.0 * 2**attempts, 900.0)
                give_up = attempts >= MAX_ATTEMPTS
                await asyncio.to_thread(
                    self.store.notification_retry,
                    row["id"],
                    attempts,
                    now + delay,
                    f"{type(e).__name__}: {e}",
                    give_up,
                )
                log.warning(
                    "notification delivery failed",
                    id=row["id"],
                    attempts=attempts,
                    error=type(e).__name__,
                    gave_up=give_up,
                )
                continue
            await asyncio.to_thread(self.store.notification_sent, row["id"])
            sent += 1
        return sent
