"""The engine over the paper venue: intent before effect, one effect per intent, and what it does on faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import build, open_store, require_paper
from bot.core.actions import IntentStatus
from bot.engine.clock import SimClock
from bot.errors import ConfigError
from bot.settings import Settings, settings_from_dict
from bot.store.tables import audit, intents, notifications
from bot.venues.base import TransferReceipt, TransferRequest
from bot.venues.paper import PaperExchange, PaperTransfers
from tests.conftest import PAPER

START = 1_772_000_000.0


def _settings(okx_usdt: int = 1_000_000, **extra: Any) -> Settings:
    """The shipped paper config with okx-main's collateral set (1M USDT: utilization 90%, a top-up is due)."""
    import tomllib

    data = tomllib.loads(PAPER.read_text())
    data["venues"][0]["paper"]["collateral"] = {"USDT": okx_usdt}
    data.update(extra)
    return settings_from_dict(data)


@dataclass
class RecordingTransfers:
    """A transfer port that, at the moment of each call, reads what the store has durably committed."""

    inner: PaperTransfers
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def submit(self, req: TransferRequest) -> TransferReceipt:
        from sqlalchemy import create_engine

        engine = create_engine(self.url)
        with engine.connect() as conn:
            row = conn.execute(select(intents.c.status).where(intents.c.id == req.client_id)).first()
            kinds = [r.kind for r in conn.execute(select(audit.c.kind).order_by(audit.c.seq))]
        engine.dispose()
        self.seen.append({"status": None if row is None else row.status, "audit": kinds})
        return await self.inner.submit(req)

    async def lookup(self, req: TransferRequest) -> TransferReceipt | None:
        return await self.inner.lookup(req)


async def _bot(s: Settings, url: str, clock: SimClock, exchange: PaperExchange | None = None):  # type: ignore[no-untyped-def]
    store = open_store(s, url)
    wired = build(s, store, clock, exchange=exchange, send_notifications=False, figures_every_seconds=None)
    await wired.bot.start()
    return wired


async def test_the_intent_and_its_audit_record_are_committed_before_the_venue_is_called(
    sqlite_url: str,
) -> None:
    """When the venue sees the transfer, the intent is already durable, with its audit record."""
    s = _settings()
    clock = SimClock(START)
    w = await _bot(s, sqlite_url, clock)
    rec = RecordingTransfers(PaperTransfers(w.exchange), sqlite_url)
    w.bot.transfers = rec
    w.bot.executor.transfers = rec
    result = await w.bot.cycle()
    assert [o.status for o in result.outcomes] == [IntentStatus.SUBMITTED]
    assert rec.seen == [{"status": "approved", "audit": ["intent.created"]}]


async def test_a_confirmed_top_up_restores_the_target_buffer(sqlite_url: str) -> None:
    """After the transfer settles, okx-main is back at a 30% buffer (70% utilization) or better."""
    s = _settings()
    clock = SimClock(START)
    w = await _bot(s, sqlite_url, clock)
    first = await w.bot.cycle()
    assert first.observed["okx-main"] is not None
    assert first.observed["okx-main"].utilization == pytest.approx(0.9)
    clock.advance(60)
    w.exchange.advance()
    second = await w.bot.cycle()
    f = second.observed["okx-main"]
    assert f is not None
    assert 1 - f.utilization >= 0.30 - 1e-9
    assert [r.status for r in w.store.intents.rows()] == ["confirmed"]
    assert w.bot.states["okx-main"].value == "healthy"


async def test_a_timeout_after_the_effect_is_unknown_never_resent_and_reconciled(sqlite_url: str) -> None:
    """The transfer happened but the answer was lost: unknown, no second transfer, adopted on lookup."""
    s = _settings()
    clock = SimClock(START)
    w = await _bot(s, sqlite_url, clock)
    w.exchange.timeout_after_effect("okx-funding-to-okx", 1)
    first = await w.bot.cycle()
    assert [o.status for o in first.outcomes] == [IntentStatus.UNKNOWN]
    assert len(w.exchange.transfers) == 1
    clock.advance(5)
    second = await w.bot.cycle()
    assert second.outcomes == ()  # the need is covered by the transfer of unknown outcome: nothing new
    assert len(w.exchange.transfers) == 1
    assert [r.status for r in w.store.intents.rows()] == ["submitted"]


async def test_a_refused_transfer_fails_and_its_route_cools_down(sqlite_url: str) -> None:
    """A frozen source refuses: the intent fails, nothing moved, and the next cycle uses another route."""
    s = _settings()
    clock = SimClock(START)
    w = await _bot(s, sqlite_url, clock)
    w.exchange.freeze("okx-funding", 3600)
    first = await w.bot.cycle()
    assert [o.status for o in first.outcomes] == [IntentStatus.FAILED]
    assert w.exchange.transfers == {}
    clock.advance(5)
    second = await w.bot.cycle()
    routes = [r.route for r in w.store.intents.rows() if r.status == "submitted"]
    assert routes == ["buffer-to-okx"]
    assert len(second.outcomes) == 1


async def test_an_outage_makes_the_venue_stale_and_nothing_moves(sqlite_url: str) -> None:
    """A venue that does not answer is `stale`; no decision is taken on it."""
    s = _settings()
    clock = SimClock(START)
    w = await _bot(s, sqlite_url, clock)
    w.exchange.outage("okx-main", 600)
    result = await w.bot.cycle()
    assert result.outcomes == ()
    assert w.bot.states["okx-main"].value == "stale"
    assert any(a.kind == "stale" for a in result.raised)


async def test_stale_data_gets_no_top_up(sqlite_url: str) -> None:
    """A venue whose data stopped updating is not topped up, however bad the old data looks."""
    s = _settings()
    clock = SimClock(START)
    w = await _bot(s, sqlite_url, clock)
    w.exchange.stale("okx-main", 3600)
    clock.advance(31)
    result = await w.bot.cycle()
    assert result.outcomes == ()
    assert w.bot.states["okx-main"].value == "stale"


async def test_a_rebuilt_bot_counts_what_is_in_flight_and_sends_nothing_twice(sqlite_url: str) -> None:
    """After a crash, a bot rebuilt from the database sees the submitted top-up and does not repeat it."""
    s = _settings()
    clock = SimClock(START)
    w = await _bot(s, sqlite_url, clock)
    await w.bot.cycle()
    assert len(w.exchange.transfers) == 1
    clock.advance(5)  # the process dies; a new one starts from the store, the exchange carries on
    w2 = await _bot(s, sqlite_url, clock, exchange=w.exchange)
    again = await w2.bot.cycle()
    assert again.outcomes == ()
    assert len(w.exchange.transfers) == 1


async def test_an_unanswered_approval_request_expires(sqlite_url: str) -> None:
    """A request nobody decides expires after expires_minutes, and nothing is sent."""
    s = _settings(okx_usdt=500_000)  # needs ~786k: above the 500k automatic limit
    clock = SimClock(START)
    w = await _bot(s, sqlite_url, clock)
    first = await w.bot.cycle()
    assert [o.status for o in first.outcomes] == [IntentStatus.PENDING_APPROVAL]
    assert w.bot.states["okx-main"].value == "awaiting_approval"
    clock.advance(30 * 60 + 1)
    await w.bot.cycle()
    rows = w.store.intents.rows()
    assert rows[0].status == "expired"
    assert w.exchange.transfers == {} or all(
        t.req.client_id != rows[0].id for t in w.exchange.transfers.values()
    )


async def test_collateral_is_conserved_except_fees(sqlite_url: str) -> None:
    """USDT across venues, accounts and transfers in flight changes only by the fees paid."""
    s = _settings(okx_usdt=800_000)
    clock = SimClock(START)
    w = await _bot(s, sqlite_url, clock)
    before = w.exchange.total_collateral("USDT")
    for _ in range(200):
        clock.advance(5)
        w.exchange.advance()
        await w.bot.cycle()
    assert w.exchange.transfers  # something moved
    assert w.exchange.total_collateral("USDT") + w.exchange.fees_paid.get("USDT", 0) == before


async def test_notifications_are_written_with_the_move(sqlite_url: str) -> None:
    """The submitted top-up leaves notifications in the outbox, in the same store as its audit records."""
    s = _settings()
    clock = SimClock(START)
    w = await _bot(s, sqlite_url, clock)
    await w.bot.cycle()
    with w.store.engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(select(notifications.c.kind))]
    assert "transfer" in kinds
    assert "utilization" in kinds


def test_simulate_refuses_live_venues_plainly_and_paper_money_cannot_reach_them(tmp_path: Path) -> None:
    """A paper account cannot send to a ccxt venue, and `simulate` names the ccxt venues it cannot replay."""
    import tomllib

    data = tomllib.loads(PAPER.read_text())
    venue = data["venues"][0]
    del venue["paper"]
    venue.update(kind="ccxt", exchange="okx")
    with pytest.raises(ConfigError, match="a paper account cannot send to a live venue"):
        settings_from_dict(data)
    data["routes"] = [r for r in data["routes"] if venue["name"] not in (r["from"], r["to"])]
    data["hedges"] = []
    with pytest.raises(ConfigError, match="simulate runs paper venues and accounts only"):
        require_paper(settings_from_dict(data))
