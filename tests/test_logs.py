"""Redaction: secrets never reach the logs, whether in free text, in structured fields, or across a bot cycle."""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import select

from bot import logs
from bot.app import build, open_store
from bot.engine.clock import SimClock
from bot.errors import ConfigError
from bot.logs import redact, redact_text
from bot.settings import settings_from_dict
from bot.store.tables import audit, notifications

from .conftest import PAPER

T0 = 1_772_323_200.0
TOKEN = "xoxb-5ecr3t-T0KEN-4417"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


# --- redact_text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (
            "GET /sapi/v1/capital/withdraw/apply?timestamp=1&signature=9f8e7d6c5b4a&recvWindow=5000",
            "9f8e7d6c5b4a",
        ),
        ("POST /v5/asset/transfer?apiKey=AKIAXYZ123&ts=1", "AKIAXYZ123"),
        ("params api_key=K-77aa&x=1", "K-77aa"),
        ("retry with token=tok_abc.def and again", "tok_abc.def"),
        ("login password=hunter2 failed", "hunter2"),
        ("SECRET=s3cr3tvalue", "s3cr3tvalue"),
    ],
)
def test_redact_text_strips_query_string_secrets(text: str, secret: str) -> None:
    """Values of signature=, apiKey=, api_key=, token=, password= and secret= are replaced, the key kept."""
    out = redact_text(text)
    assert secret not in out
    assert "***" in out


def test_redact_text_keeps_the_parameter_name_and_the_rest_of_the_query() -> None:
    """Only the secret value goes: the other parameters stay readable for debugging."""
    out = redact_text("timestamp=1&signature=abcdef&recvWindow=5000")
    assert out == "timestamp=1&signature=***&recvWindow=5000"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("https://ops:pa55w0rd@example.com/hook", "pa55w0rd"),
        (
            "could not connect to postgresql+psycopg://marginbot:hunter2pw@10.0.0.5:5432/marginbot",
            "hunter2pw",
        ),
        ("ccxt error: https://user:Sup3rSecret@api.example.com/v1?x=1 refused", "Sup3rSecret"),
    ],
)
def test_redact_text_strips_url_credentials(text: str, secret: str) -> None:
    """user:password@ in a URL is masked."""
    out = redact_text(text)
    assert secret not in out
    assert "://" in out


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("tgram://123456789:AAFm-Tg7SeCrEtToKeN/-1001234567", "AAFm-Tg7SeCrEtToKeN"),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops", "TIiajkdnlazkcOXrIdevi7FQ"),
        ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", "JHMHI8qBe7bk2ZwO5U711o3dV_js"),
        ("json://ops:WebH00kPass@127.0.0.1:8099/", "WebH00kPass"),
        ("msg91://Msg91AuthKeySecret/15551234567", "Msg91AuthKeySecret"),
        ("signl4://Signl4TeamSecret/", "Signl4TeamSecret"),
        ("o365://tenant-id:ops@example.com/client-id/O365ClientSecret/", "O365ClientSecret"),
    ],
)
def test_redact_text_strips_whole_notifier_urls(url: str, secret: str) -> None:
    """An apprise URL of any scheme loses everything after the scheme: its path and userinfo carry tokens."""
    out = redact_text(f"notifier {url} rejected the message")
    assert secret not in out
    assert out.startswith("notifier ")
    assert out.endswith(" rejected the message")


def test_redact_text_leaves_ordinary_text_alone() -> None:
    """A message without secrets is unchanged."""
    text = "okx-main: topup 285714.29 USDT okx-funding → okx-main via okx-funding-to-okx (90.0% → 70.0%)"
    assert redact_text(text) == text


# --- the structlog processor ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["api_key", "apiKey", "APIKEY", "secret", "client_secret", "token", "bot_token", "password", "signature"],
)
def test_redact_processor_masks_secret_keys(key: str) -> None:
    """The value of any key that names a secret is replaced by ***, whatever its type."""
    event = redact(None, "warning", {"event": "calling venue", key: "V3ryS3cretValue"})
    assert event[key] == "***"
    assert event["event"] == "calling venue"
    assert redact(None, "warning", {"event": "e", key: 12345})[key] == "***"


def test_redact_processor_scrubs_secret_text_in_other_fields() -> None:
    """String values under ordinary keys go through redact_text; other values and keys are kept."""
    event = redact(
        None,
        "warning",
        {
            "event": "withdraw failed: https://api.example.com/withdraw?signature=abc123",
            "error": "GET /x?apiKey=K1&signature=S1 -> 401",
            "venue": "okx-main",
            "attempts": 3,
        },
    )
    text = json.dumps(event)
    for secret in ("abc123", "K1&", "S1 "):
        assert secret not in text
    assert event["venue"] == "okx-main"
    assert event["attempts"] == 3


def test_redact_processor_masks_secrets_inside_nested_values() -> None:
    """Secrets inside dict or list values (request params, URL lists) are masked too."""
    event = redact(
        None,
        "warning",
        {
            "event": "request",
            "params": {"apiKey": "N3st3dKey", "amount": "1"},
            "urls": ["tgram://123456789:L1stT0ken/-100"],
        },
    )
    text = repr(event)
    assert "N3st3dKey" not in text
    assert "L1stT0ken" not in text


def test_logged_exception_text_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """An exception logged with exc_info (ccxt texts carry signed URLs) reaches stderr without its secrets."""
    logs.configure("debug")
    log = structlog.get_logger("marginbot.test")
    api_secret = "L0calApiSecretVar"  # a secret held in a local variable of the failing frame
    try:
        raise RuntimeError(
            f"binance GET https://api.binance.com/sapi/v1/capital/withdraw/apply?amount=1&signature=DEADBEEF{len(api_secret)}"
        )
    except RuntimeError:
        log.exception("withdrawal call raised")
    err = capsys.readouterr().err
    assert "withdrawal call raised" in err
    compact = re.sub(r"[^A-Za-z0-9]", "", err)  # tracebacks may be wrapped and boxed: compare bare characters
    assert "DEADBEEF" not in compact
    assert api_secret not in compact


def test_configured_logger_writes_redacted_lines_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """bot.logs.configure renders key=value lines on stderr with secret keys and secret text masked."""
    logs.configure("info")
    log = structlog.get_logger("marginbot.test")
    log.warning("venue call failed: GET /api?signature=s1gVALUE", api_key="AK-live-777", venue="okx-main")
    log.debug("not shown at info")
    captured = capsys.readouterr()
    assert "venue call failed" in captured.err
    assert "venue=okx-main" in captured.err
    assert "s1gVALUE" not in captured.err
    assert "AK-live-777" not in captured.err
    assert "not shown at info" not in captured.err
    assert captured.out == ""


# --- across a bot cycle -----------------------------------------------------------------------------------


class FailingReceiver:
    """A loopback HTTP endpoint that answers every notification with 500, so the bot logs delivery failures."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.seen.append(dict(self.headers))
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        assert self.server.server_address[0] == "127.0.0.1"
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def failing_receiver() -> Iterator[FailingReceiver]:
    r = FailingReceiver()
    yield r
    r.close()


def _settings_with_notify(urls: list[str]) -> Any:
    data = copy.deepcopy(tomllib.loads(Path(PAPER).read_text(encoding="utf-8")))
    okx = next(v for v in data["venues"] if v["name"] == "okx-main")
    # 90% utilization: a top-up and an alert on the first cycle
    okx["paper"]["collateral"]["USDT"] = 1_000_000
    data["notify"]["urls"] = urls
    data["notify"]["timeout_seconds"] = 5
    return settings_from_dict(data)


async def test_notifier_token_never_appears_in_logs_across_a_bot_cycle(
    failing_receiver: FailingReceiver,
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cycle that tops up, alerts and fails to notify logs the failure but never the notifier URL's token."""
    caplog.set_level(logging.DEBUG)
    logs.configure("debug")
    url = f"json://ops:{TOKEN}@127.0.0.1:{failing_receiver.port}/"
    s = _settings_with_notify([url])
    store = open_store(s, sqlite_url)
    clock = SimClock(T0)
    wired = build(s, store, clock)
    bot = wired.bot
    await bot.start()
    wired.exchange.outage("bybit-main", 60)  # a venue read fails and is logged too
    for _ in range(3):
        await bot.cycle()
        await bot.close()
        clock.advance(30)

    assert failing_receiver.seen, "the notifier was called (and carried the token, in its auth header)"
    assert store.intents.rows(), "the top-up ran"
    captured = capsys.readouterr()
    assert "notification delivery failed" in captured.err, "the failure was logged"
    assert TOKEN not in captured.err
    assert TOKEN not in captured.out
    assert all(TOKEN not in r.getMessage() for r in caplog.records)  # apprise's own (stdlib) logging
    with store.engine.connect() as conn:
        stored = [dict(r._mapping) for r in conn.execute(select(notifications))]
        stored += [dict(r._mapping) for r in conn.execute(select(audit))]
    assert all(TOKEN not in json.dumps(row, default=str) for row in stored)
    store.engine.dispose()


def test_bad_notifier_url_error_does_not_echo_its_token(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A notify URL apprise cannot parse fails the build with a ConfigError that names the scheme, not the token."""
    logs.configure("debug")
    s = _settings_with_notify([f"nosuchscheme://ops:{TOKEN}@127.0.0.1:8099/"])
    store = open_store(s, sqlite_url)
    with pytest.raises(ConfigError) as err:
        build(s, store, SimClock(T0))
    assert "nosuchscheme://" in str(err.value)
    assert TOKEN not in str(err.value)
    captured = capsys.readouterr()
    assert TOKEN not in captured.err
    assert TOKEN not in captured.out
    store.engine.dispose()
