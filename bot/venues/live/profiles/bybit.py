"""Bybit: account figures from raw fields, client ids on transfers, withdrawals and orders, lookups."""

from __future__ import annotations

from bot.venues.live.budget import BUDGETS
from bot.venues.live.profile import Profile


class BybitProfile(Profile):
    exchange_id = "bybit"
    budget = BUDGETS["bybit"]
    margin_wallet = "unified"
    funding_wallet = "funding"
