"""Property: over random needs, votes and clock steps, no move above a limit goes without a quorum, and
automatic moves in any 24 h window stay within the daily automatic limit."""

from __future__ import annotations

import asyncio
import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from bot.app import Wired, build, open_store
from bot.engine.clock import SimClock
from bot.service.approvals import cast_vote, oldest_pending
from tests.harness import START, paper_settings

# tight limits, so that random sequences reach them
S = paper_settings(okx_usdt=1_500_000, approvals={"auto_limit_usd": 200_000, "daily_auto_limit_usd": 450_000})
AUTO = S.approvals.auto_limit_usd
DAILY = S.approvals.daily_auto_limit_usd
PEOPLE = ["alice", "bob", "carol", "mallory", "marginbot"]


class ApprovalMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="marginbot-am-")
        self.loop = asyncio.new_event_loop()
        self.clock = SimClock(START)
        self.store = open_store(S, f"sqlite:///{Path(self.tmp.name) / 'am.db'}")
        self.wired: Wired = build(
            S, self.store, self.clock, send_notifications=False, figures_every_seconds=None
        )
        self.x = self.wired.exchange
        self.x.accounts["sink"] = {"USDT": Decimal(0)}
        self.loop.run_until_complete(self.wired.bot.start())

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.close()
            self.store.engine.dispose()
            self.tmp.cleanup()

    def _cycle(self, seconds: float = 5) -> None:
        self.clock.advance(seconds)
        self.x.advance()
        self.loop.run_until_complete(self.wired.bot.cycle())

    @rule(
        venue=st.sampled_from(["okx-main", "bybit-main", "binance-pm"]),
        share=st.sampled_from([Decimal("0.2"), Decimal("0.5"), Decimal("0.8")]),
    )
    def a_need_appears(self, venue: str, share: Decimal) -> None:
        book = self.x.books[venue]
        amount = (book.collateral.get("USDT", Decimal(0)) * share).quantize(Decimal("0.01"))
        book.collateral["USDT"] -= amount
        book.refresh()
        self.x.accounts["sink"]["USDT"] += amount
        self._cycle()

    @rule(who=st.sampled_from(PEOPLE), approve=st.booleans(), authenticated=st.booleans())
    def someone_votes(self, who: str, approve: bool, authenticated: bool) -> None:
        request = oldest_pending(self.store)
        if request is not None:
            cast_vote(
                self.store,
                request,
                approver=who,
                approve=approve,
                authenticated=authenticated,
                now=self.clock.now(),
                desk="t",
            )
        self._cycle()

    @rule(seconds=st.sampled_from([5.0, 600.0, 1900.0, 6 * 3600.0, 20 * 3600.0]))
    def time_passes(self, seconds: float) -> None:
        self._cycle(seconds)

    @invariant()
    def every_move_above_the_limits_had_a_quorum(self) -> None:
        sent = set(self.x.effects)
        requests = {a.intent_id: a for a in self.store.approvals.rows()}
        for r in self.store.intents.rows():
            if r.id not in sent:
                continue
            if r.automatic:
                assert r.usd <= AUTO, r
                continue
            a = requests[r.id]
            approvers = set(a.approvers)
            assert a.status == "approved"
            assert len(approvers) >= a.quorum
            assert approvers <= set(a.eligible)
            assert "marginbot" not in approvers

    @invariant()
    def automatic_moves_in_any_24h_window_stay_within_the_daily_limit(self) -> None:
        auto = sorted(
            (r.created_at, r.usd)
            for r in self.store.intents.rows()
            if r.automatic and r.id in set(self.x.effects)
        )
        for start, _ in auto:
            window = sum((usd for t, usd in auto if start <= t < start + 86_400), Decimal(0))
            assert window <= DAILY, (start, window)


ApprovalMachine.TestCase.settings = settings(
    max_examples=20, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_approval_machine = ApprovalMachine.TestCase
