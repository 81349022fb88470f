"""Okx: account figures from raw fields, client ids on transfers, withdrawals and orders, lookups."""

from __future__ import annotations

from bot.venues.live.budget import BUDGETS
from bot.venues.live.profile import Profile


class OkxProfile(Profile):
    exchange_id = "okx"
    budget = BUDGETS["okx"]
    margin_wallet = "trading"
    funding_wallet = "funding"
