"""Building bots over the paper exchange for engine tests, and faults injected at the ports."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

from bot.app import Wired, build, open_store
from bot.engine.clock import SimClock
from bot.settings import Settings, settings_from_dict
from bot.store.repo import Store
from bot.venues.paper import PaperExchange
from tests.conftest import PAPER

START = 1_772_000_000.0
_BASE: dict[str, Any] = tomllib.loads(PAPER.read_text())


def paper_settings(
    okx_usdt: int = 1_000_000, approvals: dict[str, Any] | None = None, **bot: Any
) -> Settings:
    """The shipped paper config with okx-main's collateral set (1M USDT: utilization 90%, a top-up is due)."""
    data = copy.deepcopy(_BASE)
    data["approvals"].update(approvals or {})
    data["venues"][0]["paper"]["collateral"] = {"USDT": okx_usdt}
    for v in data["venues"]:
        v["paper"]["funding_rate_8h"] = 0.0  # no funding: collateral moves only by transfers and fees
    data["bot"].update(bot)
    return settings_from_dict(data)


async def make_bot(
    s: Settings, url: str, clock: SimClock, exchange: PaperExchange | None = None, store: Store | None = None
) -> Wired:
    """A started bot (its startup reconciliation done), sharing `exchange` when given (a restart)."""
    store = store or open_store(s, url)
    wired = build(s, store, clock, exchange=exchange, send_notifications=False, figures_every_seconds=None)
    await wired.bot.start()
    return wired


class SimulatedCrash(BaseException):
    """The process dies here. A BaseException, so no `except Exception` in the bot can swallow it."""
