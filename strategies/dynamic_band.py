"""`dynamic_band`: when net delta leaves `target ± band`, trade back to target.

The gap between the band's edge (where it triggers) and the target (where it trades to) is the
hysteresis: after a rebalance, delta must travel a whole band before the next one. `min_trade` drops
trades too small to be worth their fees, and `max_trades_per_hour` caps the rest, so noise never churns
the book.
"""

from __future__ import annotations

from bot.core.hedge import HedgeInputs, Trade
from strategies.base import back_to_target


class DynamicBand:
    name = "dynamic_band"

    def propose(self, inputs: HedgeInputs) -> tuple[Trade, ...]:
        dev = inputs.deviation
        if abs(dev) <= inputs.spec.band:
            return ()
        return back_to_target(
            inputs,
            f"net delta {inputs.net_delta:+.4f} outside {inputs.spec.target_delta:g} ± {inputs.spec.band:g}",
        )
