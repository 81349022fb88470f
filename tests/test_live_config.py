"""Live venue configuration: keys from env or a secrets dir, key permission rules, config checks, the
cross-check alert, and what the engine does with a ban or a rate limit on a money move."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bot.core.actions import IntentStatus
from bot.core.decide import crosscheck_gap, decide
from bot.core.margin import Figures
from bot.engine.clock import SimClock
from bot.engine.observe import Observer
from bot.errors import ConfigError, RateLimited, VenueBanned
from bot.logs import redact_text
from bot.settings import settings_from_dict
from bot.venues.base import TransferReceipt, TransferRequest
from bot.venues.live.keys import env_name, load_credentials
from bot.venues.live.ports import key_problems
from bot.venues.live.profile import KeyInfo
from tests import builders
from tests.conftest import PAPER
from tests.harness import START, make_bot, paper_settings


def live_data() -> dict[str, Any]:
    """A small all-ccxt config: one okx venue and its funding account, an internal route each way."""
    return {
        "approvals": {"approvers": ["alice", "bob"], "quorum": 2},
        "venues": [{"name": "okx-main", "kind": "ccxt", "exchange": "okx", "live": {"credentials": "okx"}}],
        "accounts": [
            {
                "name": "okx-funding",
                "bucket": "buffer",
                "owner": "treasury",
                "kind": "ccxt",
                "exchange": "okx",
                "live": {"credentials": "okx"},
            }
        ],
        "routes": [
            {
                "name": "fund-okx",
                "from": "okx-funding",
                "to": "okx-main",
                "asset": "USDT",
                "method": "internal",
                "max_amount": 1000000,
                "daily_limit": 5000000,
            },
        ],
    }


def test_credentials_come_from_the_environment_and_are_masked_afterwards() -> None:
    """A key set read from MARGINBOT_KEY_<NAME>_* is returned as secrets and masked in any later text."""
    env = {
        env_name("okx", f): v
        for f, v in (("api_key", "ak-1234567"), ("secret", "sk-7654321"), ("password", "pp-99999"))
    }
    creds = load_credentials("okx", "okx", env=env)
    assert creds.api_key.get_secret_value() == "ak-1234567"
    assert "ak-1234567" not in repr(creds)
    assert redact_text("failed with sk-7654321 in the text") == "failed with *** in the text"


def test_credentials_come_from_a_secrets_directory(tmp_path: Path) -> None:
    """Files api_key and secret under $MARGINBOT_SECRETS_DIR/<set>/ are read when the env has none."""
    d = tmp_path / "binance-main"
    d.mkdir()
    (d / "api_key").write_text("dir-key-123456\n")
    (d / "secret").write_text("dir-secret-123456\n")
    creds = load_credentials("binance-main", "binance", env={}, secrets_dir=tmp_path)
    assert creds.secret.get_secret_value() == "dir-secret-123456"
    assert creds.password is None


def test_missing_credentials_name_the_variables_to_set() -> None:
    """An OKX key set without its passphrase is refused with the exact variable name."""
    env = {env_name("okx", "api_key"): "k" * 10, env_name("okx", "secret"): "s" * 10}
    with pytest.raises(ConfigError, match="MARGINBOT_KEY_OKX_PASSWORD"):
        load_credentials("okx", "okx", env=env)


def test_a_withdrawal_key_without_ip_whitelist_is_refused() -> None:
    """The runbook's first rule: withdrawals enabled and no IP restriction → refused at start."""
    refused, _ = key_problems(
        "binance key", KeyInfo(can_withdraw=True, ip_restricted=False), {"withdraw": True}
    )
    assert refused
    assert "IP whitelist" in refused[0]


def test_a_key_missing_a_needed_permission_is_refused_and_a_surplus_one_warned() -> None:
    """Trading needed but not granted → refused; withdrawal granted but unused → a least-privilege warning."""
    info = KeyInfo(can_trade=False, can_withdraw=True, can_transfer=True, ip_restricted=True)
    refused, warned = key_problems("okx key", info, {"trade": True, "withdraw": False, "transfer": True})
    assert any("trade" in r for r in refused)
    assert any("may withdraw" in w for w in warned)
    ok, _ = key_problems("okx key", KeyInfo(can_trade=True, ip_restricted=True), {"trade": True})
    assert ok == []


def test_a_read_only_key_cannot_move_money() -> None:
    """A read-only key on a venue the config trades or transfers on is refused."""
    refused, _ = key_problems("bybit key", KeyInfo(read_only=True), {"transfer": True})
    assert refused


def test_a_venue_that_does_not_report_permissions_gets_a_warning_not_a_pass() -> None:
    """No permission report: the operator is told to check by hand."""
    refused, warned = key_problems("deribit key", None, {"trade": True})
    assert refused == []
    assert "by hand" in warned[0]


def test_a_live_config_validates_and_names_the_connection() -> None:
    """Venue and account sharing a key set share one exchange client."""
    s = settings_from_dict(live_data())
    assert s.connection("okx-main") == s.connection("okx-funding") == ("okx", "okx", False, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["accounts"][0]["live"].update(credentials="other"), "internal route joins two wallets"),
        (lambda d: d["venues"][0].update(exchange="kraken"), "not supported"),
        (lambda d: d["venues"][0].update(api_url="ftp://x"), "not an http"),
        (lambda d: d["venues"][0].update(paper={"collateral": {"USDT": 1}}), "takes no \\[venues.paper\\]"),
        (lambda d: d["accounts"][0].update(balances={"USDT": 5}), "takes no `balances`"),
        (lambda d: d["venues"][0]["live"].update(api_key="oops"), "api_key"),
    ],
)
def test_bad_live_configs_are_refused_with_one_clear_line(change: Any, message: str) -> None:
    """Each mistake in a live config is named: mismatched route ends, unknown exchange, keys in TOML…"""
    data = copy.deepcopy(live_data())
    change(data)
    with pytest.raises(ConfigError, match=message):
        settings_from_dict(data)


def test_paper_keys_on_a_live_venue_are_refused() -> None:
    """api_url on a paper venue is a mistake, not silently ignored (`exchange` may name what it stands for)."""
    data = tomllib.loads(PAPER.read_text())
    data["venues"][0]["api_url"] = "http://127.0.0.1:9"
    with pytest.raises(ConfigError, match="for kind"):
        settings_from_dict(data)


def test_figures_that_disagree_beyond_tolerance_raise_a_crosscheck_alert() -> None:
    """The venue says 40% and our own sum says 60%: a warning names both; within tolerance, nothing."""
    reported = Figures(1_000_000, 400_000, 100_000, 0.4, 0.1)
    own = Figures(1_000_000, 600_000, 100_000, 0.6, 0.1)
    assert crosscheck_gap(reported, own) == pytest.approx(0.2)
    base = builders.snapshot("v1")
    snap = dataclasses.replace(base, reported=reported, own=own)
    out = decide(builders.world({"v1": snap}), builders.policy(()))
    alerts = [a for a in out.alerts if a.kind == "crosscheck"]
    assert len(alerts) == 1
    assert "40.0%" in alerts[0].message
    assert "60.0%" in alerts[0].message
    close = dataclasses.replace(base, reported=reported, own=Figures(1_000_000, 420_000, 100_000, 0.42, 0.1))
    assert not [
        a for a in decide(builders.world({"v1": close}), builders.policy(())).alerts if a.kind == "crosscheck"
    ]


class BannedVenue:
    """A venue port that answers HTTP 418."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def snapshot(self) -> Any:
        raise VenueBanned(f"{self.name}: HTTP 418, our address is banned")


async def test_an_ip_ban_halts_that_venue_and_pages(sqlite_url: str) -> None:
    """A 418 on a venue read halts that venue (persisted, critical) while the others run on."""
    s = paper_settings()
    clock = SimClock(START)
    wired = await make_bot(s, sqlite_url, clock)
    bot = wired.bot
    bot.venues[0] = BannedVenue(bot.venues[0].name)  # type: ignore[assignment]
    bot.observer = Observer(bot.venues, bot.accounts, clock, deadline_seconds=5.0)
    clock.advance(5)
    result = await bot.cycle()
    name = s.venues[0].name
    assert bot.states[name].value == "halted"
    assert name in bot.kill.read(clock.now()).halted_venues
    assert result.observed.get(name) is None
    others = [v.name for v in s.venues[1:]]
    assert all(bot.states[v].value != "halted" for v in others)


class RateLimitedTransfers:
    """A transfer port whose venue answers 429 to every submit."""

    def __init__(self) -> None:
        self.calls = 0

    async def submit(self, req: TransferRequest) -> TransferReceipt:
        self.calls += 1
        raise RateLimited("okx-main: 429", retry_after=1.0)

    async def lookup(self, req: TransferRequest) -> TransferReceipt | None:
        return None


async def test_a_rate_limited_transfer_is_recorded_as_not_sent(sqlite_url: str) -> None:
    """A 429 on a transfer means the venue refused it at the door: failed, not unknown, route not blocked."""
    s = paper_settings()
    clock = SimClock(START)
    wired = await make_bot(s, sqlite_url, clock)
    port = RateLimitedTransfers()
    wired.bot.executor.transfers = port  # type: ignore[assignment]
    clock.advance(5)
    await wired.bot.cycle()
    rows = wired.store.intents.rows()
    assert port.calls >= 1
    assert rows
    assert all(r.status == "failed" for r in rows)
    assert "429" in (rows[0].error or "")


def test_a_route_without_client_ids_carries_one_open_move_at_a_time() -> None:
    """Binance universal transfers take no client id: while one is open on a route, new legs take another route."""
    snap = builders.snapshot("v1", usdt=1_000_000.0)
    busy = builders.intent("r1", "10000", status=IntentStatus.SUBMITTED)
    for exclusive, expect_r1 in ((False, True), (True, False)):
        r1 = dataclasses.replace(builders.route("r1", max_amount="100000"), exclusive=exclusive)
        r2 = builders.route("r2", fee="5")
        out = decide(builders.world({"v1": snap}, intents=(busy,)), builders.policy((r1, r2)))
        routes = {p.action.route for p in out.actions}
        assert "r2" in routes
        assert ("r1" in routes) is expect_r1


def test_compiled_routes_are_exclusive_where_the_sender_takes_no_client_id() -> None:
    """Binance internal transfers and Bybit withdrawals are found by history: their routes are exclusive."""
    from bot.app import compile_policy

    data = live_data()
    for item in (*data["venues"], *data["accounts"]):
        item["exchange"] = "binance"
        item["live"]["credentials"] = "bn"
    p = compile_policy(settings_from_dict(data))
    assert all(r.exclusive for r in p.routes)
    okx = compile_policy(settings_from_dict(live_data()))
    assert not any(r.exclusive for r in okx.routes)
