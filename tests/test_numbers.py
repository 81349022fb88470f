"""Money amounts: strict parsing and rounding at the boundaries."""

from decimal import Decimal

import pytest

from bot.core.numbers import AmountError, parse_amount, round_down, round_up, to_decimal


@pytest.mark.parametrize(
    "bad",
    [
        0,
        "0",
        -1,
        "-5",
        float("nan"),
        "NaN",
        float("inf"),
        "inf",
        "-inf",
        "1e308",
        1e308,
        "1,000",
        "",
        " ",
        "12abc",
        True,
        None,
        [1],
    ],
)
def test_bad_amounts_are_refused(bad: object) -> None:
    """Zero, negatives, NaN, infinities, absurd magnitudes, thousands separators and non-numbers never pass."""
    with pytest.raises(AmountError):
        parse_amount(bad)


@pytest.mark.parametrize(
    ("text", "value"), [("1000", Decimal(1000)), (0.1, Decimal("0.1")), ("250000.00", Decimal("250000.00"))]
)
def test_plain_amounts_parse_exactly(text: object, value: Decimal) -> None:
    """A plain decimal parses to exactly that Decimal (a float through its repr)."""
    assert parse_amount(text) == value


def test_more_decimals_than_the_step_allows_are_refused() -> None:
    """An amount that is not a multiple of the step is refused rather than rounded silently."""
    assert parse_amount("10.01", step=Decimal("0.01")) == Decimal("10.01")
    with pytest.raises(AmountError):
        parse_amount("10.001", step=Decimal("0.01"))


def test_zero_is_allowed_only_when_asked() -> None:
    """Zero is an amount only where the caller allows it (a balance, never a transfer)."""
    assert parse_amount("0", allow_zero=True) == 0


def test_rounding_goes_the_safe_way() -> None:
    """Top-ups round up (never short), sweeps and capped legs round down (never over a bound)."""
    assert round_up(Decimal("100.001"), Decimal("0.01")) == Decimal("100.01")
    assert round_down(Decimal("100.009"), Decimal("0.01")) == Decimal("100.00")
    assert round_up(Decimal("100"), Decimal("1000")) == Decimal("1000")


def test_floats_cross_into_decimal_once_and_finite() -> None:
    """The hot path's floats become Decimals through repr; non-finite floats are refused."""
    assert to_decimal(0.1) == Decimal("0.1")
    with pytest.raises(AmountError):
        to_decimal(float("nan"))
