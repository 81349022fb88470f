"""OKX (v5, unified trading account): account figures from raw fields, client ids on transfers, withdrawals
and orders, lookups by them, and the key's permissions from the account configuration.

Raw fields read here, as ccxt 4.5.90 keeps OKX's answers in `info`:
  - `GET /api/v5/account/balance` → data[0]: adjEq (USD equity after discounts), imr, mmr (USD); per currency
    details[]: cashBal (cash, no unrealized PnL), eq (cash + uPnL). u = imr / adjEq, m = mmr / adjEq; OKX's own
    mgnRatio is adjEq / mmr, the inverse of m. Accounts in futures mode leave adjEq empty: then totalEq and
    the per-currency imr / mmr are used.
  - `GET /api/v5/account/config` → data[0].perm ("read_only,withdraw,trade") and ip ("" without a whitelist).
  - `GET /api/v5/asset/transfer-state?clientId=` → data[0].state: success | pending | failed.
  - `GET /api/v5/asset/withdrawal-history?clientId=` → state "2" sent, "-1" failed, "-2" canceled, other
    numbers pending (review, travel rule, hot-wallet top-up …).

"Not found" — what OKX answers for an id it does not know (or does not show yet); only these return None:
  - transfer-state: code 58129 with a msg naming clientId (since March 2023), earlier 51000 "Parameter
    clientId error". Seen against production by tiagosiebler/okx-api (test/private.read.test.ts,
    getFundsTransferState with an unknown clientId; 51000 → 58129 in its commit 119d767) and
    GaloyMoney/stablesats-rs (#313, #314: okex-client error.rs "58129" => ParameterClientIdNotFound).
    ccxt 4.5.90's okx exceptions map has no 58129 (it arrives as ExchangeError) and maps 51000 to
    BadRequest, so the code and msg are read from the answer's body, not from ccxt's class.
  - withdrawal-history filtered by clientId: code "0" with an empty data list (stablesats-rs a2f88134).
  - trade/order by clOrdId: 51603 "Order does not exist" (okx-api's live test; ccxt maps it to
    OrderNotFound).
Any other code (a parameter error about another field, auth, rate limit, busy) is raised: the intent stays
as it is and reconciliation asks again.

What ccxt leaves out: `transfer()` and `withdraw()` parse no status and `create_order` no fill, so each is
followed by one read of the same record by our client id; when that read fails the receipt says "unknown"
(state None, done False) and reconciliation finishes the job. OKX's withdrawal `amt` excludes the fee (the
venue debits amt + fee), so `amt` = our gross amount − the route's fee.
"""

from __future__ import annotations

import re
import time
from typing import Any

from bot.core.margin import Figures
from bot.errors import MarginbotError, TransferRefused, VenueError
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

TRANSFER_STATES = {
    "success": TransferState.SETTLED,
    "pending": TransferState.PENDING,
    "failed": TransferState.FAILED,
}
WITHDRAWAL_DONE = "2"
WITHDRAWAL_FAILED = frozenset({"-1", "-2"})
# transfer-state's answers for a clientId OKX does not know (see the module docstring for the sources)
UNKNOWN_CLIENT_ID_CODES = frozenset({"58129", "51000"})
_BODY_CODE = re.compile(r'"code"\s*:\s*"(-?\d+)"')
_BODY_MSG = re.compile(r'"msg"\s*:\s*"([^"]*)"')


# --- pure normalisers of OKX's raw answers ----------------------------------------------------------------
def _first(info: Any) -> dict[str, Any]:
    """data[0] of an OKX answer ({"code": "0", "msg": "", "data": [{…}]}), or {}."""
    if not isinstance(info, dict):
        return {}
    data = info.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0]
    return {}


def _details(info: Any) -> list[dict[str, Any]]:
    rows = _first(info).get("details")
    return [d for d in rows if isinstance(d, dict)] if isinstance(rows, list) else []


def account_figures(info: Any) -> Figures | None:
    """u and m from the trading balance's raw fields: imr / adjEq and mmr / adjEq (None when absent)."""
    first = _first(info)
    equity, im, mm = num(first.get("adjEq")), num(first.get("imr")), num(first.get("mmr"))
    if equity is None:  # futures mode: no adjEq; the margin requirements are per currency
        equity = num(first.get("totalEq"))
        ims = [num(d.get("imr")) for d in _details(info)]
        mms = [num(d.get("mmr")) for d in _details(info)]
        im = sum(v for v in ims if v is not None) if any(v is not None for v in ims) else None
        mm = sum(v for v in mms if v is not None) if any(v is not None for v in mms) else None
    if equity is None or im is None or mm is None:
        return None
    return ratio_figures(equity, im, mm)


def cash_balances(info: Any) -> dict[str, float]:
    """Cash per currency (details[].cashBal): unrealized PnL excluded, unlike `eq` and ccxt's `total`."""
    out: dict[str, float] = {}
    for d in _details(info):
        cash = num(d.get("cashBal"))
        if cash and d.get("ccy"):
            out[str(d["ccy"])] = cash
    return out


def key_permissions(info: Any) -> KeyInfo | None:
    """The key as `account/config` describes it; funds transfers need the trade permission on OKX."""
    first = _first(info)
    perm = first.get("perm")
    if not isinstance(perm, str):
        return None
    perms = {p.strip() for p in perm.split(",") if p.strip()}
    ip = first.get("ip")
    return KeyInfo(
        can_trade="trade" in perms,
        can_withdraw="withdraw" in perms,
        can_transfer="trade" in perms,
        ip_restricted=bool(ip.strip()) if isinstance(ip, str) else None,
        read_only=perms <= {"read_only"},
    )


def transfer_state_of(row: dict[str, Any]) -> TransferState | None:
    """A transfer-state row's state; None when it carries none we know."""
    return TRANSFER_STATES.get(str(row.get("state") or "").lower())


def withdrawal_state_of(row: dict[str, Any]) -> TransferState | None:
    """A withdrawal-history row's state: "2" sent, "-1"/"-2" failed/canceled, other numbers pending."""
    raw = row.get("state")
    if raw is None or str(raw).strip() == "":
        return None
    state = str(raw).strip()
    if state == WITHDRAWAL_DONE:
        return TransferState.SETTLED
    if state in WITHDRAWAL_FAILED:
        return TransferState.FAILED
    return TransferState.PENDING if state.lstrip("-").isdigit() else None


def error_body(text: str) -> tuple[str | None, str]:
    """The code and msg of the OKX error body an error's text carries (ccxt raises with "okx {body}")."""
    code, msg = _BODY_CODE.search(text), _BODY_MSG.search(text)
    return (code.group(1) if code else None), (msg.group(1) if msg else "")


def unknown_client_id(text: str) -> bool:
    """True for transfer-state's "this clientId is unknown": 58129 (or, before 2023, 51000) naming clientId.
    The same codes about another parameter (ccy, transId, type …) are not "not found"."""
    code, msg = error_body(text)
    return code in UNKNOWN_CLIENT_ID_CODES and "clientid" in msg.lower()


def _says(e: BaseException, *words: str) -> bool:
    """True when an error's text carries every word (the venue's code or ccxt's class name)."""
    text = str(e)
    return all(w in text for w in words)


class OkxProfile(Profile):
    exchange_id = "okx"
    budget = BUDGETS["okx"]
    margin_wallet = "trading"  # ccxt maps it to OKX's account type 18
    funding_wallet = "funding"  # 6

    def options(self) -> dict[str, Any]:
        # swaps only (no spot, futures or option instrument lists); the signed currencies request that
        # load_markets makes stays on: withdraw() takes each chain's name and fee from it
        return {
            "fetchMarkets": {"types": ["swap"]},
            "createOrder": "privatePostTradeOrder",  # not batch-orders
            "defaultType": "swap",
        }

    # --- reads ----------------------------------------------------------------------------------------
    async def reported(self, x: Calls, balance: dict[str, Any]) -> Figures | None:
        return account_figures(balance.get("info"))

    def collateral(self, balance: dict[str, Any]) -> dict[str, float]:
        return cash_balances(balance.get("info"))

    async def tickers(self, x: Calls, symbols: list[str]) -> dict[str, float]:
        """Mark prices (`public/mark-price`): OKX's tickers carry the last trade only."""
        out: dict[str, float] = {}
        if not symbols:
            return out
        got: dict[str, Any] = await x.read("tickers", "fetch_mark_prices", symbols)
        for sym, t in got.items():
            price = num(t.get("markPrice")) or num(t.get("last"))
            if price:
                out[sym] = price
        return out

    async def key_info(self, x: Calls) -> KeyInfo | None:
        raw = await x.read("permissions", "private_get_account_config")
        return key_permissions(raw)

    # --- internal transfers ---------------------------------------------------------------------------
    async def transfer(
        self, x: Calls, req: TransferRequest, from_wallet: str, to_wallet: str
    ) -> TransferReceipt:
        cid = self.client_id(req.client_id)
        entry: dict[str, Any] = await x.move(
            "transfer",
            "transfer",
            req.asset,
            float(req.amount),
            from_wallet,
            to_wallet,
            {"clientId": cid},
            refused=TransferRefused,
        )
        ref = str(entry.get("id") or "")
        try:
            found = await self._transfer_row(x, cid)
        except MarginbotError:  # accepted, state unread: unknown, reconciliation reads it again
            found = None
        state = transfer_state_of(found) if found is not None else None
        return TransferReceipt(req.client_id, ref, state, req.amount, time.time())

    async def lookup_transfer(
        self, x: Calls, req: TransferRequest, from_wallet: str, to_wallet: str
    ) -> TransferReceipt | None:
        row = await self._transfer_row(x, self.client_id(req.client_id))
        if row is None:
            return None
        return TransferReceipt(
            req.client_id, str(row.get("transId") or ""), transfer_state_of(row), req.amount, time.time()
        )

    async def _transfer_row(self, x: Calls, cid: str) -> dict[str, Any] | None:
        """The transfer-state row for our client id; None when OKX does not know the id (yet)."""
        try:
            raw = await x.read("lookup", "private_get_asset_transfer_state", {"clientId": cid})
        except VenueError as e:
            if unknown_client_id(str(e)):  # 58129 (51000 before 2023): OKX does not know this clientId
                return None
            raise
        rows = raw.get("data") if isinstance(raw, dict) else None
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("clientId") in (cid, None, ""):
                return row
        return None

    # --- withdrawals ----------------------------------------------------------------------------------
    async def withdraw(
        self, x: Calls, req: TransferRequest, from_wallet: str | None = None
    ) -> TransferReceipt:
        if not req.address:
            raise TransferRefused(f"{req.route}: a withdrawal needs an address")
        cid = self.client_id(req.client_id)
        params: dict[str, Any] = {"clientId": cid}
        if req.network:
            params["network"] = req.network
        if req.tag:
            params["tag"] = req.tag
        entry: dict[str, Any] = await x.move(
            "withdraw",
            "withdraw",
            req.asset,
            float(req.amount - req.fee),  # OKX debits amt + fee: our amount is gross
            req.address,
            params,
            refused=TransferRefused,
        )
        ref = str(entry.get("id") or "")
        try:
            found = await self._withdrawal_row(x, req.asset, cid)
        except MarginbotError:
            found = None
        state = withdrawal_state_of(found["info"]) if found is not None else None
        return TransferReceipt(req.client_id, ref, state, req.amount, time.time())

    async def lookup_withdrawal(self, x: Calls, req: TransferRequest) -> Withdrawal | None:
        found = await self._withdrawal_row(x, req.asset, self.client_id(req.client_id))
        if found is None:
            return None
        state = withdrawal_state_of(found["info"])
        receipt = TransferReceipt(
            req.client_id,
            str(found.get("id") or ""),
            state,
            req.amount,
            seconds(found.get("timestamp")) or time.time(),
        )
        return Withdrawal(receipt, str(found.get("txid") or "") or None)

    async def _withdrawal_row(self, x: Calls, asset: str, cid: str) -> dict[str, Any] | None:
        """The withdrawal carrying our client id (the history is filtered by it), as ccxt parsed it."""
        rows: list[dict[str, Any]] = await x.read(
            "lookup", "fetch_withdrawals", asset, None, None, {"clientId": cid}
        )
        for row in rows:
            info = row.get("info")
            if isinstance(info, dict) and info.get("clientId") == cid:
                return row
        return None

    # --- orders ---------------------------------------------------------------------------------------
    def order_params(self, req: OrderRequest) -> dict[str, Any]:
        """clOrdId and reduce-only; the placement answer carries no fill, so the base reads it back."""
        params: dict[str, Any] = {"clOrdId": self.client_id(req.client_id)}  # tdMode: ccxt sends "cross"
        if req.reduce_only:
            params["reduceOnly"] = True
        return params

    async def lookup_order(
        self, x: Calls, req: OrderRequest, contract_size: float, now: float
    ) -> OrderReceipt | None:
        cid = self.client_id(req.client_id)
        try:
            order: dict[str, Any] = await x.read("lookup", "fetch_order", None, req.symbol, {"clOrdId": cid})
        except VenueError as e:
            if _says(e, "OrderNotFound"):  # 51603 "Order does not exist" (ccxt okx exceptions: OrderNotFound)
                return None
            raise
        if not order or not order.get("id"):
            return None
        return order_receipt(order, req, contract_size, now)
