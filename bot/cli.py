"""The command line: parse, call, print. Exit codes: 0 success, 1 operational failure or failed check, 2 bad input.

What a command does lives elsewhere: the use cases a person starts in `bot/service/` (vote, resolve, halt,
resume), the longer command bodies in their own modules (`check_cmd`, `run_cmd`, `simulate_cmd`, `status_cmd`,
`stress_cmd`, `lists_cmd`). Here each command parses its options, calls, prints, and maps the result to an exit
code.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from bot import logs
from bot.errors import BadInput, MarginbotError
from bot.run_cmd import rehearsal_map as _rehearsal_map
from bot.settings import Settings, load_settings

if TYPE_CHECKING:
    from bot.service.resolutions import Resolution
    from bot.store.repo import Store

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
AsOpt = Annotated[str, typer.Option("--as", help="Who is acting (recorded in the audit trail).")]
VenueOpt = Annotated[str | None, typer.Option("--venue", help="Only this venue (default: the whole bot).")]

UNPROVEN = "no secret given: set MARGINBOT_APPROVER_SECRET or run at a terminal to be asked"


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


def _settings(config: Path | None) -> Settings:
    logs.configure()
    return load_settings(_config_path(config))


def _redact_db(url: str) -> str:
    from bot.store.db import display_url

    return display_url(url)


def _fail(message: str) -> NoReturn:
    """An operational failure or a refusal: one line on stderr, exit 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _refused(reason: str) -> NoReturn:
    _fail(f"refused: {reason} (recorded in the audit trail)")


# --- check-config ----------------------------------------------------------------------------------------
@app.command("check-config")
def check_config(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Validate the config and summarise venues, routes, limits and approval rules."""

    def body() -> None:
        from bot import check_cmd
        from bot.app import compile_policy, runtime_problems

        s = _settings(config)
        p = compile_policy(s)
        problems = runtime_problems(s, db)
        if problems:
            raise BadInput(problems)
        for line in check_cmd.lines(s, p, _config_path(config), _redact_db(db or s.bot.database_url)):
            typer.echo(line)

    _guard(body)


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
        from bot import run_cmd
        from bot.app import runtime_problems

        s = _settings(config)
        problems = runtime_problems(s, db)
        if problems:
            raise BadInput(problems)
        run_cmd.require_run_prices(s, db)
        asyncio.run(run_cmd.run(s, db, once, for_seconds))

    _guard(body)


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
        from bot import run_cmd
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
        asyncio.run(run_cmd.run(s, url, once, for_seconds, rehearsal_map=chosen))

    _guard(body)


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
        from bot import simulate_cmd
        from bot.app import require_paper
        from bot.sim.scenario import check_against, load_scenario

        s = _settings(config)
        require_paper(s, "simulate")
        sc = load_scenario(scenario)
        check_against(sc, s)  # before any database is opened
        if report is not None:
            simulate_cmd.check_report_dir(report)
        url = db
        if url is None:
            path = Path(tempfile.mkdtemp(prefix="marginbot-sim-")) / "simulate.db"
            url = f"sqlite:///{path}"
        out = simulate_cmd.replay(s, sc, url, report)
        typer.echo(json.dumps(out, indent=2) if as_json else simulate_cmd.summary(out))
        if not out["audit"]["chain_ok"]:
            raise typer.Exit(1)

    _guard(body)


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


# --- people: who they are, which record they mean ----------------------------------------------------------
def _secret(name: str) -> str:
    """The approver's secret: $MARGINBOT_APPROVER_SECRET, else a hidden prompt when a person is at the terminal;
    with neither, bad input (exit 2, nothing written)."""
    secret = os.environ.get("MARGINBOT_APPROVER_SECRET")
    if secret:
        return secret
    if sys.stdin.isatty():
        return str(typer.prompt(f"secret for {name}", hide_input=True))
    raise BadInput(UNPROVEN)


def _named(by: str) -> str:
    """`--as` names someone: an empty name is bad input on every command that proves a person."""
    if not by.strip():
        raise BadInput("--as must name an approver")
    return by


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


# --- kill switch -----------------------------------------------------------------------------------------
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
        from bot.service import controls

        s = _settings(config)
        if not by.strip() or not reason.strip():
            raise BadInput("--as and --reason must not be empty")
        where = _venue(s, venue)
        store = open_store(s, db, purpose="create")
        controls.halt(s, store, by=by, reason=reason, venue=where, now=time.time())
        typer.echo(f"halted {where or 'all venues'}: no money moves until `marginbot resume`")

    _guard(body)


@app.command()
def resume(by: AsOpt, venue: VenueOpt = None, config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Lift the kill switch (an approver, with their secret). Venues come back through `stale`, then fresh data."""

    def body() -> None:
        from bot.app import open_store
        from bot.core.approvals import Refused
        from bot.service import controls

        s = _settings(config)
        where = _venue(s, venue)
        store = open_store(s, db, purpose="write")
        done = controls.resume(s, store, by=_named(by), secret=_secret, venue=where, now=time.time())
        if isinstance(done, Refused):
            _refused(done.reason)
        if not done.changed:
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
        from bot.core.approvals import Refused
        from bot.service import controls

        s = _settings(config)
        if name not in {h.name for h in s.hedges}:
            known = ", ".join(h.name for h in s.hedges) or "none configured"
            raise BadInput(f"NAME: no hedge program named {name!r} ({known})")
        store = open_store(s, db, purpose="write")
        done = controls.resume_hedge(s, store, name, by=_named(by), secret=_secret, now=time.time())
        if isinstance(done, Refused):
            _refused(done.reason)
        if not done.changed:
            typer.echo(f"hedge {name} is not stopped")
            return
        typer.echo(f"resume of hedge {name} requested by {done.by}: the bot applies it at its next cycle")

    _guard(body)


# --- intents ---------------------------------------------------------------------------------------------
@app.command()
def intents(config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List open intents: unknown outcomes first, then in flight, then awaiting approval."""

    def body() -> None:
        from bot import lists_cmd
        from bot.app import open_store

        s = _settings(config)
        out = lists_cmd.open_intents(open_store(s, db, purpose="read"))
        if as_json:
            typer.echo(json.dumps({"intents": out}, indent=2))
            return
        for line in lists_cmd.intent_lines(out):
            typer.echo(line)

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
        from bot.service import resolutions

        s = _settings(config)
        if not reason.strip():
            raise BadInput("--reason must say what was checked at the venue")
        store = open_store(s, db, purpose="write")
        record_id = _full_id(store, given_id, ("intent", "order"))
        done = resolutions.resolve(
            s,
            store,
            record_id,
            by=_named(by),
            secret=_secret,
            outcome=outcome,
            reason=reason,
            filled=filled,
            price=price,
            now=time.time(),
        )
        typer.echo(_resolved(done))

    _guard(body)


def _resolved(done: Resolution) -> str:
    """What a resolve did, for people; a refusal, a record not open or a lost race exits 1."""
    from bot.core.approvals import Refused
    from bot.service.resolutions import ChangedMeanwhile, NotOpen

    if isinstance(done, Refused):
        _refused(done.reason)
    if isinstance(done, NotOpen):
        _fail(
            f"intent {done.id} is {done.status}: only transfers in flight or of unknown outcome are resolved by hand"
            if done.kind == "intent"
            else f"order {done.id} is {done.status}: only orders of unknown outcome are resolved"
        )
    if isinstance(done, ChangedMeanwhile):
        now_is = "gone" if done.actual is None else done.actual
        _fail(f"{done.kind} {done.id} is now {now_is}, changed meanwhile; nothing was written")
    return f"{done.kind} {done.id} resolved as {done.status} (was {done.was})"


# --- approvals -------------------------------------------------------------------------------------------
@app.command()
def approvals(config: ConfigOpt = None, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List approval requests, pending first: the move, why, who approved, when it expires."""

    def body() -> None:
        from bot import lists_cmd
        from bot.app import open_store

        s = _settings(config)
        out = lists_cmd.approval_list(open_store(s, db, purpose="read"))
        if as_json:
            typer.echo(json.dumps({"approvals": out}, indent=2))
            return
        for line in lists_cmd.approval_lines(out):
            typer.echo(line)

    _guard(body)


def _vote(given_id: str, by: str, approve: bool, reason: str, config: Path | None, db: str | None) -> None:
    from bot.app import open_store
    from bot.core.approvals import Refused
    from bot.service import approvals as service

    s = _settings(config)
    _named(by)
    store = open_store(s, db, purpose="write")
    request_id = _full_id(store, given_id, ("approval",))
    done = service.vote(
        s, store, request_id, by=by, approve=approve, secret=_secret, now=time.time(), reason=reason
    )
    result, req = done.outcome, done.request
    if isinstance(result, Refused):
        _refused(result.reason)
    assert req is not None
    if result.status == "approved":
        typer.echo(
            f"request {request_id} approved by {', '.join(result.approvers)}: the bot sends it at its next cycle"
        )
    elif result.status == "rejected":
        typer.echo(f"request {request_id} rejected")
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
