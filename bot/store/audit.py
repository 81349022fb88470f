"""The tamper-evident audit trail: a gapless, hash-chained sequence of records.

    hash = sha256(prev_hash ‖ canonical_json({seq, ts, kind, venue, data, config_hash}))

The first record's prev_hash is 64 zeros. `audit_head` holds the last seq and hash, read and advanced
in the same transaction as the record (under a row lock on PostgreSQL, BEGIN IMMEDIATE on SQLite), so
concurrent writers cannot fork the chain, and deleting the newest records is detected as well.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from bot.core.actions import canonical_json
from bot.errors import IntegrityError
from bot.store.guards import integrity
from bot.store.rows import Event, Note
from bot.store.tables import audit, audit_head

if TYPE_CHECKING:
    from bot.store.repo import Store

GENESIS = "0" * 64


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(prev_hash: str, record: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(record)).encode()).hexdigest()


_HEAD = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
_HEAD_MOVE = (
    update(audit_head).where(audit_head.c.id == 1).values(seq=bindparam("h_seq"), hash=bindparam("h_hash"))
)
_INSERT = insert(audit)


def _plain_keys(obj: object) -> bool:
    """True when every mapping key, at every depth, is already a string (JSON keeps such data as it is)."""
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _plain_keys(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(_plain_keys(v) for v in obj)
    return True


def ensure_head(engine: Engine) -> None:
    """Create the chain's head row once, with the schema (two first writers must not race to create it)."""
    with engine.begin() as conn:
        if conn.execute(select(audit_head.c.id).where(audit_head.c.id == 1)).first() is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS))
            except SAIntegrityError:
                pass  # another process created it first


def _record_text(
    seq: int, stamp: str, kind: str, *, venue: str | None, data_json: str, config_hash: str | None
) -> str:
    """canonical_json of the record, assembled around the already-canonical data (keys in sorted order)."""
    dumps = json.dumps
    return (
        f'{{"config_hash":{dumps(config_hash)},"data":{data_json},"kind":{dumps(kind, ensure_ascii=False)},'
        f'"seq":{seq},"ts":{dumps(stamp)},"venue":{dumps(venue, ensure_ascii=False)}}}'
    )


def append(
    conn: Connection,
    *,
    ts: float,
    kind: str,
    data: dict[str, Any],
    venue: str | None = None,
    config_hash: str | None = None,
) -> int:
    """Append one record inside the caller's transaction; return its seq."""
    head = conn.execute(_HEAD).first()
    if head is None:  # created with the schema; gone means someone removed it: never restart the chain
        raise IntegrityError("the audit chain's head row is missing; run `marginbot audit verify`")
    seq: int = head.seq + 1
    prev: str = head.hash
    stamp = iso(ts)
    data_json = canonical_json(data)
    if not _plain_keys(data):
        # through JSON and back once, so what is hashed is exactly what verify will re-read (int keys -> str)
        data_json = canonical_json(json.loads(data_json))
    h = hashlib.sha256(
        (
            prev + _record_text(seq, stamp, kind, venue=venue, data_json=data_json, config_hash=config_hash)
        ).encode()
    ).hexdigest()
    conn.execute(
        _INSERT,
        {
            "seq": seq,
            "ts": stamp,
            "kind": kind,
            "venue": venue,
            "data": data_json,
            "config_hash": config_hash,
            "prev_hash": prev,
            "hash": h,
        },
    )
    conn.execute(_HEAD_MOVE, {"h_seq": seq, "h_hash": h})
    return seq


class AuditLog:
    """`store.audit`: events that belong to no other write (a start, an alert, a refused attempt), and the
    trail's size. Every other repository appends its records inside its own transaction (`Tx.audit`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def record(self, ts: float, events: Sequence[Event], notes: Iterable[Note] = ()) -> None:
        """Append several audit events (kind, venue, data) and their notifications in one transaction."""
        with integrity("audit record"), self._store.transaction() as tx:
            tx.events(ts, events)
            tx.notes(ts, notes)

    def count(self) -> int:
        with self._store.reading() as conn:
            return int(conn.execute(select(func.count()).select_from(audit)).scalar_one())


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify(engine: Engine) -> VerifyResult:
    """Walk the chain from the start; report the first record that is edited, missing or out of order."""
    expected_seq = 1
    prev = GENESIS
    count = 0
    with engine.connect().execution_options(readonly=True) as conn:
        for row in conn.execute(select(audit).order_by(audit.c.seq)).yield_per(2000):
            if row.seq != expected_seq:
                return VerifyResult(
                    False, count, expected_seq, f"record {expected_seq} is missing (next is {row.seq})"
                )
            if row.prev_hash != prev:
                return VerifyResult(
                    False, count, row.seq, "prev_hash does not match the previous record's hash"
                )
            try:
                data = json.loads(row.data)
            except json.JSONDecodeError:
                return VerifyResult(False, count, row.seq, "data is not valid JSON")
            record = {
                "seq": row.seq,
                "ts": row.ts,
                "kind": row.kind,
                "venue": row.venue,
                "data": data,
                "config_hash": row.config_hash,
            }
            if record_hash(prev, record) != row.hash:
                return VerifyResult(False, count, row.seq, "hash does not match the record's contents")
            prev = row.hash
            expected_seq += 1
            count += 1
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
    if head is not None and (head.seq != count or head.hash != prev):
        return VerifyResult(
            False,
            count,
            count + 1 if head.seq > count else head.seq,
            f"the chain ends at record {count} but the head says {head.seq}: records were removed",
        )
    return VerifyResult(True, count)


def rows(engine: Engine) -> Iterator[dict[str, Any]]:
    with engine.connect().execution_options(readonly=True) as conn:
        for row in conn.execute(select(audit).order_by(audit.c.seq)).yield_per(2000):
            yield {
                "seq": row.seq,
                "ts": row.ts,
                "kind": row.kind,
                "venue": row.venue,
                "data": json.loads(row.data),
                "config_hash": row.config_hash,
                "prev_hash": row.prev_hash,
                "hash": row.hash,
            }


def export_lines(engine: Engine, fmt: str) -> Iterator[str]:
    """Yield the trail as JSON Lines or CSV (data as canonical JSON in one column)."""
    if fmt == "jsonl":
        for r in rows(engine):
            yield canonical_json(r) + "\n"
        return
    fields = ["seq", "ts", "kind", "venue", "data", "config_hash", "prev_hash", "hash"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows(engine):
        w.writerow({**r, "data": canonical_json(r["data"])})
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.getvalue():
        yield buf.getvalue()
