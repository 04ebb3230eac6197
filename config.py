"""Configuration from the environment (a `.env` file works too).

Every setting has one name, read in one place. `create_app(test_config)` applies
test overrides on top of what this module returns.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

# Top-up bounds in minor units of the account currency: 5.00 to 1,000.00.
DEFAULT_TOPUP_MIN = 500
DEFAULT_TOPUP_MAX = 100_000
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_EVENT_PROPERTIES_BYTES = 4096
DEFAULT_EVENT_RETENTION_DAYS = 400
# Events up to 35 days old are accepted (services/usage/events.MAX_AGE): raw events, and
# the ids that deduplicate them, must be kept longer, or a late retry could count twice.
EVENTS_MAX_AGE_DAYS = 35


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for PostgreSQL URLs however they are spelled."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be a whole number, got {raw!r}") from exc


def _retention_days(env: dict[str, str]) -> int:
    days = _int(env, "TALLY_EVENT_RETENTION_DAYS", DEFAULT_EVENT_RETENTION_DAYS)
    if days <= EVENTS_MAX_AGE_DAYS:
        raise RuntimeError(f"TALLY_EVENT_RETENTION_DAYS must be more than {EVENTS_MAX_AGE_DAYS} "
                           f"(events up to {EVENTS_MAX_AGE_DAYS} days old are accepted, and an "
                           f"event id is deduplicated only while it is kept), got {days}")
    return days


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = (env.get(name) or default).strip().lower()
    if raw not in choices:
        raise RuntimeError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _secret_key(env: dict[str, str], instance_path: Path) -> str:
    """SECRET_KEY from the environment; in development, one kept under instance/."""
    if env.get("SECRET_KEY"):
        return env["SECRET_KEY"]
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def from_environment(instance_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ if env is None else env)
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance_path / 'tally.db'}"
    redis_url = env.get("REDIS_URL", "")
    return {
        "SECRET_KEY": _secret_key(env, instance_path),
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url),
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_PUBLISHABLE_KEY": env.get("STRIPE_PUBLISHABLE_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET", ""),
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE", ""),
        "STRIPE_JS_URL": env.get("STRIPE_JS_URL") or "https://js.stripe.com/v3/",
        "REDIS_URL": redis_url,
        # extensions.OneTripRedisStorage: limits' Redis storage, one round trip per request.
        "RATELIMIT_STORAGE_URI": f"tally+{redis_url}" if redis_url else "memory://",
        "TALLY_CONFIG_FILE": env.get("TALLY_CONFIG_FILE", ""),
        "TOPUP_MIN_AMOUNT": _int(env, "TALLY_TOPUP_MIN_AMOUNT", DEFAULT_TOPUP_MIN),
        "TOPUP_MAX_AMOUNT": _int(env, "TALLY_TOPUP_MAX_AMOUNT", DEFAULT_TOPUP_MAX),
        "DEFAULT_CURRENCY": env.get("TALLY_DEFAULT_CURRENCY", "usd").lower(),
        # Days a past_due subscription keeps its plan before the account drops to Free.
        "GRACE_PERIOD_DAYS": _int(env, "TALLY_GRACE_PERIOD_DAYS", 7),
        # How long a staff member's "view as customer" lasts before it ends by itself.
        "IMPERSONATION_MINUTES": _int(env, "TALLY_IMPERSONATION_MINUTES", 30),
        # Flask-Limiter: a moving window per account, shared through Redis when configured.
        "RATELIMIT_STRATEGY": "moving-window",
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_KEY_PREFIX": env.get("TALLY_RATELIMIT_PREFIX", "tally"),
        # Email (invoices): smtp://user:pass@host:port, smtps://..., file:///outbox, or unset.
        "SMTP_URL": env.get("SMTP_URL", ""),
        "MAIL_FROM": env.get("MAIL_FROM", "Tally <billing@localhost>"),
        # Where emails link back to (notifications sent after the request, or by a job).
        "PUBLIC_URL": (env.get("TALLY_PUBLIC_URL") or "").rstrip("/"),
        # After-commit work (emails...): "thread" (a background thread per process), "inline"
        # (at once, in the request's thread), or "off" (only `flask --app app deliver-outbox`).
        "OUTBOX_DELIVERY": _choice(env, "TALLY_OUTBOX_DELIVERY", ("thread", "inline", "off"), "thread"),
        # Failed logins allowed per client IP and, separately, per email address.
        "LOGIN_RATE_LIMIT": env.get("TALLY_LOGIN_LIMIT") or "10/minute",
        # Sign-up attempts allowed per client IP.
        "SIGNUP_RATE_LIMIT": env.get("TALLY_SIGNUP_LIMIT") or "10/hour",
        "RESET_RATE_LIMIT": env.get("TALLY_RESET_LIMIT") or "5/hour",
        "STAFF_REQUIRE_TWO_FACTOR": env.get("TALLY_STAFF_REQUIRE_2FA", "").lower() in ("1", "true", "yes"),
        # A usage event whose properties (as compact JSON) are larger is rejected.
        "MAX_EVENT_PROPERTIES_BYTES": _int(env, "TALLY_MAX_EVENT_PROPERTIES_BYTES",
                                           DEFAULT_MAX_EVENT_PROPERTIES_BYTES),
        # Raw usage events (and their ids, which deduplicate) are kept this many days, then
        # removed a month at a time by `flask --app app purge-usage-events`; rollups stay.
        "EVENT_RETENTION_DAYS": _retention_days(env),
        # Bodies over this size are refused with 413 before anything reads them.
        "MAX_CONTENT_LENGTH": _int(env, "TALLY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        # Trust X-Forwarded-* from this many proxies (0 = served directly).
        "PROXY_COUNT": _int(env, "TALLY_PROXY_COUNT", 0),
        # ChainSecured wallet auth: the EIP-712 domain name a BillingAuth signature must carry.
        "WALLET_AUTH_DOMAIN": env.get("TALLY_WALLET_AUTH_DOMAIN") or "Tally",
        # The API key the MCP server's tools act with (`flask --app app mcp`).
        "MCP_API_KEY": env.get("TALLY_API_KEY", "").strip(),
        # Or a file holding it, which the server rewrites when it rotates its own key.
        "MCP_API_KEY_FILE": env.get("TALLY_API_KEY_FILE", "").strip(),
    }
