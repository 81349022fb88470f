"""Frozen action types with deterministic idempotency keys.

An action's id is derived from what triggered it (venue, kind, route, asset and the observation it was
decided on) and its leg number, so the same trigger decided twice yields the same id, and the store's
unique key turns the second into a no-op. The id is 32 lowercase hex characters: it fits every venue's
client-id format (OKX 1-32 alphanumerics, Binance and Bybit up to 36) and is sent as the client id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class TransferKind(StrEnum):
    TOPUP = "topup"
    SWEEP = "sweep"


class IntentStatus(StrEnum):
    """The action lifecycle of SPEC.md."""

    PROPOSED = "proposed"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    UNKNOWN = "unknown"


OPEN_STATUSES = frozenset(
    {
        IntentStatus.PROPOSED,
        IntentStatus.PENDING_APPROVAL,
        IntentStatus.APPROVED,
        IntentStatus.SUBMITTED,
        IntentStatus.UNKNOWN,
    }
)
# statuses whose amount counts against a route's or the automatic daily budget
SPENT_STATUSES = frozenset(
    {IntentStatus.APPROVED, IntentStatus.SUBMITTED, IntentStatus.UNKNOWN, IntentStatus.CONFIRMED}
)


def canonical_json(obj: object) -> str:
    """Stable JSON: sorted keys, no spaces, Decimals and other objects as strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TransferAction:
    """A proposed collateral move along one configured route."""

    kind: TransferKind
    venue: str
    route: str
    source: str
    destination: str
    asset: str
    amount: Decimal
    usd: Decimal
    address: str | None
    trigger: str  # what was observed: the basis of the idempotency key
    leg: int
    reason: str
    utilization_before: float
    utilization_after: float

    @property
    def intent_id(self) -> str:
        """Deterministic id (also the venue client id) for this trigger and leg."""
        return _hex(f"{self.kind}|{self.venue}|{self.route}|{self.asset}|{self.trigger}|{self.leg}")[:32]

    @property
    def params_hash(self) -> str:
        """Hash of the exact move: an approval or a replayed key must match it."""
        return _hex(
            canonical_json(
                {
                    "route": self.route,
                    "source": self.source,
                    "destination": self.destination,
                    "asset": self.asset,
                    "amount": str(self.amount),
                    "address": self.address,
                }
            )
        )
