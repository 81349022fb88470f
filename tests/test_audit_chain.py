"""The audit trail: a gapless hash chain that `verify` and `marginbot audit verify` check, and that exports."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from typer.testing import CliRunner

from bot.cli import app
from bot.store import audit as chain
from bot.store.db import make_engine
from bot.store.repo import Store
from bot.store.tables import audit, audit_head
from tests.conftest import wait_for_blocked_writers

PAPER = Path(__file__).resolve().parent.parent / "config" / "paper.toml"
T0 = 1_772_323_200.0  # 2026-03-01T00:00:00Z
N = 6


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _fill(engine: Engine, n: int = N) -> Store:
    """Write `n` hand-written records, some in one transaction, some alone, with and without a venue."""
    store = Store(engine, config_hash="c0ffee")
    store.audit.record(
        T0,
        [
            ("venue.observed", "okx-main", {"utilization": 0.61, "equity": "1500000"}),
            ("venue.observed", "bybit-main", {"utilization": 0.52, "equity": "571428.57"}),
        ],
    )
    for i in range(2, n):
        store.audit.record(
            T0 + i, [("decision", None, {"step": i, "note": "buffer inside band", "amount": "1234.5"})]
        )
    return store


def _exec(engine: Engine, sql: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def _seqs(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [r.seq for r in conn.execute(select(audit.c.seq).order_by(audit.c.seq))]


def _row(engine: Engine, seq: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(select(audit).where(audit.c.seq == seq)).one()._mapping)


# --- appending -----------------------------------------------------------------------------------------
def test_empty_trail_verifies(engine: Engine) -> None:
    """A store with no records verifies as an intact chain of zero records."""
    res = chain.verify(engine)
    assert res.ok
    assert res.records == 0
    assert res.first_bad_seq is None


def test_appends_give_gapless_seq_and_verify(engine: Engine) -> None:
    """Appending N records gives seq 1..N, each linked to the previous hash, and verify reports N records."""
    _fill(engine)
    assert _seqs(engine) == list(range(1, N + 1))
    rows = list(chain.rows(engine))
    assert rows[0]["prev_hash"] == chain.GENESIS
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]
    with engine.connect() as conn:
        head = conn.execute(select(audit_head)).one()
    assert (head.seq, head.hash) == (N, rows[-1]["hash"])
    res = chain.verify(engine)
    assert res.ok, res.problem
    assert res.records == N


def test_record_hash_covers_the_stored_fields(engine: Engine) -> None:
    """Each stored hash is sha256(prev_hash ‖ canonical JSON of seq, ts, kind, venue, data, config_hash)."""
    _fill(engine, 3)
    for r in chain.rows(engine):
        body = {k: r[k] for k in ("seq", "ts", "kind", "venue", "data", "config_hash")}
        assert r["hash"] == chain.record_hash(r["prev_hash"], body)
        assert r["config_hash"] == "c0ffee"
    assert _row(engine, 1)["ts"] == "2026-03-01T00:00:00.000000Z"


def test_append_rolled_back_with_its_transaction(engine: Engine) -> None:
    """An append whose transaction rolls back leaves no record and no head move; the next append reuses the seq."""
    _fill(engine, 2)
    with engine.connect() as conn:
        trans = conn.begin()
        assert chain.append(conn, ts=T0 + 10, kind="transfer.submitted", data={"intent": "x"}) == 3
        trans.rollback()
    assert _seqs(engine) == [1, 2]
    with engine.begin() as conn:
        assert chain.append(conn, ts=T0 + 11, kind="transfer.submitted", data={"intent": "y"}) == 3
    res = chain.verify(engine)
    assert res.ok, res.problem
    assert res.records == 3


def test_decimal_and_nested_data_verify(engine: Engine) -> None:
    """Data holding Decimals, unicode and nested lists is stored canonically and still verifies."""
    from decimal import Decimal

    store = Store(engine)
    store.audit.record(
        T0,
        [
            (
                "intent.created",
                "okx-main",
                {"amount": Decimal("1234567.123456789012345678"), "who": ["alice", "bob"], "why": "u ≥ 80%"},
            )
        ],
    )
    (r,) = chain.rows(engine)
    assert r["data"] == {"amount": "1234567.123456789012345678", "who": ["alice", "bob"], "why": "u ≥ 80%"}
    assert chain.verify(engine).ok


def test_integer_keyed_data_verifies(engine: Engine) -> None:
    """A record whose data has integer keys (stored as JSON strings, 2 before 10) verifies as written."""
    store = Store(engine)
    store.audit.record(
        T0, [("route.legs", "okx-main", {"legs": {2: "buffer-to-okx", 10: "emergency-to-okx"}})]
    )
    (r,) = chain.rows(engine)
    assert r["data"] == {"legs": {"2": "buffer-to-okx", "10": "emergency-to-okx"}}
    res = chain.verify(engine)
    assert res.ok, res.problem


# --- tampering -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, N])
def test_edited_data_names_that_record(engine: Engine, k: int) -> None:
    """Editing one record's data makes verify fail with first_bad_seq equal to that record's seq."""
    _fill(engine)
    _exec(engine, "UPDATE audit SET data = :d WHERE seq = :k", d='{"amount":"9999999"}', k=k)
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == k
    assert res.records == k - 1
    assert "hash" in (res.problem or "")


@pytest.mark.parametrize(
    ("column", "value"),
    [("kind", "decision.forged"), ("ts", "2026-03-01T00:00:01.000000Z"), ("venue", "bybit-main")],
)
def test_edited_other_field_names_that_record(engine: Engine, column: str, value: str) -> None:
    """Editing a record's kind, timestamp or venue is detected at that record."""
    _fill(engine)
    _exec(engine, f"UPDATE audit SET {column} = :v WHERE seq = 3", v=value)
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == 3


def test_edited_config_hash_names_that_record(engine: Engine) -> None:
    """Clearing the config hash a record was written under is detected at that record."""
    _fill(engine)
    _exec(engine, "UPDATE audit SET config_hash = NULL WHERE seq = 2")
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == 2


def test_edit_with_recomputed_hash_breaks_the_next_link(engine: Engine) -> None:
    """Rewriting a record and recomputing its own hash is caught at the next record, via its prev_hash."""
    _fill(engine)
    r = _row(engine, 3)
    forged = {"step": 3, "note": "nothing to see", "amount": "1"}
    body = {
        "seq": 3,
        "ts": r["ts"],
        "kind": r["kind"],
        "venue": r["venue"],
        "data": forged,
        "config_hash": r["config_hash"],
    }
    _exec(
        engine,
        "UPDATE audit SET data = :d, hash = :h WHERE seq = 3",
        d=json.dumps(forged, sort_keys=True, separators=(",", ":")),
        h=chain.record_hash(r["prev_hash"], body),
    )
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == 4
    assert "prev_hash" in (res.problem or "")


def test_data_that_is_not_json_names_that_record(engine: Engine) -> None:
    """A record whose data is no longer JSON is reported at that record, not as a crash."""
    _fill(engine)
    _exec(engine, "UPDATE audit SET data = 'not json {' WHERE seq = 2")
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == 2


def test_first_of_several_edits_is_named(engine: Engine) -> None:
    """With two records edited, verify names the earlier one."""
    _fill(engine)
    _exec(engine, "UPDATE audit SET data = '{}' WHERE seq = 5")
    _exec(engine, "UPDATE audit SET data = '{}' WHERE seq = 2")
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == 2


@pytest.mark.parametrize("k", [1, 3])
def test_deleted_record_reported_missing(engine: Engine, k: int) -> None:
    """Deleting a record that is not the last is reported as that seq missing."""
    _fill(engine)
    _exec(engine, "DELETE FROM audit WHERE seq = :k", k=k)
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == k
    assert "missing" in (res.problem or "")


@pytest.mark.parametrize("removed", [1, 2])
def test_deleted_tail_detected_via_head(engine: Engine, removed: int) -> None:
    """Deleting the newest record(s) leaves a valid-looking prefix, which the head catches, naming the first gone."""
    _fill(engine)
    _exec(engine, "DELETE FROM audit WHERE seq > :keep", keep=N - removed)
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == N - removed + 1
    assert res.records == N - removed
    assert "removed" in (res.problem or "")


def test_deleted_everything_detected_via_head(engine: Engine) -> None:
    """Emptying the audit table while the head remains is detected at record 1."""
    _fill(engine)
    _exec(engine, "DELETE FROM audit")
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == 1


def test_reordered_records_detected(engine: Engine) -> None:
    """Swapping the seq numbers of two records (a reorder) is detected at the earlier position."""
    _fill(engine)
    _exec(engine, "UPDATE audit SET seq = -1 WHERE seq = 2")
    _exec(engine, "UPDATE audit SET seq = 2 WHERE seq = 4")
    _exec(engine, "UPDATE audit SET seq = 4 WHERE seq = -1")
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == 2


@pytest.mark.parametrize("with_hashes", [False, True])
def test_swapped_contents_detected(engine: Engine, with_hashes: bool) -> None:
    """Swapping the contents of two records, with or without their hashes, is detected at the earlier one."""
    _fill(engine)
    a, b = _row(engine, 3), _row(engine, 4)
    cols = ["ts", "kind", "venue", "data", "config_hash"] + (["prev_hash", "hash"] if with_hashes else [])
    sets = ", ".join(f"{c} = :{c}" for c in cols)
    _exec(engine, f"UPDATE audit SET {sets} WHERE seq = 3", **{c: b[c] for c in cols})
    _exec(engine, f"UPDATE audit SET {sets} WHERE seq = 4", **{c: a[c] for c in cols})
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == 3


def test_changed_prev_hash_detected(engine: Engine) -> None:
    """Changing one record's prev_hash is detected at that record."""
    _fill(engine)
    _exec(engine, "UPDATE audit SET prev_hash = :h WHERE seq = 4", h="f" * 64)
    res = chain.verify(engine)
    assert not res.ok
    assert res.first_bad_seq == 4
    assert "prev_hash" in (res.problem or "")


# --- concurrency ---------------------------------------------------------------------------------------
def test_concurrent_appends_keep_the_chain_gapless(engine: Engine) -> None:
    """Two threads appending 50 records each, one transaction per record, yield a gapless chain that verifies."""
    store = Store(engine)
    store.audit.record(T0, [("bot.started", None, {"pid": 1})])  # the head exists before the writers race
    per_thread = 50
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                store.audit.record(T0 + i, [("thread.tick", None, {"thread": name, "i": i})])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    total = 1 + 2 * per_thread
    assert _seqs(engine) == list(range(1, total + 1))
    res = chain.verify(engine)
    assert res.ok, res.problem
    assert res.records == total
    by_thread: dict[str, list[int]] = {"a": [], "b": []}
    for r in chain.rows(engine):
        if r["kind"] == "thread.tick":
            by_thread[r["data"]["thread"]].append(r["data"]["i"])
    assert by_thread == {"a": list(range(per_thread)), "b": list(range(per_thread))}


def test_second_writer_waits_for_the_first_record(engine: Engine) -> None:
    """A writer that starts while the very first append is still uncommitted waits for it and appends record 2."""
    store = Store(engine)
    errors: list[BaseException] = []

    def second() -> None:
        try:
            store.audit.record(T0 + 1, [("bot.started", None, {"instance": "b"})])
        except BaseException as e:
            errors.append(e)

    with engine.connect() as conn:
        trans = conn.begin()
        chain.append(conn, ts=T0, kind="bot.started", data={"instance": "a"})
        t = threading.Thread(target=second)
        t.start()
        wait_for_blocked_writers(engine, 1)
        trans.commit()
    t.join(timeout=60)
    assert not errors, f"second writer failed: {errors[0]!r}" if errors else ""
    res = chain.verify(engine)
    assert res.ok, res.problem
    assert res.records == 2


# --- the command line ----------------------------------------------------------------------------------
def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_cli_verify_ok(db_url: str) -> None:
    """`marginbot audit verify` on an intact trail exits 0 and prints OK with the record count."""
    eng = make_engine(db_url)
    _fill(eng)
    eng.dispose()
    result = _cli("audit", "verify", "--config", str(PAPER), "--db", db_url)
    assert result.exit_code == 0, result.output
    assert re.search(r"\bOK\b", result.stdout) is not None
    assert f"{N} records" in result.stdout


@pytest.mark.parametrize("k", [2, 5])
def test_cli_verify_tampered_names_first_bad_record(db_url: str, k: int) -> None:
    """`marginbot audit verify` on an edited trail exits 1 and names the edited record's seq."""
    eng = make_engine(db_url)
    _fill(eng)
    _exec(eng, 'UPDATE audit SET data = \'{"amount":"1"}\' WHERE seq = :k', k=k)
    eng.dispose()
    result = _cli("audit", "verify", "--config", str(PAPER), "--db", db_url)
    assert result.exit_code == 1, result.output
    assert re.search(r"\bOK\b", result.stdout) is None
    m = re.search(r"BROKEN at record (\d+)", result.stdout)
    assert m is not None, result.output
    assert int(m.group(1)) == k


def test_cli_verify_truncated_tail_exits_1(db_url: str) -> None:
    """`marginbot audit verify` after the newest record was deleted exits 1 and names that seq."""
    eng = make_engine(db_url)
    _fill(eng)
    _exec(eng, "DELETE FROM audit WHERE seq = :k", k=N)
    eng.dispose()
    result = _cli("audit", "verify", "--config", str(PAPER), "--db", db_url)
    assert result.exit_code == 1, result.output
    assert f"record {N}" in result.stdout


def test_cli_export_jsonl(db_url: str) -> None:
    """`audit export --format jsonl` prints one JSON object per record, with seq and hashes that re-verify offline."""
    eng = make_engine(db_url)
    _fill(eng)
    eng.dispose()
    result = _cli("audit", "export", "--config", str(PAPER), "--db", db_url, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == N
    objs = [json.loads(line) for line in lines]
    assert [o["seq"] for o in objs] == list(range(1, N + 1))
    prev = chain.GENESIS
    for o in objs:
        assert o["prev_hash"] == prev
        body = {k: o[k] for k in ("seq", "ts", "kind", "venue", "data", "config_hash")}
        assert o["hash"] == chain.record_hash(prev, body)
        prev = o["hash"]


def test_cli_export_csv(db_url: str) -> None:
    """`audit export --format csv` prints a header and one row per record, data as canonical JSON."""
    eng = make_engine(db_url)
    _fill(eng)
    eng.dispose()
    result = _cli("audit", "export", "--config", str(PAPER), "--db", db_url, "--format", "csv")
    assert result.exit_code == 0, result.output
    reader = csv.DictReader(io.StringIO(result.stdout))
    assert reader.fieldnames == ["seq", "ts", "kind", "venue", "data", "config_hash", "prev_hash", "hash"]
    rows = list(reader)
    assert [int(r["seq"]) for r in rows] == list(range(1, N + 1))
    assert all(len(r["hash"]) == 64 for r in rows)
    assert json.loads(rows[0]["data"]) == {"equity": "1500000", "utilization": 0.61}
    assert rows[0]["venue"] == "okx-main"


def test_cli_export_csv_empty_trail_is_header_only(db_url: str) -> None:
    """`audit export --format csv` on an empty trail prints only the header line."""
    make_engine(db_url).dispose()
    result = _cli("audit", "export", "--config", str(PAPER), "--db", db_url, "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["seq,ts,kind,venue,data,config_hash,prev_hash,hash"]


def test_cli_export_rejects_unknown_format(sqlite_url: str) -> None:
    """`audit export --format xml` is bad input: exit 2 with one line naming --format."""
    result = _cli("audit", "export", "--config", str(PAPER), "--db", sqlite_url, "--format", "xml")
    assert result.exit_code == 2
    assert "--format" in result.output
    assert "Traceback" not in result.output


def test_export_count_matches_table(engine: Engine) -> None:
    """The JSON Lines export has exactly as many lines as the audit table has rows."""
    _fill(engine)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(audit)).scalar_one()
    assert len(list(chain.export_lines(engine, "jsonl"))) == count == N
