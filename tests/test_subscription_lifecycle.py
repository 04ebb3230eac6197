"""A Pro subscription's whole life, end to end, through the shapes of Stripe API version
2026-10-28.endive: subscribe, renew (the new period's invoice paid, learnt by webhook),
fail a renewal (grace period), recover, cancel at the period end and reach it.

Tally runs as a live HTTP server; the simulator sends its own signed webhook deliveries to
it, as Stripe would, so nothing here hands Tally an event. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from extensions import db
from models import Account, WebhookEvent
from tests.e2e.helpers import api_get, api_post
from tests.support.localstripe import simulate_renewal

pytestmark = pytest.mark.money

T = TypeVar("T")
DELIVERY_WAIT = 30.0  # the simulator waits 1 s before each delivery


def eventually(check: Callable[[], T], what: str) -> T:
    """Wait for a webhook delivery to have its effect; fail naming `what` if it never does."""
    deadline = time.monotonic() + DELIVERY_WAIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.1)


class Customer:
    """What the customer (or their script) sees, over HTTP."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url, self.api_key = url, api_key

    def get(self, path: str) -> dict[str, Any]:
        status, body = api_get(self.url, path, self.api_key)
        assert status == 200, body
        return body

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, answer = api_post(self.url, path, self.api_key, body or {})
        assert status == 200, answer
        return answer

    def subscription(self) -> dict[str, Any]:
        return self.get("/v1/billing/subscription")

    def tier(self) -> str:
        return str(self.get("/v1/me")["tier"])

    def invoices(self) -> list[tuple[str, str | None, int, str]]:
        """(kind, Stripe's number, amount, status), newest first."""
        return [(i["kind"], i["stripe_invoice_number"], i["amount"], i["status"])
                for i in self.get("/v1/billing/invoices")["data"]]


def grace_ends(app, account_id: str) -> datetime | None:
    with app.app_context():
        ends = db.session.get(Account, account_id).grace_period_ends_at
        db.session.remove()
    return ends


def test_subscribe_renew_fail_recover_cancel_and_end(
        app, live_server, customer, stripe_client, localstripe_url):
    me = Customer(live_server.url, customer.api_key)

    # Subscribe: Pro at once; the first invoice is the subscription's, not a renewal.
    assert me.post("/v1/billing/setup", {"payment_method_id": "pm_card_visa"})["tier"] == "pro"
    first = me.subscription()
    first_invoice = stripe_client.v1.invoices.retrieve(
        str(stripe_client.v1.subscriptions.retrieve(first["id"]).latest_invoice))
    assert first_invoice.parent.subscription_details.subscription == first["id"]
    assert me.invoices() == [("subscription", first_invoice.number, 4900, "paid")]

    # Renew: the period moves on and its invoice, paid, arrives by webhook.
    renewed = simulate_renewal(localstripe_url, first["id"], "paid")
    eventually(lambda: len(me.invoices()) == 2, "the renewal invoice mirrored from invoice.paid")
    assert me.invoices()[0] == ("renewal", renewed["number"], 4900, "paid")
    second = eventually(lambda: (s := me.subscription())["currentPeriodStart"] ==
                        first["currentPeriodEnd"] and s, "the new period from the item")
    assert second["currentPeriodEnd"] > first["currentPeriodEnd"]
    assert (second["status"], me.tier()) == ("active", "pro")

    # A renewal fails: past_due, still Pro for the grace period.
    failed = simulate_renewal(localstripe_url, first["id"], "failed")
    eventually(lambda: me.subscription()["status"] == "past_due", "invoice.payment_failed")
    assert me.tier() == "pro" and grace_ends(app, customer.account_id) is not None
    assert len(me.invoices()) == 2  # nothing paid, nothing issued

    # Recover: Stripe retries the card and the open invoice is paid.
    stripe_client.v1.invoices.pay(failed["id"])
    eventually(lambda: me.subscription()["status"] == "active", "the recovered invoice.paid")
    eventually(lambda: len(me.invoices()) == 3, "the recovered invoice mirrored")
    assert me.invoices()[0] == ("renewal", failed["number"], 4900, "paid")
    assert me.tier() == "pro" and grace_ends(app, customer.account_id) is None

    # Cancel at the period end: still Pro until then.
    cancelled = me.post("/v1/billing/cancel")
    assert cancelled["cancelAt"] == me.subscription()["currentPeriodEnd"]
    assert me.subscription()["cancelAtPeriodEnd"] is True and me.tier() == "pro"

    # The period ends: the subscription ends with it, and the account is Free.
    ended = simulate_renewal(localstripe_url, first["id"], "paid")
    assert (ended["object"], ended["status"]) == ("subscription", "canceled")
    eventually(lambda: me.subscription()["status"] == "canceled", "customer.subscription.deleted")
    assert me.tier() == "free" and len(me.invoices()) == 3  # nothing charged for the end

    # Every delivery was understood: none stored with an error. (Each handler re-reads
    # Stripe, so a late event can end the subscription before `deleted` itself arrives.)
    expected = {"invoice.paid", "invoice.payment_failed", "customer.subscription.updated",
                "customer.subscription.deleted"}

    def all_processed() -> list[WebhookEvent]:
        with app.app_context():
            rows = list(db.session.execute(select(WebhookEvent)).scalars())
            db.session.remove()
        done = expected <= {r.type for r in rows} and all(r.processed_at for r in rows)
        return rows if done else []

    rows = eventually(all_processed, "every delivery processed")
    assert [(r.type, r.last_error) for r in rows if r.last_error] == []
    assert {r.api_version for r in rows} == {"2026-10-28.endive"}
