"""structlog set-up: key=value lines on stderr, with secrets redacted from every event."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(secret|password|passwd|token|api_?key|signature|private)", re.IGNORECASE)
_SECRET_TEXT = re.compile(
    r"((?:signature|sign|apikey|api_key|secret|token|password)=)[^&\s\"']+|(\w+://)[^\s\"']*@|([a-z]+://)[^\s\"']+",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """Strip query-string secrets, URL credentials and whole notifier URLs (they carry tokens)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(1) + "***"
        if m.group(2):
            return m.group(2) + "***@"
        return m.group(3) + "***"

    return _SECRET_TEXT.sub(sub, text)


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key):
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


def configure(level: str | None = None) -> None:
    name = (level or os.environ.get("MARGINBOT_LOG_LEVEL") or "warning").upper()
    lvl = logging.getLevelNamesMapping().get(name, logging.WARNING)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
