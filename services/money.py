"""Integer minor units with an ISO currency; parsed and formatted in one place."""

from __future__ import annotations

import re
from decimal import Decimal

from services.errors import InvalidInput

# Minor-unit exponent per currency; anything not listed has two decimals.
_EXPONENTS = {"jpy": 0, "krw": 0, "vnd": 0, "clp": 0, "isk": 0, "bhd": 3, "kwd": 3, "jod": 3}
# ISO 4217 codes Stripe charges in, less those whose minor unit Tally does not know yet
# (zero-decimal bif, djf, gnf, kmf, mga, pyg, rwf, ugx, vuv, xaf, xof, xpf; three-decimal
# omr, tnd): amounts in them would be formatted and charged with the wrong exponent.
_SUPPORTED = """
    usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bmd bnd bob brl bsd bwp
    byn bzd cad cdf chf clp cny cop crc cve czk dkk dop dzd egp etb eur fjd fkp gbp gel gip
    gmd gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr krw kwd kyd kzt lak
    lbp lkr lrd lsl mad mdl mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd
    pab pen pgk php pkr pln qar ron rsd rub sar sbd scr sek sgd shp sle sos srd std szl thb
    tjs top try ttd twd tzs uah uyu uzs vnd wst xcd yer zar zmw
"""
SUPPORTED_CURRENCIES = frozenset(_SUPPORTED.split())
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


def check_currency(currency: str, param: str = "currency") -> str:
    """A supported ISO 4217 code, lower case (`USD` is read as `usd`)."""
    code = currency.strip().lower()
    if code not in SUPPORTED_CURRENCIES:
        raise InvalidInput("currency must be an ISO 4217 code Tally can charge in, such as "
                           "usd, eur or gbp.", param=param)
    return code


def exponent(currency: str) -> int:
    """How many decimals the currency's minor unit has (2 for usd, 0 for jpy)."""
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


def parse_signed_major(text: str, currency: str, *, param: str = "amount") -> int:
    """One optional sign (`-5.00` takes away, `5.00` or `+5.00` adds), then an amount as
    `parse_major` reads it. Any other sign (`+-5`, `--5`, `$-5`, `5-`) is refused, never
    read as one of the two."""
    cleaned = (text or "").strip()
    signs = cleaned.count("+") + cleaned.count("-")
    if signs > 1 or (signs == 1 and cleaned[0] not in "+-"):
        raise InvalidInput("Use one sign at most, before the amount: -5.00 takes credit away, "
                           "5.00 adds it.", param=param)
    amount = parse_major(cleaned.lstrip("+-"), currency, param=param)
    return -amount if cleaned.startswith("-") else amount
