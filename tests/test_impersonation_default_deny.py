"""View as customer is read-only by default, for every route: the app's url_map is walked,
so a route added later is covered without anyone remembering to list it.

Without `impersonate_write`, every request that is not a read (on every blueprint) is
refused with 403 `impersonation_read_only` and recorded as a refused action; nothing
changes in the database or at Stripe. With the permission, every action runs and is
audited with both identities and the account's state before and after. Every page
opened meanwhile is recorded, however it is fetched.
"""

from __future__ import annotations

import pytest
from flask import Blueprint, jsonify
from sqlalchemy import select

from extensions import db
from models import ApiKey, Invoice
from services.identity import keys
from tests.support.localstripe import stripe_objects
from tests.support.staff import (
    audit_rows,
    customer_id_of,
    impersonate,
    make_staff,
    staff_login,
    token,
    user_id_of,
)
from tests.support.state import database_rows
from tests.support.wallets import Wallet
from tests.test_subscriptions import card, subscription, upgrade

pytestmark = pytest.mark.money  # Stripe objects and money: run on PostgreSQL too

READS = {"GET", "HEAD", "OPTIONS"}
EXITS = {"staff.stop_impersonation", "auth.logout"}


def changes(app) -> list[tuple[str, str, str]]:
    """Every (rule, method, endpoint) of the app that is not a read."""
    return sorted((rule.rule, method, rule.endpoint) for rule in app.url_map.iter_rules()
                  for method in sorted((rule.methods or set()) - READS))


def fill(rule: str, params: dict[str, str]) -> str:
    path = rule
    for part in rule.split("/"):
        if part.startswith("<"):
            name = part[1:-1].split(":")[-1]
            assert name in params, f"add a value for <{name}> (route {rule}) to `params`"
            path = path.replace(part, params[name])
    return path


def view_as(client, app, staff, customer) -> str:
    """Log staff in and view as the customer; returns a CSRF token."""
    staff_login(client, staff)
    assert impersonate(client, app, customer.email).status_code == 303
    return token(client.get("/").get_data(as_text=True))


@pytest.fixture
def subscribed(app, client, customer, stripe_client):
    """A customer on Pro through a Stripe subscription, with a paid invoice: there is
    something at Stripe for a leaked action to change."""
    upgrade(client, customer, stripe_client)
    wallet = Wallet()  # linked, so that unlinking it would change something
    assert client.post("/v1/wallets", json=wallet.proof(), headers=customer.headers).status_code == 201
    with app.app_context():
        invoice_id = db.session.scalar(select(Invoice.id).where(
            Invoice.account_id == customer.account_id))
        key_id = db.session.scalar(select(ApiKey.id).where(ApiKey.account_id == customer.account_id))
        db.session.remove()
    params = {"account_id": customer.account_id, "key_id": key_id, "invoice_id": invoice_id,
              "customer_id": customer_id_of(app, customer.account_id),
              "user_id": user_id_of(app, customer.email), "configuration_id": "bpc_walk",
              "event_id": "evt_walk", "address": wallet.address, "session_id": "sess_walk",
              "member_id": "mem_walk", "invitation_id": "inv_walk", "payment_method_id": "pm_walk"}
    return customer, params


def test_every_change_on_every_route_is_refused_and_audited(app, client, subscribed, backend,
                                                            localstripe_url, stripe_client):
    customer, params = subscribed
    staff = make_staff(app)
    csrf = view_as(client, app, staff, customer)
    routes = [r for r in changes(app) if r[2] not in EXITS]
    assert len(routes) >= 50  # the walk found the routes (every blueprint)
    assert {endpoint.split(".")[0] for _, _, endpoint in routes} >= {
        "auth", "pages", "keys", "billing", "staff", "staff_billing", "staff_pricing", "api",
        "webhooks"}
    body = {"amount": "25.00", "reason": "walk", "time_zone": "Asia/Tokyo", "kind": "account",
            "name": "walk", "payment_method_id": card(stripe_client)}
    rows_before = database_rows(app, without=("audit_events",))
    stripe_before = stripe_objects(localstripe_url)
    refused_before = len(audit_rows(app))

    for rule, method, endpoint in routes:
        path = fill(rule, params)
        response = client.open(path, method=method, headers={
            "X-CSRFToken": csrf, "Accept": "application/json"}, data=body)
        where = f"{method} {path} ({endpoint}): {response.status_code} {response.get_data()[:200]!r}"
        assert response.status_code == 403, where
        answer = response.get_json()
        if path.startswith("/v1/billing_portal/"):  # Stripe's own paths answer in Stripe's shape
            answer = answer["error"]
        assert answer["code"] == "impersonation_read_only", where

    assert database_rows(app, without=("audit_events",)) == rows_before
    assert stripe_objects(localstripe_url) == stripe_before
    refusals = audit_rows(app)[refused_before:]
    assert [(r.meta["path"], r.meta["method"]) for r in refusals] == [
        (fill(rule, params), method) for rule, method, _ in routes]
    assert all(r.meta["outcome"] == "refused" and r.via == "impersonation" for r in refusals)
    assert all(r.staff_user_id == staff.user_id and r.impersonated_user_id == params["user_id"]
               and r.customer_id == params["customer_id"] and r.account_id == customer.account_id
               for r in refusals)
    # The billing actions that once leaked are refused like every other.
    endpoints = {r.meta["endpoint"] for r in refusals}
    assert {"billing.cancel", "billing.resume", "billing.portal", "billing.checkout",
            "billing.upgrade_submit", "billing.upgrade_confirm"} <= endpoints
    assert subscription(client.application.test_client(), customer)["cancelAtPeriodEnd"] is False


def test_a_route_added_later_is_refused_too(app, client, customer):
    """A new feature nobody marked as sensitive: it is refused while viewing as a customer."""
    extra = Blueprint("added_later", __name__)

    @extra.post("/added-later/keys")
    def add_key():
        issued = keys.issue_key(account=keys.get_account_key(
            customer.account_id, keys.list_keys(customer.account_id)[0].id).account, kind="usage")
        return jsonify(prefix=issued.key.prefix)

    app.register_blueprint(extra)
    staff = make_staff(app)
    csrf = view_as(client, app, staff, customer)
    before = database_rows(app, without=("audit_events",))
    response = client.post("/added-later/keys", headers={"X-CSRFToken": csrf})
    assert response.status_code == 403 and "read-only" in response.get_data(as_text=True)
    assert database_rows(app, without=("audit_events",)) == before
    [row] = audit_rows(app, action="added_later.add_key")
    assert row.meta["outcome"] == "refused" and row.staff_user_id == staff.user_id


def test_only_the_exits_pass_without_the_permission(app, client, customer):
    staff = make_staff(app)
    csrf = view_as(client, app, staff, customer)
    assert client.post("/staff/impersonation/stop", data={"csrf_token": csrf}).status_code == 303
    assert impersonate(client, app, customer.email).status_code == 303  # still logged in
    csrf = token(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert [r.action for r in audit_rows(app) if r.action.startswith("impersonation.s")] == [
        "impersonation.start", "impersonation.stop", "impersonation.start", "impersonation.stop"]


def test_with_the_permission_billing_actions_run_and_are_audited(app, client, subscribed, backend):
    customer, params = subscribed
    writer = make_staff(app, "senior@tally.test", permissions=("impersonate_write",))
    csrf = view_as(client, app, writer, customer)
    response = client.post("/billing/cancel", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert subscription(client.application.test_client(), customer)["cancelAtPeriodEnd"] is True
    portal = client.post("/billing/portal", data={"csrf_token": csrf})
    assert portal.status_code == 303 and "billing_portal" in portal.headers["Location"]

    [cancel] = audit_rows(app, action="billing.cancel")
    assert cancel.meta["outcome"] == "done" and cancel.meta["status"] == 303
    assert cancel.staff_user_id == writer.user_id and cancel.staff_email == writer.email
    assert cancel.impersonated_user_id == params["user_id"] and cancel.via == "impersonation"
    assert cancel.account_id == customer.account_id
    assert cancel.reason == "Ticket 4242: balance looks wrong"  # the impersonation's reason
    assert cancel.before["subscription"]["cancel_at_period_end"] is False
    assert cancel.after["subscription"]["cancel_at_period_end"] is True
    [opened] = audit_rows(app, action="billing.portal")
    assert opened.meta["outcome"] == "done" and opened.before == opened.after


def test_every_page_opened_is_recorded_however_it_is_fetched(app, client, subscribed):
    customer, params = subscribed
    staff = make_staff(app)
    view_as(client, app, staff, customer)  # opens "/"
    invoice = params["invoice_id"]
    assert client.get("/usage", headers={"HX-Request": "true", "HX-Target": "meters"}).status_code == 200
    assert client.get("/activity", headers={"Accept": "application/json"}).status_code == 200
    pdf = client.get(f"/billing/invoices/{invoice}/pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    for _ in range(3):  # looked at again within a minute: folded into the first row
        client.get("/usage", headers={"HX-Request": "true", "HX-Target": "meters"})
        client.get("/")
    client.get("/staff/")  # the staff member's own console is not a customer page
    views = audit_rows(app, action="impersonation.view")
    assert [(v.meta["path"], v.meta["fetched"]) for v in views] == [
        ("/", "page"), ("/usage", "htmx"), ("/activity", "json"),
        (f"/billing/invoices/{invoice}/pdf", "pdf")]
    assert all(v.staff_user_id == staff.user_id and v.impersonated_user_id == params["user_id"]
               for v in views)
