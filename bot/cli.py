"""The command line: parse, call, print. Exit codes: 0 success, 1 operational failure or failed check, 2 bad input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from bot import logs
from bot.errors import BadInput, MarginbotError

if TYPE_CHECKING:
    from bot.engine.bot import Bot, CycleResult
    from bot.store.repo import Store
from bot.settings import Settings, load_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="marginbot: keeps margin buffers inside policy by moving collateral along configured routes.\n\n"
    "Exit codes: 0 success, 1 operational failure or failed check, 2 bad input.",
)
audit_app = typer.Typer(no_args_is_help=True, help="Check or export the audit trail.")
app.add_typer(audit_app, name="audit")

T = TypeVar("T")


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Config file (default: $MARGINBOT_CONFIG, else config/paper.toml)."),
]
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL; overrides bot.database_url.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for tools.")]


def _config_path(config: Path | None) -> Path:
    return config or Path(os.environ.get("MARGINBOT_CONFIG") or "config/paper.toml")


def _guard(fn: Callable[[], T]) -> T:
    """Run a command body; map our errors to exit codes with one clear line each, never a traceback."""
    try:
        return fn()
    except BadInput as e:
        for line in e.problems:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None
    except MarginbotError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _live_line(exchange: str | None, key_set: str, sandbox: bool, api_url: str | None) -> str:
    """How a ccxt venue or account is reached, and whether its key is found (never the key itself)."""
    from bot.errors import ConfigError
    from bot.venues.live.keys import load_credentials

    try:
        load_credentials(key_set, exchange or "")
        key = "found"
    except ConfigError as e:
        key = f"MISSING ({e.problems[0].split(': ', 1)[-1]})"
    where = "testnet" if sandbox else "production"
    via = ""
    if api_url:  # scheme, host and path only: a proxy URL may carry credentials
        from urllib.parse import urlsplit

        u = urlsplit(api_url)
        via = f" via {u.scheme}://{u.hostname}{f':{u.port}' if u.port else ''}{u.path}"
    return f"ccxt {exchange} ({where}{via}); key set {key_set!r}: {key}"


def _settings(config: Path | None) -> Settings:
    logs.configure()
    return load_settings(_config_path(config))


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{x * 100:5.1f}%"


# --- check-config ----------------------------------------------------------------------------------------
@app.command("check-config")
def check_config(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Validate the config and summarise venues, routes, limits and approval rules."""

    def body() -> None:
        from bot.app import compile_policy, runtime_problems

        s = _settings(config)
        p = compile_policy(s)
        problems = runtime_problems(s, db)
        if problems:
            raise BadInput(problems)
        typer.echo(f"config {_config_path(config)} OK (sha256 {s.config_hash[:16]}…)")
        typer.echo(_prices_line(s))
        typer.echo(
            f"database: {_redact_db(db or s.bot.database_url)}; regime {s.bot.regime}; "
            f"cycle {s.bot.cycle_seconds:g}s; max data age {s.bot.max_data_age_seconds:g}s"
        )
        typer.echo("venues:")
        for v in s.venues:
            vp = p.venues[v.name]
            n, h = vp.normal, vp.high_vol
            typer.echo(
                f"  {v.name:<14} {v.kind:<5} {v.margin_model:<9} normal {n.min:.0%}/{n.target:.0%}/{n.max:.0%}"
                f"  high_vol {h.min:.0%}/{h.target:.0%}/{h.max:.0%}  alert u≥{vp.alert_utilization:.0%}"
                f" m≥{vp.alert_mm_ratio:.0%}  de-risk m≥{vp.derisk_mm_ratio:.0%}"
            )
            if v.kind == "ccxt":
                typer.echo(f"  {'':<14} {_live_line(v.exchange, v.credentials, v.sandbox, v.api_url)}")
        typer.echo("accounts:")
        for a in s.accounts:
            bal = ", ".join(f"{q:,} {k}" for k, q in a.balances.items())
            if a.kind == "ccxt":
                bal = _live_line(a.exchange, a.credentials, a.sandbox, a.api_url)
            typer.echo(f"  {a.name:<20} {a.bucket:<9} owner {a.owner:<14} {bal}")
        typer.echo("routes (limits in the route's asset):")
        for r in p.routes:
            typer.echo(
                f"  {r.name:<22} {r.kind.value:<5} {r.source} → {r.destination} {r.asset} {r.method:<10} "
                f"min {r.min_amount:,} max {r.max_amount:,} daily {r.daily_limit:,} fee {r.fee} "
                f"settle {r.settle_seconds:g}s{_usd_hint(r.asset, r.min_amount, r.max_amount, s)}"
            )
        ap = s.approvals
        typer.echo(
            f"approvals: auto ≤ {ap.auto_limit_usd:,} USD per move, ≤ {ap.daily_auto_limit_usd:,} USD per 24 h; "
            f"quorum {ap.quorum} of {', '.join(ap.approvers) or '(none)'}; expires after {ap.expires_minutes:g} min"
        )
        typer.echo("  emergency bucket: always needs approval")
        for rule in ap.rules:
            target = f"route {rule.route}" if rule.route else f"bucket {rule.bucket}"
            typer.echo(f"  rule: {target} needs {rule.quorum} of {', '.join(rule.approvers)}")
        typer.echo(f"notify: {len(s.notify.urls)} URL(s), min severity {s.notify.min_severity}")
        if s.hedges:
            typer.echo("hedges:")
        for hp in s.hedges:
            exposure = (
                f"exposure = {hp.exposure_account} balance"
                if hp.exposure_account
                else f"exposure {hp.exposure:g}"
            )
            gamma = f" gamma {hp.gamma:g}/1%" if hp.gamma else ""
            stops = [
                f"loss > {hp.stop.max_loss_usd:,.0f} USD" if hp.stop.max_loss_usd is not None else "",
                f"funding drag > {hp.stop.max_funding_drag_bps_per_day:g} bps/day"
                if hp.stop.max_funding_drag_bps_per_day is not None
                else "",
            ]
            stop = ", ".join(x for x in stops if x) or "none"
            typer.echo(
                f"  {hp.name:<16} {hp.strategy:<16} {hp.asset} {exposure}{gamma}; target {hp.target_delta:g} "
                f"± {hp.band:g}, min trade {hp.min_trade:g}, ≤ {hp.max_trades_per_hour}/h; stop: {stop}"
            )
            typer.echo(f"    on {', '.join(f'{i.venue} {i.symbol}' for i in hp.instruments)}")

    _guard(body)


def _usd_hint(asset: str, low: Any, high: Any, s: Settings) -> str:
    """What a non-stable route's limits are worth at the [market] start price, so a limit typed in dollars
    but read in ETH stands out."""
    from bot.core.assets import STABLES

    price = s.market.prices.get(asset)
    if asset in STABLES or price is None:
        return ""
    return f" (at {price:,g} USD: min ≈ {float(low) * price:,.0f} USD, max ≈ {float(high) * price:,.0f} USD)"


def _prices_line(s: Settings) -> str:
    """Where the paper world's prices come from, and which `run` and `stress` would still lack."""
    from bot.core.assets import STABLES

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


def _redact_db(url: str) -> str:
    from bot.store.db import display_url

    return display_url(url)


# --- run -------------------------------------------------------------------------------------------------
@app.command()
def run(
    config: ConfigOpt = None,
    db: DbOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Run one cycle and exit.")] = False,
    for_seconds: Annotated[
        float | None, typer.Option("--for", help="Stop after this many seconds.", min=0)
    ] = None,
) -> None:
    """Run the bot loop; with paper venues the market moves in real time."""

    def body() -> None:
        from bot.app import runtime_problems

        s = _settings(config)
        problems = runtime_problems(s, db)
        if problems:
            raise BadInput(problems)
        _require_run_prices(s, db)
        asyncio.run(_run(s, db, once, for_seconds))

    _guard(body)


def _require_run_prices(s: Settings, db: str | None) -> None:
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
            saved = store.get_flag(PAPER_BLOB)
        finally:
            store.engine.dispose()
    if saved is not None:
        priced |= set(json.loads(saved).get("prices", {}))
    require_prices(s, priced, "`run`")


async def _run(
    s: Settings,
    db: str | None,
    once: bool,
    for_seconds: float | None,
    rehearsal_map: dict[str, str] | None = None,
) -> None:
    from bot.app import build, is_live, market_from_settings, open_store
    from bot.engine.clock import WallClock
    from bot.venues import paper_state
    from bot.venues.fakes.rehearsal import Rehearsal
    from bot.venues.live.ports import LiveWorld
    from bot.venues.paper import PaperExchange

    clock = WallClock()
    rehearsal = None
    if rehearsal_map is not None:  # the paper world behind fake exchange servers, reached through ccxt
        paper = PaperExchange(s, market_from_settings(s), clock.now)
        rehearsal = Rehearsal(s, rehearsal_map, paper)
        live_settings = await rehearsal.start()
        try:
            store = open_store(live_settings, db, purpose="rehearsal")
        except BaseException:
            await rehearsal.stop()
            raise
        world = LiveWorld(live_settings, clock=clock.now, env=rehearsal.env)
        wired = build(live_settings, store, clock, market=paper.market, exchange=paper, live=world)
        typer.echo(
            "rehearsal: "
            + ", ".join(f"{n} → fake {x} at {rehearsal.fakes[x].url}" for n, x in rehearsal_map.items()),
            err=True,
        )
    else:
        # live venues: markets loaded once, route assets and each key's permissions checked, before the
        # store is written or anything can move
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
        wired = build(s, store, clock, live=live_world)
    if rehearsal is not None and wired.live is not None:
        try:
            for warning in await wired.live.preflight():
                typer.echo(f"warning: {warning}", err=True)
        except BaseException:
            await wired.live.close()
            await rehearsal.stop()
            raise
    saved = store.get_flag(paper_state.PAPER_BLOB) if rehearsal is None else None
    if saved is not None:  # the paper exchange carries on where the last run left it
        paper_state.restore(wired.exchange, json.loads(saved))
    last = [clock.now()]

    def before(now: float) -> None:
        wired.market.advance(now - last[0])
        last[0] = now
        wired.exchange.advance()

    wired.bot.before_cycle = before
    bot = wired.bot
    await bot.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deadline = None if for_seconds is None else clock.now() + for_seconds
    typer.echo(
        f"marginbot running on {len(s.venues)} venue(s); database {_redact_db(db or s.bot.database_url)}; "
        f"cycle {s.bot.cycle_seconds:g}s (Ctrl-C to stop)",
        err=True,
    )
    try:
        while True:
            started = clock.now()
            result = await bot.cycle()
            if rehearsal is None and wired.exchange.books:  # a paper world carries on at the next `run`
                store.put_blob(
                    paper_state.PAPER_BLOB, json.dumps(paper_state.dump(wired.exchange)), result.now
                )
            typer.echo(_status_line(result, bot))
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


@app.command()
def rehearse(
    config: ConfigOpt = None,
    db: DbOpt = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="NAME=EXCHANGE: serve this paper venue or account as that exchange (binance, okx, bybit, "
            "deribit); repeatable. Default: names containing an exchange id, then accounts on free wallets.",
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run one cycle and exit.")] = False,
    for_seconds: Annotated[
        float | None, typer.Option("--for", help="Stop after this many seconds.", min=0)
    ] = None,
) -> None:
    """Run the bot through real ccxt code against local fake exchanges that serve a paper config's world."""

    def body() -> None:
        from bot.app import require_paper, require_prices, runtime_problems
        from bot.core.assets import STABLES

        s = _settings(config)
        require_paper(s, "rehearse")
        require_prices(s, set(s.market.prices) | STABLES, "`rehearse`")
        problems = runtime_problems(s, db)
        if problems:
            raise BadInput(problems)
        chosen = _rehearsal_map(s, mapping or [])
        url = db
        if url is None:
            path = Path(tempfile.mkdtemp(prefix="marginbot-rehearse-")) / "rehearse.db"
            url = f"sqlite:///{path}"
            typer.echo(f"rehearsal store: {path}", err=True)
        asyncio.run(_run(s, url, once, for_seconds, rehearsal_map=chosen))

    _guard(body)


def _rehearsal_map(s: Settings, given: list[str]) -> dict[str, str]:
    """Which exchange serves each paper venue and account of the rehearsal (every one must be served)."""
    from bot.errors import BadInput
    from bot.settings import LIVE_EXCHANGES

    out: dict[str, str] = {}
    problems = []
    names = [v.name for v in s.venues] + [a.name for a in s.accounts]
    for item in given:
        name, _, exchange = item.partition("=")
        if name not in names or exchange not in LIVE_EXCHANGES:
            problems.append(
                f"--map {item}: expected NAME=EXCHANGE with a venue or account name and one of "
                f"{', '.join(LIVE_EXCHANGES)}"
            )
        out[name] = exchange
    for v in s.venues:
        if v.name not in out:
            guess = v.exchange if v.exchange in LIVE_EXCHANGES else None
            guess = guess or next((x for x in LIVE_EXCHANGES if x in v.name.lower()), None)
            if guess is None:
                problems.append(f"--map: say which exchange serves venue {v.name} ({v.name}=okx, …)")
            else:
                out[v.name] = guess
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
    if problems:
        raise BadInput(problems)
    return out


def _status_line(result: CycleResult, bot: Bot) -> str:
    parts = []
    for v, f in result.observed.items():
        u = None if f is None else f.utilization
        parts.append(f"{v} u={_pct(u).strip()} {bot.states[v].value}")
    in_flight, pending = bot.open_counts()
    stamp = time.strftime("%H:%M:%S", time.gmtime(result.now))
    moves = "".join(f" | {o.status.value} {o.intent_id[:8]}" for o in result.outcomes if o.status is not None)
    moves += "".join(
        f" | {o.order.side} {o.filled} {o.order.symbol} {o.status.value} ({o.order.program or 'de-risk'})"
        for o in result.orders
    )
    return f"{stamp} " + " | ".join(parts) + f" | in flight {in_flight} | approvals pending {pending}{moves}"


# --- simulate --------------------------------------------------------------------------------------------
@app.command()
def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
    config: ConfigOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write simulate.json and audit.jsonl here.")
    ] = None,
) -> None:
    """Replay a scenario deterministically with a simulated clock, through the same bot."""

    def body() -> None:
        from bot.app import open_store, require_paper
        from bot.sim.runner import Replay
        from bot.sim.scenario import check_against, load_scenario
        from bot.store import audit as chain

        s = _settings(config)
        require_paper(s, "simulate")
        sc = load_scenario(scenario)
        check_against(sc, s)  # before any database is opened
        if report is not None:
            _check_report_dir(report)
        url = db
        if url is None:
            path = Path(tempfile.mkdtemp(prefix="marginbot-sim-")) / "simulate.db"
            url = f"sqlite:///{path}"
        store = open_store(s, url, purpose="simulation", scenario=sc.name, ts=sc.start.timestamp())
        try:  # closed when done (a store left to the garbage collector is checkpointed at a random moment)
            progress = _progress_printer(sc.steps)
            started = time.perf_counter()
            out = asyncio.run(Replay(sc, s, store, progress).run())
            elapsed = time.perf_counter() - started
            typer.echo(f"simulated {sc.steps:,} steps in {elapsed:.1f}s; store: {_redact_db(url)}", err=True)
            if report is not None:
                report.mkdir(parents=True, exist_ok=True)
                (report / "simulate.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
                with (report / "audit.jsonl").open("w", encoding="utf-8") as fh:
                    fh.writelines(chain.export_lines(store.engine, "jsonl"))
        finally:
            store.engine.dispose()
        if as_json:
            typer.echo(json.dumps(out, indent=2))
        else:
            typer.echo(_sim_summary(out))
        if not out["audit"]["chain_ok"]:
            raise typer.Exit(1)

    _guard(body)


def _check_report_dir(report: Path) -> None:
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


def _progress_printer(total: int) -> Callable[[int, int], None] | None:
    if total < 5000:
        return None
    tty = sys.stderr.isatty()
    last = [-1]

    def show(done: int, total: int) -> None:
        pct = done * 100 // total
        if tty:
            bar = "#" * (pct // 4) + "-" * (25 - pct // 4)
            sys.stderr.write(f"\rsimulate [{bar}] {pct:3d}% {done:,}/{total:,} steps")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif pct // 10 != last[0] // 10:
            sys.stderr.write(f"simulate: {pct}% ({done:,}/{total:,} steps)\n")
            sys.stderr.flush()
        last[0] = pct

    return show


def _sim_summary(out: dict[str, Any]) -> str:
    lines = [f"scenario {out['scenario']!r}: {out['steps']:,} steps"]
    for v, st in out["venues"].items():
        lines.append(
            f"  {v:<14} max u {_pct(st['max_utilization'])}  min buffer {_pct(st['min_buffer'])}  "
            f"final u {_pct(st['final_utilization'])}  max m {_pct(st['max_mm_ratio'])}  "
            f"{st['final_state']}  {st['steps_above_alert']} steps above alert"
        )
    by_status: dict[str, int] = {}
    for t in out["transfers"]:
        by_status[t["status"]] = by_status.get(t["status"], 0) + 1
    lines.append(
        f"  transfers: {len(out['transfers'])} "
        f"({', '.join(f'{n} {k}' for k, n in sorted(by_status.items())) or 'none'})"
    )
    lines.append(
        f"  approvals: {len(out['approvals'])}; alerts: {len(out['alerts'])}; "
        f"notifications: {out['notifications']}"
    )
    if out["orders"]:
        reasons: dict[str, int] = {}
        for o in out["orders"]:
            reasons[o["reason"]] = reasons.get(o["reason"], 0) + 1
        lines.append(
            f"  orders: {len(out['orders'])} ({', '.join(f'{n} {k}' for k, n in sorted(reasons.items()))})"
        )
    for name, h in out["hedges"].items():
        stopped = f"  STOPPED: {h['stop_reason']}" if h["stopped"] else ""
        net = "?" if h["final_net_delta"] is None else f"{h['final_net_delta']:+.4f}"
        cost = "?" if h["cost_usd"] is None else f"{h['cost_usd']:,.0f}"
        lines.append(
            f"  hedge {name:<16} trades {h['trades']}  max |delta - target| {h['max_abs_delta_deviation']:.4f}  "
            f"final net delta {net}  cost {cost} USD{stopped}"
        )
    liq = ", ".join(f"{x['venue']} at step {x['step']}" for x in out["liquidations"]) or "none"
    lines.append(f"  liquidations: {liq}")
    lines.append(
        f"  audit: {out['audit']['events']} events, chain {'ok' if out['audit']['chain_ok'] else 'BROKEN'}"
    )
    return "\n".join(lines)


# --- status ----------------------------------------------------------------------------------------------
@app.command()
def status(config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Per venue: utilization, buffer, state, in-flight transfers; pending approvals; hedge programs."""

    def body() -> None:
        from bot import status_cmd
        from bot.app import open_store

        s = _settings(config)
        store = open_store(s, db, purpose="read")
        data = status_cmd.gather(s, store, time.time())
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        for line in status_cmd.render(data, _redact_db(db or s.bot.database_url)):
            typer.echo(line)

    _guard(body)


# --- kill switch and intents ----------------------------------------------------------------------------
AsOpt = Annotated[str, typer.Option("--as", help="Who is acting (recorded in the audit trail).")]
VenueOpt = Annotated[str | None, typer.Option("--venue", help="Only this venue (default: the whole bot).")]


UNPROVEN = "no secret given: set MARGINBOT_APPROVER_SECRET or run at a terminal to be asked"


def _approver(s: Settings, name: str, store: Store, action: str) -> str:
    """An approver who proves identity with their secret (as for `approve`).

    The same mistakes end the same way on every command: no name or no secret is bad input (exit 2, nothing
    written); a name that is not an approver, or a secret that does not match, is a refused attempt: audited
    and notified, exit 1.
    """
    from bot.engine.voting import secret_matches
    from bot.notify import note

    if not name.strip():
        raise BadInput("--as must name an approver")
    if name not in s.approvals.approvers:
        why = f"{name!r} is not in approvals.approvers"
    else:
        secret = _secret(name)
        if secret is None:
            raise BadInput(UNPROVEN)
        if secret_matches(secret, s.approvals.approver_secrets.get(name)):
            return name
        why = f"{name}: secret does not match"
    store.record(
        time.time(),
        [("auth.refused", None, {"by": name, "action": action, "reason": why})],
        notes=[note("warning", "auth", f"{action} by {name} refused: {why}", desk=s.bot.desk)],
    )
    typer.echo(f"error: refused: {why} (recorded in the audit trail)", err=True)
    raise typer.Exit(1)


def _full_id(store: Store, given: str, kinds: tuple[str, ...]) -> str:
    """The id that `given` names: the whole id, or a unique prefix of it (status shows ids short)."""
    what = " or ".join(kinds)
    text = given.strip().lower()
    if len(text) < 4:
        raise BadInput(f"ID: {given!r} is too short; give at least 4 characters of the {what} id")
    found = store.ids_starting(text)
    matches = sorted({i for k in kinds for i in found.get(k, [])})
    if text in matches:
        return text
    if not matches:
        raise BadInput(f"ID: no {what} id starts with {given!r} (see `marginbot intents` / `approvals`)")
    if len(matches) > 1:
        shown = ", ".join(m[: len(text) + 4] + "…" for m in matches[:3])
        raise BadInput(f"ID: {given!r} starts {len(matches)} {what} ids ({shown}); give more characters")
    return matches[0]


def _venue(s: Settings, venue: str | None) -> str | None:
    if venue is not None and venue not in {v.name for v in s.venues}:
        raise BadInput(f"--venue: no venue named {venue!r}")
    return venue


@app.command()
def halt(
    by: AsOpt,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded and notified).")],
    venue: VenueOpt = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Kill switch: stop every money move (the whole bot, or one venue). Honoured within one cycle."""

    def body() -> None:
        from bot.app import open_store
        from bot.engine.killswitch import KillSwitch

        s = _settings(config)
        if not by.strip() or not reason.strip():
            raise BadInput("--as and --reason must not be empty")
        where = _venue(s, venue)
        KillSwitch(open_store(s, db, purpose="create"), poll_seconds=0, desk=s.bot.desk).halt(
            time.time(), by=by, reason=reason, venue=where
        )
        typer.echo(f"halted {where or 'all venues'}: no money moves until `marginbot resume`")

    _guard(body)


@app.command()
def resume(by: AsOpt, venue: VenueOpt = None, config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Lift the kill switch (an approver, with their secret). Venues come back through `stale`, then fresh data."""

    def body() -> None:
        from bot.app import open_store
        from bot.engine.killswitch import KillSwitch

        s = _settings(config)
        where = _venue(s, venue)
        store = open_store(s, db, purpose="write")
        name = _approver(s, by, store, "resume")
        if not KillSwitch(store, poll_seconds=0, desk=s.bot.desk).resume(time.time(), by=name, venue=where):
            typer.echo(f"{where or 'the bot'} was not halted")
            return
        typer.echo(f"resumed {where or 'all venues'}")

    _guard(body)


@app.command("resume-hedge")
def resume_hedge(
    name: Annotated[str, typer.Argument(help="The hedge program (its [[hedges]] name).")],
    by: AsOpt,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Restart a hedge program stopped by its stop rule (an approver, with their secret)."""

    def body() -> None:
        from bot.app import open_store
        from bot.core.hedge_book import HedgeState
        from bot.engine.killswitch import KillSwitch

        s = _settings(config)
        if name not in {h.name for h in s.hedges}:
            known = ", ".join(h.name for h in s.hedges) or "none configured"
            raise BadInput(f"NAME: no hedge program named {name!r} ({known})")
        store = open_store(s, db, purpose="write")
        who = _approver(s, by, store, f"resume-hedge {name}")
        stored = store.ledgers().get(name)
        if stored is None or not HedgeState.from_json(stored).stopped:
            typer.echo(f"hedge {name} is not stopped")
            return
        KillSwitch(store, poll_seconds=0, desk=s.bot.desk).request_hedge_resume(
            time.time(), program=name, by=who
        )
        typer.echo(f"resume of hedge {name} requested by {who}: the bot applies it at its next cycle")

    _guard(body)


@app.command()
def intents(config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List open intents: unknown outcomes first, then in flight, then awaiting approval."""

    def body() -> None:
        from bot.app import open_store
        from bot.core.actions import OPEN_STATUSES

        s = _settings(config)
        order = {"unknown": 0, "approved": 1, "submitted": 2, "pending_approval": 3, "proposed": 4}
        rows = [
            r
            for r in open_store(s, db, purpose="read").intent_rows()
            if r["status"] in {x.value for x in OPEN_STATUSES}
        ]
        rows.sort(key=lambda r: (order.get(r["status"], 9), r["created_at"]))
        out = [
            {
                "id": r["id"],
                "status": r["status"],
                "kind": r["kind"],
                "venue": r["venue"],
                "route": r["route"],
                "asset": r["asset"],
                "amount": format(r["amount"], "f"),
                "usd": format(r["usd"], "f"),
                "created_at": _iso(r["created_at"]),
                "venue_ref": r["venue_ref"],
                "error": r["error"],
            }
            for r in rows
        ]
        if as_json:
            typer.echo(json.dumps({"intents": out}, indent=2))
            return
        if not out:
            typer.echo("no open intents")
            return
        for r in out:
            typer.echo(
                f"{r['id']}  {r['status']:<16} {r['kind']:<5} {r['amount']} {r['asset']} via {r['route']} "
                f"({r['venue']}) since {r['created_at']}"
                + (f"  last error: {r['error']}" if r["error"] else "")
            )

    _guard(body)


@app.command()
def resolve(
    given_id: Annotated[
        str, typer.Argument(metavar="ID", help="The intent id (the client id sent to the venue).")
    ],
    by: AsOpt,
    outcome: Annotated[
        str,
        typer.Option("--outcome", help="confirmed or failed (a transfer); filled or failed (an order)"),
    ],
    reason: Annotated[str, typer.Option("--reason", help="What you checked at the venue.")],
    filled: Annotated[
        str | None, typer.Option("--filled", help="An order: the quantity the venue shows as filled.")
    ] = None,
    price: Annotated[
        str | None, typer.Option("--price", help="An order: its average fill price at the venue.")
    ] = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Close an open intent or an order of unknown outcome by hand after checking the venue (an approver,
    with their secret); audited, and the running bot reloads it."""

    def body() -> None:
        from bot.app import open_store
        from bot.core.lifecycle import Lost, resolvable
        from bot.engine.resolution import INTENT_OUTCOMES, resolve_intent

        s = _settings(config)
        if not reason.strip():
            raise BadInput("--reason must say what was checked at the venue")
        store = open_store(s, db, purpose="write")
        intent_id = _full_id(store, given_id, ("intent", "order"))
        name = _approver(s, by, store, f"resolve {intent_id}")
        row = store.get_intent(intent_id)
        if row is None and store.get_order(intent_id) is not None:
            _resolve_order(s, store, intent_id, name, outcome, reason, filled, price)
            return
        if outcome not in INTENT_OUTCOMES:
            raise BadInput(f"--outcome: expected confirmed or failed, got {outcome!r}")
        if filled is not None or price is not None:
            raise BadInput("--filled and --price are for orders; this is a transfer")
        if row is None:
            raise BadInput(f"ID: no intent or order {intent_id!r}")
        if not resolvable(row.status):
            typer.echo(
                f"error: intent {intent_id} is {row.status.value}: only transfers in flight or of unknown "
                "outcome are resolved by hand",
                err=True,
            )
            raise typer.Exit(1)
        done = resolve_intent(store, row, outcome, by=name, reason=reason, now=time.time(), desk=s.bot.desk)
        if isinstance(done, Lost):
            _changed_meanwhile("intent", intent_id, done.actual)
        typer.echo(f"intent {intent_id} resolved as {outcome} (was {row.status.value})")

    _guard(body)


# --- approvals -------------------------------------------------------------------------------------------
def _resolve_order(
    s: Settings,
    store: Any,
    order_id: str,
    name: str,
    outcome: str,
    reason: str,
    filled: str | None,
    price: str | None,
) -> None:
    """An order of unknown outcome, closed by hand: failed (nothing traded) or filled (how much, at what)."""
    from decimal import Decimal, InvalidOperation

    from bot.core.hedge import OrderStatus
    from bot.core.lifecycle import Lost
    from bot.engine.resolution import resolve_order

    o = store.get_order(order_id)
    if o.status is not OrderStatus.UNKNOWN:
        typer.echo(
            f"error: order {order_id} is {o.status.value}: only orders of unknown outcome are resolved",
            err=True,
        )
        raise typer.Exit(1)
    if outcome == "failed":
        if filled is not None or price is not None:
            raise BadInput("--filled and --price go with --outcome filled")
        status, qty, avg = OrderStatus.FAILED, None, None
    elif outcome == "filled":
        try:
            qty = Decimal(filled or "")
            avg = float(Decimal(price or ""))
        except InvalidOperation:
            raise BadInput("--outcome filled needs --filled QTY and --price PRICE (plain decimals)") from None
        if not (qty.is_finite() and 0 < qty <= o.qty) or not (avg > 0 and avg < 1e12):
            raise BadInput(f"--filled must be in (0, {o.qty}] and --price positive")
        status = OrderStatus.FILLED if qty == o.qty else OrderStatus.PARTIALLY_FILLED
    else:
        raise BadInput(f"--outcome: expected filled or failed for an order, got {outcome!r}")
    done = resolve_order(
        store,
        o,
        status,
        filled=qty,
        avg_price=avg,
        by=name,
        reason=reason,
        now=time.time(),
        desk=s.bot.desk,
    )
    if isinstance(done, Lost):
        _changed_meanwhile("order", order_id, done.actual)
    typer.echo(f"order {order_id} resolved as {status.value} (was {o.status.value})")


def _changed_meanwhile(what: str, given_id: str, actual: Any) -> NoReturn:
    """A resolve that lost its race: someone (the bot's reconciliation) recorded an outcome first; exit 1."""
    now_is = "gone" if actual is None else actual.value
    typer.echo(f"error: {what} {given_id} is now {now_is}, changed meanwhile; nothing was written", err=True)
    raise typer.Exit(1)


@app.command()
def approvals(config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List approval requests, pending first: the move, why, who approved, when it expires."""

    def body() -> None:
        from bot.app import open_store

        s = _settings(config)
        store = open_store(s, db, purpose="read")
        intents_by_id = {r["id"]: r for r in store.intent_rows()}
        rows = sorted(store.approval_rows(), key=lambda a: (a["status"] != "pending", -a["created_at"]))
        out = []
        for a in rows:
            i = intents_by_id.get(a["intent_id"], {})
            out.append(
                {
                    "id": a["id"],
                    "status": a["status"],
                    "venue": i.get("venue"),
                    "route": i.get("route"),
                    "kind": i.get("kind"),
                    "asset": i.get("asset"),
                    "amount": format(i["amount"], "f") if i else None,
                    "usd": format(i["usd"], "f") if i else None,
                    "destination": i.get("destination"),
                    "address": i.get("address"),
                    "quorum": a["quorum"],
                    "eligible": json.loads(a["eligible"]),
                    "approvers": json.loads(a["approvers"]),
                    "reason": a["reason"],
                    "utilization_before": i.get("utilization_before"),
                    "utilization_after": i.get("utilization_after"),
                    "created_at": _iso(a["created_at"]),
                    "expires_at": _iso(a["expires_at"]),
                    "decided_at": None if a["decided_at"] is None else _iso(a["decided_at"]),
                    "params_hash": a["params_hash"],
                }
            )
        if as_json:
            typer.echo(json.dumps({"approvals": out}, indent=2))
            return
        if not out:
            typer.echo("no approval requests")
            return
        for r in out:
            typer.echo(
                f"{r['id']}  {r['status']:<9} {r['kind']} {r['amount']} {r['asset']} via {r['route']} → "
                f"{r['venue']} ({_pct(r['utilization_before']).strip()} → {_pct(r['utilization_after']).strip()}); "
                f"{len(r['approvers'])}/{r['quorum']} of {', '.join(r['eligible'])}"
                + (f" [{', '.join(r['approvers'])}]" if r["approvers"] else "")
                + f"; expires {r['expires_at']}; why: {r['reason']}"
            )

    _guard(body)


def _secret(name: str) -> str | None:
    """The approver's secret: $MARGINBOT_APPROVER_SECRET, else a hidden prompt when a person is at the terminal."""
    secret = os.environ.get("MARGINBOT_APPROVER_SECRET")
    if secret:
        return secret
    if sys.stdin.isatty():
        return str(typer.prompt(f"secret for {name}", hide_input=True))
    return None


def _vote(given_id: str, by: str, approve: bool, reason: str, config: Path | None, db: str | None) -> None:
    from bot.app import open_store
    from bot.core.approvals import Refused
    from bot.engine.voting import cast_vote, secret_matches

    s = _settings(config)
    if not by.strip():
        raise BadInput("--as must name an approver")
    store = open_store(s, db, purpose="write")
    intent_id = _full_id(store, given_id, ("approval",))
    ok = False  # a name that is not an approver is refused (and audited) without asking for a secret
    if by in s.approvals.approvers:
        secret = _secret(by)
        if secret is None:
            raise BadInput(UNPROVEN)
        ok = secret_matches(secret, s.approvals.approver_secrets.get(by))
    result, req = cast_vote(
        store,
        intent_id,
        approver=by,
        approve=approve,
        authenticated=ok,
        now=time.time(),
        desk=s.bot.desk,
        reason=reason,
    )
    if isinstance(result, Refused):
        typer.echo(f"error: refused: {result.reason} (recorded in the audit trail)", err=True)
        raise typer.Exit(1)
    assert req is not None
    if result.status == "approved":
        typer.echo(
            f"request {intent_id} approved by {', '.join(result.approvers)}: the bot sends it at its next cycle"
        )
    elif result.status == "rejected":
        typer.echo(f"request {intent_id} rejected")
    else:
        typer.echo(f"approval recorded: {len(result.approvers)} of {req.quorum}; waiting for more approvers")


@app.command()
def approve(
    intent_id: Annotated[
        str, typer.Argument(metavar="ID", help="The approval request id (see `approvals`).")
    ],
    by: AsOpt,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Approve a request; the secret comes from $MARGINBOT_APPROVER_SECRET or a prompt. Every attempt is audited."""
    _guard(lambda: _vote(intent_id, by, True, "", config, db))


@app.command()
def reject(
    intent_id: Annotated[
        str, typer.Argument(metavar="ID", help="The approval request id (see `approvals`).")
    ],
    by: AsOpt,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded and notified).")] = "",
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Reject a request: a single rejection ends it. Authenticated like `approve`."""
    _guard(lambda: _vote(intent_id, by, False, reason, config, db))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# --- audit -----------------------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Check the hash chain; exit 1 naming the first bad record."""

    def body() -> None:
        from bot.app import open_store
        from bot.store import audit as chain

        s = _settings(config)
        res = chain.verify(open_store(s, db, purpose="read").engine)
        if res.ok:
            typer.echo(f"audit chain OK: {res.records} records")
            return
        typer.echo(
            f"audit chain BROKEN at record {res.first_bad_seq}: {res.problem} "
            f"({res.records} records verified before it)"
        )
        raise typer.Exit(1)

    _guard(body)


@audit_app.command("export")
def audit_export(
    config: ConfigOpt = None,
    db: DbOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
) -> None:
    """Export the audit trail to stdout."""

    def body() -> None:
        from bot.app import open_store
        from bot.store import audit as chain

        if fmt not in ("jsonl", "csv"):
            raise BadInput(f"--format: expected jsonl or csv, got {fmt!r}")
        s = _settings(config)
        for line in chain.export_lines(open_store(s, db, purpose="read").engine, fmt):
            sys.stdout.write(line)

    _guard(body)


# --- stress ----------------------------------------------------------------------------------------------
@app.command()
def stress(
    config: ConfigOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    regime: Annotated[
        str | None, typer.Option("--regime", help="normal or high_vol (default: bot.regime of the config).")
    ] = None,
) -> None:
    """Projected utilization per venue under a shock grid, top-ups needed, treasury coverage.

    Exit 1 when a scenario is not covered or liquidates a venue (a scheduler can alert on it).
    """

    def body() -> None:
        from bot import stress_cmd

        s = _settings(config)
        out = stress_cmd.run(s, db, regime)
        typer.echo(json.dumps(stress_cmd.to_json(out), indent=2) if as_json else stress_cmd.render(out))
        if not out.report.ok:
            raise typer.Exit(1)

    _guard(body)


# --- bench -----------------------------------------------------------------------------------------------
@app.command()
def bench(
    config: ConfigOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    runs: Annotated[int, typer.Option("--runs", min=1, max=50, help="Repetitions per workload.")] = 3,
    year_steps: Annotated[
        int, typer.Option("--year-steps", min=1000, help="Steps of the simulation workload.")
    ] = 525_600,
    only: Annotated[
        str | None,
        typer.Option("--only", help="Comma-separated workloads to run (default: all), e.g. ccxt_snapshot."),
    ] = None,
) -> None:
    """Run the standard performance workloads and print their figures (medians over --runs)."""

    def body() -> None:
        from bot.bench import run_all

        s = _settings(config)
        out = run_all(
            s,
            _config_path(config),
            runs=runs,
            year_steps=year_steps,
            db=db,
            progress=lambda msg: typer.echo(msg, err=True),
            only=None if only is None else frozenset(x.strip() for x in only.split(",") if x.strip()),
        )
        if as_json:
            typer.echo(json.dumps(out, indent=2))
        else:
            for name, w in out["workloads"].items():
                typer.echo(f"{name}: {w['summary']}")

    _guard(body)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
