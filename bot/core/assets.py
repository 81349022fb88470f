"""Asset prices as the core sees them: a stablecoin is worth 1 USD, any other asset only what it is priced at.

An asset with no price is never assumed to be worth a dollar: a route in it carries nothing, and collateral
in it counts for nothing, until a price is read (paper: `[market]` or the scenario; live: the venue).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

STABLES = frozenset({"USDT", "USDC", "USD", "DAI", "FDUSD"})


def price_of(asset: str, prices: Mapping[str, float]) -> float | None:
    """The asset's USD price: its mark where one is read, 1 for a stablecoin, else None (unpriced)."""
    p = prices.get(asset)
    if p is not None:
        return p
    return 1.0 if asset in STABLES else None


def unit_value(asset: str, prices: Mapping[str, float], haircuts: Mapping[str, float]) -> float:
    """Equity one unit adds as collateral: price × (1 − haircut); 0 for an unpriced asset."""
    p = price_of(asset, prices)
    return 0.0 if p is None else p * (1.0 - haircuts.get(asset, 0.0))


def landed_value(
    asset: str,
    net: Decimal,
    *,
    usd: Decimal,
    amount: Decimal,
    prices: Mapping[str, float],
    haircuts: Mapping[str, float],
) -> float:
    """Equity a recorded transfer adds when it lands: `net` units at today's price, or, with no price read
    this cycle, at the price the transfer was sized with (`usd / amount`)."""
    p = price_of(asset, prices)
    if p is None:
        p = float(usd / amount) if amount > 0 else 0.0
    return float(net) * p * (1.0 - haircuts.get(asset, 0.0))
