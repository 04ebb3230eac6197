"""Every route with an object in its path, as the object's owner, a member of the
owner's customer in each other role (admin, billing, developer, viewer), another
customer, staff and an anonymous visitor: each gets the answer the rules give, and a
refused request changes nothing. Then every other customer route (page or /v1) as a
member of each role: refused (403, nothing changed) exactly when the role may not.

Pages log in through the form; /v1 uses the role's API key (an account key acts with the
role of the member who created it; staff keys act on /v1/customers and /v1/accounts
only). Both tables are checked against the app's url_map, so a new route fails this test
until it has a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from extensions import db
from models import Account, ApiKey, Membership, User, WebhookEvent
from models.base import utcnow
from models.billing import INVOICE_RECEIPT
from services import uow
from services.billing import invoices
from services.identity import keys, members
from services.staff.audit import Actor
from tests.conftest import csrf_token, login
from tests.support.members import add_member
from tests.support.staff import make_staff, staff_login
from tests.support.state import snapshot
from tests.support.wallets import Wallet
from views.api.declare import declared_operation

MEMBER_ROLES = ("viewer", "billing", "developer", "admin")
# Refused roles first, the owner last: the actions of those allowed may change things.
ROLES = ("anonymous", "other", "staff", *MEMBER_ROLES, "owner")

# What each role may do, as the issue states it (services/identity/members.py must agree).
MAY = {
    "owner": {"read", "keys.manage", "usage.record", "billing.pay", "billing.settings",
              "members.manage", "members.ownership", "security.manage"},
    "admin": {"read", "keys.manage", "usage.record", "billing.pay", "billing.settings",
              "members.manage"},
    "billing": {"read", "billing.pay", "billing.settings"},
    "developer": {"read", "keys.manage", "usage.record"},
    "viewer": {"read"},
}


def members_as(answers: dict[str, int], permission: str | None = None, *, refused: int = 403,
               everyone: int | None = None) -> dict[str, int]:
    """The answers, with each member role answering as the owner when it holds
    `permission` and `refused` when not; or `everyone` for all of them (staff routes)."""
    out = dict(answers)
    for role in MEMBER_ROLES:
        if everyone is not None:
            out[role] = everyone
        else:
            assert permission is not None
            out[role] = answers["owner"] if permission in MAY[role] else refused
    return out


OWNER_PAGE = members_as({"owner": 200, "other": 404, "staff": 404, "anonymous": 302}, "read")
KEYS_ACTION = members_as({"owner": 200, "other": 404, "staff": 404, "anonymous": 302}, "keys.manage")
PAY_ACTION = members_as({"owner": 303, "other": 404, "staff": 404, "anonymous": 302}, "billing.pay")
MEMBERS_ACTION = members_as({"owner": 303, "other": 404, "staff": 404, "anonymous": 302},
                            "members.manage")
STAFF_PAGE = members_as({"owner": 404, "other": 404, "staff": 200, "anonymous": 302}, everyone=404)
STAFF_ACTION = members_as({"owner": 404, "other": 404, "staff": 303, "anonymous": 302}, everyone=404)
OWNER_API = members_as({"owner": 200, "other": 404, "staff": 403, "anonymous": 401}, "read")
KEYS_API = members_as({"owner": 200, "other": 404, "staff": 403, "anonymous": 401}, "keys.manage")
PAY_API = members_as({"owner": 200, "other": 404, "staff": 403, "anonymous": 401}, "billing.pay")
MEMBERS_API = members_as({"owner": 200, "other": 404, "staff": 403, "anonymous": 401},
                         "members.manage")
OWNER_OR_STAFF_API = members_as({"owner": 200, "other": 404, "staff": 200, "anonymous": 401}, "read")
STAFF_API = members_as({"owner": 403, "other": 403, "staff": 200, "anonymous": 401}, everyone=403)
ANY_ACCOUNT_API = members_as({"owner": 200, "other": 200, "staff": 403, "anonymous": 401}, "read")
# One's own session: nobody else's (a member of the same customer included).
OWN_SESSION = members_as({"owner": 303, "other": 404, "staff": 404, "anonymous": 302}, everyone=404)


@dataclass
class World:
    """The owner's objects, and a way in for each role."""

    ids: dict[str, str]
    own: dict[str, dict[str, str]]  # objects each role acts on alone (its own target)
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
    ("POST", "/keys/<key_id>/revoke", NO_BODY, KEYS_ACTION),
    ("POST", "/keys/<key_id>/rotate", NO_BODY, KEYS_ACTION),
    ("POST", "/payment-methods/<payment_method_id>/default", NO_BODY, PAY_ACTION),
    ("POST", "/payment-methods/<payment_method_id>/remove", NO_BODY, PAY_ACTION),
    ("POST", "/members/<member_id>/role", plain_form(role="developer"), MEMBERS_ACTION),
    ("POST", "/members/<member_id>/remove", NO_BODY, MEMBERS_ACTION),
    ("POST", "/members/invitations/<invitation_id>/revoke", NO_BODY, MEMBERS_ACTION),
    ("POST", "/account/sessions/<session_id>/end", NO_BODY, OWN_SESSION),
    # A linked wallet acts as the owner, so only an owner links or unlinks one.
    ("POST", "/account/wallets/<address>/unlink", NO_BODY,
     members_as({"owner": 303, "other": 404, "staff": 404, "anonymous": 302}, "members.ownership")),
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
    ("DELETE", "/v1/keys/<key_id>", NO_BODY, KEYS_API),
    ("POST", "/v1/keys/<key_id>/revoke", NO_BODY, KEYS_API),
    ("POST", "/v1/payment-methods/<payment_method_id>/default", NO_BODY, PAY_API),
    ("DELETE", "/v1/payment-methods/<payment_method_id>", NO_BODY, PAY_API),
    ("POST", "/v1/members/<member_id>", as_json({"role": "developer"}), MEMBERS_API),
    ("DELETE", "/v1/members/<member_id>", NO_BODY, MEMBERS_API),
    ("DELETE", "/v1/members/invitations/<invitation_id>", NO_BODY, MEMBERS_API),
    ("DELETE", "/v1/wallets/<address>", NO_BODY,
     members_as({"owner": 200, "other": 404, "staff": 403, "anonymous": 401}, "members.ownership")),
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
    team = {role: add_member(app, owner.account_id, role) for role in MEMBER_ROLES}
    own = _own_targets(app, owner, team)
    portal = client.post("/v1/billing-portal/configurations", headers=staff.headers,
                         json={"features": {"invoice_history": {"enabled": True}}})
    assert portal.status_code == 201, portal.get_json()
    ids["configuration_id"] = portal.get_json()["id"]
    wallet = Wallet()
    assert client.post("/v1/wallets", json=wallet.proof(), headers=owner.headers).status_code == 201
    ids["address"] = wallet.address
    for role in ("owner", *MEMBER_ROLES):  # a card of its own for each role that may remove one
        card = client.post("/v1/payment-methods", headers=owner.headers,
                           json={"payment_method_id": "pm_card_visa"})
        assert card.status_code == 201, card.get_json()
        if role == "owner":
            ids["payment_method_id"] = card.get_json()["id"]
        if "billing.pay" in MAY[role]:
            own[role]["payment_method_id"] = card.get_json()["id"]
    assert client.post("/v1/events", headers=owner.headers,
                       json={"id": "m1", "event_name": "api_call"}).status_code == 200
    clients = {role: app.test_client() for role in ROLES}
    tokens = {"owner": login(clients["owner"], owner), "other": login(clients["other"], other),
              "staff": staff_login(clients["staff"], staff),
              "anonymous": csrf_token(clients["anonymous"].get("/login").get_data(as_text=True)),
              **{role: login(clients[role], who) for role, who in team.items()}}
    headers = {"owner": owner.headers, "other": other.headers, "staff": staff.headers,
               "anonymous": {}, **{role: who.headers for role, who in team.items()}}
    with clients["owner"].session_transaction() as cookie:
        ids["session_id"] = cookie["sid"]
    return World(ids, own, clients, tokens, headers)


def _own_targets(app, owner, team) -> dict[str, dict[str, str]]:
    """For each role that may act, objects of its own to act on (a key, a member, an
    invitation), so one role's action leaves the next role something to act on."""
    own: dict[str, dict[str, str]] = {}
    with app.app_context():
        account = db.session.get(Account, owner.account_id)
        for n, role in enumerate((*MEMBER_ROLES, "owner")):
            target = add_member(app, owner.account_id, "viewer", f"target{n}@example.com")
            with uow.unit():
                account = db.session.get(Account, owner.account_id)
                invitation, _ = members.invite(Actor.cli(), None, "owner", account.customer,
                                               email=f"invitee{n}@example.com", role="viewer")
                key = keys.issue_key(account=account, name=f"{role} target")
                member_id = db.session.scalar(select(Membership.id).join(User).where(
                    User.email == target.email))
                own[role] = {"key_id": key.key.id, "member_id": member_id,
                             "invitation_id": invitation.id}
        db.session.remove()
    return own


@pytest.mark.parametrize(("method", "rule", "body", "expected"), MATRIX,
                         ids=[f"{m} {r}" for m, r, _, _ in MATRIX])
def test_each_role_gets_the_right_answer(app, world, method, rule, body, expected):
    for role in ROLES:
        path = rule
        for name, value in {**world.ids, **world.own.get(role, {})}.items():
            path = path.replace(f"<{name}>", value)
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
        if response.status_code == 403 and role in MEMBER_ROLES and expected["owner"] < 400:
            # refused for the role (not a staff-only route's key_scope): it says so
            assert f"Your role ({role}) cannot" in response.get_data(as_text=True), where
        if rule == "/v1/meters/<name>/usage" and role in ("owner", "other"):
            values = [point["value"] for point in response.get_json()["data"]]
            assert sum(values) == (1 if role == "owner" else 0), where  # only its own usage


# Every other customer route (no object in its path), as a member of each role ------------

# (method, rule, the permission it needs): what the issue's roles allow, route by route.
ROUTE_PERMISSIONS = [
    ("GET", "/", "read"), ("GET", "/activity", "read"), ("GET", "/usage", "read"),
    ("GET", "/plans", "read"), ("GET", "/keys", "read"), ("GET", "/members", "read"),
    ("GET", "/billing/invoices", "read"), ("GET", "/billing/subscription", "read"),
    ("GET", "/billing/usage", "read"),
    ("GET", "/billing/cancel", "billing.pay"), ("POST", "/billing/cancel", "billing.pay"),
    ("POST", "/billing/checkout", "billing.pay"), ("GET", "/billing/checkout/return", "billing.pay"),
    ("POST", "/billing/portal", "billing.pay"), ("POST", "/billing/resume", "billing.pay"),
    ("GET", "/billing/upgrade", "billing.pay"), ("POST", "/billing/upgrade", "billing.pay"),
    ("POST", "/billing/upgrade/confirm", "billing.pay"), ("GET", "/topup", "billing.pay"),
    ("POST", "/topup/confirm", "billing.pay"), ("POST", "/topup/intent", "billing.pay"),
    ("POST", "/usage/settings", "billing.settings"),
    ("GET", "/payment-methods", "billing.pay"), ("POST", "/payment-methods", "billing.pay"),
    ("POST", "/payment-methods/setup", "billing.pay"), ("POST", "/topup/auto-recharge", "billing.pay"),
    ("POST", "/account/notifications", "billing.settings"),
    ("POST", "/keys", "keys.manage"),
    ("POST", "/members/invitations", "members.manage"),
    ("POST", "/members/two-factor", "security.manage"),
    ("POST", "/account/wallets", "members.ownership"),
    ("GET", "/v1/wallets", "read"), ("POST", "/v1/wallets", "members.ownership"),
    ("GET", "/v1/me", "read"), ("GET", "/v1/billing", "read"), ("GET", "/v1/billing/balance", "read"),
    ("GET", "/v1/billing/invoices", "read"), ("GET", "/v1/billing/ledger", "read"),
    ("GET", "/v1/billing/plans", "read"), ("GET", "/v1/billing/settings", "read"),
    ("GET", "/v1/billing/subscription", "read"), ("GET", "/v1/billing/usage", "read"),
    ("GET", "/v1/keys", "read"), ("GET", "/v1/members", "read"), ("GET", "/v1/meters", "read"),
    ("GET", "/v1/price-plans", "read"),
    ("POST", "/v1/authorize", "usage.record"), ("POST", "/v1/events", "usage.record"),
    ("POST", "/v1/billing/cancel", "billing.pay"), ("POST", "/v1/billing/checkout", "billing.pay"),
    ("POST", "/v1/billing/confirm-payment", "billing.pay"),
    ("POST", "/v1/billing/create-payment-intent", "billing.pay"),
    ("POST", "/v1/billing/create_payment_intent", "billing.pay"),
    ("POST", "/v1/billing/confirm_payment", "billing.pay"),
    ("POST", "/v1/billing/payment-intents", "billing.pay"), ("POST", "/v1/billing/portal", "billing.pay"),
    ("POST", "/v1/billing/resume", "billing.pay"), ("POST", "/v1/billing/setup", "billing.pay"),
    ("POST", "/v1/billing/setup/confirm", "billing.pay"),
    ("POST", "/v1/billing/settings", "billing.settings"),
    ("GET", "/v1/payment-methods", "read"), ("POST", "/v1/payment-methods", "billing.pay"),
    ("POST", "/v1/billing/setup-intents", "billing.pay"),
    ("GET", "/v1/billing/auto-recharge", "read"), ("POST", "/v1/billing/auto-recharge", "billing.pay"),
    ("POST", "/v1/keys", "keys.manage"), ("POST", "/v1/keys/rotate", "keys.manage"),
    ("POST", "/v1/members/invitations", "members.manage"),
    ("GET", "/v1/members/invitations", "members.manage"),
]


def declared_permission(app, endpoint: str) -> str | None:
    view = app.view_functions[endpoint]
    declared = declared_operation(view)
    return getattr(view, "permission", None) or (declared.permission if declared else None)


def test_every_customer_route_declares_the_permission_the_roles_give(app):
    declared = {(method, rule.rule, declared_permission(app, rule.endpoint))
                for rule in app.url_map.iter_rules() if "<" not in rule.rule
                and declared_permission(app, rule.endpoint)
                for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert declared == set(ROUTE_PERMISSIONS)


@pytest.fixture
def team(app, make_customer) -> World:
    owner = make_customer("Owner")
    people = {role: add_member(app, owner.account_id, role) for role in MEMBER_ROLES}
    clients = {role: app.test_client() for role in MEMBER_ROLES}
    tokens = {role: login(clients[role], who) for role, who in people.items()}
    return World({}, {}, clients, tokens, {role: who.headers for role, who in people.items()})


@pytest.mark.parametrize(("method", "rule", "permission"), ROUTE_PERMISSIONS,
                         ids=[f"{m} {r}" for m, r, _ in ROUTE_PERMISSIONS])
def test_each_member_role_is_refused_exactly_what_it_may_not_do(app, team, method, rule, permission):
    for role in sorted(MEMBER_ROLES, key=lambda r: permission in MAY[r]):  # refusals first
        before = snapshot(app)
        headers = team.headers[role] if rule.startswith("/v1/") else {"X-CSRFToken": team.tokens[role]}
        body = {"json": {}} if rule.startswith("/v1/") and method == "POST" else {}
        response = team.clients[role].open(rule, method=method, headers=headers, **body)
        where = f"{role} {method} {rule}: {response.status_code} {response.get_data()[:300]!r}"
        if permission in MAY[role]:
            assert response.status_code != 403, where
        else:
            assert response.status_code == 403, where
            assert f"Your role ({role}) cannot" in response.get_data(as_text=True), where
            assert snapshot(app) == before, where
