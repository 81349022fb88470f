"""The one wiring point: Settings -> policy, venues, store, notifier, bot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog

from bot.core.actions import TransferKind
from bot.core.approvals import ApprovalPolicy, Rule
from bot.core.hedge import HedgeSpec, Instrument, StopRule
from bot.core.policy import Band, Regime, VenuePolicy
from bot.core.world import Policy, RouteSpec
from bot.engine.bot import Bot
from bot.engine.clock import Clock
from bot.engine.hedger import Hedger
from bot.errors import ConfigError
from bot.notify import AppriseSender, OutboxWorker, url_problems
from bot.settings import BandModel, Settings
from bot.sim.market import AssetProcess, Market
from bot.store.db import check_url, display_url, make_engine
from bot.store.purpose import SIMULATED, claim, mode_of
from bot.store.repo import Store
from bot.venues.live.ports import LiveAccount, LiveOrders, LiveTransfers, LiveVenue, LiveWorld
from bot.venues.live.profiles import PROFILES
from bot.venues.paper import PaperAccount, PaperExchange, PaperOrders, PaperTransfers, PaperVenue

log = structlog.get_logger("marginbot.app")


def _band(b: BandModel) -> Band:
    return Band(b.min, b.target, b.max)


def compile_policy(s: Settings) -> Policy:
    """The config as the pure core sees it."""
    d = s.buffers
    venues = {
        v.name: VenuePolicy(
            alert_utilization=v.alert_utilization if v.alert_utilization is not None else d.alert_utilization,
            alert_mm_ratio=v.alert_mm_ratio if v.alert_mm_ratio is not None else d.alert_mm_ratio,
            derisk_mm_ratio=v.derisk_mm_ratio if v.derisk_mm_ratio is not None else d.derisk_mm_ratio,
            normal=_band(v.normal or d.normal),
            high_vol=_band(v.high_vol or d.high_vol),
            min_equity_usd=float(v.min_equity_usd),
            crosscheck_tolerance=v.live_keys.crosscheck_tolerance,
        )
        for v in s.venues
    }
    buckets = {a.name: a.bucket for a in s.accounts}
    routes = []
    for r in s.routes:
        topup = r.to in venues
        routes.append(
            RouteSpec(
                name=r.name,
                kind=TransferKind.TOPUP if topup else TransferKind.SWEEP,
                source=r.from_,
                destination=r.to,
                venue=r.to if topup else r.from_,
                account=r.from_ if topup else r.to,
                bucket=buckets[r.from_ if topup else r.to],
                asset=r.asset,
                method=r.method,
                address=r.address,
                network=r.network,
                min_amount=r.min_amount,
                max_amount=r.max_amount,
                daily_limit=r.daily_limit,
                fee=r.fee,
                step=r.step,
                settle_seconds=r.settle_seconds,
                tag=r.tag,
                exclusive=_exclusive(s, r.from_, r.method),
            )
        )
    a = s.approvals
    approvals = ApprovalPolicy(
        auto_limit_usd=a.auto_limit_usd,
        daily_auto_limit_usd=a.daily_auto_limit_usd,
        approvers=tuple(a.approvers),
        quorum=a.quorum,
        rules=tuple(Rule(r.quorum, tuple(r.approvers), r.bucket, r.route) for r in a.rules),
        break_glass_usd=a.break_glass_usd,
    )
    return Policy(
        venues=venues,
        routes=tuple(routes),
        approvals=approvals,
        max_data_age_seconds=s.bot.max_data_age_seconds,
        derisk_wait_seconds=s.buffers.derisk_wait_seconds,
    )


def _exclusive(s: Settings, source: str, method: str) -> bool:
    """A route whose sending venue takes no client id for it: at most one open intent on it at a time."""
    conn = s.connection(source)
    if conn is None:
        return False
    profile = PROFILES[conn[0]]
    return not (
        profile.takes_transfer_client_id if method == "internal" else profile.takes_withdrawal_client_id
    )


def compile_hedges(s: Settings) -> tuple[HedgeSpec, ...]:
    """The `[[hedges]]` programs as the pure core sees them."""
    return tuple(
        HedgeSpec(
            name=h.name,
            asset=h.asset,
            strategy=h.strategy,
            exposure=h.exposure,
            target_delta=h.target_delta,
            band=h.band,
            min_trade=h.min_trade,
            max_slippage_bps=h.max_slippage_bps,
            instruments=tuple(Instrument(i.venue, i.symbol, i.fee_bps, i.qty_step) for i in h.instruments),
            max_trades_per_hour=h.max_trades_per_hour,
            gamma=h.gamma,
            exposure_account=h.exposure_account,
            funding_horizon_hours=h.funding_horizon_hours,
            stop=StopRule(
                None if h.stop.max_loss_usd is None else float(h.stop.max_loss_usd),
                h.stop.max_funding_drag_bps_per_day,
            ),
        )
        for h in s.hedges
    )


# what a command opens the store for: `read` and `write` need an existing marginbot store and create nothing
# (`read` writes nothing either); `create` makes it where missing; `live`, `rehearsal` and `simulation` also
# mark it for that use and refuse a store that holds another kind of history (bot/store/purpose.py)
StorePurpose = Literal["read", "write", "create", "live", "rehearsal", "simulation"]


def open_store(
    s: Settings,
    db_url: str | None = None,
    *,
    synchronous: str | None = None,
    purpose: StorePurpose = "create",
    scenario: str | None = None,
    ts: float | None = None,
) -> Store:
    """The store for `purpose`. SQLite commits with `synchronous=FULL` (every commit on disk), except a
    simulation's: its history is rebuilt by running it again, so it needs no fsync per transition (OFF)."""
    if synchronous is None:
        synchronous = "OFF" if purpose == "simulation" else "FULL"
    url = db_url or s.bot.database_url
    label = "--db" if db_url else "bot.database_url"
    engine = make_engine(
        url,
        synchronous=synchronous,
        create=purpose not in ("read", "write"),
        readonly=purpose == "read",
        label=label,
    )
    store = Store(engine, config_hash=s.config_hash, min_severity=s.notify.min_severity)
    try:
        if purpose in ("live", "rehearsal", "simulation"):
            claim(store, purpose, label=label, where=display_url(url), scenario=scenario, ts=ts)
        elif purpose != "read" and mode_of(store)[0] == "simulation":
            store.note_status = SIMULATED  # a person acting on a simulation's store: nothing goes out
    except BaseException:
        engine.dispose()
        raise
    return store


def market_from_settings(s: Settings) -> Market:
    m = Market(dict(s.market.prices), seed=s.market.seed)
    for asset in s.market.prices:
        m.set_process(
            asset,
            AssetProcess(
                vol_annual=s.market.vol_annual.get(asset, 0.0),
                drift_annual=s.market.drift_annual.get(asset, 0.0),
            ),
        )
    return m


def require_paper(s: Settings, what: str = "simulate") -> None:
    """`simulate` and `rehearse` replay a paper world: a config with ccxt venues is bad input for them."""
    live = [v.name for v in s.venues if v.kind != "paper"] + [a.name for a in s.accounts if a.kind != "paper"]
    if live:
        hint = (
            "rehearse the live path with `marginbot rehearse` and a paper config"
            if what != "rehearse"
            else "it serves a paper config's world through fake exchanges (e.g. config/paper.toml)"
        )
        raise ConfigError(
            f"venues: {what} runs paper venues and accounts only ({', '.join(live)} are ccxt); {hint}"
        )


def require_prices(s: Settings, priced: set[str], what: str) -> None:
    """Every asset the paper world must value has a start price; else one line naming them (exit 2)."""
    missing = {a: w for a, w in sorted(s.paper_price_needs().items()) if a not in priced}
    if not missing:
        return
    listed = "; ".join(f"{a} ({', '.join(w[:2])}{', …' if len(w) > 2 else ''})" for a, w in missing.items())
    raise ConfigError(
        f"market.prices: {what} on paper venues needs a start price for {listed}: add them under [market] "
        "prices = { … } (a scenario brings its own for `simulate`)"
    )


def runtime_problems(s: Settings, db_url: str | None = None) -> list[str]:
    """What the schema cannot see but `run` would refuse: the database driver and the notify URLs."""
    problems = []
    try:
        check_url(db_url or s.bot.database_url, "--db" if db_url else "bot.database_url")
    except ConfigError as e:
        problems.extend(e.problems)
    return problems + url_problems(list(s.notify.urls))


def is_live(s: Settings) -> bool:
    return any(v.kind == "ccxt" for v in s.venues) or any(a.kind == "ccxt" for a in s.accounts)


@dataclass
class Wired:
    bot: Bot
    exchange: PaperExchange
    market: Market
    store: Store
    live: LiveWorld | None = None


def build(
    s: Settings,
    store: Store,
    clock: Clock,
    *,
    market: Market | None = None,
    exchange: PaperExchange | None = None,
    send_notifications: bool = True,
    figures_every_seconds: float | None = 0.0,
    before_cycle: Callable[[float], None] | None = None,
    kill_switch_poll_seconds: float = 0.0,
    live: LiveWorld | None = None,
) -> Wired:
    """Wire a bot over paper venues, live (ccxt) venues, or both.

    Pass `exchange` to rebuild a bot over an existing paper world (after a crash), and `live` to reuse
    exchange clients (tests point them at fake servers); otherwise they are made from the config, with
    keys read from the environment or the secrets directory.
    """
    market = market or (exchange.market if exchange else market_from_settings(s))
    exchange = exchange or PaperExchange(s, market, clock.now)
    if live is None and is_live(s):
        live = LiveWorld(s, clock=clock.now)
    outbox = None
    if send_notifications and s.notify.urls:
        try:
            outbox = OutboxWorker(store, AppriseSender(list(s.notify.urls), s.notify.timeout_seconds))
        except ValueError as e:
            raise ConfigError(str(e).splitlines()) from None
    bot = Bot(
        policy=compile_policy(s),
        venues=[
            LiveVenue(live, v.name) if live is not None and v.name in live else PaperVenue(exchange, v.name)
            for v in s.venues
        ],
        accounts=[
            LiveAccount(live, a.name, a.bucket)
            if live is not None and a.name in live
            else PaperAccount(exchange, a.name)
            for a in s.accounts
        ],
        transfers=PaperTransfers(exchange) if live is None else LiveTransfers(live, PaperTransfers(exchange)),
        store=store,
        clock=clock,
        regime=Regime(s.bot.regime),
        desk=s.bot.desk,
        expires_minutes=s.approvals.expires_minutes,
        repeat_minutes=s.notify.repeat_minutes,
        outbox=outbox,
        figures_every_seconds=figures_every_seconds,
        before_cycle=before_cycle,
        reconcile_lag_seconds=s.bot.reconcile_lag_seconds,
        kill_switch_poll_seconds=kill_switch_poll_seconds,
        cycle_seconds=s.bot.cycle_seconds,
        read_deadline_seconds=s.bot.read_deadline,
        hedger=Hedger(
            compile_hedges(s),
            store,
            PaperOrders(exchange) if live is None else LiveOrders(live, PaperOrders(exchange)),
            desk=s.bot.desk,
            lag_seconds=s.bot.reconcile_lag_seconds,
            read_deadline_seconds=s.bot.read_deadline,
        ),
    )
    return Wired(bot, exchange, market, store, live)
