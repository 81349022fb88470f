"""The ports the engine talks to. The engine cannot tell a paper venue from a live one.

Error contract for `TransferPort.submit`:
  - returns a receipt          the venue accepted the transfer (it may still be pending);
  - raises TransferRefused     the venue refused it; nothing moved;
  - raises VenueUnavailable    the request never reached the venue (connection refused, outage); nothing moved;
  - raises UnknownOutcome      the request may have taken effect (timeout, 5xx, malformed answer): reconcile.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from bot.core.world import AccountSnapshot, VenueSnapshot


class TransferState(StrEnum):
    PENDING = "pending"
    SETTLED = "settled"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TransferRequest:
    client_id: str
    route: str
    source: str
    destination: str
    asset: str
    amount: Decimal
    method: str
    network: str | None
    address: str | None
    fee: Decimal
    settle_seconds: float


@dataclass(frozen=True, slots=True)
class TransferReceipt:
    """What the venue says about a transfer. `state` None: the answer carried no usable status (unknown)."""

    client_id: str
    venue_ref: str
    state: TransferState | None
    amount: Decimal
    ts: float
    settled_at: float | None = None


class VenuePort(Protocol):
    name: str

    async def snapshot(self) -> VenueSnapshot:
        """Read balances, positions and marks; raise VenueUnavailable when the venue does not answer."""
        ...


class AccountPort(Protocol):
    name: str

    async def balances(self) -> AccountSnapshot:
        """Read a treasury account's balances; raise VenueUnavailable when it does not answer."""
        ...


class TransferPort(Protocol):
    async def submit(self, req: TransferRequest) -> TransferReceipt:
        """Send one transfer, carrying `req.client_id` so that a repeat is recognised by the venue."""
        ...

    async def lookup(self, req: TransferRequest) -> TransferReceipt | None:
        """Find a transfer by its client id (or, where the venue has none, by route, asset, amount and time)."""
        ...
