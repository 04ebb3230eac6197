"""Webhook events in any API version: Stripe renders an event in the API version set on the
webhook endpoint, which need not be the one Tally speaks (2026-10-28.endive).

Tally reads only an event's envelope (id, type, api_version, and the id and `object` of
`data.object`) and fetches the object itself in its own version, so an event in an older
shape is handled like one in the pinned shape. An event whose envelope Tally cannot read is
stored with a clear error, listed under Failed in the staff inbox, and never silently
ignored.
"""

from __future__ import annotations

import json

import pytest

from extensions import db
from models import WebhookEvent
from services.billing.stripe_objects import API_VERSION
from tests.conftest import WEBHOOK_SECRET
from tests.support.localstripe import simulate_renewal
from tests.support.staff import make_staff, staff_login
from tests.support.stripe_events import deliver, event_payload

pytestmark = pytest.mark.money

OLD_VERSION = "2020-08-27"


def post_event(client, event: dict) -> dict:
    return deliver(client, json.dumps(event).encode(), WEBHOOK_SECRET)


def subscribed(client, customer) -> str:
    response = client.post("/v1/billing/setup", headers=customer.headers,
                           json={"payment_method_id": "pm_card_visa"})
    assert response.status_code == 200, response.get_json()
    return client.get("/v1/billing/subscription", headers=customer.headers).get_json()["id"]


def invoice_of_2020(pinned: dict) -> dict:
    """The same invoice as an endpoint on API version 2020-08-27 receives it: the
    subscription at the top, `payment_intent` and `charge`, no `parent`, lines with `type`,
    `subscription_item`, `plan` and `price`."""
    invoice = {k: v for k, v in pinned.items() if k not in ("parent", "amount_overpaid")}
    invoice.update(subscription=pinned["parent"]["subscription_details"]["subscription"],
                   payment_intent=None, charge=None, paid=pinned["status"] == "paid",
                   closed=True, date=pinned["created"], tax=0)
    invoice["lines"] = {**pinned["lines"], "data": [
        {**{k: v for k, v in line.items() if k not in ("parent", "pricing")},
         "type": "subscription", "proration": False,
         "subscription_item": line["parent"]["subscription_item_details"]["subscription_item"],
         "price": {"id": line["pricing"]["price_details"]["price"], "object": "price"}}
        for line in pinned["lines"]["data"]]}
    return invoice


def test_an_invoice_event_in_the_pinned_version_and_in_2020s_shape_both_renew(
        app, client, customer, localstripe_url):
    sub_id = subscribed(client, customer)
    renewed = simulate_renewal(localstripe_url, sub_id, "paid")
    pinned = json.loads(event_payload(localstripe_url, "invoice.paid", renewed["id"]))
    assert pinned["api_version"] == API_VERSION and "subscription" not in pinned["data"]["object"]

    old = {**pinned, "id": pinned["id"] + "old", "api_version": OLD_VERSION,
           "data": {"object": invoice_of_2020(pinned["data"]["object"])}}
    answer = post_event(client, old)

    assert (answer["status"], answer["type"]) == ("processed", "invoice.paid"), answer
    assert answer["detail"].startswith("subscription active; invoice ")
    invoices = client.get("/v1/billing/invoices", headers=customer.headers).get_json()["data"]
    assert [(i["kind"], i["stripe_invoice_number"]) for i in invoices] == [
        ("renewal", renewed["number"]), ("subscription", invoices[1]["stripe_invoice_number"])]
    # The same invoice in the pinned shape changes nothing more: it is mirrored once.
    again = post_event(client, pinned)
    assert again["status"] == "processed"
    assert len(client.get("/v1/billing/invoices", headers=customer.headers).get_json()["data"]) == 2
    with app.app_context():
        assert db.session.get(WebhookEvent, old["id"]).api_version == OLD_VERSION
        assert db.session.get(WebhookEvent, pinned["id"]).api_version == API_VERSION
        assert db.session.get(WebhookEvent, old["id"]).last_error is None
        db.session.remove()


def test_a_failed_renewal_in_2020s_shape_starts_the_grace_period(client, customer, localstripe_url):
    sub_id = subscribed(client, customer)
    failed = simulate_renewal(localstripe_url, sub_id, "failed")
    pinned = json.loads(event_payload(localstripe_url, "invoice.payment_failed", failed["id"]))
    old = {**pinned, "api_version": OLD_VERSION,
           "data": {"object": invoice_of_2020(pinned["data"]["object"])}}

    assert post_event(client, old)["detail"] == "subscription past_due"
    assert client.get("/v1/billing/subscription", headers=customer.headers).get_json()[
        "status"] == "past_due"
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "pro"  # grace


def test_a_subscription_event_in_2020s_shape(client, customer, localstripe_url):
    """2020's subscription has its period at the top; Tally reads it from Stripe anyway."""
    sub_id = subscribed(client, customer)
    pinned = json.loads(event_payload(localstripe_url, "customer.subscription.created", sub_id))
    item = pinned["data"]["object"]["items"]["data"][0]
    old_sub = {**pinned["data"]["object"], "current_period_start": item["current_period_start"],
               "current_period_end": item["current_period_end"], "plan": item["plan"]}
    answer = post_event(client, {**pinned, "api_version": OLD_VERSION, "data": {"object": old_sub}})
    assert (answer["status"], answer["detail"]) == ("processed", "subscription active")


@pytest.mark.parametrize(("event", "why"), [
    ({"id": "evt_thin", "object": "v2.core.event", "type": "invoice.paid",
      "related_object": {"id": "in_1", "type": "invoice", "url": "/v1/invoices/in_1"}},
     "a thin event (no data.object)"),
    ({"id": "evt_wrong", "object": "event", "type": "invoice.paid", "api_version": "2099-01-01",
      "data": {"object": {"id": "sub_1", "object": "subscription"}}},
     "data.object is not an invoice"),
    ({"id": "evt_noid", "object": "event", "type": "customer.subscription.updated",
      "api_version": OLD_VERSION, "data": {"object": {"object": "subscription"}}},
     "data.object has no id"),
])
def test_an_event_tally_cannot_read_is_recorded_with_an_error_not_ignored(
        app, client, event, why):
    answer = post_event(client, event)

    assert answer["status"] == "refused", why
    assert answer["detail"].startswith(f"Tally cannot read this {event['type']} event")
    assert API_VERSION in answer["detail"]
    with app.app_context():
        row = db.session.get(WebhookEvent, event["id"])
        assert row.processed_at is not None
        assert row.last_error.startswith("unsupported_event_shape: Tally cannot read this")
        db.session.remove()
    # Delivered again (Stripe retries, staff replay), it stays refused, with its error.
    assert post_event(client, event)["status"] == "refused"


def test_a_stored_event_that_is_not_an_event_is_refused_on_replay(app):
    """A row stored before its payload could be checked (or by hand): replaying it records
    why instead of failing."""
    from services.billing import webhooks

    with app.app_context():
        db.session.add(WebhookEvent(id="evt_by_hand", type="invoice.paid", payload="not json"))
        db.session.commit()
        outcome = webhooks.process("evt_by_hand")
        assert (outcome.status, outcome.type) == ("refused", "invoice.paid")
        assert "data.object is not an invoice" in outcome.detail
        assert db.session.get(WebhookEvent, "evt_by_hand").last_error.startswith(
            "unsupported_event_shape: ")
        db.session.remove()


def test_the_inbox_shows_the_pinned_version_and_each_events(app, client, customer, localstripe_url):
    sub_id = subscribed(client, customer)
    pinned = json.loads(event_payload(localstripe_url, "customer.subscription.created", sub_id))
    post_event(client, pinned)
    post_event(client, {**pinned, "id": "evt_from_2020", "api_version": OLD_VERSION})
    post_event(client, {"id": "evt_thin", "object": "v2.core.event", "type": "invoice.paid"})
    staff_login(client, make_staff(app))

    inbox = client.get("/staff/webhooks").get_data(as_text=True)
    assert f"Tally reads Stripe in API version <code>{API_VERSION}</code>" in inbox
    assert f"<code>{OLD_VERSION}</code> <span class=\"badge badge-pending\"" in inbox
    failed = client.get("/staff/webhooks?status=failed").get_data(as_text=True)
    assert "evt_thin" in failed and "evt_from_2020" not in failed and pinned["id"] not in failed
    assert "unsupported_event_shape" in failed
    detail = client.get("/staff/webhooks/evt_from_2020").get_data(as_text=True)
    assert f"<code>{OLD_VERSION}</code>" in detail and f"Tally reads <code>{API_VERSION}</code>" in detail
