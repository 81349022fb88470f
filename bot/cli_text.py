"""Formatting the command modules share: percentages and UTC times as the command line shows them."""

from __future__ import annotations

import time


def pct(x: float | None) -> str:
    """A ratio as a right-aligned percentage (`  n/a` when unknown)."""
    return "   n/a" if x is None else f"{x * 100:5.1f}%"


def iso(ts: float) -> str:
    """An epoch time as ISO 8601 in UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
