"""The versioned JSON API under /v1, authenticated with API keys.

Same services as the pages. Each view is declared once (views/api/declare.py): the key
kinds it takes, its body and query (pydantic models in views/api/schemas/, checked into
typed values before the view runs) and its answers; the OpenAPI document is built from the
same declarations (views/api/openapi.py). Every error leaves as
`{"error", "code", "message", "param"?}` (views/errors.py). Every authenticated endpoint is
rate-limited per account by its plan's `requestsPerMinute`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, g, request

from extensions import KeyGeneration, OneTripRedisStorage, db, limiter
from models import Account, ApiKey, User
from models.audit import VIA_API
from models.keys import KIND_ACCOUNT, KIND_STAFF, KIND_USAGE
from services import uow
from services.billing import plans
from services.errors import Forbidden, InvalidInput, NotFound, TallyError
from services.identity import key_cache, keys, members
from services.identity import wallets as wallet_auth
from services.staff.audit import Actor
from views import request_guard

bp = Blueprint("api", __name__, url_prefix="/v1")

STAFF_REQUESTS_PER_MINUTE = 600
# Endpoints that need no key, so are not rate-limited per account.
PUBLIC_ENDPOINTS = {"api.billing_config", "api.stripe_config", "api.stripe_config_lit"}
_SCOPE_MESSAGES = {
    KIND_USAGE: "Usage keys may only call /v1/authorize, /v1/events and read balance and usage; "
                "use an account key.",
    KIND_STAFF: "Staff keys act on /v1/customers and /v1/accounts; use an account key here.",
    KIND_ACCOUNT: "This endpoint needs a staff API key.",
}


def presented_key(x_api_key: str, authorization: str) -> str | None:
    """The API key a request presents: its X-Api-Key header, else Authorization: Bearer."""
    key = x_api_key.strip()
    if not key:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            key = value.strip()
    return key or None


def _presented_key() -> str | None:
    return presented_key(request.headers.get("X-Api-Key", ""),
                         request.headers.get("Authorization", ""))


_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _wallet_key(header: str) -> ApiKey:
    """An X-Wallet-Auth signature acts as an account key of its wallet's account: a key that
    is never stored (no id), so nothing can rotate or revoke it."""
    account = wallet_auth.authenticate(header, domain_name=current_app.config["WALLET_AUTH_DOMAIN"],
                                   state_changing=request.method not in _SAFE_METHODS)
    key = ApiKey(kind=KIND_ACCOUNT, name="Wallet signature", account_id=account.id, prefix="",
                 key_hash="")
    key.account = account
    return key


# Endpoints that only read the key and its account: their key may come from the
# process's cache, confirmed by the rate limiter's Redis round trip (key_cache).
CACHED_KEY_ENDPOINTS = {"api.authorize", "api.events"}


def current_key() -> ApiKey:
    """The request's active key, looked up once per request (401 otherwise); without a key,
    an X-Wallet-Auth signature of a linked wallet (services/identity/wallets.py)."""
    if "api_key" not in g:
        presented = _presented_key()
        signed = request.headers.get(wallet_auth.HEADER, "").strip()
        if presented is None and signed:
            g.api_key = _wallet_key(signed)
        else:
            cached = request.endpoint in CACHED_KEY_ENDPOINTS and key_cache.enabled()
            g.api_key = keys.authenticate(presented, cached=cached)
        if uow.has_written():  # the key's last-used time, or a wallet signature used up: their
            uow.commit()       # own unit, before the request's work (which may call Stripe,
                               # never from a transaction that wrote)
    return g.api_key


def staff_actor() -> Actor:
    """The staff member behind a staff key, for the audit log."""
    key = current_key()
    user = db.session.get(User, key.user_id) if key.user_id else None
    return Actor(staff=user, via=VIA_API, ip=request.remote_addr,
                 user_agent=request.user_agent.string or None)


def key_account(key: ApiKey) -> Account:
    """The account of an account or usage key, loaded with the key (no second query)."""
    account = key.account
    if account is None:
        raise NotFound(f"No such account: {key.account_id}", param="account_id")
    return account


def require_key(kinds: tuple[str, ...]) -> ApiKey:
    """The request's key, if it is of one of these kinds (403 `key_scope` otherwise); sets
    `g.account` for account and usage keys."""
    key = current_key()
    if key_cache.expected() is not None and not key_cache.confirmed():
        reload_key()  # the rate limiter did not confirm the cached key (no limit applied)
        key = current_key()
    if key.kind not in kinds:
        raise Forbidden(_SCOPE_MESSAGES[key.kind], code="key_scope")
    if key.account_id is not None:
        g.account = key_account(key)
    return key


def reload_key() -> None:
    """Read the request's key from the database again (401 if it is no longer valid)."""
    g.pop("api_key", None)
    g.pop("key_generation", None)
    g.api_key = keys.authenticate(_presented_key())
    if uow.has_written():
        uow.commit()


class _Generation(KeyGeneration):
    """The rate limiter's round trip confirms or refuses the request's cached key."""

    def expected(self) -> int | None:
        return key_cache.expected()

    def seen(self, generation: int, *, confirmed: bool) -> None:
        key_cache.seen(generation, confirmed=confirmed)

    def stale(self) -> None:
        key_cache.stale()


def cache_keys(app: Flask) -> None:
    """Cache API keys per process when rate limits live in Redis (the round trip that
    takes the limit also says whether a cached key is still good)."""
    with app.app_context():
        storage = limiter.storage
    if isinstance(storage, OneTripRedisStorage):
        storage.keys = _Generation()
        key_cache.enable(app, storage.bump_generation, reload_key)


def authorize_key(key: ApiKey, permission: str) -> None:
    """An account or usage key acts with the role of the member who created it: the one
    check (services/identity/members.authorize). Sets `g.member_role`. A key from the
    process's cache keeps its role with it (the gate reads no membership per call)."""
    grant = key_cache.grant(key)
    if grant is None:
        grant = members.key_role(key, key_account(key).customer_id)
        key_cache.keep_grant(key, grant)
    role, verified = grant
    g.member_role = role
    members.authorize(role, permission, email_verified=verified)


def key_user() -> User | None:
    """The member who created the request's account key (None for keys from before members)."""
    key = current_key()
    return db.session.get(User, key.user_id) if key.user_id else None


ACCOUNT_KEY = (KIND_ACCOUNT,)
USAGE_OR_ACCOUNT_KEY = (KIND_ACCOUNT, KIND_USAGE)
STAFF_KEY = (KIND_STAFF,)
ACCOUNT_OR_STAFF_KEY = (KIND_ACCOUNT, KIND_STAFF)
PUBLIC = ()


def account() -> Account:
    return g.account


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
TAKES_FORMS = "__tally_takes_forms__"  # set on views declared with form=True (views/api/declare.py)


def json_body() -> dict[str, Any]:
    """The request body as a JSON object ({} when empty), or a 400 naming the fault."""
    if request.mimetype in FORM_TYPES and (request.content_length or request.form or request.files):
        # A form is not an empty JSON body (its bytes are parsed away by then): refuse it.
        raise TallyError("Send the body as JSON, with Content-Type: application/json.",
                         code="unsupported_media_type", status=415, title="Unsupported Media Type")
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    try:
        data = request.get_json(silent=True, force=True)
    except RecursionError:
        raise InvalidInput("The request body nests too deeply.", code="invalid_json") from None
    if data is None:
        raise InvalidInput("The request body is not valid JSON.", code="invalid_json")
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object.", code="invalid_json")
    request_guard.check_json_text(raw, data)
    return data


@bp.before_request
def _body_is_a_json_object() -> None:
    """Junk in a body is a 400 even where the endpoint reads no body (revoke, cancel...):
    nothing acts on a request its sender got wrong."""
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, TAKES_FORMS, False) and request.mimetype in FORM_TYPES:
        return  # Stripe's form encoding, read by the view's declaration
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        json_body()


# Rate limits ----------------------------------------------------------------------


def key_owner(key: ApiKey) -> str:
    """Whose rate limits a request uses: its account, or the staff user."""
    return f"account:{key.account_id}" if key.account_id else f"user:{key.user_id}"


def _rate_key() -> str:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return "public"
    return key_owner(current_key())  # an invalid key is a 401 before any limit is spent


def _rate_limit() -> str:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return f"{10**9}/minute"
    return rate_limit(current_key())


def rate_limit(key: ApiKey) -> str:
    """The key's rate limit: its account's plan's `requestsPerMinute`, or the staff one."""
    if key.kind == KIND_STAFF:
        return f"{STAFF_REQUESTS_PER_MINUTE}/minute"
    rpm = plans.plan_for(key_account(key).tier).limit("requestsPerMinute")
    return f"{rpm if rpm is not None else 10**9}/minute"


def _rate_error() -> str:
    return (f"Too many requests: your plan allows {_rate_limit().split('/')[0]} a minute. "
            "Wait for Retry-After seconds, or upgrade for a higher limit.")


RATE_SCOPE = "api"  # one rate-limit window per account for every /v1 endpoint
limiter.shared_limit(_rate_limit, scope=RATE_SCOPE, key_func=_rate_key, error_message=_rate_error,
                     exempt_when=lambda: request.endpoint in PUBLIC_ENDPOINTS)(bp)

from views.api import (  # noqa: E402,F401  (routes register on bp)
    billing,
    cards,
    invoices,
    keys_api,
    members_api,
    portal,
    pricing,
    recharge,
    staff,
    subscriptions,
    usage,
    wallets,
)
