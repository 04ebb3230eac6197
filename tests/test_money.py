"""Money is integer minor units; parsed and formatted in one place."""

from __future__ import annotations

import pytest

from services.errors import InvalidInput
from services.money import format_major, format_money, parse_major


@pytest.mark.parametrize("amount, currency, text", [
    (0, "usd", "$0.00"), (1234, "usd", "$12.34"), (-500, "eur", "-€5.00"),
    (100_000_000, "usd", "$1,000,000.00"), (500, "jpy", "¥500"), (1234, "chf", "12.34 CHF"),
])
def test_format_money(amount, currency, text):
    assert format_money(amount, currency) == text


@pytest.mark.parametrize("text, minor", [
    ("25", 2500), ("25.5", 2550), ("1,000.00", 100_000), (" $10 ", 1000), ("0.01", 1),
    ("1,234,567", 123_456_700), ("$ 12.50", 1250), ("-5", -500), ("-$5.25", -525), ("007", 700),
    (".5", 50), ("5.", 500)])
def test_parse_major(text, minor):
    assert parse_major(text, "usd") == minor


@pytest.mark.parametrize("text", [
    "", "abc", "1.001", "NaN", "Infinity", "1e400x",
    # Each of these was once read as another amount (5,50 as 550.00, 1e3 as 1,000.00):
    "5,50", "10,5", "1e3", "1_000", "1 000", "\u0661\u0660", "1,00,000", "12,34.5",
    ".", "-", "$", "--5", "+5", "5.5.5"])
def test_parse_major_rejects_with_the_field_named(text):
    with pytest.raises(InvalidInput) as error:
        parse_major(text, "usd")
    assert error.value.param == "amount"


def test_a_decimal_comma_is_refused_saying_how_to_type_it():
    with pytest.raises(InvalidInput) as error:
        parse_major("5,50", "usd")
    assert error.value.message == "Use a point for decimals: 5.50, not 5,50."


def test_format_major_round_trips():
    assert parse_major(format_major(12345, "usd"), "usd") == 12345
    assert format_major(500, "jpy") == "500"
