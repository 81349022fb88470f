"""Money amounts: strict parsing and rounding to a step.

Amounts that move money are `Decimal`. NaN, infinities, negatives, zero, thousands separators and
more decimals than the step allows are rejected before any limit check or venue call.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

MAX_AMOUNT = Decimal("1e15")  # no treasury moves a quadrillion units of anything in one go


class AmountError(ValueError):
    """An amount that must never reach a venue."""


def parse_amount(value: object, *, step: Decimal | None = None, allow_zero: bool = False) -> Decimal:
    """Parse a user- or config-supplied amount into a finite, positive Decimal.

    Floats are taken through `repr` so that 0.1 stays 0.1. Strings must be plain decimals:
    "1,000", "1e308", "NaN" and "inf" are refused.
    """
    value = _as_text(value)
    d = value if isinstance(value, Decimal) else _plain(value)
    if not d.is_finite():
        raise AmountError(f"not a finite amount: {value!r}")
    if d < 0 or (d == 0 and not allow_zero):
        raise AmountError(f"amount must be positive: {value!r}")
    if d > MAX_AMOUNT:
        raise AmountError(f"amount {value!r} exceeds the sanity ceiling {MAX_AMOUNT}")
    if step is not None and d % step != 0:
        raise AmountError(f"amount {value!r} has more decimals than the step {step} allows")
    return d


def _as_text(value: object) -> Decimal | str:
    """A Decimal as is; an int, or a finite float through `repr`, as text; a string as is; else refused."""
    if isinstance(value, bool):
        raise AmountError(f"not an amount: {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AmountError(f"not a finite amount: {value!r}")
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal | str):
        return value
    raise AmountError(f"not an amount: {value!r}")


def _plain(value: str) -> Decimal:
    """A plain decimal string (digits, point, sign, exponent) as a Decimal."""
    text = value.strip()
    if not text or any(c not in "0123456789.-+eE" for c in text):
        raise AmountError(f"not a plain decimal amount: {value!r}")
    try:
        return Decimal(text)
    except InvalidOperation as e:
        raise AmountError(f"not a decimal amount: {value!r}") from e


def to_decimal(x: float) -> Decimal:
    """Convert a finite float from the hot numeric path into a Decimal, once, at the boundary."""
    if not math.isfinite(x):
        raise AmountError(f"not a finite amount: {x!r}")
    return Decimal(repr(x))


def round_up(amount: Decimal, step: Decimal) -> Decimal:
    """Round up to a multiple of step (a top-up must not fall short by rounding)."""
    return (amount / step).to_integral_value(rounding=ROUND_CEILING) * step


def round_down(amount: Decimal, step: Decimal) -> Decimal:
    """Round down to a multiple of step (a sweep or a capped leg must not exceed its bound)."""
    return (amount / step).to_integral_value(rounding=ROUND_FLOOR) * step
