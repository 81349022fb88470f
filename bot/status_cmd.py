"""`marginbot status`: what the store says about every venue, transfer, approval, hedge and order — and how old
it is. Figures are those the bot last recorded; with no bot running they age, and a venue whose figures are
older than `bot.max_data_age_seconds` is shown stale, whatever state the bot last gave it.
"""

from __future__ import annotations

import time
from typing import Any

from bot.core.actions import OPEN_STATUSES
from bot.engine.killswitch import HALT, KillSwitch
from bot.settings import Settings
from bot.store.repo import Store
from bot.store.rows import HedgeRow, IntentRow, VenueStatusRow


def utc(ts: float | None) -> str | None:
    """An epoch time as ISO 8601 in UTC, with its zone (`Z`)."""
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def age_text(seconds: float | None) -> str:
    """A data age for people: 12s, 4m 05s, 3h 20m, 2d 04h."""
    if seconds is None:
        return "never"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def gather(s: Settings, store: Store, now: float) -> dict[str, Any]:
    """Everything `status` shows, JSON-ready. Reads only."""
    open_intents = [r for r in store.intents.rows() if r.status in OPEN_STATUSES]
    pending = [a for a in store.approvals.rows() if a.status == "pending"]
    programs = {h.name for h in s.hedges}
    halts = KillSwitch(store, poll_seconds=0, desk=s.bot.desk).read(now).reasons
    return {
        "now_utc": utc(now),
        "max_data_age_seconds": s.bot.max_data_age_seconds,
        "venues": {
            r.venue: _venue(r, open_intents, now, s.bot.max_data_age_seconds) for r in store.figures.rows()
        },
        "intents": [
            {
                "id": i.id,
                "kind": i.kind.value,
                "venue": i.venue,
                "route": i.route,
                "asset": i.asset,
                "amount": str(i.amount),
                "status": i.status.value,
                "created_at_utc": utc(i.created_at),
            }
            for i in open_intents
        ],
        "pending_approvals": [
            {
                "id": a.id,
                "quorum": a.quorum,
                "expires_at": a.expires_at,
                "expires_at_utc": utc(a.expires_at),
                "reason": a.reason,
            }
            for a in pending
        ],
        "hedges": {r.name: _hedge(r) for r in store.ledgers.rows() if r.name in programs},
        "open_orders": [
            {
                "id": o.id,
                "venue": o.venue,
                "symbol": o.symbol,
                "side": o.side,
                "qty": str(o.qty),
                "reason": o.reason.value,
                "status": o.status.value,
            }
            for o in store.orders.open()
        ],
        "halted": {("all" if k == HALT else k.removeprefix(HALT + ":")): why for k, why in halts.items()},
    }


def _venue(r: VenueStatusRow, open_intents: list[IntentRow], now: float, max_age: float) -> dict[str, Any]:
    age = None if r.observed_at is None else now - r.observed_at
    u = r.utilization
    return {
        "state": r.state,
        "stale": age is None or age > max_age,
        "data_age_seconds": None if age is None else round(age, 1),
        "utilization": u,
        "buffer": None if u is None else 1 - u,
        "mm_ratio": r.mm_ratio,
        "equity": r.equity,
        "observed_at": r.observed_at,
        "observed_at_utc": utc(r.observed_at),
        "in_flight": [
            i.id for i in open_intents if i.venue == r.venue and i.status.value in ("submitted", "unknown")
        ],
    }


def _hedge(r: HedgeRow) -> dict[str, Any]:
    return {
        "net_delta": r.net_delta,
        "target": r.target,
        "band": r.band,
        "cost_usd": r.loss,
        "stopped": r.stopped,
        "stop_reason": r.stop_reason or None,
        "updated_at": r.updated_at,
        "updated_at_utc": utc(r.updated_at),
    }


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{x * 100:5.1f}%"


def render(data: dict[str, Any], where: str) -> list[str]:
    """The status for people: one line per venue with its data age (STALE past the limit), then the rest."""
    out = [f"status of {where} at {data['now_utc']}"]
    for scope, why in sorted(data["halted"].items()):
        out.append(
            f"KILL SWITCH ON ({scope}) {why}; lift with `marginbot resume --as NAME"
            + ("`" if scope == "all" else f" --venue {scope}`")
        )
    if not data["venues"]:
        out.append("no status recorded yet: start the bot with `marginbot run` (or `marginbot run --once`)")
        return out
    return out + _venue_lines(data) + _open_lines(data) + _hedge_lines(data)


def _venue_lines(data: dict[str, Any]) -> list[str]:
    out = [
        f"{'venue':<14} {'state':<18} {'util':>6} {'buffer':>6} {'mm':>6} {'equity':>14}  {'data age':>9}  "
        "observed"
    ]
    stale = 0
    for name, v in data["venues"].items():
        u = v["utilization"]
        eq = "" if v["equity"] is None else f"{v['equity']:,.0f}"
        age = age_text(v["data_age_seconds"]) + (" STALE" if v["stale"] else "")
        stale += v["stale"]
        seen = (v["observed_at_utc"] or "never").replace("T", " ").replace("Z", " UTC")
        out.append(
            f"{name:<14} {v['state']:<18} {_pct(u)} {_pct(None if u is None else 1 - u)} "
            f"{_pct(v['mm_ratio'])} {eq:>14}  {age:>9}  {seen}"
        )
    if stale:
        out.append(
            f"STALE: {stale} venue(s) last observed more than {data['max_data_age_seconds']:g}s ago "
            "(bot.max_data_age_seconds): is `marginbot run` running? Their figures are not current."
        )
    return out


def _open_lines(data: dict[str, Any]) -> list[str]:
    out = [f"open transfers: {len(data['intents'])}"]
    for i in data["intents"]:
        out.append(
            f"  {i['id']} {i['kind']} {i['amount']} {i['asset']} via {i['route']}: {i['status']} "
            f"(since {i['created_at_utc']})"
        )
    out.append(f"pending approvals: {len(data['pending_approvals'])}")
    for a in data["pending_approvals"]:
        out.append(f"  {a['id']} needs {a['quorum']}, expires {a['expires_at_utc']}: {a['reason']}")
    return out


def _hedge_lines(data: dict[str, Any]) -> list[str]:
    out = []
    if data["hedges"]:
        out.append(f"{'hedge':<16} {'net delta':>12} {'target ± band':>16} {'cost to date':>14}  state")
    for name, h in data["hedges"].items():
        net = "" if h["net_delta"] is None else f"{h['net_delta']:+,.4f}"
        cost = "" if h["cost_usd"] is None else f"{h['cost_usd']:,.0f} USD"
        band = f"{h['target']:g} ± {h['band']:g}"
        state = f"STOPPED: {h['stop_reason']}" if h["stopped"] else "active"
        out.append(f"{name:<16} {net:>12} {band:>16} {cost:>14}  {state}")
    if data["open_orders"]:
        out.append(f"orders of unknown outcome: {len(data['open_orders'])}")
    for o in data["open_orders"]:
        out.append(
            f"  {o['id']} {o['venue']} {o['side']} {o['qty']} {o['symbol']} ({o['reason']}): {o['status']}"
        )
    return out
