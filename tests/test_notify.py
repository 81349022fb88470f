"""Notifications: apprise delivery to a loopback receiver, the outbox worker's retries, and the bot's guarantee
that a failing or hanging notifier never delays money movement."""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import itertools
import json
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import Wired, build, open_store
from bot.engine.clock import SimClock
from bot.notify import MAX_ATTEMPTS, AppriseSender, OutboxWorker, note
from bot.settings import Settings, settings_from_dict
from bot.store.db import make_engine
from bot.store.repo import Store
from bot.store.rows import Note
from bot.store.tables import notifications

from .conftest import PAPER

T0 = 1_772_323_200.0  # 2026-03-01T00:00:00Z
HANG_SECONDS = 30.0  # how long a hanging receiver holds a request (released earlier at teardown)
TAGS = "desk=treasury venue=okx-main asset=USDT severity="


# --- a loopback receiver for apprise's json:// notifier -------------------------------------------------


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that answers 200 ("ok"), 500 ("fail") or holds the request ("hang")."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.messages: list[dict[str, Any]] = []  # accepted (answered 200)
        self.seen: list[dict[str, Any]] = []  # every request, whatever the answer
        self.release = threading.Event()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer.seen.append(payload)
                    mode = outer.mode
                if mode == "hang":
                    outer.release.wait(HANG_SECONDS)
                    code = 503
                elif mode == "fail":
                    code = 500
                else:
                    with outer._lock:
                        outer.messages.append(payload)
                    code = 200
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the client gave up on a hung request: nothing to answer
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        host, port = self.server.server_address[:2]
        assert ipaddress.ip_address(host).is_loopback
        self.host = str(host)
        self.port = int(port)
        self.url = f"json://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def set_mode(self, mode: str) -> None:
        with self._lock:
            self.mode = mode
        if mode != "hang":
            self.release.set()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Any]:
    started: list[Receiver] = []

    def start(mode: str = "ok") -> Receiver:
        r = Receiver(mode)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    s = Store(make_engine(sqlite_url))
    yield s
    s.engine.dispose()


# --- helpers --------------------------------------------------------------------------------------------


class RecordingSender:
    """A Sender that accepts everything and remembers it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, title: str, body: str, severity: str) -> None:
        self.sent.append((title, body, severity))


class FailingSender:
    """A Sender that raises for its first `failures` calls, then accepts."""

    def __init__(self, failures: int = 10**9) -> None:
        self.failures = failures
        self.calls = 0
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, title: str, body: str, severity: str) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("notifier down")
        self.sent.append((title, body, severity))


def outbox(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        q = select(notifications).order_by(notifications.c.id)
        return [dict(r._mapping) for r in conn.execute(q)]


def enqueue(store: Store, ts: float, *notes_: Any) -> None:
    store.audit.record(ts, [], list(notes_))


def utilization_note(message: str = "okx-main: utilization 85.0% ≥ alert 80.0%") -> Note:
    return note("warning", "utilization", message, desk="treasury", venue="okx-main", asset="USDT")


def paper_dict() -> dict[str, Any]:
    return tomllib.loads(Path(PAPER).read_text(encoding="utf-8"))


def topup_settings(urls: list[str], *, timeout: float = 10.0) -> Settings:
    """The shipped paper config with okx-main's collateral cut so utilization is 90% (a top-up is due)."""
    data = copy.deepcopy(paper_dict())
    okx = next(v for v in data["venues"] if v["name"] == "okx-main")
    okx["paper"]["collateral"]["USDT"] = 1_000_000  # IM 0.9M / equity 1.0M = 90%
    data["notify"]["urls"] = urls
    data["notify"]["timeout_seconds"] = timeout
    return settings_from_dict(data)


async def wait_until(predicate: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


# --- 1. AppriseSender against a real loopback receiver --------------------------------------------------


async def test_apprise_sender_posts_title_body_and_tags_to_loopback_receiver(receivers: Any) -> None:
    """AppriseSender delivers one JSON message whose title and body, tags line included, reach the receiver."""
    rx = receivers("ok")
    n = utilization_note()
    await AppriseSender([rx.url], timeout=5.0).send(n.title, n.body, n.severity)

    assert len(rx.messages) == 1
    msg = rx.messages[0]
    assert msg["title"] == "[marginbot] WARNING okx-main: utilization 85.0% ≥ alert 80.0%"
    assert msg["message"].splitlines()[0] == "okx-main: utilization 85.0% ≥ alert 80.0%"
    assert "desk=treasury venue=okx-main asset=USDT severity=warning kind=utilization" in msg["message"]
    assert msg["type"] == "warning"


async def test_apprise_sender_maps_critical_to_failure_type(receivers: Any) -> None:
    """A critical note is sent with apprise's failure type and its tags say severity=critical."""
    rx = receivers("ok")
    n = note("critical", "derisk", "okx-main: liquidation ratio 80%", desk="treasury", venue="okx-main")
    await AppriseSender([rx.url], timeout=5.0).send(n.title, n.body, n.severity)

    assert rx.messages[0]["type"] == "failure"
    assert "desk=treasury venue=okx-main asset=- severity=critical kind=derisk" in rx.messages[0]["message"]


async def test_apprise_sender_raises_on_http_500(receivers: Any) -> None:
    """A receiver answering 500 makes send raise, so the outbox keeps the message for a retry."""
    rx = receivers("fail")
    with pytest.raises(RuntimeError):
        await AppriseSender([rx.url], timeout=5.0).send("t", "b", "info")
    assert len(rx.seen) == 1


def test_apprise_sender_rejects_unknown_scheme_without_echoing_the_url() -> None:
    """An unparseable notifier URL is refused with a message that names the scheme but not its token."""
    with pytest.raises(ValueError) as err:
        AppriseSender(["nosuchscheme://ops:tok-5ecret-VALUE@127.0.0.1/"], timeout=1.0)
    assert "nosuchscheme://" in str(err.value)
    assert "tok-5ecret-VALUE" not in str(err.value)


# --- 2. OutboxWorker over a real SQLite store -----------------------------------------------------------


async def test_outbox_delivers_pending_rows_and_marks_them_sent(store: Store) -> None:
    """Every due pending row is handed to the sender once, in order, and marked sent."""
    enqueue(
        store, T0, utilization_note(), note("info", "transfer", "okx-main: topup submitted", desk="treasury")
    )
    sender = RecordingSender()

    assert await OutboxWorker(store, sender).flush(T0) == 2
    assert [s[2] for s in sender.sent] == ["warning", "info"]
    assert [r["status"] for r in outbox(store)] == ["sent", "sent"]
    assert await OutboxWorker(store, sender).flush(T0 + 60) == 0
    assert len(sender.sent) == 2


async def test_outbox_leaves_future_rows_alone(store: Store) -> None:
    """A row is not sent before its next_attempt_at."""
    enqueue(store, T0 + 100, utilization_note())
    sender = RecordingSender()
    assert await OutboxWorker(store, sender).flush(T0) == 0
    assert sender.sent == []
    assert outbox(store)[0]["status"] == "pending"


async def test_outbox_failure_backs_off_then_delivers(store: Store) -> None:
    """A raising sender leaves the row pending with attempts=1 and a later next_attempt_at; a flush then delivers."""
    enqueue(store, T0, utilization_note())
    sender = FailingSender(failures=1)
    worker = OutboxWorker(store, sender)

    assert await worker.flush(T0) == 0
    row = outbox(store)[0]
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert row["next_attempt_at"] > T0
    assert row["last_error"] == "ConnectionError: notifier down"

    assert await worker.flush(row["next_attempt_at"] - 0.001) == 0  # not due yet: not even tried
    assert sender.calls == 1
    assert await worker.flush(row["next_attempt_at"]) == 1
    assert outbox(store)[0]["status"] == "sent"
    assert len(sender.sent) == 1


async def test_outbox_backoff_grows_and_is_capped(store: Store) -> None:
    """Each failure pushes the next attempt further out, never more than 15 minutes."""
    enqueue(store, T0, utilization_note())
    worker = OutboxWorker(store, FailingSender())
    now = T0
    delays = []
    for _ in range(MAX_ATTEMPTS - 1):
        await worker.flush(now)
        nxt = outbox(store)[0]["next_attempt_at"]
        delays.append(nxt - now)
        now = nxt
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert delays[0] < delays[-1]
    assert max(delays) <= 900.0


async def test_outbox_gives_up_after_max_attempts(store: Store) -> None:
    """After MAX_ATTEMPTS failures the row is marked failed and never tried again."""
    enqueue(store, T0, utilization_note())
    sender = FailingSender()
    worker = OutboxWorker(store, sender)
    now = T0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        await worker.flush(now)
        row = outbox(store)[0]
        assert row["attempts"] == attempt
        assert row["status"] == ("failed" if attempt == MAX_ATTEMPTS else "pending")
        now = row["next_attempt_at"]
    assert sender.calls == MAX_ATTEMPTS
    await worker.flush(now + 86_400)
    assert sender.calls == MAX_ATTEMPTS


async def test_outbox_one_failing_row_does_not_block_the_others(store: Store) -> None:
    """A message the sender refuses is retried later while the rows after it are still delivered."""
    enqueue(store, T0, utilization_note(message="poison"), utilization_note(message="fine"))

    class PickySender(RecordingSender):
        async def send(self, title: str, body: str, severity: str) -> None:
            if "poison" in title:
                raise ValueError("refused")
            await super().send(title, body, severity)

    sender = PickySender()
    assert await OutboxWorker(store, sender).flush(T0) == 1
    assert [r["status"] for r in outbox(store)] == ["pending", "sent"]


async def test_partial_delivery_is_not_repeated_to_the_working_notifier(store: Store, receivers: Any) -> None:
    """With one notifier up and one down, retries do not send the working one the same message again."""
    up, down = receivers("ok"), receivers("fail")
    enqueue(store, T0, utilization_note())
    worker = OutboxWorker(store, AppriseSender([up.url, down.url], timeout=5.0))
    now = T0
    for _ in range(3):
        await worker.flush(now)
        now = outbox(store)[0]["next_attempt_at"] if outbox(store)[0]["status"] == "pending" else now + 60
    assert len(down.seen) >= 1
    assert len(up.messages) == 1, f"the working notifier received {len(up.messages)} copies of one message"


# --- 3. a hanging notifier is abandoned after the timeout --------------------------------------------------


async def test_apprise_sender_abandons_a_hanging_receiver_after_its_timeout(receivers: Any) -> None:
    """send gives up with a TimeoutError after its timeout, long before the receiver would answer."""
    rx = receivers("hang")
    sender = AppriseSender([rx.url], timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await sender.send("t", "b", "info")
    assert time.monotonic() - started < 2.0
    assert len(rx.seen) == 1
    rx.release.set()  # let the abandoned worker thread finish instead of waiting out apprise's read timeout


async def test_outbox_flush_survives_a_hanging_receiver(store: Store, receivers: Any) -> None:
    """A flush against a hanging notifier returns after the timeout without raising, and keeps the row for retry."""
    rx = receivers("hang")
    enqueue(store, T0, utilization_note())
    worker = OutboxWorker(store, AppriseSender([rx.url], timeout=0.3))

    started = time.monotonic()
    assert await worker.flush(T0) == 0
    assert time.monotonic() - started < 2.0
    row = outbox(store)[0]
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert row["next_attempt_at"] > T0
    assert row["last_error"].startswith("TimeoutError")

    rx.set_mode("ok")
    assert await worker.flush(row["next_attempt_at"]) == 1
    assert outbox(store)[0]["status"] == "sent"
    assert rx.messages[0]["title"] == utilization_note().title


# --- 4. end to end: the bot moves money whatever the notifier does --------------------------------------


@pytest.mark.parametrize("mode", ["hang", "fail"])
async def test_bot_tops_up_despite_broken_notifier_then_delivers_when_it_recovers(
    mode: str, receivers: Any, sqlite_url: str
) -> None:
    """A hanging or 500-ing notifier neither delays the cycle nor stops the top-up; notes arrive on recovery."""
    rx = receivers(mode)
    timeout = 1.0
    s = topup_settings([rx.url], timeout=timeout)
    store = open_store(s, sqlite_url)
    clock = SimClock(T0)
    wired: Wired = build(s, store, clock)
    bot = wired.bot
    await bot.start()
    funding_before = wired.exchange.accounts["okx-funding"]["USDT"]

    started = time.monotonic()
    result = await bot.cycle()
    assert time.monotonic() - started < timeout / 2  # well under the notifier's timeout, let alone the hang

    # the money move is unaffected: intent committed and submitted, funds left the source account
    submitted = [o for o in result.outcomes if o.status is not None]
    assert len(submitted) == 1
    assert submitted[0].status.value == "submitted"
    intents = store.intents.rows()
    assert [(i.route, i.status) for i in intents] == [("okx-funding-to-okx", "submitted")]
    assert wired.exchange.accounts["okx-funding"]["USDT"] < funding_before
    assert len(wired.exchange.transfers) == 1

    # the notifier is being called (and is hanging or failing) while the bot carries on
    await wait_until(lambda: len(rx.seen) >= 1)
    clock.advance(s.bot.cycle_seconds)
    started = time.monotonic()
    await bot.cycle()
    assert time.monotonic() - started < timeout / 2
    assert len(store.intents.rows()) == 1  # no second top-up for the same need

    await bot.close()  # waits for the background flush to give up
    rows = outbox(store)
    assert rows, "the cycle's notifications are in the outbox"
    assert all(r["status"] == "pending" for r in rows)
    tried = [r for r in rows if r["attempts"] >= 1]
    assert tried
    assert all(r["next_attempt_at"] > T0 for r in tried)
    expected_error = "TimeoutError" if mode == "hang" else "RuntimeError"
    assert all(r["last_error"].startswith(expected_error) for r in tried)
    assert rx.messages == []
    titles = [r["title"] for r in rows]
    assert any("submitted" in t for t in titles)
    assert any("utilization" in t for t in titles)

    # the notifier recovers: the next cycles deliver everything that was waiting
    rx.set_mode("ok")
    for _ in range(2):
        clock.advance(60)
        await bot.cycle()
        await bot.close()
    assert all(r["status"] == "sent" for r in outbox(store))
    delivered = [m["title"] for m in rx.messages]
    for t in titles:
        assert t in delivered
    topup = next(m for m in rx.messages if "submitted" in m["title"])
    assert TAGS + "info" in topup["message"]
    store.engine.dispose()


async def test_bot_without_notifier_urls_keeps_notes_in_the_outbox(sqlite_url: str) -> None:
    """With no notify URL the top-up still runs and its notes wait in the outbox."""
    s = topup_settings([])
    store = open_store(s, sqlite_url)
    wired = build(s, store, SimClock(T0))
    assert wired.bot.outbox is None
    await wired.bot.start()
    await wired.bot.cycle()
    await wired.bot.close()
    assert store.intents.rows()[0].status == "submitted"
    assert outbox(store)
    assert all(r["status"] == "pending" and r["attempts"] == 0 for r in outbox(store))
    store.engine.dispose()


# --- 5. alert de-duplication --------------------------------------------------------------------------------


def standing_alert_settings(repeat_minutes: float) -> Settings:
    """okx-main at 75% utilization against a 70% alert level: an alert that stands without any top-up."""
    data = copy.deepcopy(paper_dict())
    okx = next(v for v in data["venues"] if v["name"] == "okx-main")
    okx["alert_utilization"] = 0.70
    okx["paper"]["collateral"]["USDT"] = 1_200_000  # IM 0.9M / 1.2M = 75%: buffer 25% is inside the band
    data["notify"]["repeat_minutes"] = repeat_minutes
    data["notify"]["urls"] = []
    return settings_from_dict(data)


async def test_standing_alert_is_notified_once_repeated_after_repeat_minutes_and_cleared(
    sqlite_url: str,
) -> None:
    """A standing alert yields one note, a repeat only every repeat_minutes, and an info note when it clears."""
    s = standing_alert_settings(repeat_minutes=2)
    store = open_store(s, sqlite_url)
    clock = SimClock(T0)
    wired = build(s, store, clock, figures_every_seconds=None)
    bot = wired.bot
    await bot.start()
    step = s.bot.cycle_seconds
    repeat = s.notify.repeat_minutes * 60

    def notes_() -> list[dict[str, Any]]:
        return [r for r in outbox(store) if r["kind"] == "utilization"]

    async def run_until(t: float) -> None:
        while clock.now() <= t:
            await bot.cycle()
            clock.advance(step)

    await run_until(T0 + repeat - step)  # every cycle up to just before the repeat is due
    assert len(notes_()) == 1
    first = notes_()[0]
    assert first["severity"] == "warning"
    assert first["created_at"] == T0
    assert "okx-main: utilization 75.0% ≥ alert 70.0%" in first["title"]
    assert "desk=treasury venue=okx-main asset=- severity=warning kind=utilization" in first["body"]
    assert not store.intents.rows()  # the alert stands without any money moving

    await run_until(T0 + repeat)  # the cycle at exactly repeat_minutes repeats it
    assert [r["created_at"] for r in notes_()] == [T0, T0 + repeat]
    await run_until(T0 + 2 * repeat - step)
    assert len(notes_()) == 2
    await run_until(T0 + 2 * repeat)
    assert len(notes_()) == 3

    wired.exchange.set_margin_factor("okx-main", 0.8)  # IM 0.72M / 1.2M = 60%: below the alert level
    cleared_at = clock.now()
    await run_until(cleared_at + 10 * step)
    cleared = [r for r in notes_() if r["created_at"] == cleared_at]
    assert len(notes_()) == 4
    assert len(cleared) == 1
    assert cleared[0]["severity"] == "info"
    assert "okx-main: utilization alert cleared" in cleared[0]["title"]
    assert "severity=info" in cleared[0]["body"]
    assert [a.alert.kind for a in bot.alert_log] == ["utilization"]
    await bot.close()
    store.engine.dispose()


async def test_alert_raised_again_after_clearing_is_a_fresh_alert(sqlite_url: str) -> None:
    """An alert that clears and comes back is notified at once, not held back by the repeat interval."""
    s = standing_alert_settings(repeat_minutes=30)
    store = open_store(s, sqlite_url)
    clock = SimClock(T0)
    wired = build(s, store, clock, figures_every_seconds=None)
    bot = wired.bot
    await bot.start()
    await bot.cycle()
    wired.exchange.set_margin_factor("okx-main", 0.8)
    clock.advance(5)
    await bot.cycle()
    wired.exchange.set_margin_factor("okx-main", 1.0)
    clock.advance(5)
    await bot.cycle()
    kinds = [(r["severity"], r["created_at"]) for r in outbox(store) if r["kind"] == "utilization"]
    assert kinds == [("warning", T0), ("info", T0 + 5), ("warning", T0 + 10)]
    await bot.close()
    store.engine.dispose()
