"""Deribit: account figures from the per-currency summaries, linear USDC perpetuals, transfers between
(sub)accounts and withdrawals with an idempotency nonce, orders labelled with our client id.

Wallets are Deribit account ids. A `wallet` value is a (sub)account id as shown under My Account »
Subaccounts, that account's username, or one of two names resolved through `private/get_subaccounts`:
`main` (the main account the key belongs to; the default for a venue) and `subaccount` (the only
subaccount; the default for a treasury account, refused when there are several: then set the id). The key
must be a main-account key: Deribit places orders and sends withdrawals only from the account that signs,
and withdrawals only from a main account, so a venue is the main account and withdrawal routes start there.

Internal transfers use `private/submit_transfer_between_subaccounts` (source, destination, `nonce`), which
ccxt 4.5.90 does not wrap (its `transfer()` posts `submit_transfer_to_subaccount`, always from the signing
account and without a nonce): it is sent through ccxt's own signed `request()`. Deribit keeps the nonce on
the transfer and on the withdrawal and answers a repeat with the first one, so it is our client id; lookups
find it in `get_transfers` / `get_withdrawals` (records without a nonce are matched by amount, other side
and time as a fallback).

"Not found" is an empty list on every lookup here: get_transfers / get_withdrawals are pages of records
(`data`), and private/get_order_state_by_label returns the array of recent orders with that label
(docs.deribit.com, private-get_order_state_by_label; an unknown label as [] is read from the docs, not seen
against production). Deribit's error codes for a missing thing answer other calls: 10004 order_not_found (an
order id or label given to cancel / edit / get_order_state; ccxt 4.5.90 → OrderNotFound), 11053
transfer_not_found and 13020 not_found (ccxt: "Instrument is not found"), both ExchangeError; none is taken
as "not found" here.

Quantities: for linear perpetuals Deribit's `amount` (orders, positions, book) is in the base coin, while
ccxt's market `contractSize` is the instrument's contract size (0.001 BTC): ccxt amounts here are base units.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from bot.core.margin import Figures
from bot.errors import OrderRefused, TransferRefused, VenueError, VenueUnavailable
from bot.settings import STABLES
from bot.venues.base import OrderReceipt, OrderRequest, TransferReceipt, TransferRequest, TransferState
from bot.venues.live.budget import BUDGETS
from bot.venues.live.profile import (
    Calls,
    KeyInfo,
    Profile,
    Withdrawal,
    num,
    order_receipt,
    ratio_figures,
    seconds,
)

SETTLE = "USDC"  # the settlement currency of the linear perpetuals this profile trades
HISTORY_COUNT = 100  # records asked of get_transfers / get_withdrawals (Deribit's default is 10)
FALLBACK_SLACK_MS = 5_000  # a record without our nonce matches from this long before the intent was created
MAIN, ONLY_SUBACCOUNT = "main", "subaccount"

# docs.deribit.com transfer_state: prepared, confirmed, cancelled, waiting_for_admin, insufficient_funds,
# withdrawal_limit, "otherwise rejection reason"
TRANSFER_STATES = {
    "prepared": TransferState.PENDING,
    "waiting_for_admin": TransferState.PENDING,
    "confirmed": TransferState.SETTLED,
}
# docs.deribit.com withdrawal_state: unconfirmed, confirmed, cancelled, completed, interrupted, rejected
WITHDRAWAL_STATES = {
    "unconfirmed": TransferState.PENDING,
    "confirmed": TransferState.PENDING,
    "completed": TransferState.SETTLED,
    "cancelled": TransferState.FAILED,
    "interrupted": TransferState.FAILED,
    "rejected": TransferState.FAILED,
}


# --- pure helpers -----------------------------------------------------------------------------------
def transfer_state(raw: Any) -> TransferState | None:
    """A Deribit transfer state; any other non-empty value is a rejection reason (FAILED)."""
    if not isinstance(raw, str) or not raw:
        return None
    return TRANSFER_STATES.get(raw, TransferState.FAILED)


def withdrawal_state(raw: Any) -> TransferState | None:
    return WITHDRAWAL_STATES.get(raw) if isinstance(raw, str) else None


@dataclass(frozen=True, slots=True)
class Accounts:
    """The key's main account and subaccounts, from `private/get_subaccounts`."""

    main: str
    ids: Mapping[str, str]  # id, username, alias -> id
    names: Mapping[str, str]  # id -> username

    def resolve(self, wallet: str) -> str:
        account = self.ids.get(wallet)
        if account is None:
            known = ", ".join(f"{i} ({n})" for i, n in sorted(self.names.items()))
            raise VenueUnavailable(f"deribit: wallet {wallet!r} is no account of this key; known: {known}")
        return account

    def sides(self, account: str) -> set[str]:
        """How a transfer record may name this account in `other_side`."""
        return {account, self.names.get(account, account)}


def accounts_from(rows: Iterable[Mapping[str, Any]]) -> Accounts:
    ids: dict[str, str] = {}
    names: dict[str, str] = {}
    main = ""
    subs: list[str] = []
    for r in rows:
        account = str(r.get("id") or "")
        if not account:
            continue
        name = str(r.get("username") or r.get("system_name") or account)
        names[account] = name
        ids[account] = account
        ids[name] = account
        if r.get("type") == "main":
            main = account
        else:
            subs.append(account)
    if not main:
        raise VenueUnavailable("deribit: get_subaccounts named no main account (use a main-account key)")
    ids[MAIN] = main
    if len(subs) == 1:
        ids[ONLY_SUBACCOUNT] = subs[0]
    return Accounts(main, ids, names)


def summaries_of(info: Any) -> list[dict[str, Any]]:
    """The per-currency summaries of a get_account_summaries (or get_account_summary) result."""
    if not isinstance(info, dict):
        return []
    rows = info.get("summaries")
    if isinstance(rows, list):
        return [r for r in rows if isinstance(r, dict) and r.get("currency")]
    return [info] if info.get("currency") else []


def is_cross(summary: Mapping[str, Any]) -> bool:
    """Cross collateral (margin_model cross_sm / cross_pm): margin figures are account-wide in every row."""
    model = summary.get("margin_model")
    return summary.get("cross_collateral_enabled") is True or (
        isinstance(model, str) and model.startswith("cross")
    )


def _usd(currency: str, prices: Mapping[str, float]) -> float | None:
    return 1.0 if currency in STABLES else prices.get(currency)


def _nonzero(row: Mapping[str, Any]) -> bool:
    return any(num(row.get(k)) for k in ("margin_balance", "initial_margin", "maintenance_margin"))


def priced_currencies(summaries: list[dict[str, Any]]) -> list[str]:
    """The currencies whose USD price `account_figures` needs (none where a stablecoin row exists)."""
    if any(is_cross(r) for r in summaries):
        if any(r["currency"] in STABLES for r in summaries):
            return []
        return [summaries[0]["currency"]] if summaries else []
    return [r["currency"] for r in summaries if r["currency"] not in STABLES and _nonzero(r)]


def account_figures(summaries: list[dict[str, Any]], prices: Mapping[str, float]) -> Figures | None:
    """Deribit's own figures in USD: u = initial_margin / margin_balance, m = maintenance_margin / margin_balance.

    With cross collateral every row carries the account-wide margin balance, IM and MM converted into its
    currency (Deribit's field docs), so one row is read — a stablecoin's, at 1 USD. Segregated currencies are
    separate pools, summed in USD. margin_balance, not equity, is the SPEC's equity: `equity` is per currency
    and not aggregated, margin_balance is (haircuts of cross collateral applied)."""
    if not summaries:
        return None
    if any(is_cross(r) for r in summaries):
        pick = next((r for r in summaries if r["currency"] in STABLES), None)
        pick = pick or next((r for r in summaries if r["currency"] in prices), None)
        rows = [pick] if pick is not None else []
    else:
        rows = [r for r in summaries if _nonzero(r)]
    if not rows:
        return None
    equity = im = mm = 0.0
    for r in rows:
        price = _usd(r["currency"], prices)
        if price is None:
            return None
        balance = num(r.get("margin_balance"))
        equity += price * (balance if balance is not None else num(r.get("equity")) or 0.0)
        im += price * (num(r.get("initial_margin")) or 0.0)
        mm += price * (num(r.get("maintenance_margin")) or 0.0)
    return ratio_figures(equity, im, mm)


def cash_collateral(summaries: list[dict[str, Any]]) -> dict[str, float]:
    """Cash per currency: `balance` (session unrealized PnL excluded; it is `equity` − `balance`)."""
    out: dict[str, float] = {}
    for r in summaries:
        value = num(r.get("balance"))
        if value:
            out[str(r["currency"])] = value
    return out


def normalised_position(p: Mapping[str, Any], contract_size: float) -> dict[str, Any]:
    """A ccxt Deribit position with ccxt's unified meaning restored: contracts × contractSize = base units.

    ccxt copies the raw `size` (base coin for linear instruments) into `contracts` and then fills
    `contractSize` from the market (0.001 BTC): their product is 1000× too small. The entry becomes the
    session basis: Deribit moves PnL into `balance` at each daily settlement and `floating_profit_loss` is
    the PnL since then (ccxt's fixture: floating 0, total 0.0000328, mark = settlement price), so
    collateral (`balance`) + qty × (mark − basis) is Deribit's equity."""
    raw = p.get("info")
    info: dict[str, Any] = raw if isinstance(raw, dict) else {}
    size = num(info.get("size_currency"))
    size = num(info.get("size")) if size is None else size
    out = dict(p)
    if not size:
        out["contracts"] = 0.0
        return out
    sign = -1.0 if info.get("direction") == "sell" or (info.get("direction") is None and size < 0) else 1.0
    qty = abs(size) * sign
    out["contracts"] = abs(size) / contract_size
    out["contractSize"] = contract_size
    out["side"] = "long" if qty > 0 else "short"
    mark = num(p.get("markPrice")) or num(info.get("mark_price"))
    floating = num(info.get("floating_profit_loss"))
    if mark and floating is not None:
        out["entryPrice"] = mark - floating / qty
    return out


def key_info_from_scope(scope: str) -> KeyInfo:
    """Permissions from the scope public/auth grants the key (its maximum scope).

    trade:read_write places orders; wallet:read_write both transfers and withdraws (Deribit has no separate
    withdrawal permission), and both need `mainaccount`, which Deribit adds for a main account's key only
    (a subaccount can neither withdraw nor name another source). The IP whitelist is not reported (None)."""
    parts = set(scope.split())
    wallet = "wallet:read_write" in parts and "mainaccount" in parts
    return KeyInfo(
        can_trade="trade:read_write" in parts,
        can_withdraw=wallet,
        can_transfer=wallet,
        ip_restricted=None,
        read_only=not any(p.endswith(":read_write") for p in parts),
    )


def auth_signature(secret: str, timestamp: int, nonce: str, data: str) -> str:
    """public/auth grant_type=client_signature: hex HMAC-SHA256 of "timestamp\\nnonce\\ndata"."""
    message = f"{timestamp}\n{nonce}\n{data}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def same_amount(value: Any, amount: Decimal) -> bool:
    v = num(value)
    return v is not None and abs(Decimal(repr(v)) - amount) <= Decimal("1e-9") * max(Decimal(1), abs(amount))


def find_record(
    rows: list[dict[str, Any]], nonce: str, matches: Any, since_ms: float | None
) -> dict[str, Any] | None:
    """The record carrying our nonce; else (records without one) the oldest that `matches` since `since_ms`."""
    for r in rows:
        if r.get("nonce") == nonce:
            return r
    if since_ms is None:
        return None
    loose = [
        r
        for r in rows
        if not r.get("nonce") and (num(r.get("created_timestamp")) or 0.0) >= since_ms and matches(r)
    ]
    return min(loose, key=lambda r: num(r.get("created_timestamp")) or 0.0) if loose else None


def _receipt(
    raw: Mapping[str, Any], req: TransferRequest, state: TransferState | None, ts: float
) -> TransferReceipt:
    settled = seconds(raw.get("updated_timestamp")) if state is TransferState.SETTLED else None
    return TransferReceipt(
        req.client_id,
        str(raw.get("id") or ""),
        state,
        req.amount,
        seconds(raw.get("created_timestamp")) or ts,
        settled,
    )


def _result(response: Any) -> dict[str, Any]:
    result = response.get("result") if isinstance(response, dict) else None
    return result if isinstance(result, dict) else {}


class DeribitProfile(Profile):
    exchange_id = "deribit"
    budget = BUDGETS["deribit"]
    margin_wallet = MAIN
    funding_wallet = ONLY_SUBACCOUNT

    def __init__(self) -> None:
        self._accounts: Accounts | None = None

    def options(self) -> dict[str, Any]:
        # load_markets always asks public/get_currencies (has['fetchCurrencies']); get_instruments is limited
        # to USDC futures in `prepare`. Deribit takes our ids as given (label, nonce): ccxt invents none.
        return {"code": SETTLE}

    async def prepare(self, x: Calls) -> None:
        await x.read("markets", "load_markets", False, {"currency": SETTLE, "kind": "future"})

    async def accounts(self, x: Calls) -> Accounts:
        """The key's accounts (read once per process)."""
        if self._accounts is None:
            rows: list[dict[str, Any]] = await x.read("account", "fetch_accounts")
            self._accounts = accounts_from(r.get("info") or {} for r in rows)
        return self._accounts

    def _ms(self, x: Calls) -> float:
        return float(x.ex.milliseconds())

    def _currency(self, x: Calls, code: str) -> str:
        try:
            return str(x.ex.currency(code)["id"])
        except Exception:  # ccxt raises BadSymbol for a currency get_currencies did not list
            return code

    def _market(self, x: Calls, symbol: str, refused: type[Exception]) -> dict[str, Any]:
        try:
            market: dict[str, Any] = x.ex.market(symbol)
        except Exception as e:  # ccxt raises BadSymbol: a symbol the exchange does not list
            raise refused(f"deribit: unknown symbol {symbol}") from e
        if not market.get("linear"):
            raise refused(f"deribit: {symbol} is not a linear perpetual; only USDC-settled ones are traded")
        return market

    # --- reads --------------------------------------------------------------------------------------
    async def balance(self, x: Calls, wallet: str) -> dict[str, Any]:
        """get_account_summaries of the wallet's account; `free` = available_withdrawal_funds per currency."""
        accounts = await self.accounts(x)
        account = accounts.resolve(wallet)
        params: dict[str, Any] = {} if account == accounts.main else {"subaccount_id": int(account)}
        bal: dict[str, Any] = dict(await x.read("balance", "fetch_balance", params))
        free: dict[str, float] = {}
        for r in summaries_of(bal.get("info")):
            value = num(r.get("available_withdrawal_funds"))
            if value is not None:
                free[str(r["currency"])] = value
                entry = bal.get(str(r["currency"]))
                if isinstance(entry, dict):
                    bal[str(r["currency"])] = {**entry, "free": value}
        bal["free"] = free
        bal["deribit_account"] = account
        return bal

    def collateral(self, balance: dict[str, Any]) -> dict[str, float]:
        return cash_collateral(summaries_of(balance.get("info")))

    async def reported(self, x: Calls, balance: dict[str, Any]) -> Figures | None:
        accounts = await self.accounts(x)
        account = balance.get("deribit_account")
        if account is not None and account != accounts.main:
            raise VenueError(
                f"deribit: a venue must be the key's main account ({accounts.main}); {account} is a "
                "subaccount (orders and withdrawals go from the signing account only)"
            )
        rows = summaries_of(balance.get("info"))
        prices = {c: await self.index_price(x, c) for c in priced_currencies(rows)}
        return account_figures(rows, {c: p for c, p in prices.items() if p})

    async def index_price(self, x: Calls, currency: str) -> float | None:
        got = await x.read("tickers", "public_get_get_index_price", {"index_name": f"{currency.lower()}_usd"})
        return num(_result(got).get("index_price"))

    async def positions(self, x: Calls) -> list[dict[str, Any]]:
        """The main account's USDC-settled futures, in base units (see `normalised_position`)."""
        rows: list[dict[str, Any]] = await x.read(
            "positions", "fetch_positions", None, {"currency": SETTLE, "kind": "future"}
        )
        out = []
        for p in rows:
            market = (x.ex.markets or {}).get(p.get("symbol"))
            if market is None or not market.get("linear"):
                continue  # inverse or unknown: not this profile's instruments
            out.append(normalised_position(p, num(market.get("contractSize")) or 1.0))
        return out

    async def tickers(self, x: Calls, symbols: list[str]) -> dict[str, float]:
        """Mark per listed symbol (public/ticker; fetch_tickers wants one base currency and finds no linear
        instrument under it); an unlisted symbol (a collateral coin) is priced by its USD index."""
        out: dict[str, float] = {}
        for sym in symbols:
            if sym in (x.ex.markets or {}):
                t: dict[str, Any] = await x.read("tickers", "fetch_ticker", sym)
                price = num(t.get("markPrice")) or num(t.get("last"))
            else:
                price = await self.index_price(x, sym.split("/", 1)[0])
            if price:
                out[sym] = price
        return out

    async def funding(self, x: Calls, symbols: list[str]) -> dict[str, float]:
        """public/get_funding_rate_value over the last 8 h, per symbol (ccxt has no fetch_funding_rates)."""
        out: dict[str, float] = {}
        for sym in symbols:
            r: dict[str, Any] = await x.read("funding", "fetch_funding_rate", sym)
            rate = num(r.get("fundingRate"))
            if rate is not None:
                out[sym] = rate
        return out

    async def order_book(self, x: Calls, symbol: str, depth: int) -> dict[str, Any]:
        """The book with amounts in contracts: Deribit's are base coin, and the port multiplies by contractSize."""
        book: dict[str, Any] = await x.read("book", "fetch_order_book", symbol, depth)
        size = num(x.ex.market(symbol).get("contractSize")) or 1.0

        def side(levels: Any) -> list[list[float]]:
            return [[float(lv[0]), float(lv[1]) / size] for lv in levels or () if num(lv[0]) and num(lv[1])]

        return {**book, "bids": side(book.get("bids")), "asks": side(book.get("asks"))}

    async def key_info(self, x: Calls) -> KeyInfo | None:
        """The scope public/auth (client_signature: no secret sent) grants this key."""
        ts = int(self._ms(x))
        nonce = secrets.token_hex(8)
        params = {
            "grant_type": "client_signature",
            "client_id": x.ex.apiKey,
            "timestamp": ts,
            "nonce": nonce,
            "data": "",
            "signature": auth_signature(str(x.ex.secret), ts, nonce, ""),
        }
        got = await x.read("permissions", "public_get_auth", params)
        scope = _result(got).get("scope")
        return key_info_from_scope(scope) if isinstance(scope, str) else None

    # --- money moves --------------------------------------------------------------------------------
    async def transfer(
        self, x: Calls, req: TransferRequest, from_wallet: str, to_wallet: str
    ) -> TransferReceipt:
        """submit_transfer_between_subaccounts with our client id as its idempotency nonce."""
        accounts = await self.accounts(x)
        source, destination = accounts.resolve(from_wallet), accounts.resolve(to_wallet)
        params: dict[str, Any] = {
            "currency": self._currency(x, req.asset),
            "amount": float(req.amount),
            "destination": int(destination),
            "nonce": self.client_id(req.client_id),
        }
        if source != accounts.main:  # the signing (main) account is the default source
            params["source"] = int(source)
        got = await x.move(
            "transfer",
            "request",
            "submit_transfer_between_subaccounts",
            ["private"],
            "GET",
            params,
            refused=TransferRefused,
        )
        raw = _result(got)
        return _receipt(raw, req, transfer_state(raw.get("state")), self._ms(x) / 1000.0)

    async def lookup_transfer(
        self, x: Calls, req: TransferRequest, from_wallet: str, to_wallet: str
    ) -> TransferReceipt | None:
        accounts = await self.accounts(x)
        destination = accounts.sides(accounts.resolve(to_wallet))
        rows: list[dict[str, Any]] = await x.read(
            "history", "fetch_transfers", req.asset, None, HISTORY_COUNT
        )
        raws = [r.get("info") or {} for r in rows]

        def matches(r: dict[str, Any]) -> bool:
            return str(r.get("other_side")) in destination and same_amount(r.get("amount"), req.amount)

        since = None if req.created_at is None else req.created_at * 1000 - FALLBACK_SLACK_MS
        raw = find_record(raws, self.client_id(req.client_id), matches, since)
        if raw is None:
            return None
        return _receipt(raw, req, transfer_state(raw.get("state")), self._ms(x) / 1000.0)

    async def withdraw(
        self, x: Calls, req: TransferRequest, from_wallet: str | None = None
    ) -> TransferReceipt:
        """private/withdraw from the main account with our client id as nonce (no network parameter:
        Deribit withdraws each currency on its one chain; a tag is for ccxt's address check only).
        Deribit withdraws only from the main account: a route starting at a subaccount is refused."""
        if from_wallet is not None:
            accounts = await self.accounts(x)
            if accounts.resolve(from_wallet) != accounts.main:
                raise TransferRefused(
                    f"deribit: {req.route} starts at subaccount {from_wallet}; Deribit withdraws only from the "
                    "main account (move the money there by an internal route first)"
                )
        params: dict[str, Any] = {"nonce": self.client_id(req.client_id)}
        if req.tag:
            params["tag"] = req.tag
        tx: dict[str, Any] = await x.move(
            "withdraw", "withdraw", req.asset, float(req.amount), req.address, params, refused=TransferRefused
        )
        info = tx.get("info")  # ccxt 4.5.90 parses the whole response, not its `result`
        raw = _result(info) or (info if isinstance(info, dict) else {})
        return _receipt(raw, req, withdrawal_state(raw.get("state")), self._ms(x) / 1000.0)

    async def lookup_withdrawal(self, x: Calls, req: TransferRequest) -> Withdrawal | None:
        rows: list[dict[str, Any]] = await x.read(
            "history", "fetch_withdrawals", req.asset, None, HISTORY_COUNT
        )
        raws = [r.get("info") or {} for r in rows]

        def matches(r: dict[str, Any]) -> bool:
            return r.get("address") == req.address and same_amount(r.get("amount"), req.amount)

        since = None if req.created_at is None else req.created_at * 1000 - FALLBACK_SLACK_MS
        raw = find_record(raws, self.client_id(req.client_id), matches, since)
        if raw is None:
            return None
        receipt = _receipt(raw, req, withdrawal_state(raw.get("state")), self._ms(x) / 1000.0)
        txid = raw.get("transaction_id")
        return Withdrawal(receipt, str(txid) if txid else None)

    # --- orders -------------------------------------------------------------------------------------
    def order_size(self, x: Calls, req: OrderRequest, contract_size: float) -> tuple[float, float]:
        """`amount` is base coin for linear instruments (not contracts: `contract_size` is not applied),
        rounded down to min_trade_amount."""
        market = self._market(x, req.symbol, OrderRefused)
        step = Decimal(repr(num((market.get("precision") or {}).get("amount")) or 1e-8))
        amount = (req.qty / step).to_integral_value(rounding=ROUND_DOWN) * step
        if amount <= 0:
            raise OrderRefused(f"deribit: {req.qty} {req.symbol} is below the minimum amount {step}")
        return float(amount), 1.0

    def order_params(self, req: OrderRequest) -> dict[str, Any]:
        """private/buy|sell, market IOC, label = our client id."""
        params: dict[str, Any] = {"label": self.client_id(req.client_id), "timeInForce": "IOC"}
        if req.reduce_only:
            params["reduceOnly"] = True
        return params

    async def lookup_order(
        self, x: Calls, req: OrderRequest, contract_size: float, now: float
    ) -> OrderReceipt | None:
        """private/get_order_state_by_label (currency = the settlement currency, label = our client id)."""
        market = self._market(x, req.symbol, VenueError)
        label = self.client_id(req.client_id)
        got = await x.read(
            "lookup",
            "private_get_get_order_state_by_label",
            {"currency": market.get("settleId") or SETTLE, "label": label},
        )
        rows = got.get("result") if isinstance(got, dict) else None
        found = [r for r in rows or () if isinstance(r, dict) and r.get("label") == label]
        if not found:
            return None
        order: dict[str, Any] = x.ex.parse_order(found[0], market)
        return order_receipt(order, req, 1.0, now)
