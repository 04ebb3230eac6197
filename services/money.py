"""Integer minor units with an ISO currency; parsed and formatted in one place."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

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


def parse_major(text: str, currency: str, *, param: str = "amount") -> int:
    """Parse what a person types (`25`, `25.5`, `1,000.00`, `$10`) into minor units."""
    cleaned = (text or "").strip().replace(",", "").replace(" ", "")
    cleaned = cleaned.lstrip(_SYMBOLS.get(currency.lower(), "$"))
    exp = exponent(currency)
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidInput("Enter an amount such as 25.00.", param=param) from None
    if not value.is_finite():
        raise InvalidInput("Enter an amount such as 25.00.", param=param)
    minor = value.scaleb(exp)
    if minor != minor.to_integral_value():
        raise InvalidInput(
            f"Use at most {exp} decimal places for {currency.upper()}.", param=param
        )
    return int(minor)
