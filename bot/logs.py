"""structlog set-up: key=value lines on stderr, with secrets redacted from every event and traceback."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(secret|password|passwd|token|api_?key|signature|private)", re.IGNORECASE)
_QUERY_SECRET = re.compile(
    r"((?:signature|sign|apikey|api_key|secret|token|password)=)[^&\s\"']+", re.IGNORECASE
)
# any URL: apprise URLs carry tokens in their path, exchange URLs carry signatures in their query
_URL = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s\"'<>]+", re.IGNORECASE)


_KNOWN: set[str] = set()  # secret values loaded at start (API keys, secrets, passphrases)
_MIN_SECRET_LEN = 6  # shorter values would mask ordinary words; real keys are far longer


def register_secret(value: str) -> None:
    """Remember a secret value so that it is masked wherever it appears, even outside a URL or key=value."""
    if len(value) >= _MIN_SECRET_LEN:
        _KNOWN.add(value)


def redact_text(text: str) -> str:
    """Strip query-string secrets, known secret values, and reduce every URL to its scheme (`tgram://***`)."""
    for secret in _KNOWN:
        if secret in text:
            text = text.replace(secret, "***")
    return _URL.sub(lambda m: m.group(1) + "***", _QUERY_SECRET.sub(lambda m: m.group(1) + "***", text))


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: "***" if isinstance(k, str) and _SECRET_KEYS.search(k) else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    return value


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named keys and redact every string, nested values included."""
    for key, value in list(event.items()):
        event[key] = "***" if _SECRET_KEYS.search(key) else _redact_value(value)
    return event


def configure(level: str | None = None) -> None:
    name = (level or os.environ.get("MARGINBOT_LOG_LEVEL") or "warning").upper()
    lvl = logging.getLevelNamesMapping().get(name, logging.WARNING)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # tracebacks become text here, so `redact` sees them
            redact,
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        # resolve sys.stderr at each use: a stream swapped or closed since configure() is never written to
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
