"""The generic billing API's paths, without /v1 (shared/seeds/004_...).

That API publishes `GET /billing/subscription`, `/billing/usage`, `/billing/invoices` and
`POST /billing/checkout`, `/billing/portal`, `/billing/cancel`, `/billing/webhook`, called
with `Authorization: Bearer <token>`. The same URLs are the browser's pages. A request that
carries an API credential (`X-Api-Key`, `Authorization: Bearer`, or `X-Wallet-Auth`) is an
API call: before Flask routes it, its path becomes the `/v1/billing/...` one, so it gets
exactly what that endpoint answers (the same key check, scopes, rate limit,
Idempotency-Key, error shape, and no CSRF, since no cookie authorizes it). A request
without one keeps its page, so a session cookie never authorizes the JSON form.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask

PATHS = frozenset(f"/billing/{name}" for name in (
    "subscription", "usage", "invoices", "checkout", "portal", "cancel", "webhook"))
PREFIX = "/v1"


def carries_api_credential(environ: dict[str, Any]) -> bool:
    """An API key (`X-Api-Key`, `Authorization: Bearer`) or a wallet signature."""
    if environ.get("HTTP_X_API_KEY", "").strip() or environ.get("HTTP_X_WALLET_AUTH", "").strip():
        return True
    scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return scheme.lower() == "bearer" and bool(value.strip())


class GenericBillingPaths:
    """WSGI middleware: the generic paths, with an API credential, are served by /v1."""

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in PATHS and carries_api_credential(environ):
            environ["tally.published_path"] = path
            environ["PATH_INFO"] = PREFIX + path
        return self.wsgi_app(environ, start_response)


def init_app(app: Flask) -> None:
    app.wsgi_app = GenericBillingPaths(app.wsgi_app)  # type: ignore[method-assign]
