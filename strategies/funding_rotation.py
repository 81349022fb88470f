"""`funding_rotation`: keep the hedge on the instrument with the cheapest expected funding.

Delta is kept in band as `dynamic_band` does, with new hedge placed on the cheapest instrument first.
The hedge moves from instrument A to B only when the funding it saves over `funding_horizon_hours`
exceeds the round trip's estimated cost: both legs' taker fees plus `max_slippage_bps` (half per leg).

    funding cost per 8 h of a holding q = q × mark × rate_8h      (longs pay a positive rate)
"""

from __future__ import annotations

from bot.core.hedge import HedgeInputs, OrderReason, Trade
from strategies.base import EPS, available, back_to_target


def _cost_8h(inputs: HedgeInputs, key: str, direction: float) -> float:
    q = inputs.quotes[key]
    return direction * q.funding_8h


class FundingRotation:
    name = "funding_rotation"

    def propose(self, inputs: HedgeInputs) -> tuple[Trade, ...]:
        spec = inputs.spec
        live = available(inputs)
        if not live:
            return ()
        wanted = spec.target_delta - inputs.exposure  # the hedge position this program should hold
        direction = 1.0 if wanted > 0 else -1.0
        by_cost = tuple(sorted(live, key=lambda k: (_cost_8h(inputs, k, direction), live.index(k))))
        if abs(inputs.deviation) > spec.band:
            return back_to_target(
                inputs,
                f"net delta {inputs.net_delta:+.4f} outside {spec.target_delta:g} ± {spec.band:g}",
                instruments=by_cost,
            )
        if inputs.at_trade_cap:
            return ()
        cheapest = by_cost[0]
        best = _cost_8h(inputs, cheapest, direction)
        periods = spec.funding_horizon_hours / 8.0
        for key in live:
            held = inputs.holdings.get(key, 0.0)
            if key == cheapest or abs(held) < EPS or (held > 0) != (direction > 0):
                continue
            mark = inputs.quotes[key].mark
            notional = abs(held) * mark
            saving = notional * (_cost_8h(inputs, key, direction) - best) * periods
            a, b = spec.instrument(key), spec.instrument(cheapest)
            round_trip = notional * (a.fee_bps + b.fee_bps + spec.max_slippage_bps) / 10_000.0
            if saving > round_trip:
                why = (
                    f"rotate {abs(held):g} from {key} to {cheapest}: saves {saving:,.0f} USD of funding over "
                    f"{spec.funding_horizon_hours:g} h against a round trip of {round_trip:,.0f}"
                )
                return (
                    Trade(-held, OrderReason.UNWIND, instruments=(key,), reduce_only=True, note=why),
                    Trade(
                        held, OrderReason.REBALANCE, instruments=(cheapest,), note=why, match_previous=True
                    ),
                )
        return ()
