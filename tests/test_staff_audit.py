"""The audit log (append-only, paged, filtered, CSV), the webhook inbox with Replay, and the
`reconcile` and `staff-permission` commands."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DatabaseError

from extensions import db
from models import AuditEvent, User, WebhookEvent
from models.audit import AuditLogIsAppendOnly
from models.base import utcnow
from services.ledger import entries as ledger
from services.staff import audit
from services.staff.audit import Actor
from tests.support.payments import pay
from tests.support.staff import audit_rows, customer_id_of, make_staff, staff_login, token
from tests.support.stripe_events import event_payload


@pytest.fixture
def staff(app):
    return make_staff(app)


def seed_rows(app, staff, n: int, **fields) -> None:
    with app.app_context():
        user = db.session.get(User, staff.user_id)
        for i in range(n):
            audit.record(Actor(user, "console", "10.0.0.1", "pytest"), fields.get("action", "test.action"),
                         reason=f"row {i}", customer_id=fields.get("customer_id"))
        db.session.commit()
        db.session.remove()


@pytest.mark.money
def test_the_log_cannot_be_changed_or_deleted(app, staff, backend):
    seed_rows(app, staff, 1)
    with app.app_context():
        row = db.session.execute(select(AuditEvent)).scalar_one()
        row.reason = "rewritten"
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.execute(select(AuditEvent)).scalar_one())
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.commit()
        db.session.rollback()
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.execute(update(AuditEvent).values(reason="bulk"))
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.execute(delete(AuditEvent))
        db.session.rollback()
        # Beneath the ORM, the database refuses it too (a trigger).
        for sql in ("UPDATE audit_events SET reason = 'raw'", "DELETE FROM audit_events"):
            with db.engine.connect() as connection, pytest.raises(DatabaseError):
                connection.execute(text(sql))
        assert db.session.execute(select(AuditEvent.reason)).scalar_one() == "row 0"
        db.session.remove()


def test_audit_page_pages_and_filters(app, client, staff, customer):
    other = make_staff(app, "other@tally.test")
    customer_id = customer_id_of(app, customer.account_id)
    seed_rows(app, staff, 60)
    seed_rows(app, other, 3, action="grace.extend", customer_id=customer_id)
    staff_login(client, staff)

    first = client.get("/staff/audit").get_data(as_text=True)
    assert first.count('data-testid="audit-row"') == 50
    assert "Older →" in first and "← Newer" not in first
    older_link = first.split('href="/staff/audit?before=')[1].split('"')[0]
    second = client.get(f"/staff/audit?before={older_link}").get_data(as_text=True)
    assert second.count('data-testid="audit-row"') == 13 and "← Newer" in second
    assert "Older →" not in second

    by_staff = client.get(f"/staff/audit?staff={other.user_id}").get_data(as_text=True)
    assert by_staff.count('data-testid="audit-row"') == 3
    by_customer = client.get(f"/staff/audit?customer={customer_id}").get_data(as_text=True)
    assert by_customer.count('data-testid="audit-row"') == 3
    by_action = client.get("/staff/audit?action=grace.extend").get_data(as_text=True)
    assert by_action.count('data-testid="audit-row"') == 3
    today = utcnow().date()
    in_range = client.get(f"/staff/audit?from={today}&to={today}").get_data(as_text=True)
    assert in_range.count('data-testid="audit-row"') == 50
    tomorrow = today + timedelta(days=1)
    assert 'data-testid="audit-row"' not in client.get(f"/staff/audit?from={tomorrow}").get_data(
        as_text=True)
    bad = client.get("/staff/audit?from=yesterday").get_data(as_text=True)
    assert "from must be a date" in bad


def test_csv_export_has_every_filtered_row_and_is_itself_audited(app, client, staff, customer):
    seed_rows(app, staff, 3)
    with app.app_context():
        user = db.session.get(User, staff.user_id)
        audit.record(Actor(user, "console", "10.0.0.1", "pytest"), "test.action",
                     reason="=HYPERLINK(\"http://evil\")", before={"balance": -5}, after={"balance": 0})
        db.session.commit()
        db.session.remove()
    staff_login(client, staff)
    response = client.get("/staff/audit.csv?action=test.action")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 4
    assert rows[0]["reason"].startswith("'=HYPERLINK")  # formulas are neutralised
    assert json.loads(rows[0]["before"]) == {"balance": -5}
    assert {r["staff_email"] for r in rows} == {staff.email}
    assert rows[1]["ip"] == "10.0.0.1" and rows[1]["user_agent"] == "pytest"
    exports = audit_rows(app, action="audit.export")
    assert len(exports) == 1 and exports[0].meta == {"action": "test.action"}


def store_event(app, event_id: str, event_type: str, payload: str, processed: bool = False,
                error: str | None = None) -> None:
    with app.app_context():
        db.session.add(WebhookEvent(id=event_id, type=event_type, payload=payload,
                                    processed_at=utcnow() if processed else None, last_error=error))
        db.session.commit()
        db.session.remove()


@pytest.mark.money
def test_webhook_inbox_lists_shows_and_replays_once(app, client, staff, customer, stripe_client,
                                                    localstripe_url, backend):
    created = client.post("/v1/billing/payment-intents", json={"amount": 3000},
                          headers=customer.headers).get_json()
    pi = created["payment_intent_id"]
    assert pay(stripe_client, pi) == "succeeded"
    payload = event_payload(localstripe_url, "payment_intent.succeeded", pi).decode()
    event_id = json.loads(payload)["id"]
    # As if the delivery had been stored but its processing failed (Stripe was down).
    store_event(app, event_id, "payment_intent.succeeded", payload, error="stripe_unavailable")
    store_event(app, "evt_other", "customer.created", '{"id": "evt_other"}', processed=True)

    staff_login(client, staff)
    listing = client.get("/staff/webhooks").get_data(as_text=True)
    assert event_id in listing and "evt_other" in listing and "stripe_unavailable" in listing
    failed = client.get("/staff/webhooks?status=failed").get_data(as_text=True)
    assert event_id in failed and "evt_other" not in failed
    detail = client.get(f"/staff/webhooks/{event_id}").get_data(as_text=True)
    assert pi in detail and "&#34;object&#34;: &#34;event&#34;" in detail  # the raw payload
    assert client.get("/staff/webhooks/evt_nope").status_code == 404

    csrf = token(detail)
    for _ in range(3):
        replay = client.post(f"/staff/webhooks/{event_id}/replay", data={"csrf_token": csrf})
        assert replay.status_code == 303
    assert client.get("/v1/billing/balance", headers=customer.headers).get_json()["balance"] == 3000
    page = client.get(f"/staff/webhooks/{event_id}").get_data(as_text=True)
    assert "Already processed" in page
    with app.app_context():
        row = db.session.get(WebhookEvent, event_id)
        assert row.processed_at is not None and row.last_error is None
        assert ledger.ledger_sum(customer.account_id) == 3000
        db.session.remove()
    replays = audit_rows(app, action="webhook.replay")
    assert [r.meta["outcome"] for r in replays] == ["processed", "duplicate", "duplicate"]
    assert replays[0].before["last_error"] == "stripe_unavailable"


# reconcile ----------------------------------------------------------------------------


def run_cli(app, *args: str) -> dict:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


@pytest.mark.money
def test_reconcile_finds_and_credits_a_lost_top_up_once(app, client, customer, make_customer,
                                                        stripe_client, backend):
    lost = client.post("/v1/billing/payment-intents", json={"amount": 4200},
                       headers=customer.headers).get_json()["payment_intent_id"]
    assert pay(stripe_client, lost) == "succeeded"  # paid; no confirm call, no webhook
    unpaid = client.post("/v1/billing/payment-intents", json={"amount": 1000},
                         headers=customer.headers).get_json()["payment_intent_id"]
    other = make_customer("Other")
    fine = client.post("/v1/billing/payment-intents", json={"amount": 700},
                       headers=other.headers).get_json()["payment_intent_id"]
    assert pay(stripe_client, fine) == "succeeded"
    assert client.post("/v1/billing/confirm-payment", headers=other.headers,
                       json={"payment_intent_id": fine}).get_json()["credited"] is True

    listed = run_cli(app, "reconcile")
    assert listed["applied"] is False and listed["checked"] == 2  # the credited one is skipped
    assert [f["payment_intent_id"] for f in listed["uncredited"]] == [lost]
    assert listed["uncredited"][0]["amount"] == 4200 and listed["credited"] == 0
    assert unpaid not in json.dumps(listed)
    assert client.get("/v1/billing/balance", headers=customer.headers).get_json()["balance"] == 0

    applied = run_cli(app, "reconcile", "--apply")
    assert applied["applied"] is True and applied["credited"] == 1
    assert applied["uncredited"][0]["credited"] is True
    again = run_cli(app, "reconcile", "--apply")
    assert again["uncredited"] == [] and again["credited"] == 0
    assert client.get("/v1/billing/balance", headers=customer.headers).get_json()["balance"] == 4200
    with app.app_context():
        assert ledger.ledger_sum(customer.account_id) == 4200 == ledger.current_balance(customer.account_id)
        db.session.remove()
    # The webhook arriving late credits nothing more.
    assert client.post("/v1/billing/confirm-payment", headers=customer.headers,
                       json={"payment_intent_id": lost}).get_json()["credited"] is False
    rows = audit_rows(app, action="reconcile.credit")
    assert len(rows) == 1 and rows[0].via == "cli" and rows[0].after == {"balance": 4200}
    assert run_cli(app, "reconcile", "--days", "0")["checked"] == 1  # only the unpaid one is left


def test_staff_permission_command(app):
    staff = make_staff(app)
    granted = run_cli(app, "staff-permission", "--email", staff.email, "--grant", "impersonate_write")
    assert granted == {"email": staff.email, "permissions": ["impersonate_write"]}
    revoked = run_cli(app, "staff-permission", "--email", staff.email, "--revoke", "impersonate_write")
    assert revoked["permissions"] == []
    unknown = app.test_cli_runner().invoke(args=["staff-permission", "--email", staff.email,
                                                 "--grant", "god_mode"])
    assert unknown.exit_code != 0 and "Unknown permission" in unknown.output
    nobody = app.test_cli_runner().invoke(args=["staff-permission", "--email", "x@y.example",
                                                "--grant", "impersonate_write"])
    assert nobody.exit_code != 0 and "No staff user" in nobody.output
    rows = audit_rows(app, action="staff.permission")
    assert [r.after["permissions"] for r in rows] == [["impersonate_write"], []]
