"""A hedge program's ledger: what it holds, what it cost, and whether a stop rule is hit. Pure and frozen.

    hedge PnL    = realized + Σ holding × (mark − average entry)          (fees excluded)
    exposure PnL = closed segments + the open segment's integral of the exposure's delta
    loss         = −(hedge PnL + exposure PnL) + fees + funding paid       (the program's running cost)
    funding drag = funding paid per day over the last 24 h, in bps of the hedge's notional at each charge

The ledger changes only on fills, funding charges, exposure changes and stop / resume; it is persisted as
JSON with each of those (never per cycle).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bot.core.hedge import HedgeSpec, exposure_delta, exposure_pnl

DAY_SECONDS = 86_400.0
HOUR_SECONDS = 3_600.0
EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Cost:
    hedge_pnl: float
    exposure_pnl: float
    fees: float
    funding: float

    @property
    def loss(self) -> float:
        return -(self.hedge_pnl + self.exposure_pnl) + self.fees + self.funding


@dataclass(frozen=True, slots=True)
class HedgeState:
    holdings: Mapping[str, float] = field(default_factory=dict)  # instrument key -> signed qty
    entries: Mapping[str, float] = field(default_factory=dict)  # instrument key -> average entry price
    realized: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    exposure_base: float = 0.0
    exposure_ref: float = 0.0  # price at which the open exposure segment started (0: not yet priced)
    exposure_closed_pnl: float = 0.0
    config_exposure: float | None = None  # the config's `exposure` this ledger last took
    hedged_exposure: float | None = None  # exposure at the last trade (the `static` strategy's memory)
    trades: tuple[float, ...] = ()  # trade times within the last hour (the trades-per-hour cap)
    trade_count: int = 0
    funding_charges: tuple[tuple[float, float], ...] = ()  # (time, bps per day) within the last 24 h
    funding_period: int | None = None
    stopped: bool = False
    stop_reason: str = ""
    loss_base: float = (
        0.0  # the running cost when a person last resumed the program: max_loss counts from here
    )

    # --- persistence -----------------------------------------------------------------------------------
    def to_json(self) -> str:
        d = asdict(self)
        d["holdings"] = dict(self.holdings)
        d["entries"] = dict(self.entries)
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> HedgeState:
        d: dict[str, Any] = json.loads(text)
        d["trades"] = tuple(d.get("trades", ()))
        d["funding_charges"] = tuple((float(a), float(b)) for a, b in d.get("funding_charges", ()))
        return cls(**d)

    # --- reading ---------------------------------------------------------------------------------------
    def exposure(self, spec: HedgeSpec, price: float) -> float:
        return exposure_delta(self.exposure_base, self.exposure_ref, price, spec.gamma)

    def net_delta(self, spec: HedgeSpec, price: float) -> float:
        return self.exposure(spec, price) + sum(self.holdings.values())

    def cost(self, spec: HedgeSpec, price: float, marks: Mapping[str, float]) -> Cost:
        """Cost to date at `price` (the asset) and `marks` (per instrument key; missing: its entry)."""
        unrealized = 0.0
        for key, qty in self.holdings.items():
            entry = self.entries.get(key, 0.0)
            unrealized += qty * (marks.get(key, entry) - entry)
        exp = self.exposure_closed_pnl
        if self.exposure_ref > 0.0:
            exp += exposure_pnl(self.exposure_base, self.exposure_ref, price, spec.gamma)
        return Cost(self.realized + unrealized, exp, self.fees, self.funding)

    def funding_drag(self, now: float) -> float | None:
        """Average funding drag (bps/day) over the charges in the last 24 h; None before the first."""
        recent = [bps for ts, bps in self.funding_charges if now - ts < DAY_SECONDS]
        return sum(recent) / len(recent) if recent else None

    # --- changing --------------------------------------------------------------------------------------
    def set_exposure(self, spec: HedgeSpec, base: float, price: float) -> HedgeState:
        """A new exposure from `price` on: the open segment's PnL is banked."""
        closed = self.exposure_closed_pnl
        if self.exposure_ref > 0.0:
            closed += exposure_pnl(self.exposure_base, self.exposure_ref, price, spec.gamma)
        return replace(self, exposure_base=base, exposure_ref=price, exposure_closed_pnl=closed)

    def fill(self, key: str, qty: float, price: float, fee: float) -> HedgeState:
        """Apply a fill of `qty` (signed) at `price`: weighted entry on adds, realized PnL on reductions."""
        if qty == 0.0:
            return replace(self, fees=self.fees + fee)
        held = self.holdings.get(key, 0.0)
        entry = self.entries.get(key, price)
        realized = self.realized
        new = held + qty
        if held == 0.0 or (held > 0) == (qty > 0):  # opening or adding
            new_entry = (held * entry + qty * price) / new if new != 0.0 else price
        else:  # reducing, closing or flipping
            closed = min(abs(qty), abs(held))
            realized += closed * (price - entry) * (1.0 if held > 0 else -1.0)
            new_entry = entry if abs(qty) <= abs(held) else price
        holdings = dict(self.holdings)
        entries = dict(self.entries)
        if abs(new) < 1e-12:
            holdings.pop(key, None)
            entries.pop(key, None)
        else:
            holdings[key] = new
            entries[key] = new_entry
        return replace(self, holdings=holdings, entries=entries, realized=realized, fees=self.fees + fee)

    def scale_holding(self, key: str, factor: float, price: float | None) -> HedgeState:
        """A reduction of the venue's position that this program shares (de-risk, liquidation), pro rata;
        the part removed is closed at `price`, so its PnL stays in the program's cost."""
        if key not in self.holdings:
            return self
        holdings = dict(self.holdings)
        entries = dict(self.entries)
        held = holdings[key]
        new = held * max(0.0, factor)
        entry = entries.get(key, 0.0)
        realized = self.realized + (held - new) * ((entry if price is None else price) - entry)
        if abs(new) < 1e-12:
            holdings.pop(key)
            entries.pop(key, None)
        else:
            holdings[key] = new
        return replace(self, holdings=holdings, entries=entries, realized=realized)

    def traded(self, now: float, hedged_exposure: float | None) -> HedgeState:
        """A trade filled (at least in part): it counts against the hourly cap; `hedged_exposure` is the
        exposure the hedge now matches (None keeps the previous one: the trade did not reach the band)."""
        recent = (*(t for t in self.trades if now - t < HOUR_SECONDS), now)
        hedged = self.hedged_exposure if hedged_exposure is None else hedged_exposure
        return replace(self, trades=recent, trade_count=self.trade_count + 1, hedged_exposure=hedged)

    def charge_funding(
        self, period: int, now: float, marks: Mapping[str, float], rates: Mapping[str, float]
    ) -> HedgeState:
        """At a funding boundary: longs pay a positive rate, shorts receive it (per instrument).

        Boundaries missed (the bot was down, or a venue unreadable at the boundary) are charged at the rate
        seen now, one charge per boundary; the drag records one entry per boundary too.
        """
        if self.funding_period is None or period <= self.funding_period:
            return replace(self, funding_period=period)
        boundaries = period - self.funding_period
        paid = 0.0
        notional = 0.0
        for key, qty in self.holdings.items():
            mark = marks.get(key)
            if mark is None:
                continue
            paid += qty * mark * rates.get(key, 0.0)
            notional += abs(qty) * mark
        charges = tuple(c for c in self.funding_charges if now - c[0] < DAY_SECONDS)
        if notional > 0.0:
            charges += ((now, paid / notional * 3.0 * 10_000.0),) * min(boundaries, 3)
        return replace(
            self, funding=self.funding + paid * boundaries, funding_period=period, funding_charges=charges
        )

    def stop(self, reason: str) -> HedgeState:
        return replace(self, stopped=True, stop_reason=reason)

    def resume(self, loss_now: float) -> HedgeState:
        """Resumed by a person: the loss limit counts from the cost now, the funding-drag window starts afresh."""
        return replace(self, stopped=False, stop_reason="", funding_charges=(), loss_base=loss_now)


def scale_shared(
    states: Mapping[str, HedgeState], key: str, before: float, after: float, price: float | None
) -> dict[str, HedgeState]:
    """The venue's position on `key` went from `before` to `after` (closed at `price`): the ledgers of the
    programs that share it, shrunk pro rata (the PnL of what they lost realized). Only the changed ones."""
    if abs(before) <= EPS or (abs(after) >= abs(before) and after * before > 0):
        return {}  # nothing was there to shrink, or the venue's side did not shrink
    factor = after / before if before != 0.0 and after * before > 0 else 0.0
    out = {}
    for name, st in states.items():
        h = st.holdings.get(key, 0.0)
        # the venue's side shrinks pro rata; a venue that holds nothing any more holds nothing for anyone
        if abs(h) > EPS and (h * before > 0 or abs(after) <= EPS):
            out[name] = st.scale_holding(key, factor, price)
    return out


def stop_reason(spec: HedgeSpec, state: HedgeState, cost: Cost, now: float) -> str | None:
    """Which stop rule, if any, the program hit."""
    rule = spec.stop
    if rule.max_loss_usd is not None and cost.loss - state.loss_base > rule.max_loss_usd:
        since = f" since the resume at {state.loss_base:,.0f}" if state.loss_base else ""
        return (
            f"running cost {cost.loss:,.0f} USD{since} exceeds max_loss_usd {rule.max_loss_usd:,.0f} "
            f"(hedge PnL {cost.hedge_pnl:,.0f}, exposure PnL {cost.exposure_pnl:,.0f}, "
            f"fees {cost.fees:,.0f}, funding {cost.funding:,.0f})"
        )
    drag = state.funding_drag(now)
    limit = rule.max_funding_drag_bps_per_day
    if limit is not None and drag is not None and drag > limit:
        return f"funding drag {drag:.1f} bps/day exceeds max_funding_drag_bps_per_day {limit:g}"
    return None
