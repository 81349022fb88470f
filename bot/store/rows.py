"""What the store reads and writes, as frozen values: one typed row per table, and the pieces a write carries.

Reads return these rows, never the database's own row objects: a status is its enum, a JSON list a tuple,
money a Decimal. Each row's `of` builds it from a result row of its table; nothing here queries the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.core.actions import IntentStatus, TransferKind
from bot.core.hedge import OrderReason, OrderStatus

# an audit event to append with a write: (kind, venue, data)
Event = tuple[str, str | None, dict[str, Any]]


# --- what a write carries ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Note:
    """A notification to enqueue in the outbox with the write it belongs to."""

    severity: str
    kind: str
    title: str
    body: str
    venue: str | None = None
    asset: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalSpec:
    """The approval request recorded with an intent that needs people."""

    quorum: int
    eligible: tuple[str, ...]
    reason: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class VenueFigures:
    """A venue's last figures, for `marginbot status` (telemetry, not audited)."""

    venue: str
    state: str
    since: float
    observed_at: float | None
    equity: float | None
    im: float | None
    mm: float | None
    utilization: float | None
    mm_ratio: float | None


@dataclass(frozen=True, slots=True)
class LedgerUpdate:
    """A hedge program's ledger to commit with an order's result (or alone)."""

    name: str
    state: str  # JSON
    net_delta: float | None
    target: float
    band: float
    loss: float | None
    stopped: bool
    stop_reason: str


# what a recorded fill changes besides the order: the programs' ledgers and the venue's expected positions
# (canonical JSON). Called only once the order's compare-and-set has succeeded, inside its transaction, so a
# fill that lost its race is never counted.
FillEffects = Callable[[], tuple[Sequence[LedgerUpdate], str | None]]


# --- what a read returns -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IntentRow:
    """A transfer intent as stored, every column."""

    id: str
    kind: TransferKind
    venue: str
    route: str
    source: str
    destination: str
    asset: str
    amount: Decimal
    fee: Decimal
    usd: Decimal
    address: str | None
    params_hash: str
    status: IntentStatus
    automatic: bool
    break_glass: bool
    created_at: float
    updated_at: float
    sending_at: float | None
    submitted_at: float | None
    settled_at: float | None
    venue_ref: str | None
    reason: str
    verdict: str
    utilization_before: float | None
    utilization_after: float | None
    error: str | None
    config_hash: str | None

    @classmethod
    def of(cls, r: Any) -> IntentRow:
        m = dict(r._mapping)
        m["kind"], m["status"] = TransferKind(m["kind"]), IntentStatus(m["status"])
        m["automatic"], m["break_glass"] = bool(m["automatic"]), bool(m["break_glass"])
        return cls(**m)


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    """An approval request as stored; `eligible` and `approvers` in their recorded order."""

    id: str
    intent_id: str
    params_hash: str
    status: str  # pending | approved | rejected | expired
    quorum: int
    eligible: tuple[str, ...]
    approvers: tuple[str, ...]
    reason: str
    created_at: float
    expires_at: float
    decided_at: float | None

    @classmethod
    def of(cls, r: Any) -> ApprovalRow:
        m = dict(r._mapping)
        m["eligible"], m["approvers"] = tuple(json.loads(m["eligible"])), tuple(json.loads(m["approvers"]))
        return cls(**m)


@dataclass(frozen=True, slots=True)
class OrderRow:
    """An order intent as stored, every column (`program` is None for a de-risk order)."""

    id: str
    program: str | None
    venue: str
    symbol: str
    side: str
    qty: Decimal
    reduce_only: bool
    reason: OrderReason
    status: OrderStatus
    filled: Decimal | None
    avg_price: float | None
    fee: float | None
    est_price: float | None
    est_slippage_bps: float | None
    params_hash: str
    created_at: float
    updated_at: float
    venue_ref: str | None
    error: str | None
    note: str
    config_hash: str | None

    @classmethod
    def of(cls, r: Any) -> OrderRow:
        m = dict(r._mapping)
        m["reason"], m["status"] = OrderReason(m["reason"]), OrderStatus(m["status"])
        m["reduce_only"] = bool(m["reduce_only"])
        return cls(**m)


@dataclass(frozen=True, slots=True)
class HedgeRow:
    """A hedge program's stored ledger (JSON) and the summary `status` shows."""

    name: str
    state: str
    net_delta: float | None
    target: float | None
    band: float | None
    loss: float | None  # running cost to date, USD
    stopped: bool
    stop_reason: str
    updated_at: float

    @classmethod
    def of(cls, r: Any) -> HedgeRow:
        m = dict(r._mapping)
        m["stopped"] = bool(m["stopped"])
        return cls(**m)


@dataclass(frozen=True, slots=True)
class VenueStatusRow:
    """A venue's state, last figures and last positions seen (canonical JSON)."""

    venue: str
    state: str
    since: float
    observed_at: float | None
    equity: float | None
    im: float | None
    mm: float | None
    utilization: float | None
    mm_ratio: float | None
    positions: str | None
    updated_at: float

    @classmethod
    def of(cls, r: Any) -> VenueStatusRow:
        return cls(**r._mapping)


@dataclass(frozen=True, slots=True)
class NotificationRow:
    """An outbox entry; `delivered` are the indexes of the notify URLs that already accepted it."""

    id: int
    created_at: float
    severity: str
    kind: str
    venue: str | None
    asset: str | None
    title: str
    body: str
    status: str  # pending | sent | failed | simulated
    attempts: int
    next_attempt_at: float
    delivered: tuple[int, ...]
    last_error: str | None

    @classmethod
    def of(cls, r: Any) -> NotificationRow:
        m = dict(r._mapping)
        m["delivered"] = tuple(json.loads(m["delivered"] or "[]"))
        return cls(**m)
