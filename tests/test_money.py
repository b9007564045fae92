"""The one money formatter: integers and Decimals of minor units, never a float."""

from __future__ import annotations

from decimal import Context, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coalition.money import format_money


def test_money_is_formatted_from_integers() -> None:
    # (moved from tests/settlement/test_reports.py with the formatter)
    assert [format_money(m, 2) for m in (0, 5, -5, 123456, -100)] == ["0.00", "0.05", "-0.05", "1,234.56", "-1.00"]
    assert format_money(-1500, 0) == "-1,500" and format_money(1, 3) == "0.001"


@pytest.mark.parametrize(("exponent", "expected"), [(0, "0"), (2, "0.00"), (3, "0.000")])
def test_zero_has_the_currencys_decimals(exponent: int, expected: str) -> None:
    assert format_money(0, exponent) == expected
    assert format_money(Decimal(0), exponent) == expected
    assert format_money(Decimal("-0"), exponent) == expected  # no "-0.00"


@pytest.mark.parametrize(("minor", "exponent", "expected"), [
    (-1, 2, "-0.01"), (-99, 2, "-0.99"), (-123456789, 2, "-1,234,567.89"),
    (-5, 0, "-5"), (-1234567, 0, "-1,234,567"),  # JPY
    (-1, 3, "-0.001"), (-1234567, 3, "-1,234.567"),  # KWD
])
def test_a_negative_amount_has_a_minus_before_the_whole_units(minor: int, exponent: int, expected: str) -> None:
    assert format_money(minor, exponent) == expected


def test_an_amount_past_a_floats_precision_keeps_every_digit() -> None:
    # 2**53 + 1 minor units: a float would print ...740,992.00
    assert format_money(2**53 + 1, 2) == "90,071,992,547,409.93"
    assert format_money(10**30 + 1, 2) == "10,000,000,000,000,000,000,000,000,000.01"
    assert format_money(-(10**30) - 1, 3) == "-1,000,000,000,000,000,000,000,000,000.001"
    assert format_money(Decimal(10**30 + 1), 2) == "10,000,000,000,000,000,000,000,000,000.01"


@pytest.mark.parametrize(("amount", "exponent", "expected"), [
    (Decimal("123456"), 2, "1,234.56"),
    (Decimal("-0.5"), 2, "-0.005"),  # a rounding residue: the sub-minor digit is kept
    (Decimal("2.5"), 0, "2.5"),
    (Decimal("1.5E+3"), 0, "1,500"),
    (Decimal("1234.50"), 3, "1.23450"),
    (Decimal("7"), 3, "0.007"),
])
def test_a_decimal_keeps_its_digits_and_at_least_the_currencys(amount: Decimal, exponent: int, expected: str) -> None:
    assert format_money(amount, exponent) == expected


@given(minor=st.integers(-10**40, 10**40), exponent=st.integers(0, 4))
def test_a_decimal_of_whole_minor_units_reads_like_the_integer(minor: int, exponent: int) -> None:
    assert format_money(Decimal(minor), exponent) == format_money(minor, exponent)
    # and it reads back as the amount
    wide = Context(prec=60)
    assert Decimal(format_money(minor, exponent).replace(",", "")).scaleb(exponent, context=wide) == minor


@pytest.mark.parametrize("amount", [12.34, 0.0, float("nan"), True])
def test_a_float_or_a_bool_is_refused(amount: object) -> None:
    with pytest.raises(TypeError, match="integer minor units or a Decimal"):
        format_money(amount, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", [Decimal("NaN"), Decimal("Infinity")])
def test_a_decimal_that_is_not_a_number_is_refused(amount: Decimal) -> None:
    with pytest.raises(ValueError, match="finite"):
        format_money(amount, 2)


@pytest.mark.parametrize("exponent", [-1, 19, True])
def test_an_exponent_outside_the_currencies_is_refused(exponent: int) -> None:
    with pytest.raises(ValueError, match="currency exponent"):
        format_money(100, exponent)
