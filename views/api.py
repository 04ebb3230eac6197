"""The versioned JSON API under /v1, authenticated with API keys.

Same services as the pages; input is checked into plain values here, and every
error leaves as `{"error", "code", "message", "param"?}` (views/errors.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from models import Account, ApiKey
from models.keys import KIND_ACCOUNT
from services import accounts, keys, ledger, plans, topups
from services.errors import Forbidden, InvalidInput

bp = Blueprint("api", __name__, url_prefix="/v1")


def _presented_key() -> str | None:
    key = request.headers.get("X-Api-Key", "").strip()
    if not key:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = value.strip()
    return key or None


def account_key_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """An active account key; sets `g.api_key` and `g.account`."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = keys.authenticate(_presented_key())
        if key.kind != KIND_ACCOUNT or key.account_id is None:
            raise Forbidden("This endpoint needs an account API key.", code="wrong_key_kind")
        g.api_key = key
        g.account = accounts.get_account(key.account_id)
        return view(*args, **kwargs)

    return wrapper


def json_body() -> dict[str, Any]:
    """The request body as a JSON object ({} when empty), or a 400 naming the fault."""
    if not request.get_data(cache=True):
        return {}
    data = request.get_json(silent=True, force=True)
    if data is None:
        raise InvalidInput("The request body is not valid JSON.", code="invalid_json")
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object.", code="invalid_json")
    return data


def _account() -> Account:
    return g.account


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "object": "api_key",
        "name": key.name,
        "kind": key.kind,
        "prefix": key.prefix,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
    }


@bp.get("/me")
@account_key_required
def me():
    account = _account()
    return jsonify(account_id=account.id, email=account.customer.primary_email,
                   name=account.name, tier=account.tier)


@bp.get("/billing")
@account_key_required
def billing():
    account = _account()
    call_limit = plans.plan_for(account.tier).limit("apiCalls")
    calls_total = 0  # usage metering arrives with the metering service
    return jsonify(
        tier=account.tier,
        calls_total=calls_total,
        call_limit=call_limit,
        over_limit=call_limit is not None and calls_total >= call_limit,
        stripe_customer_id=account.customer.stripe_customer_id,
        balance=account.balance,
        currency=account.currency,
    )


@bp.get("/billing/balance")
@account_key_required
def balance():
    account = _account()
    return jsonify(balance=account.balance, currency=account.currency)


@bp.get("/billing/ledger")
@account_key_required
def ledger_entries():
    limit = request.args.get("limit", "10")
    if not limit.isdigit() or not 1 <= int(limit) <= 100:
        raise InvalidInput("limit must be a whole number from 1 to 100.", param="limit")
    entries = ledger.recent_entries(_account().id, limit=int(limit))
    return jsonify(object="list", data=[
        {"id": e.id, "object": "ledger_entry", "amount": e.amount, "currency": e.currency,
         "kind": e.kind, "description": e.description, "created_at": e.created_at.isoformat()}
        for e in entries
    ])


@bp.get("/billing/config")
@bp.get("/billing/stripe-config", endpoint="stripe_config")
def billing_config():
    return jsonify(stripe_publishable_key=current_app.config["STRIPE_PUBLISHABLE_KEY"])


@bp.post("/billing/payment-intents")
@bp.post("/billing/create-payment-intent", endpoint="create_payment_intent")
@account_key_required
def payment_intents():
    body = json_body()
    if "amount" not in body:
        raise InvalidInput("amount is required: minor units (cents), e.g. 2500 for 25.00.",
                           param="amount")
    started = topups.start_top_up(_account(), body["amount"],
                                  idempotency_key=request.headers.get("Idempotency-Key"))
    return jsonify(payment_intent_id=started.payment_intent_id,
                   client_secret=started.client_secret,
                   amount=started.amount, currency=started.currency)


@bp.post("/billing/confirm-payment")
@account_key_required
def confirm_payment():
    body = json_body()
    if "payment_intent_id" not in body:
        raise InvalidInput("payment_intent_id is required.", param="payment_intent_id")
    credit = topups.credit_payment_intent(body["payment_intent_id"], account_id=_account().id)
    return jsonify(credited=credit.credited, balance=credit.balance, currency=credit.currency)


@bp.get("/keys")
@account_key_required
def list_keys():
    return jsonify(object="list", data=[_key_json(k) for k in keys.list_keys(_account().id)])


@bp.post("/keys/rotate")
@account_key_required
def rotate_key():
    """Rotate the calling key, or `{"key_id"}` of this account; the old key stops at once."""
    body = json_body()
    key_id = body.get("key_id", g.api_key.id)
    if not isinstance(key_id, str):
        raise InvalidInput("key_id must be a string such as key_...", param="key_id")
    issued = keys.rotate(keys.get_account_key(_account().id, key_id))
    return jsonify(api_key=issued.plaintext, key=_key_json(issued.key))
