"""Engine creation: SQLite with WAL and synchronous=FULL and writer-serialising transactions; PostgreSQL as is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, create_engine, event, inspect, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError
from sqlalchemy.schema import CreateColumn

from bot.core.approvals import BREAK_GLASS
from bot.errors import ConfigError, StoreMissing, StoreUnavailable
from bot.store.audit import ensure_head
from bot.store.tables import intents, metadata

# Columns added to tables after a store may have been created (there is no migration tool: `create_all` makes
# missing tables, not missing columns). Each: (table, column, rows to set True once when the column is added).
_ADDED: tuple[tuple[str, str, ColumnElement[bool] | None], ...] = (
    # break-glass was once read back from the verdict text; the old rows say so there, once, here
    ("intents", "break_glass", intents.c.verdict.startswith(BREAK_GLASS, autoescape=True)),
)


def make_engine(
    url: str,
    *,
    synchronous: str = "FULL",
    create: bool = True,
    readonly: bool = False,
    label: str = "bot.database_url",
) -> Engine:
    """Create the engine for `url`; with `create`, the database and its schema where missing.

    Without `create` (the read-only commands, and those that act on records that must already exist) nothing
    is created: a missing database or one that is not marginbot's is `StoreMissing`, naming `label` (the
    option or key the URL came from). A malformed URL or a missing driver is `ConfigError`. `readonly` (SQLite)
    opens the file read-only, so that not even a checkpoint on close rewrites it.
    """
    parsed = parse_url(url, label)
    sqlite = parsed.drivername.startswith("sqlite")
    where = _safe(parsed)
    if sqlite and not create:
        _require_file(parsed, label, where)
    engine = _connect(parsed, label, synchronous=synchronous, create=create, readonly=readonly)
    try:
        if create:
            metadata.create_all(engine)
            ensure_head(engine)
            upgrade(engine)
        else:
            _require_schema(engine, label, where, readonly=readonly)
    except DatabaseError as e:
        engine.dispose()
        if isinstance(e, OperationalError) or not sqlite:
            raise StoreUnavailable(f"cannot open the database {where}: {getattr(e, 'orig', e)}") from None
        raise StoreMissing(
            f"{label}: {where} is not a marginbot database ({getattr(e, 'orig', e)})"
        ) from None
    except OSError as e:
        engine.dispose()
        raise StoreUnavailable(f"cannot open the database {where}: {e}") from None
    return engine


def _require_file(parsed: URL, label: str, where: str) -> None:
    """A SQLite store that must already exist: its file is there (nothing is created to find out)."""
    path = parsed.database
    if not path or path == ":memory:" or not Path(path).expanduser().is_file():
        raise StoreMissing(
            f"{label}: no database at {where}; nothing is recorded there yet "
            "(start the bot with `marginbot run`, or name the right database)"
        )


def _connect(parsed: URL, label: str, *, synchronous: str, create: bool, readonly: bool) -> Engine:
    """The engine itself (no connection made yet): SQLite with its pragmas, or PostgreSQL as is."""
    try:
        if not parsed.drivername.startswith("sqlite"):
            return create_engine(parsed, pool_pre_ping=True)
        if create and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        if readonly and not create:
            parsed = parsed.set(
                database=f"file:{Path(parsed.database or '').expanduser()}?mode=ro", query={"uri": "true"}
            )
        engine = create_engine(parsed, connect_args={"timeout": 30})
        _sqlite_pragmas(engine, synchronous, keep_journal=not create, readonly=readonly and not create)
    except (NoSuchModuleError, ImportError) as e:
        raise ConfigError(f"{label}: no driver for {parsed.drivername!r} ({e})") from e
    return engine


def _require_schema(engine: Engine, label: str, where: str, *, readonly: bool) -> None:
    with engine.connect().execution_options(readonly=True) as conn:
        present = set(inspect(conn).get_table_names())
        missing = sorted(set(metadata.tables) - present)
        old = [] if missing else _missing_columns(conn)
    if missing:
        engine.dispose()
        raise StoreMissing(
            f"{label}: {where} is not a marginbot database (no {', '.join(missing[:3])} table"
            f"{'s' if len(missing) > 1 else ''})"
        )
    if old and readonly:
        engine.dispose()
        raise StoreMissing(
            f"{label}: {where} was made by an older marginbot (no {', '.join(old)} column); a command that "
            "writes (`marginbot run`, `resolve`, `approve`, …) upgrades it, then read it again"
        )
    if old:
        upgrade(engine)


def _missing_columns(conn: Any) -> list[str]:
    inspector = inspect(conn)
    return [
        f"{table}.{column}"
        for table, column, _ in _ADDED
        if column not in {c["name"] for c in inspector.get_columns(table)}
    ]


def upgrade(engine: Engine) -> list[str]:
    """Add the columns this release defines that an older store lacks; idempotent (and safe for two processes
    at once: SQLite's writers queue, PostgreSQL's ADD COLUMN IF NOT EXISTS). Returns the columns added."""
    added = []
    with engine.begin() as conn:
        inspector = inspect(conn)
        for table, column, set_true in _ADDED:
            if column in {c["name"] for c in inspector.get_columns(table)}:
                continue
            spec = CreateColumn(metadata.tables[table].c[column]).compile(dialect=engine.dialect)
            guard = "IF NOT EXISTS " if engine.dialect.name == "postgresql" else ""
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {guard}{spec}")
            if set_true is not None:
                conn.execute(update(metadata.tables[table]).where(set_true).values({column: True}))
            added.append(f"{table}.{column}")
    return added


def parse_url(url: str, label: str = "bot.database_url") -> URL:
    """The URL parsed, `postgresql://` taken as psycopg 3; ConfigError naming `label` when malformed."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigError(f"{label}: not a database URL: {url!r}") from e
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def check_url(url: str, label: str = "bot.database_url") -> None:
    """That the URL parses and its driver is installed, without connecting or creating anything."""
    parsed = parse_url(url, label)
    try:
        create_engine(parsed).dispose()
    except (NoSuchModuleError, ImportError) as e:
        raise ConfigError(f"{label}: no driver for {parsed.drivername!r} ({e})") from e
    except ArgumentError as e:
        raise ConfigError(f"{label}: {e}") from e


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def display_url(url: str) -> str:
    """A database URL fit for a terminal: the password masked."""
    try:
        return _safe(make_url(url))
    except ArgumentError:
        return "(unparseable database URL)"


def _sqlite_pragmas(engine: Engine, synchronous: str, *, keep_journal: bool, readonly: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        if not keep_journal:  # switching the journal mode writes the file: an existing store keeps its own
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # writers take the lock at the start (the audit chain's head is read and advanced in one
        # transaction); readers, marked with the `readonly` execution option, take no lock
        reader = readonly or conn.get_execution_options().get("readonly")
        conn.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")
