"""Shared fixtures: the shipped paper config, throwaway SQLite databases, and a real PostgreSQL when reachable."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bot.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "config" / "paper.toml"
SCENARIOS = ROOT / "config" / "scenarios"
DATA = Path(__file__).resolve().parent / "data"
PG_URL = os.environ.get("MARGINBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy may carry a notification off this machine: every request goes straight to 127.0.0.1."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")


def wait_for_blocked_writers(engine: Engine, n: int, timeout: float = 10.0) -> None:
    """Give `n` writer threads time to block on a lock (PostgreSQL: until it shows them waiting)."""
    if engine.dialect.name != "postgresql":
        time.sleep(0.5)  # SQLite writers wait in BEGIN IMMEDIATE's busy handler; nothing to observe
        return
    q = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(q).scalar_one()
            conn.commit()  # pg_stat_activity is a per-transaction snapshot
            if waiting >= n:
                return
            time.sleep(0.02)


@pytest.fixture(scope="session")
def paper_settings() -> Settings:
    return load_settings(PAPER)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'marginbot.db'}"


def _pg_admin_connect():  # type: ignore[no-untyped-def]
    import psycopg

    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(dsn, autocommit=True, connect_timeout=3)


def _postgres_db() -> Iterator[str]:
    try:
        admin = _pg_admin_connect()
    except Exception as e:  # no server here: say so and skip
        pytest.skip(f"PostgreSQL not reachable at {PG_URL.split('@')[-1]}: {type(e).__name__}")
    name = f"marginbot_t_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        from sqlalchemy import create_engine  # dispose any pooled connections before dropping

        create_engine(f"{base}/{name}").dispose()
        with _pg_admin_connect() as admin2:
            admin2.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards; skips when no server answers."""
    yield from _postgres_db()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Run a store test on SQLite and on the machine's PostgreSQL (skipped with a reason when absent)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'marginbot.db'}"
    else:
        yield from _postgres_db()
