"""`static`: hedge once to target; trade again only when the exposure changes."""

from __future__ import annotations

from bot.core.hedge import HedgeInputs, Trade
from strategies.base import EPS, back_to_target


class Static:
    name = "static"

    def propose(self, inputs: HedgeInputs) -> tuple[Trade, ...]:
        if inputs.hedged_exposure is not None and abs(inputs.exposure - inputs.hedged_exposure) < EPS:
            return ()
        if abs(inputs.deviation) < EPS:
            return ()
        why = "first hedge" if inputs.hedged_exposure is None else "exposure changed"
        return back_to_target(inputs, f"{why}: net delta {inputs.net_delta:+.4f}")
