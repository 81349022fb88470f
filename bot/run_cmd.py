"""`marginbot run` and `marginbot rehearse`: wire the bot, then run its cycle until told to stop.

`run` uses the config's venues (paper, or live through ccxt after a preflight); `rehearse` serves a paper
config's world through fake exchange servers and reaches them through real ccxt code. Both print one status
line per cycle on stdout, and warnings on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from typing import TYPE_CHECKING

import typer

from bot.cli_text import pct
from bot.errors import BadInput
from bot.settings import LIVE_EXCHANGES, Settings

if TYPE_CHECKING:
    from bot.app import Wired
    from bot.engine.bot import Bot, CycleResult
    from bot.engine.clock import WallClock
    from bot.venues.fakes.rehearsal import Rehearsal


def require_run_prices(s: Settings, db: str | None) -> None:
    """`run` prices its paper world from [market], or from the prices the last run stored with it."""
    from bot.app import open_store, require_prices
    from bot.core.assets import STABLES
    from bot.errors import StoreMissing
    from bot.venues.paper_state import PAPER_BLOB

    priced = set(s.market.prices) | STABLES
    if not set(s.paper_price_needs()) - priced:
        return
    try:
        store = open_store(s, db, purpose="read")
    except StoreMissing:
        saved = None
    else:
        try:
            saved = store.flags.get(PAPER_BLOB)
        finally:
            store.engine.dispose()
    if saved is not None:
        priced |= set(json.loads(saved).get("prices", {}))
    require_prices(s, priced, "`run`")


async def run(
    s: Settings,
    db: str | None,
    once: bool,
    for_seconds: float | None,
    rehearsal_map: dict[str, str] | None = None,
) -> None:
    """Run the bot until `once` cycle is done, `for_seconds` have passed, or SIGINT / SIGTERM."""
    from bot.engine.clock import WallClock

    clock = WallClock()
    rehearsal = None
    if rehearsal_map is not None:  # the paper world behind fake exchange servers, reached through ccxt
        wired, rehearsal = await _wire_rehearsal(s, db, clock, rehearsal_map)
    else:
        wired = await _wire(s, db, clock)
        _carry_on(wired)
    last = [clock.now()]

    def before(now: float) -> None:
        wired.market.advance(now - last[0])
        last[0] = now
        wired.exchange.advance()

    wired.bot.before_cycle = before
    await wired.bot.start()
    await _loop(s, db, wired, clock, once=once, for_seconds=for_seconds, rehearsal=rehearsal)


async def _wire(s: Settings, db: str | None, clock: WallClock) -> Wired:
    """Live venues: markets loaded once, route assets and each key's permissions checked, before the store is
    written or anything can move."""
    from bot.app import build, is_live, open_store
    from bot.venues.live.ports import LiveWorld

    live_world = LiveWorld(s, clock=clock.now) if is_live(s) else None
    try:
        if live_world is not None:
            for warning in await live_world.preflight():
                typer.echo(f"warning: {warning}", err=True)
        store = open_store(s, db, purpose="live")
    except BaseException:
        if live_world is not None:
            await live_world.close()
        raise
    return build(s, store, clock, live=live_world)


def _carry_on(wired: Wired) -> None:
    """The paper exchange carries on where the last run left it."""
    from bot.venues import paper_state

    saved = wired.store.flags.get(paper_state.PAPER_BLOB)
    if saved is not None:
        paper_state.restore(wired.exchange, json.loads(saved))


async def _wire_rehearsal(
    s: Settings, db: str | None, clock: WallClock, mapping: dict[str, str]
) -> tuple[Wired, Rehearsal]:
    from bot.app import build, market_from_settings, open_store
    from bot.venues.fakes.rehearsal import Rehearsal
    from bot.venues.live.ports import LiveWorld
    from bot.venues.paper import PaperExchange

    paper = PaperExchange(s, market_from_settings(s), clock.now)
    rehearsal = Rehearsal(s, mapping, paper)
    live_settings = await rehearsal.start()
    try:
        store = open_store(live_settings, db, purpose="rehearsal")
    except BaseException:
        await rehearsal.stop()
        raise
    world = LiveWorld(live_settings, clock=clock.now, env=rehearsal.env)
    wired = build(live_settings, store, clock, market=paper.market, exchange=paper, live=world)
    typer.echo(
        "rehearsal: " + ", ".join(f"{n} → fake {x} at {rehearsal.fakes[x].url}" for n, x in mapping.items()),
        err=True,
    )
    if wired.live is not None:
        try:
            for warning in await wired.live.preflight():
                typer.echo(f"warning: {warning}", err=True)
        except BaseException:
            await wired.live.close()
            await rehearsal.stop()
            raise
    return wired, rehearsal


async def _loop(
    s: Settings,
    db: str | None,
    wired: Wired,
    clock: WallClock,
    *,
    once: bool,
    for_seconds: float | None,
    rehearsal: Rehearsal | None,
) -> None:
    from bot.store.db import display_url
    from bot.venues import paper_state

    bot, store = wired.bot, wired.store
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deadline = None if for_seconds is None else clock.now() + for_seconds
    typer.echo(
        f"marginbot running on {len(s.venues)} venue(s); database {display_url(db or s.bot.database_url)}; "
        f"cycle {s.bot.cycle_seconds:g}s (Ctrl-C to stop)",
        err=True,
    )
    try:
        while True:
            started = clock.now()
            result = await bot.cycle()
            if rehearsal is None and wired.exchange.books:  # a paper world carries on at the next `run`
                store.flags.put_blob(
                    paper_state.PAPER_BLOB, json.dumps(paper_state.dump(wired.exchange)), result.now
                )
            typer.echo(status_line(result, bot))
            if once or stop.is_set() or (deadline is not None and clock.now() >= deadline):
                break
            wait = s.bot.cycle_seconds - (clock.now() - started)
            if deadline is not None:
                wait = min(wait, deadline - clock.now())
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
            if stop.is_set():
                break
    finally:
        await bot.close()
        if wired.live is not None:
            await wired.live.close()
        if rehearsal is not None:
            await rehearsal.stop()
        store.engine.dispose()  # closed now, not checkpointed whenever the garbage collector gets to it


def status_line(result: CycleResult, bot: Bot) -> str:
    """One cycle for people: each venue's utilization and state, what is open, what moved."""
    parts = []
    for v, f in result.observed.items():
        u = None if f is None else f.utilization
        parts.append(f"{v} u={pct(u).strip()} {bot.states[v].value}")
    in_flight, pending = bot.open_counts()
    stamp = time.strftime("%H:%M:%S", time.gmtime(result.now))
    moves = "".join(f" | {o.status.value} {o.intent_id[:8]}" for o in result.outcomes if o.status is not None)
    moves += "".join(
        f" | {o.order.side} {o.filled} {o.order.symbol} {o.status.value} ({o.order.program or 'de-risk'})"
        for o in result.orders
    )
    return f"{stamp} " + " | ".join(parts) + f" | in flight {in_flight} | approvals pending {pending}{moves}"


def rehearsal_map(s: Settings, given: list[str]) -> dict[str, str]:
    """Which exchange serves each paper venue and account of the rehearsal (every one must be served)."""
    out: dict[str, str] = {}
    names = [v.name for v in s.venues] + [a.name for a in s.accounts]
    problems = []
    for item in given:
        name, _, exchange = item.partition("=")
        if name not in names or exchange not in LIVE_EXCHANGES:
            problems.append(
                f"--map {item}: expected NAME=EXCHANGE with a venue or account name and one of "
                f"{', '.join(LIVE_EXCHANGES)}"
            )
        out[name] = exchange
    problems += _map_venues(s, out) + _map_accounts(s, out)
    if problems:
        raise BadInput(problems)
    return out


def _map_venues(s: Settings, out: dict[str, str]) -> list[str]:
    """A venue not mapped takes its `exchange` key, else the exchange its name contains."""
    problems = []
    for v in s.venues:
        if v.name not in out:
            guess = v.exchange if v.exchange in LIVE_EXCHANGES else None
            guess = guess or next((x for x in LIVE_EXCHANGES if x in v.name.lower()), None)
            if guess is None:
                problems.append(f"--map: say which exchange serves venue {v.name} ({v.name}=okx, …)")
            else:
                out[v.name] = guess
    return problems


def _map_accounts(s: Settings, out: dict[str, str]) -> list[str]:
    """An account not mapped takes a free exchange wallet: one its name contains, a mapped one, any."""
    problems = []
    used = {out[a.name] for a in s.accounts if a.name in out}
    for a in s.accounts:
        if a.name in out:
            continue
        guess = next((x for x in LIVE_EXCHANGES if x in a.name.lower() and x not in used), None)
        guess = guess or next((x for x in dict.fromkeys(out.values()) if x not in used), None)
        guess = guess or next((x for x in LIVE_EXCHANGES if x not in used), None)
        if guess is None:
            problems.append(f"--map: no free exchange wallet left for account {a.name}")
            continue
        out[a.name] = guess
        used.add(guess)
    return problems
