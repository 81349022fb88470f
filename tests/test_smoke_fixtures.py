"""The shared fixtures themselves work: a store opens on SQLite and on PostgreSQL."""

from bot.store.db import make_engine
from bot.store.repo import Store


def test_store_opens_on_each_database(db_url: str) -> None:
    """A fresh store on either database has an empty audit trail."""
    store = Store(make_engine(db_url))
    assert store.audit.count() == 0
    store.engine.dispose()
