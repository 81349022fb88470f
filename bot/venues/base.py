"""The ports the engine talks to. The engine cannot tell a paper venue from a live one.

Error contract for `TransferPort.submit` and `OrderPort.place` (where "transfer" reads "order"):
  - returns a receipt          the venue accepted the transfer (it may still be pending);
  - raises TransferRefused     the venue refused it; nothing moved (OrderRefused for orders);
  - raises VenueUnavailable    the request never reached the venue (connection refused, outage); nothing moved;
  - raises UnknownOutcome      the request may have taken effect (timeout, 5xx, malformed answer): reconcile.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from bot.core.execution import Book
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
    created_at: float | None = (
        None  # set on lookups: where a venue takes no client id, history is searched from it
    )
    tag: str | None = None  # memo / tag for withdrawal networks that need one


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


class InstantVenuePort(VenuePort, Protocol):
    """A venue that answers at once (the paper venue): the bot reads it without a task or a deadline."""

    def snapshot_now(self) -> VenueSnapshot: ...


class InstantAccountPort(AccountPort, Protocol):
    def balances_now(self) -> AccountSnapshot: ...


class TransferPort(Protocol):
    async def submit(self, req: TransferRequest) -> TransferReceipt:
        """Send one transfer, carrying `req.client_id` so that a repeat is recognised by the venue."""
        ...

    async def lookup(self, req: TransferRequest) -> TransferReceipt | None:
        """Find a transfer by its client id (or, where the venue has none, by route, asset, amount and time)."""
        ...


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A market order, immediate-or-cancel: what the book cannot fill at once is cancelled by the venue."""

    client_id: str
    venue: str
    symbol: str
    side: str  # buy | sell
    qty: Decimal
    reduce_only: bool


@dataclass(frozen=True, slots=True)
class OrderReceipt:
    """What the venue says about an order. `done` False: the answer carried no final status (unknown)."""

    client_id: str
    venue_ref: str
    filled: Decimal
    avg_price: float
    fee: float  # in the instrument's settlement asset
    ts: float
    done: bool = True


class OrderPort(Protocol):
    async def order_book(self, venue: str, symbol: str) -> Book:
        """The book for `symbol`; raise VenueUnavailable when the venue does not answer."""
        ...

    async def place(self, req: OrderRequest) -> OrderReceipt:
        """Send one order carrying `req.client_id` as the client order id."""
        ...

    async def lookup_order(self, req: OrderRequest) -> OrderReceipt | None:
        """Find an order by its client order id; None when the venue does not (yet) show it."""
        ...
