"""Deribit: account figures from raw fields, client ids on transfers, withdrawals and orders, lookups."""

from __future__ import annotations

from bot.venues.live.budget import BUDGETS
from bot.venues.live.profile import Profile


class DeribitProfile(Profile):
    exchange_id = "deribit"
    budget = BUDGETS["deribit"]
    margin_wallet = "margin"
    funding_wallet = "funding"
