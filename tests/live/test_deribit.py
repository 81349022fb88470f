"""Deribit through real ccxt and the fake Deribit server: figures, transfers, withdrawals, orders and engine
parity with the paper venue; the raw-field normalisers on canned payloads in Deribit's own format."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.core.margin import MarginParams, Position, build_tiers, figures
from bot.errors import KeyRejected, OrderRefused, TransferRefused, VenueError, VenueUnavailable
from bot.settings import Settings, settings_from_dict
from bot.venues.base import OrderRequest, TransferRequest, TransferState
from bot.venues.fakes.deribit import FakeDeribit
from bot.venues.live.ports import LiveAccount, LiveOrders, LiveTransfers, LiveVenue, LiveWorld
from bot.venues.live.profiles.deribit import (
    DeribitProfile,
    account_figures,
    accounts_from,
    cash_collateral,
    find_record,
    key_info_from_scope,
    normalised_position,
    priced_currencies,
    summaries_of,
    transfer_state,
    withdrawal_state,
)
from tests.live.harness import Twin, intents, orders

SYMBOL = "BTC/USDC:USDC"
COLD_ADDRESS = "0x9f2cB1d7E3a4C5b6D7e8F9a0B1c2D3e4F5a6B7c8"
EXCHANGE_OF = {"desk": "deribit", "treasury": "deribit"}


def config(
    usdc: int = 500_000, btc: float = 0.0, exposure: float = 2.0, short: float = 50.0, funding: float = 0.0
) -> Settings:
    """desk (Deribit main account) short BTC on USDC, treasury (a subaccount), cold storage (paper)."""
    collateral: dict[str, Any] = {"USDC": usdc, **({"BTC": btc} if btc else {})}
    route = {"min_amount": 1000, "max_amount": 5_000_000, "daily_limit": 50_000_000, "settle_seconds": 0}
    data: dict[str, Any] = {
        "approvals": {
            "approvers": ["alice", "bob"],
            "quorum": 2,
            "auto_limit_usd": 5_000_000,
            "daily_auto_limit_usd": 50_000_000,
        },
        "market": {"prices": {"BTC": 60000.0}},
        "venues": [
            {
                "name": "desk",
                "paper": {
                    "collateral": collateral,
                    "positions": [{"symbol": SYMBOL, "qty": -short, "entry": 60000}],
                    "haircuts": {"BTC": 0.05},
                    "mm_tiers": [{"up_to": 2_000_000, "rate": 0.005}, {"rate": 0.01}],
                    "im_rate": 0.1,
                    "funding_rate_8h": funding,
                },
            }
        ],
        "accounts": [
            {"name": "treasury", "bucket": "buffer", "owner": "ops", "balances": {"USDC": 20_000_000}},
            {"name": "cold", "bucket": "emergency", "owner": "cfo", "balances": {}},
        ],
        "routes": [
            {
                "name": "top-up",
                "from": "treasury",
                "to": "desk",
                "asset": "USDC",
                "method": "internal",
                **route,
            },
            {
                "name": "sweep",
                "from": "desk",
                "to": "treasury",
                "asset": "USDC",
                "method": "internal",
                **route,
            },
            {
                "name": "to-cold",
                "from": "desk",
                "to": "cold",
                "asset": "USDC",
                "method": "withdrawal",
                "network": "ERC20",
                "address": COLD_ADDRESS,
                "fee": 1,
                **route,
            },
        ],
        "hedges": [
            {
                "name": "btc",
                "asset": "BTC",
                "exposure": exposure,
                "strategy": "static",
                "band": 0.5,
                "min_trade": 0.01,
                "instruments": [{"venue": "desk", "symbol": SYMBOL, "fee_bps": 5, "qty_step": 0.001}],
            }
        ],
    }
    return settings_from_dict(data)


@pytest.fixture
async def twin(tmp_path: Any) -> Any:
    t = await Twin(config(), EXCHANGE_OF, tmp_path).start()
    yield t
    await t.stop()


def fake_of(t: Twin) -> FakeDeribit:
    fake = t.fake("deribit")
    assert isinstance(fake, FakeDeribit)
    return fake


def world(t: Twin) -> LiveWorld:
    assert t.world is not None
    return t.world


def request(t: Twin, route: str, cid: str, amount: str, created_at: float | None = None) -> TransferRequest:
    r = next(r for r in t.live_settings.routes if r.name == route)
    return TransferRequest(
        client_id=cid,
        route=r.name,
        source=r.from_,
        destination=r.to,
        asset=r.asset,
        amount=Decimal(amount),
        method=r.method,
        network=r.network,
        address=r.address,
        fee=r.fee,
        settle_seconds=r.settle_seconds,
        created_at=created_at,
        tag=r.tag,
    )


def sent(fake: FakeDeribit, method: str) -> list[dict[str, str]]:
    return [params for m, params in fake.received if m == method]


# --- canned payloads in Deribit's format ----------------------------------------------------------------
# Row fields as in ccxt 4.5.90's fetch_balance fixture (private/get_account_summary) plus margin_model and
# cross_collateral_enabled from docs.deribit.com (get_account_summaries): with cross collateral,
# margin_balance / initial_margin / maintenance_margin are account-wide, converted into each row's currency.
def summary(currency: str, **fields: Any) -> dict[str, Any]:
    row = {
        "currency": currency,
        "total_pl": 0,
        "session_upl": 0,
        "session_rpl": 0,
        "portfolio_margining_enabled": False,
        "options_value": 0,
        "futures_session_upl": 0,
        "delta_total": 0,
        "available_withdrawal_funds": 0,
        "available_funds": 0,
        "balance": 0,
        "equity": 0,
        "margin_balance": 0,
        "initial_margin": 0,
        "maintenance_margin": 0,
        "margin_model": "cross_sm",
        "cross_collateral_enabled": True,
    }
    return {**row, **fields}


CROSS = {
    "summaries": [
        summary(
            "USDC",
            balance=800_000,
            equity=780_000,
            session_upl=-20_000,
            margin_balance=894_000,
            initial_margin=300_000,
            maintenance_margin=15_000,
        ),
        summary(
            "BTC",
            balance=2,
            equity=2,
            margin_balance=14.9,
            initial_margin=5.0,
            maintenance_margin=0.25,
        ),
    ],
    "id": 71001,
    "username": "marginbot_desk",
    "type": "main",
}


def test_cross_collateral_figures_come_from_one_row_in_usd() -> None:
    """Cross collateral: IM / margin_balance of the USDC row, not per-currency equity summed."""
    rows = summaries_of(CROSS)
    assert priced_currencies(rows) == []
    f = account_figures(rows, {})
    assert f is not None
    assert (f.equity, f.im, f.mm) == (894_000, 300_000, 15_000)
    assert f.utilization == pytest.approx(300_000 / 894_000)
    assert f.mm_ratio == pytest.approx(15_000 / 894_000)


def test_segregated_currencies_are_summed_at_their_usd_index() -> None:
    """Segregated margin: each currency its own pool, converted with the index price and added up."""
    rows = [
        summary(
            "USDC",
            margin_model="segregated_sm",
            cross_collateral_enabled=False,
            margin_balance=100_000,
            initial_margin=10_000,
            maintenance_margin=1_000,
        ),
        summary(
            "BTC",
            margin_model="segregated_sm",
            cross_collateral_enabled=False,
            margin_balance=2.0,
            initial_margin=0.5,
            maintenance_margin=0.1,
        ),
        summary("ETH", margin_model="segregated_sm", cross_collateral_enabled=False),
    ]
    assert priced_currencies(rows) == ["BTC"]  # ETH holds nothing: no price asked
    f = account_figures(rows, {"BTC": 50_000.0})
    assert f is not None
    assert (f.equity, f.im, f.mm) == (200_000, 35_000, 6_000)
    assert account_figures(rows, {}) is None  # a pool without a price: no figures rather than wrong ones


def test_collateral_is_the_balance_without_session_pnl() -> None:
    """Cash collateral per currency is `balance`; `equity` carries the session's unrealized PnL."""
    assert cash_collateral(summaries_of(CROSS)) == {"USDC": 800_000, "BTC": 2}


def test_a_position_is_in_base_units_from_its_session_basis() -> None:
    """ccxt's contracts (raw size, base coin) × contractSize (0.001) is restored; entry = settlement basis."""
    # ccxt 4.5.90 parse_position of a private/get_positions row for BTC_USDC-PERPETUAL: contracts = size,
    # contractSize filled from the market, entryPrice = average_price. A daily settlement at 62,000 moved
    # (62,000 − 60,000) × −1.5 into the balance; floating_profit_loss is the PnL since then.
    info = {
        "instrument_name": "BTC_USDC-PERPETUAL",
        "direction": "sell",
        "size": -1.5,
        "size_currency": -1.5,
        "average_price": 60000,
        "settlement_price": 62000,
        "mark_price": 63000,
        "floating_profit_loss": -1500.0,
        "total_profit_loss": -4500.0,
        "initial_margin": 9450.0,
        "maintenance_margin": 472.5,
        "kind": "future",
    }
    ccxt_row = {
        "symbol": SYMBOL,
        "contracts": -1.5,
        "contractSize": 0.001,
        "side": "short",
        "entryPrice": 60000,
        "markPrice": 63000,
        "info": info,
    }
    p = normalised_position(ccxt_row, 0.001)
    assert p["contracts"] * p["contractSize"] == pytest.approx(1.5)
    assert p["side"] == "short"
    assert p["entryPrice"] == pytest.approx(62000)
    assert (
        normalised_position({**ccxt_row, "info": {**info, "size": 0, "size_currency": 0}}, 0.001)["contracts"]
        == 0
    )


def test_deribit_states_map_to_ours() -> None:
    """Transfer states (other values are rejection reasons) and withdrawal states, per docs.deribit.com."""
    assert transfer_state("prepared") is TransferState.PENDING
    assert transfer_state("confirmed") is TransferState.SETTLED
    assert transfer_state("insufficient_funds") is TransferState.FAILED
    assert transfer_state(None) is None
    assert withdrawal_state("confirmed") is TransferState.PENDING
    assert withdrawal_state("completed") is TransferState.SETTLED
    assert withdrawal_state("interrupted") is TransferState.FAILED
    assert withdrawal_state("unheard_of") is None


def test_the_granted_scope_says_what_the_key_may_do() -> None:
    """public/auth's scope: trade:read_write trades; wallet:read_write with mainaccount moves money."""
    full = key_info_from_scope("connection mainaccount account:read trade:read_write wallet:read_write")
    assert (full.can_trade, full.can_transfer, full.can_withdraw, full.read_only) == (True, True, True, False)
    assert full.ip_restricted is None
    reader = key_info_from_scope("connection account:read trade:read wallet:read")
    assert (reader.can_trade, reader.can_withdraw, reader.read_only) == (False, False, True)
    sub = key_info_from_scope("connection account:read trade:read_write wallet:read_write")
    assert (sub.can_trade, sub.can_transfer, sub.can_withdraw) == (True, False, False)  # a subaccount's key


def test_wallet_names_resolve_to_account_ids() -> None:
    """`main`, `subaccount`, ids and usernames resolve; a second subaccount makes `subaccount` ambiguous."""
    # private/get_subaccounts rows as in ccxt 4.5.90's fetch_accounts fixture (ids as strings there)
    rows = [
        {"id": "238216", "username": "desk", "type": "main"},
        {"id": "245499", "username": "desk_1", "type": "subaccount"},
    ]
    acc = accounts_from(rows)
    assert [acc.resolve(w) for w in ("main", "subaccount", "245499", "desk_1")] == [
        "238216",
        "245499",
        "245499",
        "245499",
    ]
    two = accounts_from([*rows, {"id": "245500", "username": "desk_2", "type": "subaccount"}])
    with pytest.raises(VenueUnavailable, match="subaccount"):
        two.resolve("subaccount")


def test_history_is_searched_by_nonce_then_by_fields() -> None:
    """Our nonce wins; without one, the oldest record matching after the intent, never another's nonce."""
    rows = [
        {"id": 3, "nonce": "other-intent", "amount": 5000, "created_timestamp": 2_000},
        {"id": 2, "amount": 5000, "created_timestamp": 1_500},
        {"id": 1, "amount": 5000, "created_timestamp": 500},
    ]
    assert find_record([*rows, {"id": 9, "nonce": "ours"}], "ours", lambda r: True, None) == {
        "id": 9,
        "nonce": "ours",
    }
    assert find_record(rows, "ours", lambda r: r["amount"] == 5000, 1_000) == rows[1]
    assert find_record(rows, "ours", lambda r: True, None) is None


# --- through ccxt and the fake -------------------------------------------------------------------------
async def test_the_snapshot_reports_the_paper_venues_figures(tmp_path: Any) -> None:
    """Reported figures equal the paper venue's; positions, prices, funding match; own agrees; no uPnL in cash."""
    t = await Twin(config(usdc=1_200_000, btc=3.0, funding=0.0002), EXCHANGE_OF, tmp_path).start()
    try:
        t.shock("BTC", 0.05)
        live = await LiveVenue(world(t), "desk").snapshot()
        paper = t.ccxt.paper.snapshot("desk")
        book = t.ccxt.paper.books["desk"]
        expected = t.ccxt.paper.figures(book)
        assert live.reported is not None
        for field in ("equity", "im", "mm", "utilization", "mm_ratio"):
            assert getattr(live.reported, field) == pytest.approx(getattr(expected, field), rel=1e-6)
        assert live.collateral == pytest.approx({"USDC": 1_200_000.0, "BTC": 3.0})
        assert live.collateral == pytest.approx(paper.collateral)
        (pos,) = live.positions
        (ppos,) = paper.positions
        assert (pos.symbol, pos.base) == (ppos.symbol, ppos.base)
        assert pos.qty == pytest.approx(ppos.qty)
        assert pos.entry == pytest.approx(ppos.entry)
        assert live.prices["BTC"] == pytest.approx(paper.prices["BTC"])
        assert live.funding == pytest.approx({SYMBOL: 0.0002})
        assert live.own is not None
        assert live.own.utilization == pytest.approx(expected.utilization, rel=1e-6)
        assert live.own.mm_ratio == pytest.approx(expected.mm_ratio, rel=1e-6)
        await t.cycle()
        alerts = {a.alert.kind for a in t.ccxt.wired.bot.alert_log}
        assert "crosscheck" not in alerts
    finally:
        await t.stop()


async def test_a_treasury_subaccount_offers_its_withdrawable_funds(twin: Twin) -> None:
    """The treasury wallet is read with subaccount_id; what it may send is available_withdrawal_funds."""
    snap = await LiveAccount(world(twin), "treasury", "buffer").balances()
    assert snap.balances == {"USDC": Decimal("20000000.0")}
    summaries = [h for h in fake_of(twin).hits if h.path.endswith("/get_account_summaries")]
    assert summaries
    assert all(h.signed for h in summaries)


async def test_a_venue_on_a_subaccount_is_refused(twin: Twin) -> None:
    """Orders and withdrawals go from the signing main account only: a subaccount venue is a config error."""
    profile = DeribitProfile()
    x = world(twin).by_name["desk"].caller
    bal = await profile.balance(x, "subaccount")
    with pytest.raises(VenueError, match="main account"):
        await profile.reported(x, bal)


async def test_a_transfer_carries_our_client_id_and_a_repeat_moves_once(twin: Twin) -> None:
    """submit_transfer_between_subaccounts gets nonce = client id (source set for a subaccount); once."""
    fake = fake_of(twin)
    ports = LiveTransfers(world(twin), None)
    cid = "a1" * 16
    req = request(twin, "top-up", cid, "250000")
    first = await ports.submit(req)
    again = await ports.submit(req)
    assert first.state is TransferState.SETTLED
    assert again.venue_ref == first.venue_ref
    (params, _) = sent(fake, "private/submit_transfer_between_subaccounts")
    assert params == {
        "currency": "USDC",
        "amount": "250000.0",
        "destination": FakeDeribit.MARGIN_WALLET,
        "nonce": cid,
        "source": FakeDeribit.FUNDING_WALLET,
    }
    assert twin.ccxt.paper.effects == [cid]
    assert twin.ccxt.paper.books["desk"].collateral["USDC"] == Decimal(750_000)
    found = await ports.lookup(request(twin, "top-up", cid, "250000", created_at=twin.clock.now()))
    assert found is not None
    assert found.state is TransferState.SETTLED
    assert found.venue_ref == first.venue_ref
    sweep = await ports.submit(request(twin, "sweep", "b2" * 16, "1000"))
    assert sweep.state is TransferState.SETTLED
    assert "source" not in sent(fake, "private/submit_transfer_between_subaccounts")[-1]  # main: the default


async def test_a_transfer_lookup_answers_none_until_the_history_shows_it(twin: Twin) -> None:
    """Hidden for two polls: None, None, then the receipt."""
    fake = fake_of(twin)
    fake.not_found_polls = 2
    ports = LiveTransfers(world(twin), None)
    req = request(twin, "sweep", "c3" * 16, "12345.67", created_at=twin.clock.now())
    await ports.submit(req)
    assert await ports.lookup(req) is None
    assert await ports.lookup(req) is None
    found = await ports.lookup(req)
    assert found is not None
    assert found.amount == Decimal("12345.67")


async def test_a_transfer_without_a_nonce_is_found_by_amount_and_time(twin: Twin) -> None:
    """ccxt's own transfer() posts submit_transfer_to_subaccount with no nonce: the fields still match."""
    x = world(twin).by_name["desk"].caller
    await x.ex.transfer("USDC", 4321.0, FakeDeribit.MARGIN_WALLET, FakeDeribit.FUNDING_WALLET)
    ports = LiveTransfers(world(twin), None)
    found = await ports.lookup(request(twin, "sweep", "d4" * 16, "4321", created_at=twin.clock.now()))
    assert found is not None
    assert found.state is TransferState.SETTLED
    assert (
        await ports.lookup(request(twin, "sweep", "d4" * 16, "4321", created_at=twin.clock.now() + 60))
        is None
    )


async def test_an_unaffordable_transfer_is_refused(twin: Twin) -> None:
    """Deribit's not_enough_funds (10009) is InsufficientFunds in ccxt: TransferRefused, nothing moved."""
    with pytest.raises(TransferRefused):
        await LiveTransfers(world(twin), None).submit(request(twin, "sweep", "e5" * 16, "4000000"))
    assert twin.ccxt.paper.effects == []


async def test_a_withdrawal_carries_our_client_id_and_is_found_with_its_txid(twin: Twin) -> None:
    """private/withdraw gets nonce = client id; a repeat moves once; get_withdrawals finds it by nonce."""
    fake = fake_of(twin)
    ports = LiveTransfers(world(twin), None)
    cid = "f6" * 16
    req = request(twin, "to-cold", cid, "10000")
    first = await ports.submit(req)
    await ports.submit(req)
    assert first.state is TransferState.SETTLED
    assert first.venue_ref
    params = sent(fake, "private/withdraw")
    assert len(params) == 2
    assert params[0] == {
        "currency": "USDC",
        "address": COLD_ADDRESS,
        "amount": "10000.0",
        "nonce": cid,
    }
    assert twin.ccxt.paper.effects == [cid]
    assert twin.ccxt.paper.accounts["cold"]["USDC"] == Decimal(9999)
    profile = world(twin).by_name["desk"].profile
    found = await profile.lookup_withdrawal(world(twin).by_name["desk"].caller, req)
    assert found is not None
    assert found.txid == f"0x{cid}"
    assert found.receipt.state is TransferState.SETTLED


async def test_a_deposit_into_the_desk_is_seen_settled(twin: Twin) -> None:
    """get_deposits lists what arrived on the main account; matched by txid, once completed."""
    cold = TransferRequest(
        client_id="1d" * 16,
        route="cold-to-desk",
        source="cold",
        destination="desk",
        asset="USDC",
        amount=Decimal(5000),
        method="withdrawal",
        network="ERC20",
        address="0xdeskusdc",
        fee=Decimal(1),
        settle_seconds=0,
    )
    twin.ccxt.paper.accounts["cold"] = {"USDC": Decimal(5000)}
    twin.ccxt.paper.submit(cold)
    conn = world(twin).by_name["desk"]
    await conn.ensure()
    since = twin.clock.now() - 1
    at = await conn.profile.deposit_settled_at(
        conn.caller, "USDC", f"0x{cold.client_id}", Decimal(4999), since
    )
    assert at == pytest.approx(twin.clock.now())
    assert await conn.profile.deposit_settled_at(conn.caller, "USDC", "0xother", Decimal(4999), since) is None


async def test_an_order_sends_label_and_reduce_only_and_is_found_by_label(twin: Twin) -> None:
    """private/buy with label = client id, reduce_only, IOC; amount in BTC; the label lookup finds the fill."""
    fake = fake_of(twin)
    ports = LiveOrders(world(twin), None)
    req = OrderRequest("0a" * 16, "desk", SYMBOL, "buy", Decimal("1.5"), True)
    receipt = await ports.place(req)
    assert receipt.filled == Decimal("1.5")
    assert receipt.done
    assert receipt.fee > 0
    (params,) = sent(fake, "private/buy")
    assert params["label"] == req.client_id
    assert params["reduce_only"] == "true"
    assert params["type"] == "market"
    assert params["time_in_force"] == "immediate_or_cancel"
    assert params["amount"] == "1.5"  # base coin, not 1,500 contracts of 0.001
    assert twin.ccxt.paper.books["desk"].positions[0].qty == pytest.approx(-48.5)
    found = await ports.lookup_order(req)
    assert found is not None
    assert found.filled == Decimal("1.5")
    assert found.venue_ref == receipt.venue_ref
    fake.not_found_polls = 1
    other = OrderRequest("0b" * 16, "desk", SYMBOL, "sell", Decimal("0.25"), False)
    await ports.place(other)
    assert await ports.lookup_order(other) is None
    assert (await ports.lookup_order(other)) is not None


async def test_amounts_convert_between_base_units_and_contracts(twin: Twin) -> None:
    """The book comes back in BTC; a quantity is cut to min_trade_amount (one 0.001 contract), never 1000×."""
    conn = world(twin).by_name["desk"]
    await conn.ensure()
    assert conn.contract_size(SYMBOL) == 0.001
    ports = LiveOrders(world(twin), None)
    live = await ports.order_book("desk", SYMBOL)
    paper = twin.ccxt.paper.matching.order_book("desk", SYMBOL)
    assert live.bids[0][1] == pytest.approx(paper.bids[0][1])
    assert live.asks[0][0] == pytest.approx(paper.asks[0][0])
    receipt = await ports.place(OrderRequest("0c" * 16, "desk", SYMBOL, "sell", Decimal("0.0015"), False))
    assert receipt.filled == Decimal("0.001")
    with pytest.raises(OrderRefused, match="below the minimum"):
        await ports.place(OrderRequest("0d" * 16, "desk", SYMBOL, "sell", Decimal("0.0004"), False))
    assert len(sent(fake_of(twin), "private/sell")) == 1


async def test_preflight_reads_the_key_scope(twin: Twin) -> None:
    """public/auth (client_signature) reports the scope: a read-only key is refused for a trading config."""
    assert await world(twin).preflight() == []  # trades, transfers and withdraws: all granted
    assert any(h.path == "/api/v2/public/auth" and h.status == 200 for h in fake_of(twin).hits)
    fake_of(twin).scope = "connection account:read trade:read wallet:read"
    with pytest.raises(KeyRejected, match="read-only"):
        await world(twin).preflight()


async def test_a_wrongly_signed_request_is_refused(twin: Twin) -> None:
    """The fake checks deri-hmac-sha256 for real: a wrong secret is KeyRejected, nothing read."""
    assert twin.rehearsal is not None
    env = dict(twin.rehearsal.env)
    key = next(k for k in env if k.endswith("_SECRET"))
    env[key] = "0" * len(env[key])
    bad = LiveWorld(twin.live_settings, clock=twin.clock.now, env=env, read_wait_max=0.01)
    try:
        with pytest.raises(KeyRejected):
            await LiveVenue(bad, "desk").snapshot()
    finally:
        await bad.close()
    assert any(h.status == 401 and not h.signed for h in fake_of(twin).hits)


# --- engine parity ------------------------------------------------------------------------------------
def same_outcome(t: Twin) -> None:
    assert intents(t.ccxt) == intents(t.paper)
    assert orders(t.ccxt) == orders(t.paper)
    assert t.ccxt.paper.effects == t.paper.paper.effects
    for name in ("desk",):
        assert t.ccxt.paper.books[name].collateral == t.paper.paper.books[name].collateral
        assert t.ccxt.paper.books[name].positions == t.paper.paper.books[name].positions
    assert t.ccxt.paper.accounts == t.paper.paper.accounts


async def test_a_price_shock_tops_up_as_on_paper(twin: Twin) -> None:
    """A 5% rise takes utilization from 60% to 90%: the same top-up from the treasury subaccount."""
    await twin.cycle()
    assert intents(twin.ccxt) == []
    twin.shock("BTC", 0.05)
    for _ in range(3):
        await twin.cycle(30)
    moves = [i for i in intents(twin.ccxt) if i[0] == "topup"]
    assert moves
    assert moves[-1][1] == "top-up"
    assert moves[-1][3] == "confirmed"
    same_outcome(twin)


async def test_excess_collateral_is_swept_as_on_paper(tmp_path: Any) -> None:
    """3M USDC against 3M notional is 10% used (buffer above 60%): the same sweep back to the treasury."""
    t = await Twin(config(usdc=3_000_000), EXCHANGE_OF, tmp_path).start()
    try:
        for _ in range(3):
            await t.cycle(30)
        assert any(i[1] == "sweep" and i[3] == "confirmed" for i in intents(t.ccxt))
        same_outcome(t)
    finally:
        await t.stop()


async def test_a_changed_exposure_rebalances_the_hedge_as_on_paper(twin: Twin) -> None:
    """The static program hedges 2 BTC, then 3.5 after the exposure changes: the same orders and fills."""
    await twin.cycle()
    for side in (twin.paper, twin.ccxt):
        side.wired.bot.hedger.set_exposure("btc", 3.5, twin.clock.now())
    for _ in range(2):
        await twin.cycle(30)
    got = orders(twin.ccxt)
    assert [(o[2], o[3], o[5]) for o in got] == [
        ("sell", Decimal("2"), "filled"),
        ("sell", Decimal("1.5"), "filled"),
    ]
    same_outcome(twin)


async def test_a_timeout_after_the_transfer_is_reconciled_to_one_effect(twin: Twin) -> None:
    """The top-up's answer is lost after its effect: unknown, then confirmed by its nonce, moved once."""
    await twin.cycle()
    for side in (twin.paper, twin.ccxt):
        side.paper.timeout_after_effect("top-up", 1)
    twin.shock("BTC", 0.05)
    await twin.cycle(30)
    assert [i[3] for i in intents(twin.ccxt) if i[1] == "top-up"] == ["unknown"]
    for _ in range(3):
        await twin.cycle(30)
    (move,) = [i for i in intents(twin.ccxt) if i[1] == "top-up"]
    assert move[3] == "confirmed"
    assert len(twin.ccxt.paper.effects) == len(intents(twin.ccxt)) == 1
    same_outcome(twin)


def test_the_parity_config_starts_inside_the_band() -> None:
    """50 BTC short at 60k on 500k USDC is 60% used (buffer 40%, band 20–60%); +5% takes it to 90%."""
    v = config().venues[0].paper
    assert v is not None
    params = MarginParams("cross", build_tiers([(t.up_to, t.rate) for t in v.mm_tiers]), v.im_rate)
    short = (Position(SYMBOL, "BTC", -50.0, 60000.0),)
    usdc = {"USDC": float(v.collateral["USDC"])}
    assert figures(usdc, short, {"BTC": 60000.0}, {}, params).utilization == pytest.approx(0.60)
    assert figures(usdc, short, {"BTC": 63000.0}, {}, params).utilization == pytest.approx(0.90)
