"""Customer and account management for support staff, with a staff API key.

`GET/POST /v1/customers` (create with Togai's fields `{name, primaryEmail, id?}`),
`GET /v1/customers/{id}`, `GET/POST /v1/customers/{id}/accounts`, `GET /v1/accounts/{id}`
and credit grants `GET/POST /v1/accounts/{id}/credits`. A customer's key gets 403
`key_scope` (except reading its own account's credit grants). Every write is in the
audit log with the staff member behind the key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import jsonify, request

from models import Account, CreditGrant, Customer
from models.keys import KIND_ACCOUNT
from services.errors import InvalidInput, NotFound
from services.ledger import grants
from services.ledger.audited import GRANT_DESCRIPTION, customer_description
from services.staff import console as staff
from services.staff import rules
from services.usage.events import parse_timestamp
from views.api import ACCOUNT_KEY, STAFF_KEY, bp, current_key, json_body, key_required, staff_actor
from views.api.lists import list_response, page_args


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def customer_json(customer: Customer, *, with_accounts: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": customer.id, "object": "customer", "name": customer.name,
        "primaryEmail": customer.primary_email,
        "stripe_customer_id": customer.stripe_customer_id,
        "created_at": _iso(customer.created_at),
    }
    if with_accounts:
        body["accounts"] = [account_json(a) for a in customer.accounts]
    return body


def account_json(account: Account) -> dict[str, Any]:
    return {
        "id": account.id, "object": "account", "customer_id": account.customer_id,
        "name": account.name, "plan": account.tier, "currency": account.currency,
        "balance": account.balance, "time_zone": account.time_zone,
        "grace_period_ends_at": _iso(account.grace_period_ends_at),
        "created_at": _iso(account.created_at),
    }


def grant_json(grant: CreditGrant, remaining: int | None = None, *,
               for_customer: bool = False) -> dict[str, Any]:
    """`for_customer` (an account key reading its own grants): `reason` is what the
    customer's ledger says (the note, or "Credit from Tally"), never the staff's reason."""
    reason = (customer_description(GRANT_DESCRIPTION, grant.note) if for_customer
              else grant.reason)
    return {
        "id": grant.id, "object": "credit_grant", "account_id": grant.account_id,
        "amount": grant.amount, "currency": grant.currency, "reason": reason, "note": grant.note,
        "status": grant.status, "effective_from": _iso(grant.effective_from),
        "expires_at": _iso(grant.expires_at), "expired_amount": grant.expired_amount,
        "remaining": remaining, "created_at": _iso(grant.created_at),
    }


@bp.get("/customers", endpoint="staff_customers")
@key_required(*STAFF_KEY)
def list_customers():
    """Newest first; `q` searches email, name, customer, account and Stripe ids."""
    return list_response(staff.list_customers(q=request.args.get("q"), **page_args()), customer_json)


@bp.post("/customers", endpoint="staff_create_customer")
@key_required(*STAFF_KEY)
def create_customer():
    body = json_body()
    email = body.get("primaryEmail", body.get("primary_email"))
    customer = staff.create_customer(staff_actor(), name=body.get("name"), primary_email=email,
                                     customer_id=body.get("id"))
    return jsonify(customer_json(customer, with_accounts=True)), 201


@bp.get("/customers/<customer_id>", endpoint="staff_customer")
@key_required(*STAFF_KEY)
def get_customer(customer_id: str):
    customer = staff.get_customer(customer_id)
    staff.record_view(staff_actor(), customer)
    return jsonify(customer_json(customer, with_accounts=True))


@bp.get("/customers/<customer_id>/accounts", endpoint="staff_customer_accounts")
@key_required(*STAFF_KEY)
def list_accounts(customer_id: str):
    return list_response(staff.list_accounts(staff.get_customer(customer_id), **page_args()),
                         account_json)


@bp.post("/customers/<customer_id>/accounts", endpoint="staff_create_account")
@key_required(*STAFF_KEY)
def create_account(customer_id: str):
    body = json_body()
    account = staff.create_account(staff_actor(), staff.get_customer(customer_id),
                                   name=body.get("name"), currency=body.get("currency"),
                                   plan=body.get("plan"))
    return jsonify(account_json(account)), 201


@bp.get("/accounts/<account_id>", endpoint="staff_account")
@key_required(*STAFF_KEY)
def get_account(account_id: str):
    return jsonify(account_json(staff.get_account(account_id)))


@bp.get("/accounts/<account_id>/credits", endpoint="staff_credits")
@key_required(*STAFF_KEY, *ACCOUNT_KEY)
def list_credits(account_id: str):
    """Staff see any account's grants; an account key sees its own (another's is a 404)."""
    if current_key().kind == KIND_ACCOUNT and account_id != current_key().account_id:
        raise NotFound(f"No such account: {account_id}", param="account_id")
    account = staff.get_account(account_id)
    left = grants.remaining(account.id)
    for_customer = current_key().kind == KIND_ACCOUNT
    return list_response(grants.list_for(account.id, **page_args()),
                         lambda g: grant_json(g, left.get(g.id), for_customer=for_customer))


def _optional_time(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    return None if value is None else parse_timestamp(value, name)


@bp.post("/accounts/<account_id>/credits", endpoint="staff_grant_credit")
@key_required(*STAFF_KEY)
def grant_credit(account_id: str):
    """`{amount, reason, note?, effective_from?, expires_at?}`; optional header
    `Idempotency-Key`. `reason` is for the audit log; `note` is what the customer reads."""
    body = json_body()
    if "amount" not in body:
        raise InvalidInput("amount is required: minor units (cents), e.g. 2500 for 25.00.",
                           param="amount")
    # The first bad field in the order the request documents them: amount, then reason.
    rules.check_amount(body["amount"], positive=True)
    result = grants.grant(
        staff_actor(), staff.get_account(account_id).id, body["amount"], body.get("reason"),
        note=body.get("note"), effective_from=_optional_time(body, "effective_from"),
        expires_at=_optional_time(body, "expires_at"))
    return jsonify(grant_json(result.grant) | {"balance": result.balance}), 201
