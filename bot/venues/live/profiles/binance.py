"""Binance: account figures from raw fields, client ids on transfers, withdrawals and orders, lookups."""

from __future__ import annotations

from bot.venues.live.budget import BUDGETS
from bot.venues.live.profile import Profile


class BinanceProfile(Profile):
    exchange_id = "binance"
    budget = BUDGETS["binance"]
    margin_wallet = "future"
    funding_wallet = "spot"
