"""SQLAlchemy Core tables. SQLite by default; the same schema runs on PostgreSQL."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.types import TypeEngine


class Money(TypeDecorator[Decimal]):
    """Exact decimal: NUMERIC(38, 18) on PostgreSQL, decimal text on SQLite (whose NUMERIC is a float)."""

    impl = String(64)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return value
        return format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return _plain(Decimal(str(value))) if dialect.name == "postgresql" else Decimal(value)


def _plain(d: Decimal) -> Decimal:
    """Drop NUMERIC's padding zeros (250000.000… -> 250000) exactly: no rounding, no exponent notation."""
    with localcontext() as ctx:
        ctx.prec = 80
        d = d.normalize()
        exponent = d.as_tuple().exponent
        return d.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else d


metadata = MetaData()

audit = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", String(40), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("venue", String(64)),
    Column("data", Text, nullable=False),
    Column("config_hash", String(64)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

intents = Table(
    "intents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("venue", String(64), nullable=False),
    Column("route", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("asset", String(16), nullable=False),
    Column("amount", Money, nullable=False),
    Column("fee", Money, nullable=False),
    Column("usd", Money, nullable=False),
    Column("address", String(256)),
    Column("params_hash", String(64), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("automatic", Boolean, nullable=False),
    # sent before approval because the venue was at its de-risk level (a flag, never parsed from the verdict);
    # added to the first schema later: `bot.store.db.upgrade` adds it to an older store
    Column("break_glass", Boolean, nullable=False, server_default=false()),
    Column("created_at", Float, nullable=False, index=True),
    Column("updated_at", Float, nullable=False),
    Column("sending_at", Float),  # a person-approved intent is marked here, committed, before its venue call
    Column("submitted_at", Float),
    Column("settled_at", Float),
    Column("venue_ref", String(128)),
    Column("reason", Text, nullable=False),
    Column("verdict", Text, nullable=False),
    Column("utilization_before", Float),
    Column("utilization_after", Float),
    Column("error", Text),
    Column("config_hash", String(64)),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("intent_id", String(32), ForeignKey("intents.id"), nullable=False, unique=True),
    Column("params_hash", String(64), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("quorum", Integer, nullable=False),
    Column("eligible", Text, nullable=False),
    Column("approvers", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("decided_at", Float),
)

venue_status = Table(
    "venue_status",
    metadata,
    Column("venue", String(64), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("since", Float, nullable=False),
    Column("observed_at", Float),
    Column("equity", Float),
    Column("im", Float),
    Column("mm", Float),
    Column("utilization", Float),
    Column("mm_ratio", Float),
    Column(
        "positions", Text
    ),  # last positions seen (canonical JSON), to notice changes while the bot was down
    Column("updated_at", Float, nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("severity", String(10), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("venue", String(64)),
    Column("asset", String(16)),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(10), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("delivered", Text, nullable=False, default="[]"),  # indexes of notify.urls that accepted it
    Column("last_error", Text),
)

flags = Table(
    "flags",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(32), primary_key=True),  # the intent id, sent as the client order id
    Column("program", String(64)),  # the hedge program; NULL for a de-risk order on the venue's own book
    Column("venue", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Money, nullable=False),
    Column("reduce_only", Boolean, nullable=False),
    Column("reason", String(16), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("filled", Money),
    Column("avg_price", Float),
    Column("fee", Float),
    Column("est_price", Float),
    Column("est_slippage_bps", Float),
    Column("params_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False, index=True),
    Column("updated_at", Float, nullable=False),
    Column("venue_ref", String(128)),
    Column("error", Text),
    Column("note", Text, nullable=False),
    Column("config_hash", String(64)),
)

hedges = Table(
    "hedges",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("state", Text, nullable=False),  # the program's ledger (JSON), changed with each fill
    Column("net_delta", Float),
    Column("target", Float),
    Column("band", Float),
    Column("loss", Float),  # running cost to date, USD
    Column("stopped", Boolean, nullable=False),
    Column("stop_reason", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)
