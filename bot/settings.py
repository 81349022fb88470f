"""The config schema: frozen pydantic-settings models, unknown keys rejected, cross-checked at load.

Loaded from TOML; every key may be overridden by an environment variable `MARGINBOT_<SECTION>__<KEY>`
(for example `MARGINBOT_BOT__CYCLE_SECONDS=2`); secrets come only from the environment or a secrets
directory (`MARGINBOT_SECRETS_DIR`), never from the TOML file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from bot.core.actions import canonical_json
from bot.core.assets import STABLES as STABLES  # noqa: PLC0414 -- an explicit re-export: adapters read it here
from bot.errors import BadInput, ConfigError

ENV_PREFIX = "MARGINBOT_"
_STRICT = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)

Ratio = Annotated[float, Field(ge=0.0, lt=1.0)]
PositiveRatio = Annotated[float, Field(gt=0.0, le=1.0)]
Amount = Annotated[Decimal, Field(ge=0, le=Decimal("1e15"))]
PositiveAmount = Annotated[Decimal, Field(gt=0, le=Decimal("1e15"))]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Asset = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Z0-9]+$")]
SYMBOL_RE = re.compile(r"^([A-Z0-9]+)/([A-Z0-9]+):([A-Z0-9]+)$")


def _takes_bool_or_model(annotation: Any) -> bool:
    """Whether a field's type names `bool` (or a model, which checks its own fields) anywhere inside it."""
    if annotation is bool or annotation is Any:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_takes_bool_or_model(a) for a in get_args(annotation))


def _holds_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, list):
        return any(_holds_bool(x) for x in value)
    if isinstance(value, dict):
        return any(_holds_bool(x) for x in value.values())
    return False


class NotABool:
    """Stands in for a boolean given where a number or text belongs, so that validation names its key."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


class Model(BaseModel):
    model_config = _STRICT

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, data: Any) -> Any:
        """`true` is not 1: a boolean where a number or text is expected is refused, never coerced."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key, value in data.items():
            field = cls.model_fields.get(key) or next(
                (f for f in cls.model_fields.values() if f.alias == key), None
            )
            if field is not None and _holds_bool(value) and not _takes_bool_or_model(field.annotation):
                out[key] = NotABool(value)
        return out


class BotSection(Model):
    database_url: str = "sqlite:///marginbot.db"
    cycle_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    max_data_age_seconds: Annotated[float, Field(gt=0, le=86400)] = 30.0
    regime: Literal["normal", "high_vol"] = "normal"
    desk: Name = "treasury"
    reconcile_lag_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] = 120.0
    # a venue or account read that takes longer is cut off: that venue is stale this cycle, the others go on
    read_deadline_seconds: Annotated[float, Field(gt=0, le=600)] | None = None

    @property
    def read_deadline(self) -> float:
        """The deadline in force: as set, else the cycle (at least 1 s, at most half the data age limit)."""
        if self.read_deadline_seconds is not None:
            return self.read_deadline_seconds
        return max(1.0, min(self.cycle_seconds, self.max_data_age_seconds / 2))


class BandModel(Model):
    min: Ratio
    target: Ratio
    max: Ratio

    @model_validator(mode="after")
    def _ordered(self) -> BandModel:
        if not self.min < self.target < self.max < 1:
            raise ValueError(
                f"band must satisfy min < target < max < 1, got {self.min} / {self.target} / {self.max}"
            )
        return self


class BuffersSection(Model):
    alert_utilization: PositiveRatio = 0.80
    alert_mm_ratio: PositiveRatio = 0.50
    derisk_mm_ratio: PositiveRatio = 0.75
    derisk_wait_seconds: Annotated[float, Field(ge=0, le=86400)] = 60.0
    normal: BandModel = BandModel(min=0.20, target=0.30, max=0.60)
    high_vol: BandModel = BandModel(min=0.40, target=0.50, max=0.80)

    @model_validator(mode="after")
    def _levels(self) -> BuffersSection:
        if not self.alert_mm_ratio < self.derisk_mm_ratio < 1:
            raise ValueError("alert_mm_ratio < derisk_mm_ratio < 1 must hold")
        return self


class NotifySection(Model):
    urls: list[str] = Field(default_factory=list)
    min_severity: Literal["info", "warning", "critical"] = "info"
    repeat_minutes: Annotated[float, Field(gt=0)] = 30.0
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0


class ApprovalRuleModel(Model):
    bucket: Literal["trading", "buffer", "emergency"] | None = None
    route: Name | None = None
    quorum: Annotated[int, Field(ge=1)]
    approvers: list[Name]

    @model_validator(mode="after")
    def _one_target(self) -> ApprovalRuleModel:
        if (self.bucket is None) == (self.route is None):
            raise ValueError("a rule names exactly one of bucket or route")
        if self.quorum > len(set(self.approvers)):
            raise ValueError(
                f"quorum {self.quorum} exceeds the {len(set(self.approvers))} distinct approvers"
            )
        return self


class ApprovalsSection(Model):
    auto_limit_usd: Amount = Decimal(250_000)
    daily_auto_limit_usd: Amount = Decimal(1_000_000)
    approvers: list[Name] = Field(default_factory=list)
    quorum: Annotated[int, Field(ge=1)] = 2
    expires_minutes: Annotated[float, Field(gt=0)] = 30.0
    break_glass_usd: Amount | None = None
    approver_secrets: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(
        default_factory=dict
    )
    rules: list[ApprovalRuleModel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _quorum(self) -> ApprovalsSection:
        if self.approvers and self.quorum > len(set(self.approvers)):
            raise ValueError(
                f"quorum {self.quorum} exceeds the {len(set(self.approvers))} distinct approvers"
            )
        if len(set(self.approvers)) != len(self.approvers):
            raise ValueError("approvers are listed more than once")
        unknown = sorted(set(self.approver_secrets) - set(self.approvers))
        if unknown:
            raise ValueError(f"approver_secrets names unknown approvers: {', '.join(unknown)}")
        for rule in self.rules:
            stray = sorted(set(rule.approvers) - set(self.approvers))
            if stray:
                raise ValueError(f"a rule names approvers not in approvals.approvers: {', '.join(stray)}")
        return self


class TierModel(Model):
    up_to: PositiveAmount | None = None
    rate: PositiveRatio


class PositionModel(Model):
    symbol: Annotated[str, Field(pattern=SYMBOL_RE.pattern)]
    qty: Annotated[float, Field(ge=-1e9, le=1e9)]
    entry: Annotated[float, Field(gt=0, le=1e12)]

    @property
    def base(self) -> str:
        m = SYMBOL_RE.match(self.symbol)
        assert m is not None
        return m.group(1)

    @property
    def settle(self) -> str:
        m = SYMBOL_RE.match(self.symbol)
        assert m is not None
        return m.group(3)


class MarginModelKeys(Model):
    """The margin model: how a paper venue margins, and how the bot projects a live venue's margin."""

    haircuts: dict[Asset, Ratio] = Field(default_factory=dict)
    mm_tiers: list[TierModel] = Field(default_factory=lambda: [TierModel(rate=0.005)], min_length=1)
    im_rate: PositiveRatio = 0.10
    im_multiplier: Annotated[float, Field(ge=1.0, le=10.0)] = 1.3
    pm_min_rate: Ratio = 0.01
    pm_shocks: list[PositiveRatio] = Field(default_factory=lambda: [0.05, 0.10, 0.15], min_length=1)

    @model_validator(mode="after")
    def _tiers(self) -> MarginModelKeys:
        bounds = [t.up_to for t in self.mm_tiers]
        if any(b is None for b in bounds[:-1]):
            raise ValueError("mm_tiers: only the last tier may omit up_to")
        finite = [b for b in bounds if b is not None]
        if finite != sorted(finite) or len(set(finite)) != len(finite):
            raise ValueError("mm_tiers: up_to must ascend strictly")
        rates = [t.rate for t in self.mm_tiers]
        if rates != sorted(rates):
            raise ValueError("mm_tiers: rates must not decrease from tier to tier")
        return self


LIVE_EXCHANGES = ("binance", "okx", "bybit", "deribit")


class LiveVenueModel(MarginModelKeys):
    """`[venues.live]`: how a ccxt venue is reached, and the model the bot cross-checks its figures with."""

    credentials: Name | None = (
        None  # the key set's name (env MARGINBOT_KEY_<NAME>_API_KEY …); default: the venue
    )
    wallet: Annotated[str, Field(min_length=1, max_length=32)] | None = (
        None  # ccxt account type for transfers
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    crosscheck_tolerance: PositiveRatio = 0.05  # |venue's figure − ours| beyond this (utilization, m) alerts
    symbols: list[Annotated[str, Field(pattern=SYMBOL_RE.pattern)]] = Field(default_factory=list)


class LiveAccountModel(Model):
    """`[accounts.live]`: how a ccxt treasury account is reached."""

    credentials: Name | None = None
    wallet: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0


class PaperVenueModel(MarginModelKeys):
    collateral: dict[Asset, Amount] = Field(default_factory=dict)
    positions: list[PositionModel] = Field(default_factory=list)
    funding_rate_8h: Annotated[float, Field(ge=-0.05, le=0.05)] = 0.0001
    taker_fee_bps: Annotated[float, Field(ge=0, le=100)] = 5.0
    spread_bps: Annotated[float, Field(ge=0, le=1000)] = 1.0
    book_levels: Annotated[int, Field(ge=1, le=1000)] = 20
    book_step_bps: Annotated[float, Field(gt=0, le=1000)] = 2.0
    book_level_usd: PositiveAmount = Decimal(200_000)


class VenueModel(Model):
    name: Name
    kind: Literal["paper", "ccxt"] = "paper"
    exchange: Annotated[str, Field(pattern=r"^[a-z0-9]{2,32}$")] | None = None
    margin_model: Literal["cross", "portfolio"] = "cross"
    sandbox: bool = False
    api_url: str | None = None
    alert_utilization: PositiveRatio | None = None
    alert_mm_ratio: PositiveRatio | None = None
    derisk_mm_ratio: PositiveRatio | None = None
    normal: BandModel | None = None
    high_vol: BandModel | None = None
    min_equity_usd: Amount = Decimal(0)
    paper: PaperVenueModel | None = None
    live: LiveVenueModel | None = None

    @model_validator(mode="after")
    def _kind(self) -> VenueModel:
        if self.kind == "paper" and self.paper is None:
            raise ValueError("a paper venue needs a [venues.paper] table")
        if self.kind == "paper" and (self.live is not None or self.api_url or self.sandbox):
            # `exchange` may name the exchange a paper venue stands for (SPEC's example does; `rehearse`
            # serves the venue as that exchange)
            raise ValueError('sandbox, api_url and [venues.live] are for kind = "ccxt"')
        if self.kind == "ccxt":
            _check_live(self.exchange, self.api_url)
            if self.paper is not None:
                raise ValueError(
                    "a ccxt venue takes no [venues.paper] table (its figures come from the exchange)"
                )
        return self

    @property
    def live_keys(self) -> LiveVenueModel:
        return self.live or LiveVenueModel()

    @property
    def credentials(self) -> str:
        return self.live_keys.credentials or self.name


def _check_live(exchange: str | None, api_url: str | None) -> None:
    if not exchange:
        raise ValueError("a ccxt venue or account needs `exchange` (a ccxt exchange id)")
    if exchange not in LIVE_EXCHANGES:
        raise ValueError(f"exchange {exchange!r} is not supported; supported: {', '.join(LIVE_EXCHANGES)}")
    if api_url is not None and not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", api_url):
        raise ValueError(f"api_url {api_url!r} is not an http(s) URL")


class AccountModel(Model):
    name: Name
    bucket: Literal["trading", "buffer", "emergency"]
    owner: Annotated[str, Field(min_length=1)]
    kind: Literal["paper", "ccxt"] = "paper"
    exchange: str | None = None
    sandbox: bool = False
    api_url: str | None = None
    balances: dict[Asset, Amount] = Field(default_factory=dict)
    live: LiveAccountModel | None = None

    @model_validator(mode="after")
    def _kind(self) -> AccountModel:
        if self.kind == "ccxt":
            _check_live(self.exchange, self.api_url)
            if self.balances:
                raise ValueError("a ccxt account takes no `balances` (they are read from the exchange)")
        elif self.live is not None or self.exchange or self.api_url or self.sandbox:
            raise ValueError('exchange, sandbox, api_url and [accounts.live] are for kind = "ccxt"')
        return self

    @property
    def credentials(self) -> str:
        return (self.live.credentials if self.live else None) or self.name


class RouteModel(Model):
    name: Name
    from_: Name = Field(alias="from")
    to: Name
    asset: Asset
    method: Literal["internal", "withdrawal"]
    network: str | None = None
    address: str | None = None
    tag: str | None = None
    min_amount: Amount = Decimal(0)
    max_amount: PositiveAmount
    daily_limit: PositiveAmount
    fee: Amount = Decimal(0)
    settle_seconds: Annotated[float, Field(ge=0, le=7 * 86400)] = 60.0
    step: PositiveAmount = Decimal("0.01")

    @model_validator(mode="after")
    def _limits(self) -> RouteModel:
        if self.method == "withdrawal" and not self.address:
            raise ValueError("a withdrawal route needs `address` (the only destination ever used)")
        if self.min_amount > self.max_amount:
            raise ValueError(f"min_amount {self.min_amount} exceeds max_amount {self.max_amount}")
        if self.max_amount > self.daily_limit:
            raise ValueError(f"max_amount {self.max_amount} exceeds daily_limit {self.daily_limit}")
        if self.fee >= self.max_amount:
            raise ValueError(f"fee {self.fee} is not below max_amount {self.max_amount}")
        exponent = self.step.normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < -18:
            raise ValueError(f"step {self.step} is finer than the 18 decimals the store keeps")
        for key in ("min_amount", "max_amount", "daily_limit", "fee"):
            value: Decimal = getattr(self, key)
            if value % self.step != 0:
                raise ValueError(f"{key} {value} is not a multiple of step {self.step}")
        return self


class InstrumentModel(Model):
    venue: Name
    symbol: Annotated[str, Field(pattern=SYMBOL_RE.pattern)]
    fee_bps: Annotated[float, Field(ge=0, le=100)] = 5.0
    qty_step: Annotated[float, Field(gt=0, le=1e6)] = 0.001


class StopModel(Model):
    max_loss_usd: Amount | None = None
    max_funding_drag_bps_per_day: Annotated[float, Field(ge=0)] | None = None


class HedgeModel(Model):
    name: Name
    asset: Asset
    exposure: float = 0.0
    strategy: Literal["static", "dynamic_band", "funding_rotation"] = "dynamic_band"
    target_delta: float = 0.0
    band: Annotated[float, Field(gt=0)]
    min_trade: Annotated[float, Field(ge=0)] = 0.0
    max_slippage_bps: Annotated[float, Field(ge=0)] = 20.0
    instruments: list[InstrumentModel] = Field(min_length=1)
    stop: StopModel = StopModel()
    max_trades_per_hour: Annotated[int, Field(ge=1, le=3600)] = 6
    gamma: Annotated[float, Field(ge=-1e9, le=1e9)] = 0.0
    exposure_account: Name | None = None
    funding_horizon_hours: Annotated[float, Field(gt=0, le=24 * 365)] = 24.0

    @model_validator(mode="after")
    def _shape(self) -> HedgeModel:
        keys = [(i.venue, i.symbol) for i in self.instruments]
        if len(set(keys)) != len(keys):
            raise ValueError("instruments: the same venue and symbol are listed twice")
        for i in self.instruments:
            base = i.symbol.split("/", 1)[0]
            if base != self.asset:
                raise ValueError(f"instruments: {i.symbol} does not hedge {self.asset}")
        if self.exposure_account is not None and self.gamma != 0.0:
            raise ValueError("exposure_account reads a balance, whose delta has no gamma: drop one")
        return self


# shock type -> (the keys it needs, the keys it may also take); see bot/core/stress_grid.py
SHOCK_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "price": (("pct",), ("asset",)),
    "vol": (("factor",), ("asset", "venue")),
    "funding": (("pct",), ("venue",)),
    "margin_rates": (("factor",), ("venue",)),
    "haircut": (("asset", "value"), ("venue",)),
    "freeze": (("venue",), ()),
    "liquidity": (("factor",), ("venue",)),
}


class ShockModel(Model):
    type: Literal["price", "margin_rates", "haircut", "freeze", "vol", "funding", "liquidity"]
    asset: Asset | None = None
    venue: Name | None = None
    pct: Annotated[float, Field(gt=-1.0, le=10.0)] | None = None
    factor: Annotated[float, Field(gt=0, le=100)] | None = None
    value: Ratio | None = None

    @model_validator(mode="after")
    def _keys(self) -> ShockModel:
        needs, may = SHOCK_KEYS[self.type]
        missing = [k for k in needs if getattr(self, k) is None]
        if missing:
            raise ValueError(f"{self.type} needs {' and '.join(missing)}")
        stray = [k for k in ("asset", "venue", "pct", "factor", "value") if k not in needs + may]
        stray = [k for k in stray if getattr(self, k) is not None]
        if stray:
            takes = ", ".join(needs + may)
            raise ValueError(f"{self.type} takes no {' or '.join(stray)} (it takes {takes})")
        return self


class StressScenarioModel(Model):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    shocks: list[ShockModel] = Field(min_length=1)


class StressSection(Model):
    scenarios: list[StressScenarioModel] = Field(default_factory=list)


class MarketSection(Model):
    """The paper market for `marginbot run`: start prices and random-walk parameters per asset."""

    prices: dict[Asset, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    vol_annual: dict[Asset, Annotated[float, Field(ge=0, le=10)]] = Field(default_factory=dict)
    drift_annual: dict[Asset, Annotated[float, Field(ge=-10, le=10)]] = Field(default_factory=dict)
    seed: int = 7


class Settings(BaseSettings):
    """The whole config. Build it with `load_settings`, which reads TOML and applies env overrides."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        populate_by_name=True,
        secrets_dir=os.environ.get("MARGINBOT_SECRETS_DIR") or None,
    )

    bot: BotSection = BotSection()
    buffers: BuffersSection = BuffersSection()
    notify: NotifySection = NotifySection()
    approvals: ApprovalsSection = ApprovalsSection()
    market: MarketSection = MarketSection()
    venues: list[VenueModel] = Field(min_length=1)
    accounts: list[AccountModel] = Field(default_factory=list)
    routes: list[RouteModel] = Field(default_factory=list)
    hedges: list[HedgeModel] = Field(default_factory=list)
    stress: StressSection = StressSection()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment first, then the secrets dir, then the TOML file (passed as init values)
        return env_settings, file_secret_settings, init_settings

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        problems = [
            *_duplicates("venues/accounts", [v.name for v in self.venues] + [a.name for a in self.accounts]),
            *_duplicates("routes", [r.name for r in self.routes]),
            *self._route_end_checks(),
            *self._live_route_checks(),
            *self._rule_checks(),
            *self._route_asset_checks(),
            *self._level_checks(),
            *self._hedge_checks(),
            *self._stress_checks(),
        ]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _route_end_checks(self) -> list[str]:
        """Each route joins one account and one venue that exist."""
        problems: list[str] = []
        venue_names = [v.name for v in self.venues]
        account_names = [a.name for a in self.accounts]
        all_names = venue_names + account_names
        for r in self.routes:
            if r.from_ not in all_names:
                problems.append(f"routes[{r.name}].from: no venue or account named {r.from_!r}")
            if r.to not in all_names:
                problems.append(f"routes[{r.name}].to: no venue or account named {r.to!r}")
            one_each = (r.from_ in venue_names and r.to in account_names) or (
                r.from_ in account_names and r.to in venue_names
            )
            if r.from_ in all_names and r.to in all_names and not one_each:
                problems.append(f"routes[{r.name}]: a route joins one account and one venue")
        return problems

    def _rule_checks(self) -> list[str]:
        route_names = {r.name for r in self.routes}
        return [
            f"approvals.rules: no route named {rule.route!r}"
            for rule in self.approvals.rules
            if rule.route is not None and rule.route not in route_names
        ]

    def _level_checks(self) -> list[str]:
        """Alert below de-risk below 1 on every venue; someone who can approve."""
        problems: list[str] = []
        d = self.buffers
        for v in self.venues:
            alert = v.alert_mm_ratio if v.alert_mm_ratio is not None else d.alert_mm_ratio
            derisk = v.derisk_mm_ratio if v.derisk_mm_ratio is not None else d.derisk_mm_ratio
            if not alert < derisk < 1:
                problems.append(
                    f"venues[{v.name}]: alert_mm_ratio {alert} < derisk_mm_ratio {derisk} < 1 must hold"
                )
        if not self.approvals.approvers:
            problems.append(
                f"approvals.approvers: empty, so no request could ever reach quorum {self.approvals.quorum}"
            )
        return problems

    def _hedge_checks(self) -> list[str]:
        """Unique program names; instruments on venues, and exposure accounts, that exist."""
        problems = _duplicates("hedges", [h.name for h in self.hedges])
        venue_names = {v.name for v in self.venues}
        account_names = {a.name for a in self.accounts}
        for h in self.hedges:
            for inst in h.instruments:
                if inst.venue not in venue_names:
                    problems.append(f"hedges[{h.name}].instruments: no venue named {inst.venue!r}")
            if h.exposure_account is not None and h.exposure_account not in account_names:
                problems.append(f"hedges[{h.name}].exposure_account: no account named {h.exposure_account!r}")
        return problems

    def _route_asset_checks(self) -> list[str]:
        """A route moves only an asset its venue end takes as collateral (paper: `collateral` or `haircuts`
        name it; a live venue is checked against the exchange's currency list at start)."""
        problems: list[str] = []
        venues = {v.name: v for v in self.venues}
        for r in self.routes:
            v = venues.get(r.to) or venues.get(r.from_)
            if v is None or v.paper is None:
                continue
            accepted = set(v.paper.collateral) | set(v.paper.haircuts)
            if r.asset not in accepted:
                problems.append(
                    f"routes[{r.name}].asset: {v.name} does not take {r.asset} as collateral (its "
                    f"[venues.paper] collateral and haircuts name {', '.join(sorted(accepted)) or 'nothing'})"
                )
        return problems

    def paper_price_needs(self) -> dict[str, list[str]]:
        """Assets the paper world must price, each with the keys that need it (stablecoins are priced at 1)."""
        needs: dict[str, list[str]] = {}
        for asset, where in self._paper_assets():
            if asset not in STABLES:
                needs.setdefault(asset, []).append(where)
        return needs

    def _paper_assets(self) -> list[tuple[str, str]]:
        """(asset, key) for every asset the paper world holds, moves or hedges."""
        found: list[tuple[str, str]] = []
        for v in self.venues:
            if v.paper is not None:
                found += [
                    (p.base, f"venues[{v.name}].paper.positions[{i}]")
                    for i, p in enumerate(v.paper.positions)
                ]
                found += [(a, f"venues[{v.name}].paper.collateral.{a}") for a in v.paper.collateral]
        paper = {v.name for v in self.venues if v.paper is not None}
        found += [
            (r.asset, f"routes[{r.name}].asset") for r in self.routes if r.to in paper or r.from_ in paper
        ]
        found += [
            (h.asset, f"hedges[{h.name}].asset")
            for h in self.hedges
            if any(i.venue in paper for i in h.instruments)
        ]
        return found

    def _stress_checks(self) -> list[str]:
        """`[[stress.scenarios]]`: unique names; shocks name venues (or, to freeze, accounts) and assets that exist."""
        problems = _duplicates("stress.scenarios", [sc.name for sc in self.stress.scenarios])
        venues = {v.name for v in self.venues}
        accounts = {a.name for a in self.accounts}
        assets = self._known_assets()
        for sc in self.stress.scenarios:
            for i, x in enumerate(sc.shocks):
                where = f"stress.scenarios[{sc.name}].shocks[{i}]"
                if x.venue is not None and x.type == "freeze" and x.venue not in venues | accounts:
                    problems.append(f"{where}.venue: no venue or account named {x.venue!r}")
                elif x.venue is not None and x.type != "freeze" and x.venue not in venues:
                    problems.append(f"{where}.venue: no venue named {x.venue!r}")
                if x.asset is not None and x.asset not in assets:
                    problems.append(
                        f"{where}.asset: {x.asset} is not in market.prices, nor held, priced, routed or hedged "
                        "anywhere in this config"
                    )
        return problems

    def _known_assets(self) -> set[str]:
        """Every asset the config prices, holds, routes or hedges (stablecoins included)."""
        assets = set(self.market.prices) | STABLES
        for v in self.venues:
            for keys in (v.paper, v.live):
                if keys is not None:
                    assets |= set(keys.haircuts)
            if v.paper is not None:
                assets |= set(v.paper.collateral) | {p.base for p in v.paper.positions}
            if v.live is not None:
                assets |= {sym.split("/", 1)[0] for sym in v.live.symbols}
        assets |= {a for acc in self.accounts for a in acc.balances} | {r.asset for r in self.routes}
        return assets | {h.asset for h in self.hedges}

    def connection(self, name: str) -> tuple[str, str, bool, str | None] | None:
        """(exchange, credentials, sandbox, api_url) of a ccxt venue or account: one exchange client each."""
        for v in self.venues:
            if v.name == name and v.kind == "ccxt" and v.exchange:
                return (v.exchange, v.credentials, v.sandbox, v.api_url)
        for a in self.accounts:
            if a.name == name and a.kind == "ccxt" and a.exchange:
                return (a.exchange, a.credentials, a.sandbox, a.api_url)
        return None

    def _live_route_checks(self) -> list[str]:
        problems: list[str] = []
        names = {v.name for v in self.venues} | {a.name for a in self.accounts}
        for r in self.routes:
            if r.from_ not in names or r.to not in names:
                continue
            src, dst = self.connection(r.from_), self.connection(r.to)
            if r.method == "internal" and src != dst:
                problems.append(
                    f"routes[{r.name}]: an internal route joins two wallets of one exchange account "
                    "(both ends paper, or both ccxt with the same exchange, credentials, sandbox and api_url)"
                )
            if r.method == "withdrawal" and src is None and dst is not None:
                problems.append(f"routes[{r.name}]: a paper account cannot send to a live venue")
        return problems

    @property
    def config_hash(self) -> str:
        """sha256 of the canonical config: stored with every decision."""
        return hashlib.sha256(
            canonical_json(self.model_dump(mode="json", by_alias=True)).encode()
        ).hexdigest()


def _duplicates(what: str, names: list[str]) -> list[str]:
    """One problem per name used more than once, in name order."""
    return [f"{what}: the name {n!r} is used twice" for n in sorted({n for n in names if names.count(n) > 1})]


def _loc(loc: tuple[int | str, ...], data: Any) -> str:
    """Render an error location, naming list items by their `name` where they have one."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            label = str(part)
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict):
                label = str(node[part].get("name", part))
            out += f"[{label}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            if isinstance(node, dict) and part not in node and node.get("type") == part:
                continue  # the tag pydantic adds for a tagged union (an event's type) is not a key of the file
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "config"


def format_validation_error(err: ValidationError, data: Any, env: dict[str, str] | None = None) -> list[str]:
    """One line per problem, naming the key (and the environment variable it came from, if one did).

    Cross-checks of the whole file (errors with no location) already name their keys, line by line.
    """
    lines: list[str] = []
    for e in err.errors(include_url=False):
        loc = tuple(
            p for p in e["loc"] if not (isinstance(p, str) and ("function-" in p or p.startswith("[")))
        )
        var = _env_var_for(loc, env or {})
        where = _loc(loc, None if var else data)
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif isinstance(e.get("input"), NotABool):
            msg = "expected a number or text, not true/false"
        for line in msg.splitlines():
            lines.append((line if not loc else f"{where}: {line}") + (f" (from {var})" if var else ""))
    return lines


def _env_var_for(loc: tuple[int | str, ...], env: dict[str, str]) -> str | None:
    """The MARGINBOT_… variable that set the value at `loc` (or a table above it), if any."""
    names = []
    for part in loc:
        if not isinstance(part, str):
            break
        names.append(part.upper())
    for n in range(len(names), 0, -1):
        var = ENV_PREFIX + "__".join(names[:n])
        if var in env:
            return var
    return None


def _marginbot_env() -> dict[str, str]:
    return {k.upper(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}


def _complex_key(path: list[str]) -> bool:
    """Whether the config key at `path` (section, key, …) holds a list or a table (given as JSON in the env)."""
    model: Any = Settings
    for i, part in enumerate(path):
        fields = getattr(model, "model_fields", {})
        field = fields.get(part)
        if field is None:
            return False
        ann = field.annotation
        inner = [a for a in (ann, *get_args(ann)) if a is not type(None)]
        if i == len(path) - 1:
            return any(
                getattr(a, "__origin__", a) in (list, dict)
                or (isinstance(a, type) and issubclass(a, BaseModel))
                for a in inner
            )
        model = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return False


def _env_json_problems() -> list[str]:
    """Variables for a list or table whose value is not JSON: pydantic-settings cannot say which one."""
    problems = []
    for var, value in sorted(_marginbot_env().items()):
        path = [p.lower() for p in var.removeprefix(ENV_PREFIX).split("__")]
        if not _complex_key(path):
            continue
        try:
            json.loads(value)
        except ValueError:
            problems.append(
                f"{var}: not valid JSON; a list or table is given as JSON, e.g. "
                f"{var}='[\"json://127.0.0.1:8099/\"]' or '{{\"min\": 0.2}}'"
            )
    return problems


def load_settings(path: str | Path) -> Settings:
    """Read a TOML config, apply env overrides and validate; raise ConfigError with one line per problem."""
    p = Path(path)
    data = read_toml(p, "config", ConfigError)
    return settings_from_dict(data)


def read_toml(p: Path, what: str, error: type[BadInput]) -> dict[str, Any]:
    """A TOML file as data; `error` (one line naming the file) when it is unreadable, not text, or not TOML."""
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise error(f"{p}: cannot read {what} ({e.strerror or e})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise error(f"{p}: the {what} is UTF-16 text; save it as UTF-8") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{p}: the {what} is not UTF-8 text (byte {e.start}); is it a binary file?") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{p}: not valid TOML: {e}") from None


def settings_from_dict(data: dict[str, Any]) -> Settings:
    env = _marginbot_env()
    try:
        return Settings(**data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, data, env)) from None
    except SettingsError as e:  # an environment override pydantic-settings could not parse
        raise ConfigError(_env_json_problems() or [f"environment: {e}"]) from None
