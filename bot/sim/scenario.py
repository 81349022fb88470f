"""The scenario file (TOML) for `marginbot simulate`: a seeded market, a clock, and events at step indices."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, TypeAdapter, ValidationError, model_validator

from bot.errors import NotBuilt, ScenarioError
from bot.settings import SYMBOL_RE, Asset, Model, Name, Settings, format_validation_error, read_toml

Step = Annotated[int, Field(ge=0)]


class PriceSpec(Model):
    start: Annotated[float, Field(gt=0)] | None = None
    vol_annual: Annotated[float, Field(ge=0, le=10)] = 0.0
    drift_annual: Annotated[float, Field(ge=-100, le=100)] = 0.0  # a trend day is ~±30
    path: list[Annotated[float, Field(gt=0)]] | None = None

    @model_validator(mode="after")
    def _source(self) -> PriceSpec:
        if self.start is None and not self.path:
            raise ValueError("give `start` (with vol_annual / drift_annual) or a non-empty `path`")
        return self


class _Event(Model):
    at: Step


class PriceShock(_Event):
    type: Literal["price_shock"]
    asset: Asset
    pct: Annotated[float, Field(gt=-1, le=10)]


class VolEvent(_Event):
    type: Literal["vol"]
    asset: Asset
    vol_annual: Annotated[float, Field(ge=0, le=10)]


class RegimeEvent(_Event):
    type: Literal["regime"]
    value: Literal["normal", "high_vol"]


class FundingEvent(_Event):
    type: Literal["funding"]
    venue: Name
    symbol: str
    rate_8h: Annotated[float, Field(ge=-0.05, le=0.05)]


class MarginRates(_Event):
    type: Literal["margin_rates"]
    venue: Name
    factor: Annotated[float, Field(gt=0, le=100)]


class HaircutEvent(_Event):
    type: Literal["haircut"]
    venue: Name
    asset: Asset
    value: Annotated[float, Field(ge=0, lt=1)]


class VenueOutage(_Event):
    type: Literal["venue_outage"]
    venue: Name
    steps: Annotated[int, Field(ge=1)]


class StaleData(_Event):
    type: Literal["stale_data"]
    venue: Name
    steps: Annotated[int, Field(ge=1)]


class TransferFreeze(_Event):
    type: Literal["transfer_freeze"]
    venue_or_account: Name
    steps: Annotated[int, Field(ge=1)]


class Liquidity(_Event):
    type: Literal["liquidity"]
    venue: Name
    symbol: str
    depth_factor: Annotated[float, Field(gt=0)]


class TimeoutAfterEffect(_Event):
    type: Literal["timeout_after_effect"]
    route: Name
    count: Annotated[int, Field(ge=1)] = 1


class ServerError(_Event):
    """The next `count` transfer calls on `route` answer 5xx before any effect: the outcome looks unknown."""

    type: Literal["server_error"]
    route: Name
    count: Annotated[int, Field(ge=1)] = 1


class MalformedAnswer(_Event):
    """The next `count` transfers on `route` happen, but the answer carries no status."""

    type: Literal["malformed_answer"]
    route: Name
    count: Annotated[int, Field(ge=1)] = 1


class Crash(_Event):
    type: Literal["crash"]


class Approve(_Event):
    type: Literal["approve"]
    approver: Name


class Reject(_Event):
    type: Literal["reject"]
    approver: Name
    reason: str = ""


class Halt(_Event):
    type: Literal["halt"]
    by: Name
    reason: str


class Resume(_Event):
    type: Literal["resume"]
    by: Name


class ExposureEvent(_Event):
    type: Literal["exposure"]
    hedge: Name
    qty: float


Event = Annotated[
    PriceShock
    | VolEvent
    | RegimeEvent
    | FundingEvent
    | MarginRates
    | HaircutEvent
    | VenueOutage
    | StaleData
    | TransferFreeze
    | Liquidity
    | TimeoutAfterEffect
    | ServerError
    | MalformedAnswer
    | Crash
    | Approve
    | Reject
    | Halt
    | Resume
    | ExposureEvent,
    Field(discriminator="type"),
]

NOT_BUILT: dict[str, str] = {}  # event types this release refuses (none at present)


class Scenario(Model):
    name: Annotated[str, Field(min_length=1)]
    start: AwareDatetime
    step_seconds: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    steps: Annotated[int, Field(ge=1, le=10_000_000)]
    seed: int = 0
    prices: dict[Asset, PriceSpec] = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list)

    @model_validator(mode="after")
    def _events_in_range(self) -> Scenario:
        bad = [
            f"events[{i}].at: step {e.at} is outside 0..{self.steps - 1}"
            for i, e in enumerate(self.events)
            if e.at >= self.steps
        ]
        bad += [
            f"prices.{a}.path: {len(p.path)} prices for {self.steps} steps (one price per step)"
            for a, p in self.prices.items()
            if p.path and len(p.path) < self.steps
        ]
        if bad:
            raise ValueError("\n".join(bad))
        return self


def check_against(sc: Scenario, s: Settings) -> None:
    """Cross-check the scenario with the config: names must exist; unsupported events are refused up front."""
    assets = set(s.market.prices) | set(sc.prices)
    problems: list[str] = []
    for i, e in enumerate(sc.events):
        problems += _event_problems(i, e, s, assets)
    problems += _price_problems(s, assets)
    if problems:
        raise ScenarioError(problems)
    missing = [
        f"events[{i}] ({e.type}): {NOT_BUILT[e.type]} is not available in this release"
        for i, e in enumerate(sc.events)
        if e.type in NOT_BUILT
    ]
    if missing:
        raise NotBuilt("; ".join(missing))


def _event_problems(i: int, e: Event, s: Settings, assets: set[str]) -> list[str]:
    """What event `i` names that the config lacks."""
    venues = {v.name for v in s.venues}
    problems = []
    venue = getattr(e, "venue", None)
    if venue is not None and venue not in venues:
        problems.append(f"events[{i}].venue: no venue named {venue!r} in the config")
    asset = getattr(e, "asset", None)
    if isinstance(e, (PriceShock, VolEvent)) and asset not in assets:
        problems.append(f"events[{i}].asset: no price for {asset!r} (add [prices.{asset}] or market.prices)")
    if isinstance(e, TransferFreeze) and e.venue_or_account not in venues | {a.name for a in s.accounts}:
        problems.append(f"events[{i}].venue_or_account: no venue or account named {e.venue_or_account!r}")
    if isinstance(e, (TimeoutAfterEffect, ServerError, MalformedAnswer)) and e.route not in {
        r.name for r in s.routes
    }:
        problems.append(f"events[{i}].route: no route named {e.route!r}")
    if isinstance(e, ExposureEvent) and e.hedge not in {h.name for h in s.hedges}:
        problems.append(f"events[{i}].hedge: no hedge program named {e.hedge!r} in the config")
    if isinstance(e, (Liquidity, FundingEvent)) and not SYMBOL_RE.match(e.symbol):
        problems.append(f"events[{i}].symbol: {e.symbol!r} is not BASE/QUOTE:SETTLE")
    if isinstance(e, (Approve, Reject)) and e.approver not in s.approvals.approvers:
        problems.append(f"events[{i}].approver: {e.approver!r} is not in approvals.approvers")
    return problems


def _price_problems(s: Settings, assets: set[str]) -> list[str]:
    """Assets the paper world needs that neither the scenario nor the config prices."""
    return [
        f"prices.{asset}: no price for {asset}, which {', '.join(where[:2])}{', …' if len(where) > 2 else ''}"
        f" need{'s' if len(where) == 1 else ''} (add [prices.{asset}] here or market.prices to the config)"
        for asset, where in sorted(s.paper_price_needs().items())
        if asset not in assets
    ]


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    data: dict[str, Any] = read_toml(p, "scenario", ScenarioError)
    if isinstance(data.get("start"), datetime):
        data["start"] = data["start"].isoformat()
    try:
        return TypeAdapter(Scenario).validate_python(data)
    except ValidationError as e:
        raise ScenarioError(format_validation_error(e, data)) from None
