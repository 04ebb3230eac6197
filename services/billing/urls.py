"""Addresses callers give Tally to send people back to (after Checkout, from the portal)."""

from __future__ import annotations

from urllib.parse import urlsplit

from services.errors import InvalidInput


def check_url(url: object, param: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise InvalidInput(f"{param} must be an absolute http(s) URL.", param=param)
