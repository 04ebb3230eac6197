"""Every route with an object in its path, as the object's owner, another customer,
staff and an anonymous visitor: each gets the answer the rules give, and a refused
request changes nothing.

Pages log in through the form; /v1 uses the role's API key (staff keys act on
/v1/customers and /v1/accounts only). The table is checked against the app's url_map, so
a new object route fails this test until it has a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from extensions import db
from models import Account, ApiKey, User, WebhookEvent
from models.base import utcnow
from models.billing import INVOICE_RECEIPT
from services.billing import invoices
from tests.conftest import csrf_token, login
from tests.support.staff import make_staff, staff_login
from tests.support.state import snapshot
from tests.support.wallets import Wallet

ROLES = ("anonymous", "other", "staff", "owner")  # the owner last: its actions may change things

OWNER_PAGE = {"owner": 200, "other": 404, "staff": 404, "anonymous": 302}
STAFF_PAGE = {"owner": 404, "other": 404, "staff": 200, "anonymous": 302}
STAFF_ACTION = {"owner": 404, "other": 404, "staff": 303, "anonymous": 302}
OWNER_API = {"owner": 200, "other": 404, "staff": 403, "anonymous": 401}
OWNER_OR_STAFF_API = {"owner": 200, "other": 404, "staff": 200, "anonymous": 401}
STAFF_API = {"owner": 403, "other": 403, "staff": 200, "anonymous": 401}
ANY_ACCOUNT_API = {"owner": 200, "other": 200, "staff": 403, "anonymous": 401}


@dataclass
class World:
    """The owner's objects, and a way in for each role."""

    ids: dict[str, str]
    clients: dict[str, FlaskClient]  # logged in through the form (anonymous: none)
    tokens: dict[str, str]  # each session's CSRF token
    headers: dict[str, dict[str, str]]  # each role's API key


def staff_form(prefix: str, **fields: str) -> Callable[[World, str], dict[str, Any]]:
    """A staff console form: fields and the CSRF token carry the form's prefix."""
    def build(world: World, token: str) -> dict[str, Any]:
        return {"data": {f"{prefix.format(**world.ids)}-{k}": v
                         for k, v in {**fields, "csrf_token": token}.items()}}
    return build


def plain_form(**fields: str) -> Callable[[World, str], dict[str, Any]]:
    return lambda world, token: {"data": {**fields, "csrf_token": token}}


def as_json(body: dict) -> Callable[[World, str], dict[str, Any]]:
    return lambda world, token: {"json": body}


def NO_BODY(world: World, token: str) -> dict[str, Any]:
    return {}  # pages get their CSRF token in the X-CSRFToken header

# (method, rule, body, expected status by role)
MATRIX: list[tuple[str, str, Callable[[World, str], dict[str, Any]], dict[str, int]]] = [
    ("GET", "/billing/invoices/<invoice_id>", NO_BODY, OWNER_PAGE),
    ("GET", "/billing/invoices/<invoice_id>/pdf", NO_BODY, OWNER_PAGE),
    ("POST", "/keys/<key_id>/revoke", NO_BODY, OWNER_PAGE),
    ("POST", "/payment-methods/<payment_method_id>/default", NO_BODY, {**OWNER_PAGE, "owner": 303}),
    ("POST", "/payment-methods/<payment_method_id>/remove", NO_BODY, {**OWNER_PAGE, "owner": 303}),
    ("POST", "/keys/<key_id>/rotate", NO_BODY, OWNER_PAGE),
    ("POST", "/account/wallets/<address>/unlink", NO_BODY, {**OWNER_PAGE, "owner": 303}),
    ("GET", "/staff/customers/<customer_id>", NO_BODY, STAFF_PAGE),
    ("POST", "/staff/accounts/<account_id>/grant",
     staff_form("{account_id}-grant", amount="5.00", reason="matrix"), STAFF_ACTION),
    ("POST", "/staff/accounts/<account_id>/adjust",
     staff_form("{account_id}-adjust", amount="1.00", reason="matrix"), STAFF_ACTION),
    ("POST", "/staff/accounts/<account_id>/plan",
     staff_form("{account_id}-plan", plan="pro", reason="matrix"), STAFF_ACTION),
    # An empty choice takes usage pricing off (the account has none): allowed, audited.
    ("POST", "/staff/accounts/<account_id>/price-plan",
     staff_form("{account_id}-pricing", price_plan="", reason="matrix"), STAFF_ACTION),
    # No grace period is running: staff reach the action, which says so (400).
    ("POST", "/staff/accounts/<account_id>/grace",
     staff_form("{account_id}-grace", days="3", reason="matrix"), {**STAFF_ACTION, "staff": 400}),
    # Tally sends no email in tests: staff reach the action, which refuses (400).
    ("POST", "/staff/accounts/<account_id>/invoices/<invoice_id>/resend",
     staff_form("resend", reason="matrix"), {**STAFF_ACTION, "staff": 400}),
    ("POST", "/staff/users/<user_id>/impersonate",
     staff_form("{user_id}-imp", reason="matrix"), STAFF_ACTION),
    ("GET", "/staff/webhooks/<event_id>", NO_BODY, STAFF_PAGE),
    ("POST", "/staff/webhooks/<event_id>/replay", NO_BODY, STAFF_ACTION),
    ("POST", "/staff/billing-portal/<configuration_id>",
     plain_form(invoice_history="on", active="on"), STAFF_ACTION),
    ("GET", "/v1/accounts/<account_id>", NO_BODY, STAFF_API),
    ("GET", "/v1/accounts/<account_id>/credits", NO_BODY, OWNER_OR_STAFF_API),
    ("POST", "/v1/accounts/<account_id>/credits", as_json({"amount": 500, "reason": "matrix"}),
     {**STAFF_API, "staff": 201}),
    ("GET", "/v1/accounts/<account_id>/invoices", NO_BODY, OWNER_OR_STAFF_API),
    ("POST", "/v1/accounts/<account_id>/price-plan", as_json({"price_plan_id": None}), STAFF_API),
    ("GET", "/v1/billing-portal/configurations/<configuration_id>", NO_BODY, STAFF_API),
    ("POST", "/v1/billing-portal/configurations/<configuration_id>",
     as_json({"headline": "Matrix"}), STAFF_API),
    ("GET", "/v1/billing_portal/configurations/<configuration_id>", NO_BODY, STAFF_API),
    ("POST", "/v1/billing_portal/configurations/<configuration_id>",
     as_json({"headline": "Matrix"}), STAFF_API),
    ("GET", "/v1/customers/<customer_id>", NO_BODY, STAFF_API),
    ("GET", "/v1/customers/<customer_id>/accounts", NO_BODY, STAFF_API),
    ("POST", "/v1/customers/<customer_id>/accounts", as_json({"name": "Second"}),
     {**STAFF_API, "staff": 201}),
    ("GET", "/v1/invoices/<invoice_id>", NO_BODY, OWNER_OR_STAFF_API),
    ("GET", "/v1/invoices/<invoice_id>/pdf", NO_BODY, OWNER_OR_STAFF_API),
    ("DELETE", "/v1/keys/<key_id>", NO_BODY, OWNER_API),
    ("POST", "/v1/keys/<key_id>/revoke", NO_BODY, OWNER_API),
    ("DELETE", "/v1/wallets/<address>", NO_BODY, OWNER_API),
    ("POST", "/v1/payment-methods/<payment_method_id>/default", NO_BODY, OWNER_API),
    ("DELETE", "/v1/payment-methods/<payment_method_id>", NO_BODY, OWNER_API),
    # Meters are shared definitions; each account sees its own usage (checked below).
    ("GET", "/v1/meters/<name>/usage", NO_BODY, ANY_ACCOUNT_API),
]


def test_the_matrix_covers_every_object_route(app):
    routes = {(method, rule.rule) for rule in app.url_map.iter_rules()
              if "<" in rule.rule and rule.endpoint != "static"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == {(method, rule) for method, rule, _, _ in MATRIX}


@pytest.fixture
def world(app, client, make_customer) -> World:
    owner, other = make_customer("Owner"), make_customer("Other")
    staff = make_staff(app)
    with app.app_context():
        account = db.session.get(Account, owner.account_id)
        invoice = invoices.issue(account, kind=INVOICE_RECEIPT, source_id="matrix", currency="usd",
                                 lines=[invoices.Line("Matrix top-up", 1000)], paid_at=utcnow())
        ids = {"account_id": account.id, "customer_id": account.customer_id, "invoice_id": invoice.id,
               "key_id": db.session.scalar(select(ApiKey.id).where(ApiKey.account_id == account.id)),
               "user_id": db.session.scalar(select(User.id).where(User.email == owner.email)),
               "event_id": "evt_matrix", "name": "apiCalls"}
        db.session.add(WebhookEvent(id="evt_matrix", type="matrix.test", payload="{}"))
        db.session.commit()
        db.session.remove()
    portal = client.post("/v1/billing-portal/configurations", headers=staff.headers,
                         json={"features": {"invoice_history": {"enabled": True}}})
    assert portal.status_code == 201, portal.get_json()
    ids["configuration_id"] = portal.get_json()["id"]
    wallet = Wallet()
    assert client.post("/v1/wallets", json=wallet.proof(), headers=owner.headers).status_code == 201
    ids["address"] = wallet.address
    card = client.post("/v1/payment-methods", headers=owner.headers,
                       json={"payment_method_id": "pm_card_visa"})
    assert card.status_code == 201, card.get_json()
    ids["payment_method_id"] = card.get_json()["id"]
    assert client.post("/v1/events", headers=owner.headers,
                       json={"id": "m1", "event_name": "api_call"}).status_code == 200
    clients = {role: app.test_client() for role in ROLES}
    tokens = {"owner": login(clients["owner"], owner), "other": login(clients["other"], other),
              "staff": staff_login(clients["staff"], staff),
              "anonymous": csrf_token(clients["anonymous"].get("/login").get_data(as_text=True))}
    headers = {"owner": owner.headers, "other": other.headers, "staff": staff.headers,
               "anonymous": {}}
    return World(ids, clients, tokens, headers)


@pytest.mark.parametrize(("method", "rule", "body", "expected"), MATRIX,
                         ids=[f"{m} {r}" for m, r, _, _ in MATRIX])
def test_each_role_gets_the_right_answer(app, world, method, rule, body, expected):
    path = rule
    for name, value in world.ids.items():
        path = path.replace(f"<{name}>", value)
    for role in ROLES:
        before = snapshot(app)
        client = world.clients[role]
        kwargs = body(world, world.tokens[role])
        headers = {"X-CSRFToken": world.tokens[role]}
        if rule.startswith("/v1/"):
            headers = world.headers[role]
        response = client.open(path, method=method, headers=headers, **kwargs)
        where = f"{role} {method} {path}: {response.status_code} {response.get_data()[:300]!r}"
        assert response.status_code == expected[role], where
        if expected[role] == 302:
            assert response.headers["Location"].startswith("/login"), where
        if response.status_code >= 400 and expected[role] != 400:
            assert snapshot(app) == before, where  # refused: nothing changed
        if rule == "/v1/meters/<name>/usage" and role in ("owner", "other"):
            values = [point["value"] for point in response.get_json()["data"]]
            assert sum(values) == (1 if role == "owner" else 0), where  # only its own usage
