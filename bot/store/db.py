"""Engine creation: SQLite with WAL and synchronous=FULL and writer-serialising transactions; PostgreSQL as is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from bot.errors import ConfigError, StoreUnavailable
from bot.store.audit import ensure_head
from bot.store.tables import metadata


def make_engine(url: str, *, synchronous: str = "FULL") -> Engine:
    """Create the engine for `url` and the schema if missing; ConfigError for a malformed URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigError(f"bot.database_url: not a database URL: {url!r}") from e
    if parsed.drivername.startswith("postgresql") and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        if parsed.drivername.startswith("sqlite"):
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"timeout": 30})
            _sqlite_pragmas(engine, synchronous)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as e:
        raise ConfigError(f"bot.database_url: no driver for {parsed.drivername!r} ({e})") from e
    try:
        metadata.create_all(engine)
        ensure_head(engine)
    except (OperationalError, OSError) as e:
        engine.dispose()
        raise StoreUnavailable(f"cannot open the database {_safe(parsed)}: {getattr(e, 'orig', e)}") from None
    return engine


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def display_url(url: str) -> str:
    """A database URL fit for a terminal: the password masked."""
    try:
        return _safe(make_url(url))
    except ArgumentError:
        return "(unparseable database URL)"


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # writers take the lock at the start (the audit chain's head is read and advanced in one
        # transaction); readers, marked with the `readonly` execution option, take no lock
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE")
