"""Template filters: money, usage quantities, meter names and moments, formatted for
people in one place."""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from flask import Flask

from models.billing import INVOICE_KIND_LABELS
from models.ledger import KIND_LABELS
from services.money import format_major, format_money
from services.usage.meters import default_unit, display_label

# Binary multiples, named as such: 1 KiB = 1,024 bytes (limits are set in powers of two).
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

# What a meter's figure is, by aggregation, in words (instead of "sum of tokens").
_MEASURES = {
    "count": "this period",
    "sum": "this period",
    "max": "highest this period",
    "unique_count": "distinct this period",
    "latest": "latest reading",
}

# The limits the Plans and Upgrade pages list: (plan limit name, label, unit).
_PLAN_LIMITS = (
    ("apiCalls", "a month"),
    ("llmTokens", "a month"),
    ("storage", ""),
)


def format_bytes(value: int) -> str:
    """`104857600` → `100 MiB`, `5000000` → `4.8 MiB`, `1023` → `1023 B`: one decimal
    under 100 (a trailing ".0" dropped), whole numbers from 100 up."""
    size, i = float(value), 0
    while abs(size) >= 1024 and i < len(_BYTE_UNITS) - 1:
        size, i = size / 1024, i + 1
    if i == 0:
        return f"{value} B"
    text = f"{size:,.0f}" if abs(size) >= 100 else f"{size:,.1f}".removesuffix(".0")
    if text == "1,024" and i < len(_BYTE_UNITS) - 1:  # 1,048,575 bytes rounds to 1 MiB
        return f"1 {_BYTE_UNITS[i + 1]}"
    return f"{text} {_BYTE_UNITS[i]}"


def format_quantity(value: int | None, unit: str = "") -> str:
    """`1536, "bytes"` → `1.5 KiB`; `12345, "calls"` → `12,345 calls`."""
    if value is None:
        return "—"
    if unit == "bytes":
        return format_bytes(value)
    return f"{value:,} {unit}".rstrip()


def format_usage_of(value: int, limit: int, unit: str = "") -> str:
    """A figure against its limit: `850 of 1,000 calls`, `4.8 MiB of 100 MiB`."""
    if unit == "bytes":
        return f"{format_bytes(value)} of {format_bytes(limit)}"
    return f"{value:,} of {format_quantity(limit, unit)}"


def _local(at: datetime, zone: str | tzinfo) -> tuple[datetime, str]:
    """`at` in `zone`, and the zone's abbreviation there (`JST`), or its offset (`UTC-03`)
    for a zone without one."""
    local = at.astimezone(ZoneInfo(zone) if isinstance(zone, str) else zone)
    abbreviation = local.strftime("%Z")
    if not abbreviation or abbreviation[0] in "+-":
        offset = local.strftime("%z")  # "-0300", "+0545"
        abbreviation = f"UTC{offset[:3]}" + (f":{offset[3:5]}" if offset[3:5] != "00" else "")
    return local, abbreviation


def format_moment(at: datetime, zone: str | tzinfo = "UTC") -> str:
    """An instant in the account's time zone, with the zone: `Nov 23 at 19:57 UTC`,
    `Nov 24 at 04:57 JST`."""
    local, abbreviation = _local(at, zone)
    return f"{local:%b} {local.day} at {local:%H:%M} {abbreviation}"


def format_month(at: datetime, zone: str | tzinfo = "UTC") -> str:
    """The local month an instant falls in: `November 2026`."""
    return f"{_local(at, zone)[0]:%B %Y}"


def format_when(at: datetime, zone: str | tzinfo = "UTC") -> str:
    """A table's instant, with the year, in the account's zone: `Nov 23, 2026 14:57 EST`."""
    local, abbreviation = _local(at, zone)
    return f"{local:%b} {local.day}, {local.year} {local:%H:%M} {abbreviation}"


def meter_measure(aggregation: str) -> str:
    """What a meter's figure is, in words: `this period`, `latest reading`."""
    return _MEASURES.get(aggregation, "this period")


def plan_limits() -> list[tuple[str, str, str]]:
    """(limit name, label, unit) of each limit a plan lists, labels from the meters'."""
    rows = [(name, f"{display_label(name)} {suffix}".rstrip(), default_unit(name))
            for name, suffix in _PLAN_LIMITS]
    return [*rows, ("requestsPerMinute", "Requests a minute", "")]


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Chromium/", "Chromium"), ("Safari/", "Safari"), ("curl/", "curl"))
_SYSTEMS = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def describe_device(user_agent: str | None) -> str:
    """A browser's User-Agent in words: "Chrome on macOS" (or "Unknown device")."""
    ua = user_agent or ""
    browser = next((name for mark, name in _BROWSERS if mark in ua), None)
    system = next((name for mark, name in _SYSTEMS if mark in ua), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (ua[:60] if ua else "Unknown device")


def init_app(app: Flask) -> None:
    app.jinja_env.filters["device"] = describe_device
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["major"] = format_major
    app.jinja_env.filters["quantity"] = format_quantity
    app.jinja_env.filters["usage_of"] = format_usage_of
    app.jinja_env.filters["moment"] = format_moment
    app.jinja_env.filters["when"] = format_when
    app.jinja_env.filters["month"] = format_month
    app.jinja_env.filters["meter_label"] = display_label
    app.jinja_env.filters["meter_measure"] = meter_measure
    app.jinja_env.filters["ledger_kind"] = lambda kind: KIND_LABELS.get(kind, kind.capitalize())
    app.jinja_env.filters["invoice_kind"] = lambda kind: INVOICE_KIND_LABELS.get(kind, kind)
    app.jinja_env.globals["plan_limits"] = plan_limits
