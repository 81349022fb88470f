"""`marginbot simulate`: replay a scenario through the same bot with a simulated clock, into a store of its
own; the progress bar, the `--report` folder and the summary for people."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from bot.app import open_store
from bot.cli_text import pct
from bot.errors import BadInput
from bot.settings import Settings
from bot.sim.runner import Replay
from bot.store import audit as chain
from bot.store.db import display_url

if TYPE_CHECKING:
    from bot.sim.scenario import Scenario


def replay(s: Settings, sc: Scenario, url: str, report: Path | None) -> dict[str, Any]:
    """Run `sc` into the store at `url` (new or empty); write `--report` files; the store is closed after."""
    store = open_store(s, url, purpose="simulation", scenario=sc.name, ts=sc.start.timestamp())
    try:  # closed when done (a store left to the garbage collector is checkpointed at a random moment)
        started = time.perf_counter()
        out = asyncio.run(Replay(sc, s, store, progress_printer(sc.steps)).run())
        elapsed = time.perf_counter() - started
        typer.echo(f"simulated {sc.steps:,} steps in {elapsed:.1f}s; store: {display_url(url)}", err=True)
        if report is not None:
            report.mkdir(parents=True, exist_ok=True)
            (report / "simulate.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
            with (report / "audit.jsonl").open("w", encoding="utf-8") as fh:
                fh.writelines(chain.export_lines(store.engine, "jsonl"))
    finally:
        store.engine.dispose()
    return out


def check_report_dir(report: Path) -> None:
    """`--report DIR` is checked before the run: an existing file, or a place no folder can be made, is bad input."""
    if report.exists() and not report.is_dir():
        raise BadInput(
            f"--report: {report} is a file; name a folder (simulate.json and audit.jsonl go in it)"
        )
    parent = report
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(f"--report: cannot make or write the folder {report} ({parent} is not writable)")


def progress_printer(total: int) -> Callable[[int, int], None] | None:
    """A progress bar on stderr (a line per 10% when it is not a terminal), for runs of 5,000 steps or more."""
    if total < 5000:
        return None
    tty = sys.stderr.isatty()
    last = [-1]

    def show(done: int, total: int) -> None:
        pct_done = done * 100 // total
        if tty:
            bar = "#" * (pct_done // 4) + "-" * (25 - pct_done // 4)
            sys.stderr.write(f"\rsimulate [{bar}] {pct_done:3d}% {done:,}/{total:,} steps")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif pct_done // 10 != last[0] // 10:
            sys.stderr.write(f"simulate: {pct_done}% ({done:,}/{total:,} steps)\n")
            sys.stderr.flush()
        last[0] = pct_done

    return show


def summary(out: dict[str, Any]) -> str:
    """The replay's result for people: per venue, transfers, approvals, orders, hedges, liquidations, audit."""
    lines = [f"scenario {out['scenario']!r}: {out['steps']:,} steps"]
    for v, st in out["venues"].items():
        lines.append(
            f"  {v:<14} max u {pct(st['max_utilization'])}  min buffer {pct(st['min_buffer'])}  "
            f"final u {pct(st['final_utilization'])}  max m {pct(st['max_mm_ratio'])}  "
            f"{st['final_state']}  {st['steps_above_alert']} steps above alert"
        )
    lines.append(
        f"  transfers: {len(out['transfers'])} ({_counts(t['status'] for t in out['transfers']) or 'none'})"
    )
    lines.append(
        f"  approvals: {len(out['approvals'])}; alerts: {len(out['alerts'])}; "
        f"notifications: {out['notifications']}"
    )
    if out["orders"]:
        lines.append(f"  orders: {len(out['orders'])} ({_counts(o['reason'] for o in out['orders'])})")
    lines += [_hedge_line(name, h) for name, h in out["hedges"].items()]
    liq = ", ".join(f"{x['venue']} at step {x['step']}" for x in out["liquidations"]) or "none"
    lines.append(f"  liquidations: {liq}")
    lines.append(
        f"  audit: {out['audit']['events']} events, chain {'ok' if out['audit']['chain_ok'] else 'BROKEN'}"
    )
    return "\n".join(lines)


def _counts(keys: Any) -> str:
    """`3 confirmed, 1 failed`: how many of each, by key."""
    n: dict[str, int] = {}
    for k in keys:
        n[k] = n.get(k, 0) + 1
    return ", ".join(f"{c} {k}" for k, c in sorted(n.items()))


def _hedge_line(name: str, h: dict[str, Any]) -> str:
    stopped = f"  STOPPED: {h['stop_reason']}" if h["stopped"] else ""
    net = "?" if h["final_net_delta"] is None else f"{h['final_net_delta']:+.4f}"
    cost = "?" if h["cost_usd"] is None else f"{h['cost_usd']:,.0f}"
    return (
        f"  hedge {name:<16} trades {h['trades']}  max |delta - target| {h['max_abs_delta_deviation']:.4f}  "
        f"final net delta {net}  cost {cost} USD{stopped}"
    )
