"""Bybit (unified trading account, v5): account figures from raw fields, client ids on transfers, withdrawals
and orders, and how each is looked up again.

- Figures: `fetch_balance()['info']['result']['list'][0]` of the UNIFIED wallet. Bybit's accountIMRate is
  totalInitialMargin / totalMarginBalance and accountMMRate totalMaintenanceMargin / totalMarginBalance, our u
  and m; the rates come rounded to 4 decimals, so they are recomputed from the totals (the rates are the
  fallback). totalMarginBalance (collateral after Bybit's collateral ratios, plus unrealized PnL) is the
  equity they are taken over; totalEquity, which ignores the collateral ratios, only where it is missing.
- Collateral: each coin's walletBalance (unrealized PnL excluded).
- Positions: `fetch_positions()` without a symbol returns USDT-settled ones only (ccxt #24159): asked per
  settle coin and merged.
- Transfers carry our id as `transferId` (a UUID: ccxt invents a fresh one when none is sent, so a repeat
  would be a new transfer) and are looked up by it. Withdrawals carry it as `requestId`, but the history has
  no such field: they are found by address, amount and time. Orders carry it as `orderLinkId`.

"Not found" is an empty list on every lookup here, never an error code: GET
/v5/asset/transfer/query-inter-transfer-list?transferId= (retCode 0, result.list []; thrasher-corp/
gocryptotrader's TestGetInternalTransferRecords queries a fresh UUID with live keys and expects no error),
/v5/asset/withdraw/query-record, and /v5/order/history and /v5/order/realtime filtered by orderLinkId
(bybit-exchange.github.io/docs/v5/order/order-list). Bybit's "order not exists" codes (110001; 170213 spot;
ccxt 4.5.90 maps both to OrderNotFound) answer cancel / amend, which this profile does not send, and the ccxt
list methods used here raise nothing for an empty list.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.core.margin import Figures
from bot.errors import TransferRefused
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

SETTLE_COINS = ("USDT", "USDC")  # linear positions are listed per settle coin
# ccxt wallet -> the accountType a withdrawal leaves from (SPOT: classic accounts only)
WITHDRAW_FROM = {"funding": "FUND", "fund": "FUND", "unified": "UTA", "spot": "SPOT"}
CLOCK_SKEW = 5.0  # seconds a venue's history time may run behind ours when searching by time
FINAL_WITHDRAWAL = {"rejected": TransferState.FAILED}  # ccxt statuses transfer_state does not know


# --- pure parsing -----------------------------------------------------------------------------------------
def wallet_row(info: Any) -> dict[str, Any] | None:
    """The UNIFIED wallet's row of a raw wallet-balance answer, or None for another shape (FUND, classic)."""
    if not isinstance(info, dict):
        return None
    result = info.get("result")
    rows = result.get("list") if isinstance(result, dict) else None
    if not rows or not isinstance(rows[0], dict):
        return None
    row: dict[str, Any] = rows[0]
    return row


def figures_from_wallet(row: dict[str, Any]) -> Figures | None:
    """u = IM / margin balance (accountIMRate), m = MM / margin balance (accountMMRate); None when the
    account-level fields are empty (isolated margin, classic accounts)."""
    equity = num(row.get("totalMarginBalance"))
    if equity is None:
        equity = num(row.get("totalEquity"))
    if equity is None:
        return None
    im, mm = num(row.get("totalInitialMargin")), num(row.get("totalMaintenanceMargin"))
    if im is None:
        rate = num(row.get("accountIMRate"))
        im = None if rate is None else rate * equity
    if mm is None:
        rate = num(row.get("accountMMRate"))
        mm = None if rate is None else rate * equity
    if im is None or mm is None:
        return None
    return ratio_figures(equity, im, mm)


def collateral_from_wallet(row: dict[str, Any]) -> dict[str, float]:
    """walletBalance per coin (cash, unrealized PnL excluded); coins at zero left out."""
    out: dict[str, float] = {}
    for c in row.get("coin") or ():
        if not isinstance(c, dict):
            continue
        qty = num(c.get("walletBalance"))
        if qty and c.get("coin"):
            out[str(c["coin"])] = qty
    return out


def transfer_uuid(intent_id: str) -> str:
    """Our 32-hex intent id as the UUID Bybit requires; any other id as a UUID derived from it."""
    try:
        return str(uuid.UUID(hex=intent_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, intent_id))


def bybit_transfer_state(status: Any) -> TransferState | None:
    """An inter-transfer status (SUCCESS, PENDING, FAILED); None for STATUS_UNKNOWN or none."""
    if status is None:
        return None
    return {
        "SUCCESS": TransferState.SETTLED,
        "PENDING": TransferState.PENDING,
        "FAILED": TransferState.FAILED,
    }.get(str(status).upper())


def decimal_of(value: Any) -> Decimal | None:
    try:
        return None if value is None or value == "" else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def withdrawal_matches(tx: dict[str, Any], req: TransferRequest, since: float | None) -> bool:
    """A parsed ccxt withdrawal is ours when address, asset and amount agree and it is not older than the
    intent. Bybit writes the amount received: gross = amount + withdrawFee (also accepted as the gross)."""
    info = tx.get("info")
    info = info if isinstance(info, dict) else {}
    if tx.get("addressTo") != req.address or (tx.get("currency") not in (None, req.asset)):
        return False
    if req.tag and (tx.get("tag") or "") != req.tag:
        return False
    amount = decimal_of(info.get("amount", tx.get("amount")))
    fee = decimal_of(info.get("withdrawFee")) or Decimal(0)
    if amount is None or req.amount not in (amount, amount + fee):
        return False
    at = seconds(tx.get("timestamp"))
    return since is None or at is None or at >= since - CLOCK_SKEW


def key_info_from(result: dict[str, Any]) -> KeyInfo:
    """GET /v5/user/query-api's result: readOnly 0/1, ips (["*"] = no whitelist), permissions by group."""
    perms = result.get("permissions")
    perms = perms if isinstance(perms, dict) else {}

    def has(group: str, name: str) -> bool:
        return name in (perms.get(group) or ())

    ips = [str(ip) for ip in result.get("ips") or () if str(ip).strip()]
    read_only = num(result.get("readOnly"))
    return KeyInfo(
        can_trade=has("ContractTrade", "Order") or has("Derivatives", "DerivativesTrade"),
        can_withdraw=has("Wallet", "Withdraw"),
        can_transfer=has("Wallet", "AccountTransfer"),
        ip_restricted=bool(ips) and "*" not in ips,
        read_only=None if read_only is None else read_only == 1,
    )


class BybitProfile(Profile):
    exchange_id = "bybit"
    budget = BUDGETS["bybit"]
    margin_wallet = "unified"
    funding_wallet = "funding"
    takes_withdrawal_client_id = False  # requestId is sent, but the history does not show it

    def options(self) -> dict[str, Any]:
        # no unified-account probe (query-api + account/info) before the first private call, and linear
        # markets only (ccxt still asks for the PreLaunch list of that category alongside)
        return {
            "enableUnifiedAccount": True,
            "enableUnifiedMargin": False,
            "unifiedMarginStatus": 6,  # UTA 2.0
            "fetchMarkets": {"types": ["linear"]},
            "defaultType": "swap",
            "defaultSubType": "linear",
        }

    def client_id(self, intent_id: str) -> str:
        return transfer_uuid(intent_id)

    # --- reads ----------------------------------------------------------------------------------------------
    def collateral(self, balance: dict[str, Any]) -> dict[str, float]:
        row = wallet_row(balance.get("info"))
        return super().collateral(balance) if row is None else collateral_from_wallet(row)

    async def reported(self, x: Calls, balance: dict[str, Any]) -> Figures | None:
        row = wallet_row(balance.get("info"))
        return None if row is None else figures_from_wallet(row)

    async def positions(self, x: Calls) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for coin in SETTLE_COINS:
            got: list[dict[str, Any]] = await x.read(
                "positions", "fetch_positions", None, {"settleCoin": coin}
            )
            out.extend(got)
        return out

    async def key_info(self, x: Calls) -> KeyInfo | None:
        raw: dict[str, Any] = await x.read("permissions", "private_get_v5_user_query_api")
        result = raw.get("result")
        return key_info_from(result) if isinstance(result, dict) else None

    # --- internal transfers ---------------------------------------------------------------------------------
    def _amount(self, x: Calls, asset: str, amount: Decimal) -> float:
        """The amount as ccxt will send it; refused (nothing sent) when the coin's precision would change it."""
        try:
            sent = decimal_of(x.ex.currency_to_precision(asset, float(amount)))
        except Exception as e:  # ccxt: unknown currency
            raise TransferRefused(
                f"bybit: {asset}: {type(e).__name__}: not a currency this venue lists"
            ) from None
        if sent != amount:
            raise TransferRefused(f"bybit: {amount} {asset} would be sent as {sent} (the coin's precision)")
        return float(amount)

    async def transfer(
        self, x: Calls, req: TransferRequest, from_wallet: str, to_wallet: str
    ) -> TransferReceipt:
        tid = self.client_id(req.client_id)
        amount = self._amount(x, req.asset, req.amount)
        res: dict[str, Any] = await x.move(
            "transfer",
            "transfer",
            req.asset,
            amount,
            from_wallet,
            to_wallet,
            {"transferId": tid},
            refused=TransferRefused,
        )
        info = res.get("info")
        info = info if isinstance(info, dict) else {}
        # ccxt sets `status` from retCode ("ok" on any accepted request): the transfer's own is in info
        state = bybit_transfer_state(info.get("status"))
        ts = seconds(res.get("timestamp")) or time.time()
        return TransferReceipt(req.client_id, str(info.get("transferId") or tid), state, req.amount, ts)

    async def lookup_transfer(
        self, x: Calls, req: TransferRequest, from_wallet: str, to_wallet: str
    ) -> TransferReceipt | None:
        tid = self.client_id(req.client_id)
        rows: list[dict[str, Any]] = await x.read(
            "lookup", "fetch_transfers", req.asset, None, None, {"transferId": tid}
        )
        for t in rows:
            if t.get("id") != tid:
                continue
            state = transfer_state(t.get("status"))
            ts = seconds(t.get("timestamp")) or 0.0
            return TransferReceipt(req.client_id, tid, state, req.amount, ts)
        return None

    # --- withdrawals -----------------------------------------------------------------------------------
    async def withdraw(
        self, x: Calls, req: TransferRequest, from_wallet: str | None = None
    ) -> TransferReceipt:
        """Sent from the funding wallet unless `from_wallet` says otherwise (ccxt would pick UTA itself,
        ccxt #26906); feeType 1: the fee comes out of the amount, as our routes count it."""
        if not req.address:
            raise TransferRefused(f"bybit: route {req.route} has no address")
        wallet = from_wallet or self.funding_wallet
        if wallet not in WITHDRAW_FROM:
            raise TransferRefused(f"bybit: no withdrawal leaves from the {wallet!r} wallet")
        params: dict[str, Any] = {
            "accountType": WITHDRAW_FROM[wallet],
            "feeType": 1,
            "requestId": req.client_id,  # idempotency key: 32 letters and digits
        }
        if req.network:
            params["network"] = req.network
        if req.tag:
            params["tag"] = req.tag
        res: dict[str, Any] = await x.move(
            "withdraw",
            "withdraw",
            req.asset,
            float(req.amount),
            req.address,
            params,
            refused=TransferRefused,
        )
        ref = res.get("id")
        # the answer is only the withdrawal's id: accepted, so pending until the history says more
        state = TransferState.PENDING if ref else None
        return TransferReceipt(req.client_id, str(ref or ""), state, req.amount, time.time())

    async def lookup_withdrawal(self, x: Calls, req: TransferRequest) -> Withdrawal | None:
        since = req.created_at
        start = int((since - CLOCK_SKEW) * 1000) if since is not None else None
        rows: list[dict[str, Any]] = await x.read(
            "history", "fetch_withdrawals", req.asset, start, None, {"withdrawType": 2}
        )
        mine = [tx for tx in rows if withdrawal_matches(tx, req, since)]
        if not mine:
            return None
        tx = min(mine, key=lambda t: num(t.get("timestamp")) or 0.0)
        status = str(tx.get("status") or "").lower()
        state = FINAL_WITHDRAWAL.get(status) or transfer_state(tx.get("status"))
        settled_at = seconds(tx.get("updated")) if state is TransferState.SETTLED else None
        receipt = TransferReceipt(
            req.client_id,
            str(tx.get("id") or ""),
            state,
            req.amount,
            seconds(tx.get("timestamp")) or 0.0,
            settled_at,
        )
        return Withdrawal(receipt, tx.get("txid") or None)

    # --- orders -------------------------------------------------------------------------------------------
    async def lookup_order(
        self, x: Calls, req: OrderRequest, contract_size: float, now: float
    ) -> OrderReceipt | None:
        """By orderLinkId: the order history (final orders), then the open orders."""
        link = self.client_id(req.client_id)
        for method in ("fetch_canceled_and_closed_orders", "fetch_open_orders"):
            rows: list[dict[str, Any]] = await x.read(
                "lookup", method, req.symbol, None, None, {"orderLinkId": link}
            )
            for o in rows:
                if o.get("clientOrderId") == link:
                    return order_receipt(o, req, contract_size, now)
        return None
