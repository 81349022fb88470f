"""Small builders for pure-core tests: one or more venues, routes and accounts, as frozen data."""

from __future__ import annotations

from decimal import Decimal

from bot.core.actions import IntentStatus, TransferKind
from bot.core.approvals import ApprovalPolicy
from bot.core.fsm import VenueState
from bot.core.margin import MarginParams, Position, build_tiers
from bot.core.policy import Band, Regime, VenuePolicy
from bot.core.world import AccountSnapshot, IntentView, Policy, RouteSpec, VenueSnapshot, World

TIERS = build_tiers([(1_000_000, 0.005), (5_000_000, 0.01), (None, 0.025)])
NOW = 1_770_000_000.0
VPOL = VenuePolicy(0.80, 0.50, 0.75, Band(0.20, 0.30, 0.60), Band(0.40, 0.50, 0.80))


def route(
    name: str,
    *,
    source: str = "buffer",
    venue: str = "v1",
    bucket: str = "buffer",
    kind: TransferKind = TransferKind.TOPUP,
    max_amount: str = "2000000",
    daily_limit: str = "5000000",
    fee: str = "0",
    min_amount: str = "1000",
    step: str = "0.01",
    asset: str = "USDT",
) -> RouteSpec:
    topup = kind is TransferKind.TOPUP
    return RouteSpec(
        name=name,
        kind=kind,
        source=source if topup else venue,
        destination=venue if topup else source,
        venue=venue,
        account=source,
        bucket=bucket,
        asset=asset,
        method="internal",
        address=None,
        network=None,
        min_amount=Decimal(min_amount),
        max_amount=Decimal(max_amount),
        daily_limit=Decimal(daily_limit),
        fee=Decimal(fee),
        step=Decimal(step),
        settle_seconds=60.0,
    )


def snapshot(
    venue: str = "v1",
    *,
    usdt: float = 1_500_000.0,
    qty: float = -150.0,
    price: float = 60_000.0,
    entry: float = 60_000.0,
    ts: float = NOW,
    im_rate: float = 0.10,
) -> VenueSnapshot:
    pos = (Position("BTC/USDT:USDT", "BTC", qty, entry),) if qty else ()
    return VenueSnapshot(
        venue, ts, {"USDT": usdt}, pos, {"BTC": price}, {}, MarginParams("cross", TIERS, im_rate)
    )


def policy(
    routes: tuple[RouteSpec, ...],
    *,
    venues: tuple[str, ...] = ("v1",),
    auto: str = "500000",
    daily_auto: str = "2500000",
) -> Policy:
    return Policy(
        venues=dict.fromkeys(venues, VPOL),
        routes=routes,
        approvals=ApprovalPolicy(Decimal(auto), Decimal(daily_auto), ("alice", "bob", "carol"), 2),
        max_data_age_seconds=30.0,
    )


def world(
    snaps: dict[str, VenueSnapshot | None],
    *,
    balances: dict[str, dict[str, Decimal]] | None = None,
    buckets: dict[str, str] | None = None,
    intents: tuple[IntentView, ...] = (),
    now: float = NOW,
    regime: Regime = Regime.NORMAL,
    states: dict[str, VenueState] | None = None,
) -> World:
    balances = balances or {"buffer": {"USDT": Decimal(50_000_000)}}
    buckets = buckets or {}
    return World(
        now=now,
        regime=regime,
        snapshots=snaps,
        states=states or dict.fromkeys(snaps, VenueState.HEALTHY),
        accounts={a: AccountSnapshot(a, buckets.get(a, "buffer"), now, b) for a, b in balances.items()},
        intents=intents,
    )


def intent(
    route_name: str,
    amount: str,
    *,
    status: IntentStatus = IntentStatus.SUBMITTED,
    created_at: float = NOW,
    venue: str = "v1",
    kind: TransferKind = TransferKind.TOPUP,
    usd: str | None = None,
    automatic: bool = True,
    ident: str = "i1",
) -> IntentView:
    return IntentView(
        id=ident,
        kind=kind,
        venue=venue,
        route=route_name,
        asset="USDT",
        amount=Decimal(amount),
        fee=Decimal(0),
        usd=Decimal(usd or amount),
        status=status,
        created_at=created_at,
        automatic=automatic,
    )
