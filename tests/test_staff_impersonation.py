"""View as customer: reasons, both identities, the banner, read-only refusals for every
money and secret action, impersonate_write, Stop, expiry, and no staff-on-staff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from extensions import db
from models import Account, ApiKey, Impersonation
from models.base import utcnow
from services.errors import Forbidden
from services.ledger import entries as ledger
from services.staff import impersonation
from services.staff.audit import Actor
from tests.support.payments import pay
from tests.support.staff import (
    audit_rows,
    customer_id_of,
    impersonate,
    make_staff,
    staff_login,
    token,
    user_id_of,
)


@pytest.fixture
def staff(app):
    return make_staff(app)


@pytest.fixture
def writer(app):
    return make_staff(app, "senior@tally.test", permissions=("impersonate_write",))


def start(client, app, staff, customer) -> str:
    """Log staff in and view as the customer; returns a CSRF token from the customer's page."""
    staff_login(client, staff)
    response = impersonate(client, app, customer.email)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    return token(client.get("/").get_data(as_text=True))


def active_keys(app, account_id: str) -> list[str]:
    with app.app_context():
        prefixes = list(db.session.execute(select(ApiKey.prefix).where(
            ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))).scalars())
        db.session.remove()
    return prefixes


def test_a_reason_is_required(app, client, staff, customer):
    staff_login(client, staff)
    response = impersonate(client, app, customer.email, reason="  ")
    assert response.status_code == 400 and "Give a reason" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still the staff member, sent to the console
    assert audit_rows(app, action="impersonation.start") == []


def test_view_as_customer_shows_the_banner_on_every_page(app, client, staff, customer):
    start(client, app, staff, customer)
    for path in ("/", "/usage", "/topup", "/keys", "/plans"):
        page = client.get(path).get_data(as_text=True)
        assert 'data-testid="impersonation-banner"' in page, path
        assert "Viewing as Acme 1" in page and f"staff {staff.email}" in page
        assert "ends in" in page and ">Stop</button>" in page and "Read-only" in page
    # The staff pages stay reachable (the true user is staff) and still show the banner.
    assert 'data-testid="impersonation-banner"' in client.get("/staff/").get_data(as_text=True)

    start_row = audit_rows(app, action="impersonation.start")[0]
    assert start_row.staff_user_id == staff.user_id
    assert start_row.impersonated_user_id == user_id_of(app, customer.email)
    assert start_row.customer_id == customer_id_of(app, customer.account_id)
    assert start_row.reason == "Ticket 4242: balance looks wrong"
    assert start_row.ip == "127.0.0.1" and start_row.user_agent
    views = audit_rows(app, action="impersonation.view")
    # start() opened the dashboard, then the five pages above, in order; the dashboard's
    # second look within a minute is folded into its first row.
    assert [v.meta["path"] for v in views] == ["/", "/usage", "/topup", "/keys", "/plans"]
    assert {v.meta["fetched"] for v in views} == {"page"}
    assert all(v.staff_user_id == staff.user_id and v.impersonated_user_id for v in views)


def test_impersonation_lasts_the_configured_minutes(app, client, staff, customer):
    start(client, app, staff, customer)
    with app.app_context():
        row = db.session.execute(select(Impersonation)).scalar_one()
        assert row.expires_at - row.started_at == timedelta(minutes=30)
        db.session.remove()


class TestShorterLimit:
    @pytest.fixture
    def app_config(self):
        return {"IMPERSONATION_MINUTES": 5}

    def test_configurable(self, app, client, staff, customer):
        start(client, app, staff, customer)
        with app.app_context():
            row = db.session.execute(select(Impersonation)).scalar_one()
            assert row.expires_at - row.started_at == timedelta(minutes=5)
            db.session.remove()
        assert "ends in\n    <time" in client.get("/").get_data(as_text=True)


def test_staff_cannot_view_as_another_staff_member(app, client, staff):
    other = make_staff(app, "other@tally.test")
    staff_login(client, staff)
    csrf = token(client.get("/staff/").get_data(as_text=True))
    response = client.post(f"/staff/users/{other.user_id}/impersonate",
                           data={f"{other.user_id}-imp-reason": "curious",
                                 f"{other.user_id}-imp-csrf_token": csrf})
    assert response.status_code == 404
    with app.app_context():  # and the service refuses it whoever calls it
        me = db.session.get(impersonation.User, staff.user_id)
        with pytest.raises(Forbidden) as refused:
            impersonation.start(Actor(me, "console"), other.user_id, "curious", minutes=30)
        assert refused.value.code == "cannot_impersonate_staff"
        db.session.remove()
    assert audit_rows(app, action="impersonation.start") == []


def test_customers_cannot_impersonate(app, client, customer, make_customer):
    from tests.conftest import login

    other = make_customer("Other")
    csrf = login(client, customer)
    uid = user_id_of(app, other.email)
    response = client.post(f"/staff/users/{uid}/impersonate",
                           data={f"{uid}-imp-reason": "let me", f"{uid}-imp-csrf_token": csrf})
    assert response.status_code == 404


# Read-only refusals -----------------------------------------------------------------


def refused_json(response) -> None:
    assert response.status_code == 403, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == "impersonation_read_only" and body["error"] and body["message"]
    assert "read-only" in body["message"]


@pytest.mark.money
def test_top_up_is_refused_while_read_only(app, client, staff, customer, stripe_client, backend):
    csrf = start(client, app, staff, customer)
    intent = client.post("/topup/intent", data={"amount": "25.00", "csrf_token": csrf},
                         headers={"Accept": "application/json"})
    refused_json(intent)
    # A PaymentIntent the customer made themselves still cannot be confirmed by staff.
    created = client.application.test_client().post(
        "/v1/billing/payment-intents", json={"amount": 2500}, headers=customer.headers).get_json()
    assert pay(stripe_client, created["payment_intent_id"]) == "succeeded"
    confirm = client.post("/topup/confirm", headers={"Accept": "application/json"},
                          data={"payment_intent_id": created["payment_intent_id"],
                                "csrf_token": csrf})
    refused_json(confirm)
    with app.app_context():
        assert ledger.current_balance(customer.account_id) == 0
        db.session.remove()
    refusals = audit_rows(app, action="topup.intent") + audit_rows(app, action="topup.confirm")
    assert [r.meta["outcome"] for r in refusals] == ["refused", "refused"]
    assert all(r.staff_user_id == staff.user_id and r.impersonated_user_id for r in refusals)


@pytest.mark.parametrize("action", ["create", "rotate", "revoke"])
def test_key_actions_are_refused_while_read_only(app, client, staff, customer, action):
    csrf = start(client, app, staff, customer)
    key_id = client.application.test_client().get("/v1/keys", headers=customer.headers
                                                  ).get_json()["data"][0]["id"]
    before = active_keys(app, customer.account_id)
    path = {"create": "/keys", "rotate": f"/keys/{key_id}/rotate",
            "revoke": f"/keys/{key_id}/revoke"}[action]
    # htmx (as the keys page sends it): a notice for the banner, status 403.
    hx = client.post(path, data={"csrf_token": csrf, "name": "x", "kind": "usage"},
                     headers={"HX-Request": "true", "HX-Target": "keys_panel"})
    assert hx.status_code == 403
    assert hx.headers["HX-Retarget"] == "#impersonation-notice"
    assert "read-only" in hx.get_data(as_text=True) and "<html" not in hx.get_data(as_text=True)
    # A plain form post: the error page.
    plain = client.post(path, data={"csrf_token": csrf, "name": "x", "kind": "usage"})
    assert plain.status_code == 403 and "read-only" in plain.get_data(as_text=True)
    # JSON callers: the JSON error.
    refused_json(client.post(path, data={"csrf_token": csrf}, headers={"Accept": "application/json"}))
    assert active_keys(app, customer.account_id) == before
    rows = audit_rows(app, action=f"key.{action}")
    assert len(rows) == 3 and {r.meta["outcome"] for r in rows} == {"refused"}
    # The customer's key still works: nothing was rotated or revoked.
    assert client.application.test_client().get("/v1/me", headers=customer.headers).status_code == 200


def test_settings_change_is_refused_while_read_only(app, client, staff, customer):
    csrf = start(client, app, staff, customer)
    response = client.post("/usage/settings", data={"csrf_token": csrf, "time_zone": "Asia/Tokyo",
                                                     "alert_thresholds": "50", "spend_cap": ""})
    assert response.status_code == 403
    with app.app_context():
        assert db.session.get(Account, customer.account_id).time_zone == "UTC"
        db.session.remove()
    assert audit_rows(app, action="settings.update")[0].meta["outcome"] == "refused"


# With impersonate_write ---------------------------------------------------------------


def test_write_permission_allows_and_audits_with_both_identities(app, client, writer, customer):
    csrf = start(client, app, writer, customer)
    assert "Read-only" not in client.get("/").get_data(as_text=True)
    key_id = client.application.test_client().get("/v1/keys", headers=customer.headers
                                                  ).get_json()["data"][0]["id"]
    before = active_keys(app, customer.account_id)
    rotated = client.post(f"/keys/{key_id}/rotate", data={"csrf_token": csrf},
                          headers={"HX-Request": "true", "HX-Target": "keys_panel"})
    assert rotated.status_code == 200 and "tly_" in rotated.get_data(as_text=True)
    after = active_keys(app, customer.account_id)
    assert after != before and len(after) == 1
    row = audit_rows(app, action="key.rotate")[0]
    assert row.staff_user_id == (writer.user_id) and row.staff_email == writer.email
    assert row.impersonated_user_id == user_id_of(app, customer.email)
    assert row.via == "impersonation" and row.meta["outcome"] == "done"
    assert row.before["keys"] == before and row.after["keys"] == after
    assert row.reason == "Ticket 4242: balance looks wrong"  # the impersonation's reason

    saved = client.post("/usage/settings", data={"csrf_token": csrf, "time_zone": "Asia/Tokyo",
                                                 "alert_thresholds": "50, 100", "spend_cap": ""})
    assert saved.status_code == 303
    change = audit_rows(app, action="settings.update")[0]
    assert change.before["time_zone"] == "UTC" and change.after["time_zone"] == "Asia/Tokyo"


@pytest.mark.money
def test_write_permission_allows_a_top_up_intent(app, client, writer, customer, backend):
    csrf = start(client, app, writer, customer)
    response = client.post("/topup/intent", data={"amount": "25.00", "csrf_token": csrf},
                           headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.get_json()["payment_intent_id"].startswith("pi_")
    assert audit_rows(app, action="topup.intent")[0].meta["outcome"] == "done"


def test_not_impersonating_changes_nothing_for_customers(app, client, customer):
    from tests.conftest import login

    csrf = login(client, customer)
    response = client.post("/keys", data={"csrf_token": csrf, "name": "mine", "kind": "usage"})
    assert response.status_code == 200
    assert audit_rows(app) == []


# Stop and expiry ----------------------------------------------------------------------


def test_stop_returns_to_the_console(app, client, staff, customer):
    csrf = start(client, app, staff, customer)
    with client.session_transaction() as session:
        stale = dict(session)  # a copy of the cookie while impersonating
    response = client.post("/staff/impersonation/stop", data={"csrf_token": csrf})
    customer_id = customer_id_of(app, customer.account_id)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/staff/customers/{customer_id}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You stopped viewing as the customer" in page
    assert 'data-testid="impersonation-banner"' not in page
    assert client.get("/").headers["Location"].endswith("/staff/")  # staff again
    stop = audit_rows(app, action="impersonation.stop")
    assert len(stop) == 1 and stop[0].staff_user_id == staff.user_id
    assert stop[0].impersonated_user_id == user_id_of(app, customer.email)
    # Replaying the old cookie does not bring the view back: the row decides.
    with client.session_transaction() as session:
        session.update(stale)
    assert client.get("/").status_code in (302, 303)
    assert 'data-testid="impersonation-banner"' not in client.get("/staff/").get_data(as_text=True)


def test_expiry_ends_the_view(app, client, staff, customer):
    start(client, app, staff, customer)
    with app.app_context():
        db.session.execute(update(Impersonation).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        db.session.remove()
    response = client.get("/keys")
    customer_id = customer_id_of(app, customer.account_id)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/staff/customers/{customer_id}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "its time ran out" in page and 'data-testid="impersonation-banner"' not in page
    expired = audit_rows(app, action="impersonation.expire")
    assert len(expired) == 1 and expired[0].staff_user_id == staff.user_id
    assert client.get("/keys").status_code == 404  # a staff member again


def test_logging_out_stops_the_view(app, client, staff, customer):
    csrf = start(client, app, staff, customer)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    stop = audit_rows(app, action="impersonation.stop")
    assert len(stop) == 1 and stop[0].staff_user_id == staff.user_id
    with app.app_context():
        assert db.session.execute(select(Impersonation.end_reason)).scalar_one() == "stopped"
        db.session.remove()


def test_expired_view_refuses_json_actions(app, client, writer, customer):
    csrf = start(client, app, writer, customer)
    with app.app_context():
        db.session.execute(update(Impersonation).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        db.session.remove()
    response = client.post("/topup/intent", data={"amount": "25.00", "csrf_token": csrf},
                           headers={"Accept": "application/json"})
    assert response.status_code == 403 and response.get_json()["code"] == "impersonation_ended"
    assert audit_rows(app, action="topup.intent") == []


def test_expiry_sends_htmx_requests_to_the_console(app, client, staff, customer):
    start(client, app, staff, customer)
    with app.app_context():
        db.session.execute(update(Impersonation).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        db.session.remove()
    response = client.get("/", headers={"HX-Request": "true", "HX-Target": "balance"})
    customer_id = customer_id_of(app, customer.account_id)
    assert response.headers["HX-Redirect"] == f"/staff/customers/{customer_id}"
    assert len(audit_rows(app, action="impersonation.expire")) == 1
