"""Properties of the pure core, over many generated worlds (Hypothesis)."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.actions import SPENT_STATUSES, IntentStatus, TransferKind
from bot.core.approvals import Allowed
from bot.core.decide import decide
from bot.core.margin import figures
from bot.core.policy import Regime
from tests.builders import NOW, intent, policy, route, snapshot, world

ROUTES = (
    route("buf-a", max_amount="300000", fee="1"),
    route("buf-b", max_amount="2000000", fee="5"),
    route("em", source="emergency", bucket="emergency", max_amount="5000000"),
    route("sweep", kind=TransferKind.SWEEP),
)
POLICY = policy(ROUTES, auto="250000", daily_auto="1000000")
BAL = {"buffer": {"USDT": Decimal(50_000_000)}, "emergency": {"USDT": Decimal(50_000_000)}}
BUCKETS = {"emergency": "emergency"}

books = st.fixed_dictionaries(
    {
        "usdt": st.floats(min_value=50_000, max_value=5_000_000),
        "qty": st.floats(min_value=-300, max_value=300).filter(lambda q: abs(q) > 0.01),
        "price": st.floats(min_value=20_000, max_value=120_000),
        "entry": st.floats(min_value=20_000, max_value=120_000),
    }
)
regimes = st.sampled_from(list(Regime))


def _world(book: dict[str, float], regime: Regime = Regime.NORMAL, intents=()):  # type: ignore[no-untyped-def]
    return world({"v1": snapshot(**book)}, balances=BAL, buckets=BUCKETS, regime=regime, intents=intents)


def _apply(book: dict[str, float], legs) -> float:  # type: ignore[no-untyped-def]
    """Utilization after the planned top-ups land (amount less fee arrives as USDT)."""
    delivered = sum(
        float(p.action.amount - next(r.fee for r in ROUTES if r.name == p.action.route)) for p in legs
    )
    s = snapshot(**{**book, "usdt": book["usdt"] + delivered})
    return figures(s.collateral, s.positions, s.prices, s.haircuts, s.params).utilization


@settings(max_examples=300, deadline=None)
@given(books, regimes)
def test_a_top_up_never_raises_utilization(book: dict[str, float], regime: Regime) -> None:
    """Whatever the book, the utilization after a planned top-up is no higher than before."""
    d = decide(_world(book, regime), POLICY)
    topups = [p for p in d.actions if p.action.kind is TransferKind.TOPUP]
    before = d.observed["v1"]
    assert before is not None
    if topups:
        assert _apply(book, topups) <= before.utilization
        for p in topups:
            assert p.action.utilization_after <= p.action.utilization_before


@settings(max_examples=300, deadline=None)
@given(books, regimes)
def test_after_the_top_ups_land_the_buffer_is_at_least_target(book: dict[str, float], regime: Regime) -> None:
    """With capacity to spare, the top-ups (all of them, approved or not) restore the target buffer."""
    d = decide(_world(book, regime), POLICY)
    topups = [p for p in d.actions if p.action.kind is TransferKind.TOPUP]
    if topups and not any(a.kind == "capacity" for a in d.alerts):
        target = POLICY.venues["v1"].band(regime).target
        assert 1 - _apply(book, topups) >= target - 1e-9


@settings(max_examples=300, deadline=None)
@given(books, regimes)
def test_money_moves_only_along_configured_routes(book: dict[str, float], regime: Regime) -> None:
    """Every proposed move names a configured route and exactly its ends, asset and address."""
    by_name = {r.name: r for r in ROUTES}
    for p in decide(_world(book, regime), POLICY).actions:
        r = by_name[p.action.route]
        assert (p.action.source, p.action.destination, p.action.asset, p.action.address) == (
            r.source,
            r.destination,
            r.asset,
            r.address,
        )
        assert Decimal(0) < p.action.amount <= r.max_amount
        assert p.action.amount % r.step == 0


@settings(max_examples=200, deadline=None)
@given(books, regimes)
def test_decide_is_deterministic(book: dict[str, float], regime: Regime) -> None:
    """The same world decided twice gives the same decision."""
    w = _world(book, regime)
    assert decide(w, POLICY) == decide(w, POLICY)


spent_history = st.lists(
    st.tuples(
        st.integers(min_value=1_000, max_value=250_000),
        st.floats(min_value=-90_000, max_value=0),
        st.sampled_from([IntentStatus.CONFIRMED, IntentStatus.SUBMITTED, IntentStatus.FAILED]),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(books, spent_history)
def test_no_automatic_move_above_the_limits(book: dict[str, float], history) -> None:  # type: ignore[no-untyped-def]
    """Automatic moves stay at or under the per-move limit, and with the last 24 h within the daily limit."""
    intents = tuple(
        intent("buf-b", str(amount), status=status, created_at=NOW + age, ident=f"h{k}", venue="other")
        for k, (amount, age, status) in enumerate(history)
    )
    d = decide(_world(book, intents=intents), POLICY)
    auto = [p.action.usd for p in d.actions if isinstance(p.verdict, Allowed)]
    spent = sum(
        (i.usd for i in intents if i.status in SPENT_STATUSES and i.created_at > NOW - 86_400), Decimal(0)
    )
    assert all(u <= POLICY.approvals.auto_limit_usd for u in auto)
    assert spent + sum(auto, Decimal(0)) <= max(spent, POLICY.approvals.daily_auto_limit_usd)
    for p in d.actions:
        if p.action.route == "em":
            assert not isinstance(p.verdict, Allowed)
