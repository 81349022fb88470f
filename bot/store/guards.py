"""What every repository of the store shares: the database's integrity errors translated once, at the store's
edge; a duplicate insert told apart from a reused key; non-finite floats stored as NULL."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

from sqlalchemy import Connection, Table, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from bot.errors import IntegrityError


@contextlib.contextmanager
def integrity(what: str) -> Iterator[None]:
    """Translate the database's integrity errors into ours, once, at the store's edge."""
    try:
        yield
    except SAIntegrityError as e:
        raise IntegrityError(f"{what} could not be recorded: {e.orig}") from e


def already_recorded(
    conn: Connection, table: Table, key: str, params_hash: str, *, what: str, error: Exception
) -> bool:
    """After an insert refused by the primary key: True when the same move was already recorded (a no-op).

    Raises IntegrityError when the key holds other parameters (a key is never reused for another move), or
    when nothing holds it (the insert failed for another reason).
    """
    existing = conn.execute(select(table.c.params_hash).where(table.c.id == key)).first()
    if existing is None:
        raise IntegrityError(
            f"{what} {key} could not be recorded: {getattr(error, 'orig', error)}"
        ) from error
    if existing.params_hash != params_hash:
        raise IntegrityError(f"{what} {key} exists with different parameters") from None
    return True


def finite(x: float | None) -> float | None:
    """A float fit for a column: NaN and infinities are stored as NULL."""
    return None if x is None or not math.isfinite(x) else x
