"""Customers and their accounts, created by staff (the console, `POST /v1/customers` with
Togai's body and its accounts): ids as given or new, a taken id a 409, each audited."""

from __future__ import annotations

from flask import current_app
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import Account, Customer
from models.base import public_id
from services.billing import plans
from services.errors import Conflict, InvalidInput
from services.identity import accounts
from services.money import check_currency
from services.staff import audit
from services.staff.audit import Actor
from services.staff.rules import require_staff


def create_customer(actor: Actor, *, name: str, primary_email: str, customer_id: str | None = None,
                    billing_address: dict[str, str] | None = None) -> Customer:
    """A customer with `name` (trimmed), a billing email and optionally a billing address
    (printed on its invoices); `customer_id` as given (its shape checked by the caller), or
    a new one. A taken id is a 409."""
    require_staff(actor.staff)
    try:
        email = accounts.normalise_email(primary_email)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, param="primaryEmail") from None
    customer = Customer(name=name, primary_email=email, billing_address=billing_address or None)
    if customer_id is not None:
        _refuse_taken(Customer, customer_id, "customer_exists", "A customer")
        customer.id = customer_id
    else:
        customer.id = public_id("cust")
    db.session.add(customer)
    audit.record(actor, "customer.create", customer_id=customer.id,
                 after={"name": name, "primary_email": email, "billing_address": billing_address})
    _flush_or_conflict(customer.id, "customer_exists", "A customer")
    return customer


def _refuse_taken(model: type[Customer] | type[Account], row_id: str, code: str, what: str) -> None:
    if db.session.get(model, row_id) is not None:
        raise Conflict(f"{what} with id {row_id} already exists.", code=code, param="id")


def _flush_or_conflict(row_id: str, code: str, what: str) -> None:
    """Flush the new row: one created with this id meanwhile is a 409, and nothing is kept."""
    try:
        db.session.flush()
    except IntegrityError:
        raise Conflict(f"{what} with id {row_id} already exists.", code=code, param="id") from None


def create_account(actor: Actor, customer: Customer, *, name: str, currency: str | None = None,
                   plan: str | None = None, account_id: str | None = None,
                   currency_param: str = "currency") -> Account:
    """An account of the customer; the default currency and the free plan unless given;
    `account_id` as given (its shape checked by the caller), or a new one (a taken id is a 409)."""
    require_staff(actor.staff)
    if currency is None:
        currency = current_app.config["DEFAULT_CURRENCY"]
    currency = check_currency(currency, currency_param)
    tier = plan_name(plan if plan is not None else "free")
    if account_id is not None:
        _refuse_taken(Account, account_id, "account_exists", "An account")
    account = Account(id=account_id or public_id("acct"), customer_id=customer.id, name=name,
                      currency=currency, tier=tier)
    db.session.add(account)
    _flush_or_conflict(account.id, "account_exists", "An account")
    audit.record(actor, "account.create", customer_id=customer.id, account_id=account.id,
                 after={"name": name, "currency": account.currency, "plan": tier})
    return account


def plan_name(plan: str | None) -> str:
    """`plan` if it names a plan, else a 400 naming `plan`."""
    names = [p.name for p in plans.all_plans()]
    if plan not in names:
        raise InvalidInput(f"plan must be one of: {', '.join(names)}.", param="plan")
    return plan
