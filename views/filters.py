"""Template filters: money and usage quantities, formatted for people in one place."""

from __future__ import annotations

from flask import Flask

from models.ledger import KIND_LABELS
from services.money import format_major, format_money

_BYTE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def format_quantity(value: int | None, unit: str = "") -> str:
    """`1536, "bytes"` → `1.5 KB`; `12345, "calls"` → `12,345 calls`."""
    if value is None:
        return "—"
    if unit == "bytes":
        size, i = float(value), 0
        while size >= 1024 and i < len(_BYTE_UNITS) - 1:
            size, i = size / 1024, i + 1
        return f"{size:,.0f} {_BYTE_UNITS[i]}" if i == 0 or size >= 100 else f"{size:,.1f} {_BYTE_UNITS[i]}"
    return f"{value:,} {unit}".rstrip()


def init_app(app: Flask) -> None:
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["major"] = format_major
    app.jinja_env.filters["quantity"] = format_quantity
    app.jinja_env.filters["ledger_kind"] = lambda kind: KIND_LABELS.get(kind, kind.capitalize())
