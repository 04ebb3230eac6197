"""Customer and account management for support staff, with a staff API key.

`GET/POST /v1/customers` (create with Togai's body `{id, name, primaryEmail, billingAddress?,
account?: {id, name, invoiceCurrency}}`),
`GET /v1/customers/{id}`, `GET/POST /v1/customers/{id}/accounts`, `GET /v1/accounts/{id}`
and credit grants `GET/POST /v1/accounts/{id}/credits`. A customer's key gets 403
`key_scope` (except reading its own account's credit grants). Every write is in the
audit log with the staff member behind the key.
"""

from __future__ import annotations

from models import Account as AccountRow
from models import CreditGrant as CreditGrantRow
from models import Customer as CustomerRow
from models.keys import KIND_ACCOUNT
from services.errors import NotFound
from services.identity import members
from services.ledger import grants
from services.ledger.audited import GRANT_DESCRIPTION, customer_description
from services.staff import console as staff
from services.staff import customers
from views.api import STAFF_KEY, bp, current_key, staff_actor
from views.api.declare import operation
from views.api.schemas.common import PageQuery
from views.api.schemas.staff import (
    Account,
    AccountList,
    CreateAccountRequest,
    CreateCustomerRequest,
    CreditGrant,
    CreditGrantCreated,
    CreditGrantList,
    Customer,
    CustomerList,
    CustomerQuery,
    GrantCreditRequest,
    address_answer,
)

TAG = "Staff"


def customer_answer(customer: CustomerRow, *, with_accounts: bool = False,
                    account: AccountRow | None = None) -> Customer:
    address = address_answer(customer.billing_address)
    return Customer(id=customer.id, name=customer.name, primary_email=customer.primary_email,
                    primaryEmail=customer.primary_email, billingAddress=address,
                    billing_address=address,
                    stripe_customer_id=customer.stripe_customer_id, created_at=customer.created_at,
                    accounts=[account_answer(a) for a in customer.accounts] if with_accounts else None,
                    account=account_answer(account) if account is not None else None)


def account_answer(account: AccountRow) -> Account:
    return Account(id=account.id, customer_id=account.customer_id, name=account.name,
                   plan=account.tier, currency=account.currency,
                   invoiceCurrency=account.currency.upper(), balance=account.available_balance,
                   posted_balance=account.balance, pending_usage=account.pending_usage,
                   time_zone=account.time_zone, grace_period_ends_at=account.grace_period_ends_at,
                   created_at=account.created_at)


def grant_answer(grant: CreditGrantRow, remaining: int | None = None, *,
                 for_customer: bool = False) -> CreditGrant:
    """`for_customer` (an account key reading its own grants): `reason` is what the
    customer's ledger says (the note, or "Credit from Tally"), never the staff's reason."""
    reason = (customer_description(GRANT_DESCRIPTION, grant.note) if for_customer
              else grant.reason)
    return CreditGrant.model_validate({
        "id": grant.id, "account_id": grant.account_id, "amount": grant.amount,
        "currency": grant.currency, "reason": reason, "note": grant.note, "status": grant.status,
        "effective_from": grant.effective_from, "expires_at": grant.expires_at,
        "expired_amount": grant.expired_amount, "remaining": remaining,
        "created_at": grant.created_at})


@bp.get("/customers", endpoint="staff_customers")
@operation(STAFF_KEY, TAG, "Customers, newest first", CustomerList, query=CustomerQuery)
def list_customers(query: CustomerQuery) -> CustomerList:
    """Newest first; `q` searches email, name, customer, account and Stripe ids."""
    return CustomerList.of(staff.list_customers(q=query.q, **query.page()), customer_answer)


@bp.post("/customers", endpoint="staff_create_customer")
@operation(STAFF_KEY, TAG, "Create a customer", Customer, status=201, body=CreateCustomerRequest,
           errors=(409,), description="Togai's body (`primary_email` is taken for `primaryEmail`). "
                                      "With `account`, the customer's first account is created "
                                      "too, with its id, name and currency. 409 `customer_exists` "
                                      "or `account_exists` for a taken `id`; then nothing is "
                                      "created.")
def create_customer(body: CreateCustomerRequest) -> tuple[Customer, int]:
    assert body.email is not None  # the declaration requires one spelling
    actor = staff_actor()
    customer = customers.create_customer(
        actor, name=body.name, primary_email=body.email, customer_id=body.id,
        billing_address=body.billingAddress.kept() if body.billingAddress else None)
    account = None
    if body.account is not None:
        currency, field = body.account.currency_given
        account = customers.create_account(actor, customer, name=body.account.name, currency=currency,
                                       plan=body.account.plan, account_id=body.account.id,
                                       currency_param=f"account.{field}")
    return customer_answer(customer, with_accounts=True, account=account), 201


@bp.get("/customers/<customer_id>", endpoint="staff_customer")
@operation(STAFF_KEY, TAG, "A customer with its accounts (recorded as a staff view)", Customer)
def get_customer(customer_id: str) -> Customer:
    customer = staff.get_customer(customer_id)
    staff.record_view(staff_actor(), customer)
    return customer_answer(customer, with_accounts=True)


@bp.get("/customers/<customer_id>/accounts", endpoint="staff_customer_accounts")
@operation(STAFF_KEY, TAG, "A customer's accounts", AccountList, query=PageQuery)
def list_accounts(customer_id: str, query: PageQuery) -> AccountList:
    return AccountList.of(staff.list_accounts(staff.get_customer(customer_id), **query.page()),
                          account_answer)


@bp.post("/customers/<customer_id>/accounts", endpoint="staff_create_account")
@operation(STAFF_KEY, TAG, "Open an account for a customer", Account, status=201,
           body=CreateAccountRequest, errors=(409,),
           description="Tally's `{name, currency, plan}` or Togai's `{id, name, invoiceCurrency}`; "
                       "409 `account_exists` for a taken `id`.")
def create_account(customer_id: str, body: CreateAccountRequest) -> tuple[Account, int]:
    currency, field = body.currency_given
    account = customers.create_account(staff_actor(), staff.get_customer(customer_id), name=body.name,
                                   currency=currency, plan=body.plan, account_id=body.id,
                                   currency_param=field)
    return account_answer(account), 201


@bp.get("/accounts/<account_id>", endpoint="staff_account")
@operation(STAFF_KEY, TAG, "An account", Account)
def get_account(account_id: str) -> Account:
    return account_answer(staff.get_account(account_id))


@bp.get("/accounts/<account_id>/credits", endpoint="staff_credits")
@operation((*STAFF_KEY, KIND_ACCOUNT), TAG,
           "An account's credit grants (staff, or the account's own key)", CreditGrantList,
           query=PageQuery,
           permission=members.READ)
def list_credits(account_id: str, query: PageQuery) -> CreditGrantList:
    """Staff see any account's grants; an account key sees its own (another's is a 404)."""
    if current_key().kind == KIND_ACCOUNT and account_id != current_key().account_id:
        raise NotFound(f"No such account: {account_id}", param="account_id")
    account = staff.get_account(account_id)
    left = grants.remaining(account.id)
    for_customer = current_key().kind == KIND_ACCOUNT
    return CreditGrantList.of(grants.list_for(account.id, **query.page()),
                              lambda g: grant_answer(g, left.get(g.id), for_customer=for_customer))


@bp.post("/accounts/<account_id>/credits", endpoint="staff_grant_credit")
@operation(STAFF_KEY, TAG, "Grant credit", CreditGrantCreated, status=201, body=GrantCreditRequest,
           description="`reason` is for the audit log; `note` is what the customer reads. "
                       "`effective_from` in the future schedules the grant; `expires_at` takes back "
                       "what is left then. A retry with the same Idempotency-Key gets the first "
                       "answer again, and grants nothing. `balance` is the account's spendable "
                       "credit after it.")
def grant_credit(account_id: str, body: GrantCreditRequest) -> tuple[CreditGrantCreated, int]:
    result = grants.grant(staff_actor(), account_id, body.amount, body.reason, note=body.note,
                          effective_from=body.effective_from, expires_at=body.expires_at)
    account = staff.get_account(account_id)
    answer = CreditGrantCreated(**grant_answer(result.grant).model_dump(),
                                balance=account.available_balance, posted_balance=account.balance)
    return answer, 201
