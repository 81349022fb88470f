"""The frozen inputs of `decide`: what was observed, what is in flight, and the compiled policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from bot.core.actions import IntentStatus, TransferKind
from bot.core.approvals import ApprovalPolicy
from bot.core.fsm import VenueState
from bot.core.margin import Figures, MarginParams, Position
from bot.core.policy import Regime, VenuePolicy

DAY_SECONDS = 86_400.0


@dataclass(frozen=True, init=False)
class VenueSnapshot:
    """One venue account as read at `ts` (epoch seconds): collateral, positions, marks, margin rules.

    Frozen; made once per venue per cycle, so its `__init__` fills the instance dict directly (the generated
    one of a frozen dataclass calls `object.__setattr__` per field: ≈ 2 µs more per snapshot).
    """

    venue: str
    ts: float
    collateral: Mapping[str, float]
    positions: tuple[Position, ...]
    prices: Mapping[str, float]
    haircuts: Mapping[str, float]
    params: MarginParams
    reported: Figures | None = None  # the venue's own figures, where it reports them (what it liquidates on)
    funding: Mapping[str, float] = field(default_factory=dict)  # symbol -> funding rate per 8 h
    own: Figures | None = None  # a live venue: our own computation beside `reported`, for the cross-check

    def __init__(  # noqa: PLR0917 — the fields, in order, as the dataclass takes them
        self,
        venue: str,
        ts: float,
        collateral: Mapping[str, float],
        positions: tuple[Position, ...],
        prices: Mapping[str, float],
        haircuts: Mapping[str, float],
        params: MarginParams,
        reported: Figures | None = None,
        funding: Mapping[str, float] | None = None,
        own: Figures | None = None,
    ) -> None:
        d = self.__dict__
        d["venue"] = venue
        d["ts"] = ts
        d["collateral"] = collateral
        d["positions"] = positions
        d["prices"] = prices
        d["haircuts"] = haircuts
        d["params"] = params
        d["reported"] = reported
        d["funding"] = {} if funding is None else funding
        d["own"] = own


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """A treasury account's balances as read at `ts`."""

    account: str
    bucket: str
    ts: float
    balances: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A configured transfer route, with the ends resolved: `venue` is the venue end, `bucket` the account's."""

    name: str
    kind: TransferKind
    source: str
    destination: str
    venue: str
    account: str
    bucket: str
    asset: str
    method: str
    address: str | None
    network: str | None
    min_amount: Decimal
    max_amount: Decimal
    daily_limit: Decimal
    fee: Decimal
    step: Decimal
    settle_seconds: float
    tag: str | None = None
    exclusive: bool = False  # the sending venue takes no client id: one open intent at a time on this route


@dataclass(frozen=True, slots=True)
class IntentView:
    """A transfer intent as `decide` needs to see it (open, or recent enough to count against budgets)."""

    id: str
    kind: TransferKind
    venue: str
    route: str
    asset: str
    amount: Decimal
    fee: Decimal
    usd: Decimal
    status: IntentStatus
    created_at: float
    automatic: bool
    settled_at: float | None = None
    acknowledged: bool = False  # the venue answered with its own reference for it at some point
    sending: bool = False  # a person-approved intent whose venue call was started
    break_glass: bool = False  # sent before approval because the venue was at its de-risk level


@dataclass(frozen=True, slots=True)
class Policy:
    """The config compiled for the core: everything `decide` needs besides the observations."""

    venues: Mapping[str, VenuePolicy]
    routes: tuple[RouteSpec, ...]
    approvals: ApprovalPolicy
    max_data_age_seconds: float
    derisk_wait_seconds: float = 60.0
    bucket_rank: Mapping[str, int] = field(
        default_factory=lambda: {"buffer": 0, "trading": 1, "emergency": 2}
    )


@dataclass(frozen=True, slots=True)
class World:
    """Everything observed this cycle. `snapshots[v]` is None when venue v did not answer."""

    now: float
    regime: Regime
    snapshots: Mapping[str, VenueSnapshot | None]
    states: Mapping[str, VenueState]
    accounts: Mapping[str, AccountSnapshot | None]
    intents: tuple[IntentView, ...]
    halted: bool = False  # the kill switch: nothing moves anywhere
    halted_venues: frozenset[str] = (
        frozenset()
    )  # venues halted one by one (e.g. a liquidation found at start)
    moves_allowed: bool = True  # False until every open intent is reconciled after a start (the startup gate)
    reserved_im: Mapping[str, float] = field(default_factory=dict)  # venue -> IM a waiting hedge needs (USD)
