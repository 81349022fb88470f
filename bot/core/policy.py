"""Buffer policy: a band per regime, and the alert and de-risk levels, resolved per venue."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Regime(StrEnum):
    NORMAL = "normal"
    HIGH_VOL = "high_vol"


@dataclass(frozen=True, slots=True)
class Band:
    """Buffer band: below `min` top up to `target`; above `max` sweep down to `target`."""

    min: float
    target: float
    max: float


@dataclass(frozen=True, slots=True)
class VenuePolicy:
    """The buffer policy that applies to one venue (global defaults with the venue's overrides)."""

    alert_utilization: float
    alert_mm_ratio: float
    derisk_mm_ratio: float
    normal: Band
    high_vol: Band
    min_equity_usd: float = 0.0  # a sweep never takes equity below this (standby margin for hedges)
    crosscheck_tolerance: float = 0.05  # venue's figures against ours (utilization and m, absolute)

    def band(self, regime: Regime) -> Band:
        return self.high_vol if regime is _HIGH_VOL else self.normal


class Level(StrEnum):
    """How worrying a venue's figures are, before transfers and approvals are considered."""

    OK = "ok"
    ALERT = "alert"
    CRITICAL = "critical"


# enum members bound once: reading `Level.OK` goes through the enum's class machinery (≈ 0.1 µs each on
# Python 3.11), and these are read for every venue every cycle
_HIGH_VOL = Regime.HIGH_VOL
_OK, _ALERT, _CRITICAL = Level.OK, Level.ALERT, Level.CRITICAL


def level(utilization: float, mm_ratio: float, p: VenuePolicy) -> Level:
    """Classify a venue: critical at the de-risk level, alert at either alert level, else ok."""
    if mm_ratio >= p.derisk_mm_ratio:
        return _CRITICAL
    if utilization >= p.alert_utilization or mm_ratio >= p.alert_mm_ratio:
        return _ALERT
    return _OK
