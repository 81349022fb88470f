"""Binance: USDⓈ-M futures or portfolio margin, the spot wallet, universal transfers, withdrawals, orders.

Margin mode. A Binance account is either a classic USDⓈ-M futures account or a portfolio-margin (PM) one.
The profile gets no config; it reads the mode from the wallet a venue is configured with:

    [venues.live] wallet = "swap"        (the default, `margin_wallet`): USDⓈ-M futures, wallet UMFUTURE
    [venues.live] wallet = "portfolio"   portfolio margin (set it when the venue's margin_model = "portfolio")

"future" and "linear" are accepted for USDⓈ-M, "papi" for PM. Treasury accounts use "spot" (the default) or
"funding" (read and transferred from; withdrawals always leave the spot wallet, Binance's walletType 0).
The mode is learnt from the first balance read or transfer on a margin wallet; positions, orders and order
lookups need it, and a lookup before it is known fails for that cycle (nothing is concluded from it).

Account figures (normalised by `um_figures` / `pm_figures`):
    USDⓈ-M     fetch_balance()['info'] (GET /fapi/v3/account): totalMarginBalance (equity),
               totalInitialMargin, totalMaintMargin; collateral = walletBalance per asset (unrealized PnL
               excluded).
    PM         GET /papi/v1/account (one extra read): accountEquity, accountInitialMargin, accountMaintMargin,
               uniMMR (= equity / MM, so m = 1 / uniMMR where the MM field is missing); collateral =
               totalWalletBalance per asset from GET /papi/v1/balance.

Funding rates: GET /fapi/v1/premiumIndex quotes each symbol's rate per its own interval (8 h, 4 h, 1 h) without
saying which; the intervals that differ from 8 h come from GET /fapi/v1/fundingInfo (read once an hour), and
rates are returned per 8 h.

Hidden requests switched off: currencies (/sapi/v1/capital/config/getall, /sapi/v1/margin/allPairs), markets
other than USDⓈ-M (/fapi/v1/exchangeInfo only), and the leverage brackets fetch_positions would load (the
position's own maintMargin is used instead, which also carries the tier's cumulative amount).

Client ids. Orders carry ours as newClientOrderId (looked up with origClientOrderId); withdrawals as
withdrawOrderId (looked up in the withdrawal history filtered by it). The universal transfer
(POST /sapi/v1/asset/transfer) takes none and answers only a tranId: a transfer is looked up in the transfer
history of its type (MAIN_UMFUTURE, UMFUTURE_MAIN, MAIN_PORTFOLIO_MARGIN, PORTFOLIO_MARGIN_MAIN …) by asset,
amount and time at or after the intent's creation (less CLOCK_SKEW), newest first
(`takes_transfer_client_id = False`). This assumes at most one open intent per route and asset: the engine
blocks a route while an intent on it has an unknown outcome, the case the lookup exists for. A tranId this
process has already tied to one intent (its answer, or an earlier match) is never matched to another.

A tranId or a withdrawal id in the answer means Binance accepted the move: the receipt is pending until the
history says CONFIRMED / completed. An answer without one carries no status (unknown).

"Not found": the transfer history answers a page without our row (ccxt reads `rows` or `data`, default
[]) and the withdrawal history filtered by withdrawOrderId an empty list. An order queried by
origClientOrderId that Binance does not have is HTTP 400 {"code": -2013, "msg": "Order does not exist."}
(developers.binance.com, USDⓈ-M "Query Order" and the error-code list; ccxt 4.5.90: -2013 → OrderNotFound
in the common map and in the portfolioMargin map, so fapi and papi agree). -2011 (UNKNOWN_ORDER) answers a
cancel, not a query.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.core.margin import Figures
from bot.errors import OrderRefused, TransferRefused, VenueError, VenueUnavailable
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
    transfer_state,
)

UM = "UMFUTURE"
PM = "PORTFOLIO_MARGIN"
WALLET_IDS: dict[str, str] = {
    "spot": "MAIN",
    "main": "MAIN",
    "funding": "FUNDING",
    "swap": UM,
    "future": UM,
    "linear": UM,
    "umfuture": UM,
    "portfolio": PM,
    "papi": PM,
    "portfolio_margin": PM,
}
BALANCE_PARAMS: dict[str, dict[str, Any]] = {
    "MAIN": {"type": "spot"},
    "FUNDING": {"type": "funding"},
    UM: {"type": "swap"},
    PM: {"portfolioMargin": True},
}
WRITE_PERMISSIONS = (
    "enableFutures",
    "enablePortfolioMarginTrading",
    "enableWithdrawals",
    "permitsUniversalTransfer",
    "enableInternalTransfer",
    "enableSpotAndMarginTrading",
    "enableMargin",
    "enableVanillaOptions",
)
FUNDING_INFO_SECONDS = 3600.0  # funding intervals (GET /fapi/v1/fundingInfo) are read again after this long
CLOCK_SKEW = 2.0  # seconds a venue's history timestamp may lag our clock and still match an intent
HISTORY_ROWS = 100


# --- pure normalisers ------------------------------------------------------------------------------
def wallet_id(wallet: str) -> str | None:
    """Binance's own wallet id for a configured wallet name; None for a name this profile does not know."""
    return WALLET_IDS.get(wallet.lower())


def um_figures(info: Mapping[str, Any]) -> Figures | None:
    """USDⓈ-M account figures from GET /fapi/v3/account (or v2): totalMarginBalance, totalInitialMargin,
    totalMaintMargin."""
    equity = num(info.get("totalMarginBalance"))
    im = num(info.get("totalInitialMargin"))
    mm = num(info.get("totalMaintMargin"))
    if equity is None or im is None or mm is None:
        return None
    return ratio_figures(equity, im, mm)


def pm_figures(info: Mapping[str, Any]) -> Figures | None:
    """Portfolio-margin figures from GET /papi/v1/account: accountEquity, accountInitialMargin,
    accountMaintMargin; uniMMR (equity / MM) stands in for a missing MM."""
    equity = num(info.get("accountEquity"))
    im = num(info.get("accountInitialMargin"))
    mm = num(info.get("accountMaintMargin"))
    uni = num(info.get("uniMMR"))
    if mm is None and equity is not None and uni:
        mm = equity / uni
    if equity is None or im is None or mm is None:
        return None
    return ratio_figures(equity, im, mm)


def um_collateral(info: Mapping[str, Any]) -> dict[str, float]:
    """walletBalance per asset of a USDⓈ-M account (unrealized PnL is in marginBalance, not here)."""
    out: dict[str, float] = {}
    for a in info.get("assets") or []:
        q = num(a.get("walletBalance"))
        if q:
            out[str(a["asset"])] = q
    return out


def is_pm_balance(info: Any) -> bool:
    """True for GET /papi/v1/balance rows (the funding wallet answers a list too, without these fields)."""
    return isinstance(info, list) and any(isinstance(r, dict) and "totalWalletBalance" in r for r in info)


def pm_collateral(rows: list[Any]) -> dict[str, float]:
    """totalWalletBalance per asset of a PM account (cross margin + UM + CM wallets), less borrowing."""
    out: dict[str, float] = {}
    for r in rows:
        q = num(r.get("totalWalletBalance"))
        if q is None:
            continue
        q -= (num(r.get("crossMarginBorrowed")) or 0.0) + (num(r.get("crossMarginInterest")) or 0.0)
        if q:
            out[str(r["asset"])] = q
    return out


def key_permissions(r: Mapping[str, Any], portfolio: bool | None) -> KeyInfo:
    """GET /sapi/v1/account/apiRestrictions as KeyInfo; trading means futures (USDⓈ-M) or PM trading."""
    futures = r.get("enableFutures")
    pm = r.get("enablePortfolioMarginTrading")
    trade: bool | None
    if portfolio is None:
        trade = None if futures is None and pm is None else bool(futures or pm)
    else:
        trade = None if (pm if portfolio else futures) is None else bool(pm if portfolio else futures)
    transfer = r.get("permitsUniversalTransfer", r.get("enableInternalTransfer"))
    withdraw = r.get("enableWithdrawals")
    reading = r.get("enableReading")
    return KeyInfo(
        can_trade=trade,
        can_withdraw=None if withdraw is None else bool(withdraw),
        can_transfer=None if transfer is None else bool(transfer),
        ip_restricted=None if r.get("ipRestrict") is None else bool(r.get("ipRestrict")),
        read_only=None if reading is None else bool(reading) and not any(r.get(k) for k in WRITE_PERMISSIONS),
    )


def interval_hours(interval: Any) -> float | None:
    """ccxt's funding interval ("4h") in hours; None where it gives none."""
    if isinstance(interval, str) and interval.endswith("h"):
        return num(interval[:-1]) or None
    return None


def binance_time(text: Any) -> float | None:
    """A history time as Binance writes it ("2026-02-25 06:13:20", UTC) in epoch seconds."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def same_amount(value: Any, amount: Decimal) -> bool:
    try:
        return value is not None and Decimal(str(value)) == amount
    except InvalidOperation:
        return False


def _ms(t: float | None) -> int | None:
    return None if t is None else int((t - CLOCK_SKEW) * 1000)


class BinanceProfile(Profile):
    exchange_id = "binance"
    budget = BUDGETS["binance"]
    margin_wallet = "swap"  # ccxt's name for USDⓈ-M (UMFUTURE) in fetch_balance and transfer
    funding_wallet = "spot"

    def default_wallet(self, margin_model: str) -> str:
        """A venue with margin_model = "portfolio" is a portfolio-margin account unless its wallet says so."""
        return "portfolio" if margin_model == "portfolio" else self.margin_wallet

    takes_transfer_client_id = False

    def __init__(self) -> None:
        self.portfolio: bool | None = None  # learnt from the venue's wallet (see the module docstring)
        self.funding_hours: dict[str, float] = {}  # symbols whose funding interval is not 8 h
        self._hours_read_at = -math.inf
        self.claimed: dict[str, str] = {}  # tranId -> the client id it belongs to (answers and matches)

    def options(self) -> dict[str, Any]:
        return {
            "fetchCurrencies": False,
            "fetchMargins": False,
            "fetchMarkets": {"types": ["linear"]},
            "leverageBrackets": {},
        }

    def _wallet(self, wallet: str, error: type[Exception]) -> str:
        wid = wallet_id(wallet)
        if wid is None:
            known = ", ".join(sorted(WALLET_IDS))
            raise error(f"binance: wallet {wallet!r} is not one of {known}")
        if wid in (UM, PM):
            self.portfolio = wid == PM
        return wid

    def _papi(self, error: type[Exception]) -> dict[str, Any]:
        if self.portfolio is None:
            raise error("binance: the margin mode is not known until the venue's balance has been read once")
        return {"portfolioMargin": True} if self.portfolio else {}

    # --- reads --------------------------------------------------------------------------------------
    async def balance(self, x: Calls, wallet: str) -> dict[str, Any]:
        params = dict(BALANCE_PARAMS[self._wallet(wallet, VenueError)])
        result: dict[str, Any] = await x.read("balance", "fetch_balance", params)
        return result

    def collateral(self, balance: dict[str, Any]) -> dict[str, float]:
        info = balance.get("info")
        if isinstance(info, list) and is_pm_balance(info):
            return pm_collateral(info)
        if isinstance(info, dict) and "assets" in info:
            return um_collateral(info)
        return super().collateral(balance)

    async def reported(self, x: Calls, balance: dict[str, Any]) -> Figures | None:
        info = balance.get("info")
        if is_pm_balance(info):
            account: dict[str, Any] = await x.read("account", "papi_get_account")
            return pm_figures(account)
        if isinstance(info, dict) and "totalMarginBalance" in info:
            return um_figures(info)
        return None

    async def positions(self, x: Calls) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await x.read(
            "positions", "fetch_positions", None, self._papi(VenueUnavailable)
        )
        return result

    async def tickers(self, x: Calls, symbols: list[str]) -> dict[str, float]:
        """Mark prices (GET /fapi/v1/premiumIndex, the endpoint funding rates come from too)."""
        if not symbols:
            return {}
        got: dict[str, Any] = await x.read("tickers", "fetch_mark_prices", symbols)
        out: dict[str, float] = {}
        for sym, t in got.items():
            price = num(t.get("markPrice")) or num((t.get("info") or {}).get("markPrice"))
            if price:
                out[sym] = price
        return out

    async def funding(self, x: Calls, symbols: list[str]) -> dict[str, float]:
        """Funding per 8 h. premiumIndex gives the rate per the symbol's own interval without saying it:
        the intervals other than 8 h come from GET /fapi/v1/fundingInfo, read once an hour."""
        if not symbols:
            return {}
        got: dict[str, Any] = await x.read("funding", "fetch_funding_rates", symbols)
        hours = await self._funding_hours(x)
        out: dict[str, float] = {}
        for sym, r in got.items():
            rate = num(r.get("fundingRate"))
            if rate is not None:
                out[sym] = rate * 8.0 / (interval_hours(r.get("interval")) or hours.get(sym) or 8.0)
        return out

    async def _funding_hours(self, x: Calls) -> dict[str, float]:
        now = time.monotonic()
        if now - self._hours_read_at >= FUNDING_INFO_SECONDS:
            got: dict[str, Any] = await x.read("funding", "fetch_funding_intervals")
            hours = {sym: interval_hours(r.get("interval")) for sym, r in got.items()}
            self.funding_hours = {sym: h for sym, h in hours.items() if h}
            self._hours_read_at = now
        return self.funding_hours

    async def key_info(self, x: Calls) -> KeyInfo | None:
        r: dict[str, Any] = await x.read("permissions", "sapi_get_account_apirestrictions")
        return key_permissions(r, self.portfolio)

    # --- internal transfers -------------------------------------------------------------------------
    async def transfer(
        self, x: Calls, req: TransferRequest, from_wallet: str, to_wallet: str
    ) -> TransferReceipt:
        kind = f"{self._wallet(from_wallet, TransferRefused)}_{self._wallet(to_wallet, TransferRefused)}"
        result: dict[str, Any] = await x.move(
            "transfer",
            "transfer",
            req.asset,
            float(req.amount),
            from_wallet,
            to_wallet,
            {"type": kind},
            refused=TransferRefused,
        )
        ref = result.get("id")
        if ref:
            self.claimed[str(ref)] = req.client_id
        state = TransferState.PENDING if ref else None
        return TransferReceipt(req.client_id, str(ref or ""), state, req.amount, time.time())

    async def lookup_transfer(
        self, x: Calls, req: TransferRequest, from_wallet: str, to_wallet: str
    ) -> TransferReceipt | None:
        kind = f"{self._wallet(from_wallet, VenueError)}_{self._wallet(to_wallet, VenueError)}"
        rows: list[dict[str, Any]] = await x.read(
            "history", "fetch_transfers", req.asset, _ms(req.created_at), HISTORY_ROWS, {"type": kind}
        )
        for t in sorted(rows, key=lambda r: num(r.get("timestamp")) or 0.0, reverse=True):
            if self._matches(t, req, kind):
                ref = str(t.get("id") or "")
                self.claimed[ref] = req.client_id
                ts = seconds(t.get("timestamp"))
                state = transfer_state(t.get("status"))
                settled = ts if state is TransferState.SETTLED else None
                return TransferReceipt(req.client_id, ref, state, req.amount, ts or 0.0, settled)
        return None

    def _matches(self, t: dict[str, Any], req: TransferRequest, kind: str) -> bool:
        """A history row is this intent's transfer: type, asset, amount, not before it, not another's."""
        info = t.get("info") or {}
        if info.get("type", kind) != kind or info.get("asset", req.asset) != req.asset:
            return False
        if not same_amount(info.get("amount", t.get("amount")), req.amount):
            return False
        if self.claimed.get(str(t.get("id") or ""), req.client_id) != req.client_id:
            return False
        ts = seconds(t.get("timestamp"))
        return req.created_at is None or (ts is not None and ts >= req.created_at - CLOCK_SKEW)

    # --- withdrawals ----------------------------------------------------------------------------------
    async def withdraw(
        self, x: Calls, req: TransferRequest, from_wallet: str | None = None
    ) -> TransferReceipt:
        if not req.address:
            raise TransferRefused(f"binance: route {req.route} has no address")
        params: dict[str, Any] = {"withdrawOrderId": self.client_id(req.client_id)}
        if req.network:
            params["network"] = req.network
        if req.tag:
            params["tag"] = req.tag  # ccxt sends it as addressTag
        result: dict[str, Any] = await x.move(
            "withdraw", "withdraw", req.asset, float(req.amount), req.address, params, refused=TransferRefused
        )
        ref = result.get("id")
        state = TransferState.PENDING if ref else None
        return TransferReceipt(req.client_id, str(ref or ""), state, req.amount, time.time())

    async def lookup_withdrawal(self, x: Calls, req: TransferRequest) -> Withdrawal | None:
        cid = self.client_id(req.client_id)
        rows: list[dict[str, Any]] = await x.read(
            "history", "fetch_withdrawals", req.asset, _ms(req.created_at), None, {"withdrawOrderId": cid}
        )
        for w in rows:
            info = w.get("info") or {}
            if info.get("withdrawOrderId") != cid:
                continue
            state = transfer_state(w.get("status"))
            done = seconds(w.get("updated")) or binance_time(info.get("completeTime"))
            settled = (done or seconds(w.get("timestamp"))) if state is TransferState.SETTLED else None
            ts = seconds(w.get("timestamp")) or 0.0
            receipt = TransferReceipt(req.client_id, str(w.get("id") or ""), state, req.amount, ts, settled)
            return Withdrawal(receipt, w.get("txid") or None)
        return None

    # --- orders -----------------------------------------------------------------------------------------
    def order_params(self, req: OrderRequest) -> dict[str, Any]:
        """newClientOrderId, reduce-only, the fill in the answer (RESULT), papi for portfolio margin."""
        return {**super().order_params(req), "newOrderRespType": "RESULT", **self._papi(OrderRefused)}

    async def lookup_order(
        self, x: Calls, req: OrderRequest, contract_size: float, now: float
    ) -> OrderReceipt | None:
        params = {"clientOrderId": self.client_id(req.client_id), **self._papi(VenueUnavailable)}
        try:
            order: dict[str, Any] = await x.read("lookup", "fetch_order", None, req.symbol, params)
        except VenueError as e:
            if "OrderNotFound" in str(e):  # -2013 "Order does not exist." (ccxt: OrderNotFound)
                return None
            raise
        return order_receipt(order, req, contract_size, now)
