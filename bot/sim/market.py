"""Simulated prices: seeded geometric Brownian motion, or an explicit path, with shocks on top."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

YEAR_SECONDS = 365.0 * 86_400.0


@dataclass(slots=True)
class AssetProcess:
    vol_annual: float = 0.0
    drift_annual: float = 0.0
    path: list[float] | None = None
    shock: float = 1.0  # cumulative multiplier from price shocks, applied on top of a path


class Market:
    """Marks for every asset; `prices` is read (never kept) by the paper venues' snapshots."""

    def __init__(self, prices: dict[str, float], seed: int) -> None:
        self.prices: dict[str, float] = dict(prices)
        self.processes: dict[str, AssetProcess] = {a: AssetProcess() for a in prices}
        self._rng = random.Random(seed)
        self.version = 0  # bumped on every price change, so readers can cache what they derive from prices
        self._view: dict[str, float] = dict(prices)
        self._view_version = 0

    def view(self) -> dict[str, float]:
        """A copy of the current prices, shared by every reader until the next change: never mutate it."""
        if self._view_version != self.version:
            self._view = dict(self.prices)
            self._view_version = self.version
        return self._view

    def set_process(self, asset: str, process: AssetProcess) -> None:
        self.processes[asset] = process
        if process.path:
            self.prices[asset] = process.path[0] * process.shock
        self.version += 1

    def advance(self, dt_seconds: float, step: int | None = None) -> None:
        """Move every price by `dt_seconds`; a path-driven asset takes its value for `step`."""
        if dt_seconds <= 0:
            return
        self.version += 1
        dt = dt_seconds / YEAR_SECONDS
        sqrt_dt = math.sqrt(dt)
        gauss = self._rng.gauss
        prices = self.prices
        for asset, proc in self.processes.items():
            if proc.path is not None and step is not None:
                prices[asset] = proc.path[min(step, len(proc.path) - 1)] * proc.shock
            elif proc.vol_annual > 0 or proc.drift_annual != 0:
                sigma = proc.vol_annual
                prices[asset] *= math.exp(
                    (proc.drift_annual - 0.5 * sigma * sigma) * dt + sigma * sqrt_dt * gauss()
                )

    def shock(self, asset: str, pct: float) -> None:
        """Move one price by `pct` at once (−0.15 is a 15% drop); path-driven assets keep the offset."""
        self.prices[asset] *= 1.0 + pct
        self.version += 1
        self.processes.setdefault(asset, AssetProcess()).shock *= 1.0 + pct

    def set_vol(self, asset: str, vol_annual: float) -> None:
        self.processes.setdefault(asset, AssetProcess()).vol_annual = vol_annual
