"""`marginbot check-config`: the summary of a valid config — venues, accounts, routes, limits, approval rules,
notifications and hedge programs — and how each live venue is reached (never its key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.core.assets import STABLES
from bot.core.world import Policy
from bot.errors import ConfigError
from bot.settings import HedgeModel, Settings
from bot.venues.live.keys import load_credentials


def lines(s: Settings, p: Policy, config: Path, database: str) -> list[str]:
    """What `check-config` prints for the config at `config`, compiled to `p`; `database` already redacted."""
    out = [
        f"config {config} OK (sha256 {s.config_hash[:16]}…)",
        prices_line(s),
        f"database: {database}; regime {s.bot.regime}; "
        f"cycle {s.bot.cycle_seconds:g}s; max data age {s.bot.max_data_age_seconds:g}s",
    ]
    out += _venues(s, p) + _accounts(s) + _routes(s, p) + _approvals(s)
    out.append(f"notify: {len(s.notify.urls)} URL(s), min severity {s.notify.min_severity}")
    if s.hedges:
        out.append("hedges:")
    for hp in s.hedges:
        out += _hedge(hp)
    return out


def _venues(s: Settings, p: Policy) -> list[str]:
    out = ["venues:"]
    for v in s.venues:
        vp = p.venues[v.name]
        n, h = vp.normal, vp.high_vol
        out.append(
            f"  {v.name:<14} {v.kind:<5} {v.margin_model:<9} normal {n.min:.0%}/{n.target:.0%}/{n.max:.0%}"
            f"  high_vol {h.min:.0%}/{h.target:.0%}/{h.max:.0%}  alert u≥{vp.alert_utilization:.0%}"
            f" m≥{vp.alert_mm_ratio:.0%}  de-risk m≥{vp.derisk_mm_ratio:.0%}"
        )
        if v.kind == "ccxt":
            out.append(f"  {'':<14} {live_line(v.exchange, v.credentials, v.sandbox, v.api_url)}")
    return out


def _accounts(s: Settings) -> list[str]:
    out = ["accounts:"]
    for a in s.accounts:
        bal = ", ".join(f"{q:,} {k}" for k, q in a.balances.items())
        if a.kind == "ccxt":
            bal = live_line(a.exchange, a.credentials, a.sandbox, a.api_url)
        out.append(f"  {a.name:<20} {a.bucket:<9} owner {a.owner:<14} {bal}")
    return out


def _routes(s: Settings, p: Policy) -> list[str]:
    out = ["routes (limits in the route's asset):"]
    for r in p.routes:
        out.append(
            f"  {r.name:<22} {r.kind.value:<5} {r.source} → {r.destination} {r.asset} {r.method:<10} "
            f"min {r.min_amount:,} max {r.max_amount:,} daily {r.daily_limit:,} fee {r.fee} "
            f"settle {r.settle_seconds:g}s{usd_hint(r.asset, r.min_amount, r.max_amount, s)}"
        )
    return out


def _approvals(s: Settings) -> list[str]:
    ap = s.approvals
    out = [
        f"approvals: auto ≤ {ap.auto_limit_usd:,} USD per move, ≤ {ap.daily_auto_limit_usd:,} USD per 24 h; "
        f"quorum {ap.quorum} of {', '.join(ap.approvers) or '(none)'}; expires after {ap.expires_minutes:g} min",
        "  emergency bucket: always needs approval",
    ]
    for rule in ap.rules:
        target = f"route {rule.route}" if rule.route else f"bucket {rule.bucket}"
        out.append(f"  rule: {target} needs {rule.quorum} of {', '.join(rule.approvers)}")
    return out


def _hedge(hp: HedgeModel) -> list[str]:
    exposure = (
        f"exposure = {hp.exposure_account} balance" if hp.exposure_account else f"exposure {hp.exposure:g}"
    )
    gamma = f" gamma {hp.gamma:g}/1%" if hp.gamma else ""
    stops = [
        f"loss > {hp.stop.max_loss_usd:,.0f} USD" if hp.stop.max_loss_usd is not None else "",
        f"funding drag > {hp.stop.max_funding_drag_bps_per_day:g} bps/day"
        if hp.stop.max_funding_drag_bps_per_day is not None
        else "",
    ]
    stop = ", ".join(x for x in stops if x) or "none"
    return [
        f"  {hp.name:<16} {hp.strategy:<16} {hp.asset} {exposure}{gamma}; target {hp.target_delta:g} "
        f"± {hp.band:g}, min trade {hp.min_trade:g}, ≤ {hp.max_trades_per_hour}/h; stop: {stop}",
        f"    on {', '.join(f'{i.venue} {i.symbol}' for i in hp.instruments)}",
    ]


def live_line(exchange: str | None, key_set: str, sandbox: bool, api_url: str | None) -> str:
    """How a ccxt venue or account is reached, and whether its key is found (never the key itself)."""
    try:
        load_credentials(key_set, exchange or "")
        key = "found"
    except ConfigError as e:
        key = f"MISSING ({e.problems[0].split(': ', 1)[-1]})"
    where = "testnet" if sandbox else "production"
    via = ""
    if api_url:  # scheme, host and path only: a proxy URL may carry credentials
        u = urlsplit(api_url)
        via = f" via {u.scheme}://{u.hostname}{f':{u.port}' if u.port else ''}{u.path}"
    return f"ccxt {exchange} ({where}{via}); key set {key_set!r}: {key}"


def usd_hint(asset: str, low: Any, high: Any, s: Settings) -> str:
    """What a non-stable route's limits are worth at the [market] start price, so a limit typed in dollars
    but read in ETH stands out."""
    price = s.market.prices.get(asset)
    if asset in STABLES or price is None:
        return ""
    return f" (at {price:,g} USD: min ≈ {float(low) * price:,.0f} USD, max ≈ {float(high) * price:,.0f} USD)"


def prices_line(s: Settings) -> str:
    """Where the paper world's prices come from, and which `run` and `stress` would still lack."""
    needs = s.paper_price_needs()
    if not needs:
        return "prices: the paper world needs none beyond stablecoins (priced at 1 USD)"
    known = ", ".join(f"{a} {p:,g}" for a, p in sorted(s.market.prices.items()) if a in needs)
    missing = sorted(set(needs) - set(s.market.prices) - STABLES)
    line = f"prices: [market] starts {known}" if known else "prices: no [market] start prices"
    if missing:
        line += (
            f"; none for {', '.join(missing)}: `run` and `stress` need them (or the prices a last `run` "
            "stored), `simulate` takes them from the scenario"
        )
    return line
