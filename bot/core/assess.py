"""One venue's standing this cycle, computed once and read by `decide`, `stress` and de-risking.

From a venue's figures (its own report where it gives one, else computed from its snapshot), its policy,
the regime, the intents open for it and the initial margin a waiting hedge reserves there:

    level       ok | alert | critical, from the observed figures (`policy.level`)
    band        the regime's band
    sizing      the observed figures with the reserved IM added: the buffer is sized on these
    incoming    equity that top-ups in flight or of unknown outcome add when they land (today's prices)
    buffer      1 − IM / (equity + incoming) on the sizing figures (−∞ when that equity is ≤ 0)
    topup_usd   buffer < band.min → equity that brings the buffer to band.target (`margin.topup_usd`); else 0
    sweep_usd   buffer > band.max with nothing open → the excess above band.target, never so far that the
                liquidation ratio reaches 90% of alert_mm_ratio, nor equity below min_equity_usd; 0 when
                that is under 1% of equity (churn). `decide` caps it further by the automatic budget.
    landing_usd top-ups that land within derisk_wait_seconds (in flight by their routes' settle_seconds;
                `decide` adds this cycle's automatic legs)
    derisk      critical, with positions, and m ≥ derisk_mm_ratio even counting `landing_usd` (on our own
                computation of the venue, as the reduce-only orders are planned on it)

A venue inside its band with nothing open costs a figures computation (none where the venue reports its
own), one comparison per band edge and one object.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from bot.core.actions import IntentStatus, TransferAction, TransferKind
from bot.core.assets import landed_value
from bot.core.margin import Figures, figures, sweep_usd, topup_usd
from bot.core.policy import Band, Level, Regime, VenuePolicy, level
from bot.core.world import IntentView, RouteSpec, VenueSnapshot

SWEEP_MIN_FRACTION = 0.01  # a sweep capped below 1% of equity waits until there is more to return
SWEEP_MM_MARGIN = 0.9  # a sweep leaves the liquidation ratio at most 90% of its alert level
_TOPUP = TransferKind.TOPUP
_SUBMITTED = IntentStatus.SUBMITTED
_UNKNOWN = IntentStatus.UNKNOWN
_CRITICAL = Level.CRITICAL


@dataclass(frozen=True, init=False)
class Assessment:
    """A venue's figures, level, band, buffer and needs this cycle (see the module docstring).

    Frozen; its `__init__` fills the instance dict directly, as the generated one of a frozen dataclass
    calls `object.__setattr__` per field (≈ 2 µs per venue per cycle here, for eleven fields).
    """

    venue: str
    figures: Figures
    level: Level
    band: Band
    sizing: Figures
    incoming_usd: float
    buffer: float
    topup_usd: float
    sweep_usd: float
    landing_usd: float = 0.0
    derisk: bool = False

    def __init__(  # noqa: PLR0917 — the fields, in order, as a dataclass takes them
        self,
        venue: str,
        figures: Figures,
        level: Level,
        band: Band,
        sizing: Figures,
        incoming_usd: float,
        buffer: float,
        topup_usd: float,
        sweep_usd: float,
        landing_usd: float = 0.0,
        derisk: bool = False,
    ) -> None:
        d = self.__dict__
        d["venue"] = venue
        d["figures"] = figures
        d["level"] = level
        d["band"] = band
        d["sizing"] = sizing
        d["incoming_usd"] = incoming_usd
        d["buffer"] = buffer
        d["topup_usd"] = topup_usd
        d["sweep_usd"] = sweep_usd
        if landing_usd or derisk:  # else the class defaults stand (a venue not at its de-risk level)
            d["landing_usd"] = landing_usd
            d["derisk"] = derisk

    @property
    def below_min(self) -> bool:
        """The buffer, counting what is in flight, is under the band's min: a top-up is planned."""
        return self.buffer < self.band.min


def observed_figures(snap: VenueSnapshot) -> Figures:
    """The venue's own figures where it reports them (it liquidates on those), else our computation."""
    return snap.reported or figures(snap.collateral, snap.positions, snap.prices, snap.haircuts, snap.params)


def own_figures(snap: VenueSnapshot) -> Figures:
    """Our computation of the venue, whatever it reports."""
    return figures(snap.collateral, snap.positions, snap.prices, snap.haircuts, snap.params)


def incoming_usd(
    intents: Iterable[IntentView], prices: Mapping[str, float], haircuts: Mapping[str, float]
) -> float:
    """Equity that top-ups already in flight (or of unknown outcome) will add when they land."""
    total = 0.0
    for i in intents:
        if i.kind is _TOPUP and (i.status is _SUBMITTED or i.status is _UNKNOWN):
            total += landed_value(
                i.asset, i.amount - i.fee, usd=i.usd, amount=i.amount, prices=prices, haircuts=haircuts
            )
    return total


def landing_usd(
    intents: Iterable[IntentView],
    routes: Mapping[str, RouteSpec],
    horizon: float,
    prices: Mapping[str, float],
    haircuts: Mapping[str, float],
) -> float:
    """Equity that submitted top-ups add by `horizon`, by their routes' settle times."""
    total = 0.0
    for i in intents:
        if i.kind is not _TOPUP or i.status is not _SUBMITTED:
            continue
        r = routes.get(i.route)
        if r is not None and i.created_at + r.settle_seconds <= horizon:
            total += landed_value(
                i.asset, i.amount - i.fee, usd=i.usd, amount=i.amount, prices=prices, haircuts=haircuts
            )
    return total


def with_reserved_im(f: Figures, extra_im: float) -> Figures:
    """The figures as if a waiting hedge's initial margin were placed (the liquidation ratio unchanged)."""
    if extra_im <= 0.0:
        return f
    im = f.im + extra_im
    return Figures(f.equity, im, f.mm, im / f.equity if f.equity > 0 else math.inf, f.mm_ratio)


def sweepable_usd(f: Figures, vpol: VenuePolicy, target: float) -> float:
    """The excess above `target` that may leave: every cap but the automatic budget, and the churn floor."""
    excess = min(
        sweep_usd(f, target),
        # nor so far that the liquidation ratio would reach its alert level (portfolio margin: IM = MM × k)
        max(0.0, f.equity - f.mm / (vpol.alert_mm_ratio * SWEEP_MM_MARGIN)),
        max(0.0, f.equity - vpol.min_equity_usd),
    )
    # held up by a limit above: sweeping PnL crumbs every cycle is churn, not treasury
    return 0.0 if excess < SWEEP_MIN_FRACTION * f.equity else excess


def is_quiet(f: Figures, vpol: VenuePolicy, band: Band) -> bool:
    """A venue with nothing open, no reserved IM and these figures needs nothing from `decide`: its level is
    ok (no alert), its buffer is not under the band's min (no top-up) and not over its max (no sweep). The
    same comparisons `_assess` and `decide` make, so a quiet venue decides nothing (held by a property test).
    """
    if f.equity <= 0 or f.mm_ratio >= vpol.alert_mm_ratio or f.utilization >= vpol.alert_utilization:
        return False
    return 1.0 - f.im / f.equity >= band.min and not 1.0 - f.utilization > band.max


def derisk_need(own: Figures, vpol: VenuePolicy, landing: float) -> bool:
    """m ≥ derisk_mm_ratio even with `landing` USD added to equity."""
    equity = own.equity + landing
    ratio = own.mm / equity if equity > 0 else math.inf
    return not ratio < vpol.derisk_mm_ratio


def assess_figures(
    venue: str,
    f: Figures,
    vpol: VenuePolicy,
    band: Band,
    *,
    open_intents: Sequence[IntentView] = (),
    prices: Mapping[str, float],
    haircuts: Mapping[str, float],
    reserved_im: float = 0.0,
) -> Assessment:
    """The assessment of a venue whose figures are given (a stress scenario's, or a snapshot's); no
    de-risk need (`assess_venue` adds it)."""
    return _assess(venue, f, vpol, band, open_intents, (prices, haircuts), reserved_im)


def _assess(  # noqa: PLR0917 — called for every venue every cycle: positional, one hop
    venue: str,
    f: Figures,
    vpol: VenuePolicy,
    band: Band,
    open_intents: Sequence[IntentView],
    marks: tuple[Mapping[str, float], Mapping[str, float]],
    reserved_im: float,
) -> Assessment:
    sizing = with_reserved_im(f, reserved_im) if reserved_im > 0.0 else f
    incoming = incoming_usd(open_intents, *marks) if open_intents else 0.0
    equity = sizing.equity + incoming
    buffer = 1.0 - sizing.im / equity if equity > 0 else -math.inf
    topup = sweep = 0.0
    if buffer < band.min:
        topup = topup_usd(sizing, band.target, incoming)
    elif not open_intents and 1.0 - sizing.utilization > band.max:
        sweep = sweepable_usd(sizing, vpol, band.target)
    lvl = level(f.utilization, f.mm_ratio, vpol)
    return Assessment(venue, f, lvl, band, sizing, incoming, buffer, topup, sweep)


def assess_venue(
    snap: VenueSnapshot,
    vpol: VenuePolicy,
    regime: Regime,
    open_intents: Sequence[IntentView] = (),
    *,
    reserved_im: float = 0.0,
    routes: Sequence[RouteSpec] = (),
    horizon: float = -math.inf,
) -> Assessment:
    """A venue's assessment from its snapshot. `open_intents` are the venue's open intents (in flight
    ones count toward its buffer); `routes` (the policy's) and `horizon` (now + derisk_wait_seconds) say
    which of them land in time for the de-risk need."""
    f = snap.reported or figures(snap.collateral, snap.positions, snap.prices, snap.haircuts, snap.params)
    a = _assess(
        snap.venue, f, vpol, vpol.band(regime), open_intents, (snap.prices, snap.haircuts), reserved_im
    )
    if a.level is not _CRITICAL or not snap.positions:
        return a
    landing = 0.0
    if open_intents:
        by_name = {r.name: r for r in routes}
        landing = landing_usd(open_intents, by_name, horizon, snap.prices, snap.haircuts)
    own = f if snap.reported is None else own_figures(snap)
    return replace(a, landing_usd=landing, derisk=derisk_need(own, vpol, landing))


def count_planned(
    a: Assessment,
    snap: VenueSnapshot,
    vpol: VenuePolicy,
    planned: Iterable[TransferAction],
    *,
    routes: Sequence[RouteSpec],
    now: float,
    horizon: float,
) -> Assessment:
    """The de-risk need again, counting this cycle's automatic top-ups that land by `horizon`."""
    if a.level is not _CRITICAL or not snap.positions:
        return a
    by_name = {r.name: r for r in routes}
    landing = a.landing_usd
    added = False
    for act in planned:
        r = by_name.get(act.route)
        if act.kind is _TOPUP and r is not None and now + r.settle_seconds <= horizon:
            landing += landed_value(
                act.asset,
                act.amount - r.fee,
                usd=act.usd,
                amount=act.amount,
                prices=snap.prices,
                haircuts=snap.haircuts,
            )
            added = True
    if not added:
        return a
    own = a.figures if snap.reported is None else own_figures(snap)
    return replace(a, landing_usd=landing, derisk=derisk_need(own, vpol, landing))
