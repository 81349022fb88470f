"""Hedge strategies behind one small protocol (`strategies.base.Strategy`), registered by name.

static            hedge once to target; trade again only when the exposure changes
dynamic_band      when net delta leaves target ± band, trade back to target (min_trade, trades-per-hour cap)
funding_rotation  dynamic_band on the instrument with the cheapest expected funding; rotate only when the
                  saving over the horizon beats the round trip's cost
"""

from __future__ import annotations

from strategies.base import Strategy
from strategies.dynamic_band import DynamicBand
from strategies.funding_rotation import FundingRotation
from strategies.static import Static

REGISTRY: dict[str, Strategy] = {s.name: s for s in (Static(), DynamicBand(), FundingRotation())}


def get(name: str) -> Strategy:
    """The strategy registered as `name`; KeyError names the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no strategy named {name!r} (known: {', '.join(sorted(REGISTRY))})") from None


__all__ = ["REGISTRY", "Strategy", "get"]
