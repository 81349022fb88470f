"""Route choice: which configured routes carry a top-up or a sweep, and how much on each.

Top-ups draw from the buffer bucket before the trading bucket before the emergency bucket, cheapest route
first within a bucket, and split over several routes when one route's per-transfer or rolling 24 h
limit, or its source balance, is too small. Sweeps return collateral to the buffer bucket first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from bot.core.actions import OPEN_STATUSES, SPENT_STATUSES, IntentStatus
from bot.core.assets import price_of, unit_value
from bot.core.numbers import round_down, round_up, to_decimal
from bot.core.world import DAY_SECONDS, IntentView, RouteSpec

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Leg:
    route: RouteSpec
    amount: Decimal  # sent from the source, fee included
    delivered_usd: float  # equity it adds to (top-up) or removes from (sweep) the venue


def route_spent_24h(route: str, intents: Iterable[IntentView], now: float) -> Decimal:
    """Amount moved or committed on a route in the rolling 24 h before `now`.

    In-flight and unknown intents count as spent. An intent stamped later than `now` (the clock stepped
    backwards) still counts: a backwards step never frees budget.
    """
    start = now - DAY_SECONDS
    return sum(
        (
            i.amount
            for i in intents
            if i.route == route and i.status in SPENT_STATUSES and i.created_at > start
        ),
        ZERO,
    )


def route_remaining(route: RouteSpec, intents: Iterable[IntentView], now: float) -> Decimal:
    return max(ZERO, route.daily_limit - route_spent_24h(route.name, intents, now))


def _order(
    routes: Iterable[RouteSpec], prices: Mapping[str, float], rank: Mapping[str, int]
) -> list[RouteSpec]:
    def key(r: RouteSpec) -> tuple[int, bool, float, str]:
        price = price_of(r.asset, prices)
        return (rank.get(r.bucket, 9), price is None, float(r.fee) * (price or 0.0), r.name)

    return sorted(routes, key=key)


def plan_topup(
    need_usd: float,
    routes: Iterable[RouteSpec],
    *,
    prices: Mapping[str, float],
    haircuts: Mapping[str, float],
    remaining: Mapping[str, Decimal],
    available: Mapping[str, Mapping[str, Decimal]],
    rank: Mapping[str, int],
) -> tuple[list[Leg], float]:
    """Legs that together add at least `need_usd` of equity, and the USD shortfall if capacity ran out.

    Each leg is grossed up for the destination haircut and the route fee and rounded up to the route step.
    """
    legs: list[Leg] = []
    left = need_usd
    spent_from: dict[tuple[str, str], Decimal] = {}
    for r in _order(routes, prices, rank):
        if left <= 0:
            break
        unit = unit_value(r.asset, prices, haircuts)
        if unit <= 0:  # an unpriced asset carries nothing: never sized as if it were a dollar
            continue
        want = max(round_up(to_decimal(left / unit) + r.fee, r.step), r.min_amount)
        balance = available.get(r.source, {}).get(r.asset, ZERO) - spent_from.get((r.source, r.asset), ZERO)
        cap = round_down(min(r.max_amount, remaining.get(r.name, ZERO), balance), r.step)
        if cap < r.min_amount or cap <= r.fee:
            continue
        amount = min(want, cap)
        delivered = float(amount - r.fee) * unit
        legs.append(Leg(r, amount, delivered))
        spent_from[(r.source, r.asset)] = spent_from.get((r.source, r.asset), ZERO) + amount
        left -= delivered
    return legs, max(0.0, left)


def plan_sweep(
    excess_usd: float,
    routes: Iterable[RouteSpec],
    *,
    prices: Mapping[str, float],
    haircuts: Mapping[str, float],
    remaining: Mapping[str, Decimal],
    collateral: Mapping[str, float],
    rank: Mapping[str, int],
) -> list[Leg]:
    """Legs that return at most `excess_usd` of equity to treasury, rounded down to each route's step."""
    legs: list[Leg] = []
    left = excess_usd
    taken: dict[str, float] = {}
    for r in _order(routes, prices, rank):
        unit = unit_value(r.asset, prices, haircuts)
        if left <= 0 or unit <= 0:
            continue
        held = collateral.get(r.asset, 0.0) - taken.get(r.asset, 0.0)
        units = min(left / unit, held)
        if units <= 0:
            continue
        amount = round_down(min(to_decimal(units), r.max_amount, remaining.get(r.name, ZERO)), r.step)
        if amount < r.min_amount or amount <= r.fee:
            continue
        delivered = float(amount) * unit
        legs.append(Leg(r, amount, delivered))
        taken[r.asset] = taken.get(r.asset, 0.0) + float(amount)
        left -= delivered
    return legs


FAILED_ROUTE_COOLDOWN_SECONDS = 300.0  # a route whose transfer failed rests this long


def blocked_routes(routes: Iterable[RouteSpec], intents: Iterable[IntentView], now: float) -> dict[str, str]:
    """Routes the bot would not use now, and why: the same rule as `decide`."""
    routes = list(routes)
    exclusive = {r.name for r in routes if r.exclusive}
    out: dict[str, str] = {}
    for i in intents:
        if i.status is IntentStatus.UNKNOWN:
            out.setdefault(i.route, f"transfer {i.id} of unknown outcome")
        elif i.status is IntentStatus.FAILED and now - i.created_at < FAILED_ROUTE_COOLDOWN_SECONDS:
            out.setdefault(i.route, "a transfer failed in the last few minutes")
        elif i.route in exclusive and i.status in OPEN_STATUSES:
            out.setdefault(i.route, f"one move at a time and {i.id} is open")
    return out
