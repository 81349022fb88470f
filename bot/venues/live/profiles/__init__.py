"""One profile per supported exchange, registered by ccxt id."""

from __future__ import annotations

from bot.venues.live.profile import Profile
from bot.venues.live.profiles.binance import BinanceProfile
from bot.venues.live.profiles.bybit import BybitProfile
from bot.venues.live.profiles.deribit import DeribitProfile
from bot.venues.live.profiles.okx import OkxProfile

PROFILES: dict[str, type[Profile]] = {
    "binance": BinanceProfile,
    "okx": OkxProfile,
    "bybit": BybitProfile,
    "deribit": DeribitProfile,
}
