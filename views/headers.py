"""The headers every answer carries: Content-Security-Policy, no caching, no sniffing,
no framing (app.py adds them after every request; the gate's WSGI path,
views/api/gate_path.py, to its own answers)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, current_app


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def add(response: Response, *, https: bool, cacheable: bool = False) -> Response:
    """Add the headers every answer carries. `https`: the request came over HTTPS;
    `cacheable`: a static file, which keeps its own caching."""
    stripe_js = _origin(current_app.config["STRIPE_JS_URL"])
    stripe_api = _origin(current_app.config["STRIPE_API_BASE"]) or "https://api.stripe.com"
    csp = (
        "default-src 'self'; "
        f"script-src 'self' {stripe_js}; "
        f"connect-src 'self' {stripe_js} {stripe_api}; "
        f"frame-src {stripe_js} https://hooks.stripe.com; "
        "img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; base-uri 'self'; "
        # The Checkout and Customer Portal buttons post to Tally, which redirects to
        # Stripe's hosted page; browsers hold that redirect to form-action too.
        f"form-action 'self' https://checkout.stripe.com https://billing.stripe.com {stripe_api}"
    )
    response.headers.setdefault("Content-Security-Policy", csp)
    if not cacheable:
        # Pages and API answers hold balances, keys and CSRF tokens: no shared cache, and no
        # back button, may keep one. Static files keep their own caching.
        response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if https:
        response.headers.setdefault("Strict-Transport-Security", "max-age=63072000")
    return response
