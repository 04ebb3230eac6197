"""Integer minor units with an ISO currency; parsed and formatted in one place."""

from __future__ import annotations

import re
from decimal import Decimal

from services.errors import InvalidInput

# Minor-unit exponent per currency; anything not listed has two decimals.
_EXPONENTS = {"jpy": 0, "krw": 0, "vnd": 0, "clp": 0, "isk": 0, "bhd": 3, "kwd": 3, "jod": 3}
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.lower(), 2)


def format_money(amount: int, currency: str) -> str:
    """`1234, "usd"` → `$12.34`; `-500, "eur"` → `-€5.00`; unknown currencies get the code."""
    exp = exponent(currency)
    sign = "-" if amount < 0 else ""
    major = Decimal(abs(amount)).scaleb(-exp)
    number = f"{major:,.{exp}f}"
    symbol = _SYMBOLS.get(currency.lower())
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {currency.upper()}"


def format_major(amount: int, currency: str) -> str:
    """`1234, "usd"` → `12.34` (for form fields)."""
    exp = exponent(currency)
    return f"{Decimal(amount).scaleb(-exp):.{exp}f}"


# What a person may type: an optional minus and currency symbol, whole units in ASCII
# digits (thousands grouped by commas in threes, or not at all), an optional point and
# decimals. Nothing else: a comma elsewhere, a space, an exponent, an underscore or a
# non-ASCII digit could make the amount 100 times what was meant, so it is refused.
_AMOUNT = re.compile(r"-?(?:(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?|\.[0-9]+)")
_DECIMAL_COMMA = re.compile(r"-?[0-9]+,[0-9]{1,2}")


def parse_major(text: str, currency: str, *, param: str = "amount") -> int:
    """Parse what a person types (`25`, `25.5`, `1,000.00`, `$10`) into minor units.

    `5,50` is refused, not read as 550: a decimal comma must never multiply a charge."""
    cleaned = (text or "").strip()
    symbol = _SYMBOLS.get(currency.lower(), "$")
    negative = cleaned.startswith("-")
    cleaned = cleaned.removeprefix("-").strip()
    cleaned = ("-" if negative else "") + cleaned.removeprefix(symbol).strip()
    if _DECIMAL_COMMA.fullmatch(cleaned):
        whole, _, decimals = cleaned.partition(",")
        raise InvalidInput(f"Use a point for decimals: {whole}.{decimals}, not {cleaned}.",
                           param=param)
    if not _AMOUNT.fullmatch(cleaned):
        raise InvalidInput("Enter an amount such as 25.00.", param=param)
    value = Decimal(cleaned.replace(",", ""))
    exp = exponent(currency)
    minor = value.scaleb(exp)
    if minor != minor.to_integral_value():
        raise InvalidInput(
            f"Use at most {exp} decimal places for {currency.upper()}.", param=param
        )
    return int(minor)
