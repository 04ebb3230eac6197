"""The staff console in Chromium: search as you type, view as a customer with the banner,
refused top-up and key rotation while read-only, Stop; and screenshots of every staff
page at desktop and phone widths (artifacts/screenshots/staff-*.png)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from extensions import db
from models import Account, User, WebhookEvent
from models.base import utcnow
from models.billing import INVOICE_RENEWAL, INVOICE_SUBSCRIPTION
from services.billing import invoices
from services.billing.stripe_objects import API_VERSION
from services.ledger import grants
from services.staff import audit
from services.staff.audit import Actor
from tests.e2e.helpers import DESKTOP, PAY, PHONE, SCREENSHOTS, VISA, balance, fill_card
from tests.support.staff import make_staff

REFUSAL = "not allowed while you view as a customer"


STICKING_OUT = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll('body *')]
    .filter((el) => el.getClientRects().length && el.getBoundingClientRect().right > width + 1)
    .map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')).slice(0, 5);
}"""


def shoot(page: Any, name: str, size: str) -> None:
    """A full-page PNG; nothing may stick out to the right or make the page scroll sideways."""
    page.screenshot(path=SCREENSHOTS / f"{name}-{size}.png", full_page=True,
                    animations="disabled", caret="hide")
    assert page.evaluate(STICKING_OUT) == [], f"{name} at {size} is wider than the window"
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls sideways"


def staff_log_in(page: Any, staff: Any) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(staff.email)
    page.get_by_label("Password").fill(staff.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/staff/")
    expect(page.get_by_role("heading", name="Customers")).to_be_visible()


def open_customer(page: Any, customer: Any) -> None:
    search = page.get_by_role("searchbox", name="Search customers")
    page.evaluate("window.__marker = 'no-reload'")
    search.press_sequentially(customer.email.split("@")[0], delay=20)
    rows = page.get_by_test_id("customer-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(customer.email)
    assert page.evaluate("window.__marker") == "no-reload"  # htmx swapped the results in place
    expect(page).to_have_url(re.compile(r"/staff/\?q="))  # and the URL follows the search
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme 1")


def start_viewing(page: Any, customer: Any, reason: str = "Ticket 5150: top-up missing") -> None:
    page.get_by_text("View as customer").click()
    page.get_by_label("Reason").first.fill(reason)
    page.get_by_role("button", name=f"Start viewing as {customer.email}").click()
    page.wait_for_url(re.compile(r"/$"))


@pytest.mark.e2e
def test_staff_searches_views_as_customer_is_refused_and_stops(page, app, customer, live_server):
    staff = make_staff(app)
    staff_log_in(page, staff)
    open_customer(page, customer)
    start_viewing(page, customer)

    banner = page.get_by_test_id("impersonation-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Viewing as Acme 1")
    expect(banner).to_contain_text(f"staff {staff.email}")
    expect(banner).to_contain_text("Read-only")
    clock = page.get_by_test_id("impersonation-countdown")
    expect(clock).to_have_text(re.compile(r"^(29:[0-5]\d|30:00)$"))
    first = clock.inner_text()
    expect(clock).not_to_have_text(first, timeout=3000)  # it counts down
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme 1")  # the customer's page

    # A top-up is refused with a clear message, and nothing is charged or credited.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Top up").click()
    expect(banner).to_be_visible()
    fill_card(page, VISA)
    page.get_by_role("button", name=PAY).click()
    expect(page.locator("#topup-status")).to_contain_text(REFUSAL)
    assert balance(live_server.url, customer.api_key) == 0

    # Rotating a key (an htmx form) is refused too: the notice appears in the banner.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate").click()
    expect(page.get_by_test_id("impersonation-refusal")).to_contain_text(REFUSAL)
    expect(page.locator("#keys_panel code")).to_have_text(customer.api_key[:12] + "…")

    banner.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme 1")
    expect(page).to_have_url(re.compile(r"/staff/customers/"))
    expect(page.get_by_text("You stopped viewing as the customer.")).to_be_visible()
    expect(page.get_by_test_id("impersonation-banner")).to_have_count(0)
    trail = page.locator("#audit_trail")
    for action in ("impersonation.start", "topup.intent", "key.rotate", "impersonation.stop"):
        expect(trail).to_contain_text(action)


def seed_console(app, customer: Any, staff: Any) -> None:
    """Something on every staff page: a grant, audit rows, subscription invoices with
    Stripe's numbers, webhook events in Tally's API version, another, and one it cannot read."""
    with app.app_context():
        user = db.session.get(User, staff.user_id)
        actor = Actor(user, "console", "203.0.113.7",
                      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36")
        grants.grant(actor, customer.account_id, 2500, "Goodwill credit after the March outage")
        audit.record(actor, "plan.change", customer_id=None, account_id=None,
                     reason="Partner programme comp", before={"plan": "free"},
                     after={"plan": "pro"})
        payload = {"id": "evt_1PartnerDemo", "object": "event", "type": "payment_intent.succeeded",
                   "data": {"object": {"id": "pi_3NotATallyTopUp", "object": "payment_intent",
                                       "amount": 2500, "currency": "usd"}}}
        db.session.add(WebhookEvent(id="evt_1PartnerDemo", type="payment_intent.succeeded",
                                    payload=json.dumps({**payload, "api_version": API_VERSION}),
                                    api_version=API_VERSION, processed_at=utcnow()))
        db.session.add(WebhookEvent(id="evt_1OlderEndpoint", type="invoice.paid",
                                    payload=json.dumps({"id": "evt_1OlderEndpoint",
                                                        "api_version": "2020-08-27"}),
                                    api_version="2020-08-27", processed_at=utcnow(), attempts=1))
        db.session.add(WebhookEvent(
            id="evt_1ThinEvent", type="invoice.paid", api_version=None, attempts=1,
            payload=json.dumps({"id": "evt_1ThinEvent", "object": "v2.core.event"}),
            processed_at=utcnow(), last_error="unsupported_event_shape: Tally cannot read this "
            "invoice.paid event: its data.object is not an invoice with an id (event API version "
            f"not given; Tally reads Stripe in {API_VERSION}). Nothing was done. Send snapshot "
            "events (not thin events) to this endpoint."))
        db.session.add(WebhookEvent(id="evt_1FailedDelivery", type="invoice.paid",
                                    payload=json.dumps({"id": "evt_1FailedDelivery"}),
                                    attempts=3, last_error="stripe_unavailable: Could not reach "
                                    "Stripe; nothing was charged. Try again in a moment."))
        db.session.commit()
        account = db.session.get(Account, customer.account_id)
        for kind, stripe_id, number in ((INVOICE_SUBSCRIPTION, "in_1SubscriptionFirst", "7081B96C-0001"),
                                        (INVOICE_RENEWAL, "in_1SubscriptionRenewal", "7081B96C-0002")):
            invoices.issue(account, kind=kind, source_id=stripe_id, currency="usd",
                           lines=[invoices.Line("1 \u00d7 Tally Pro (at $49.00 / month)", 4900)],
                           paid_at=utcnow(), stripe_invoice_number=number)
        db.session.commit()  # services leave committing to the operation (services/uow.py)
        db.session.remove()


@pytest.mark.e2e
@pytest.mark.parametrize(("size", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_staff_screenshots(new_page, app, customer, live_server, size, viewport):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    staff = make_staff(app)
    seed_console(app, customer, staff)
    page = new_page(viewport=viewport)
    staff_log_in(page, staff)
    shoot(page, "staff-01-search", size)

    page.get_by_role("searchbox", name="Search customers").fill("acme")
    expect(page.get_by_test_id("customer-row")).to_have_count(1)
    shoot(page, "staff-02-search-results", size)

    page.get_by_test_id("customer-row").get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme 1")
    expect(page.get_by_test_id("stripe-invoice-number")).to_have_count(2)
    shoot(page, "staff-03-customer", size)

    page.get_by_text("Grant credit").first.click()
    grant = page.locator("details[open] form")
    grant.get_by_label("Amount").fill("12.345")  # the server refuses it, beside the field
    grant.get_by_label("Reason").fill("Goodwill")
    grant.get_by_role("button", name="Grant credit").click()
    expect(page.get_by_text("Use at most 2 decimal places for USD.")).to_be_visible()
    shoot(page, "staff-04-customer-action-errors", size)

    page.goto("/staff/audit")
    expect(page.get_by_test_id("audit-row").first).to_be_visible()
    shoot(page, "staff-05-audit-log", size)

    page.get_by_role("link", name="Price plans").click()
    page.get_by_label("Name").fill("Tokens, metered")
    page.get_by_role("button", name="Create price plan").click()
    expect(page.get_by_test_id("price-plan")).to_have_count(1)
    expect(page.get_by_test_id("price-plan")).to_contain_text("graduated")
    shoot(page, "staff-05b-price-plans", size)

    page.goto("/staff/webhooks")
    expect(page.get_by_test_id("webhook-row")).to_have_count(4)
    expect(page.get_by_test_id("api-version")).to_contain_text(API_VERSION)
    shoot(page, "staff-06-webhooks", size)

    page.get_by_role("link", name="evt_1PartnerDemo").click()
    expect(page.get_by_role("button", name="Replay")).to_be_visible()
    shoot(page, "staff-07-webhook-event", size)

    page.goto(page.url.split("/staff/")[0] + "/staff/")
    page.get_by_role("searchbox", name="Search customers").fill("acme")
    page.get_by_test_id("customer-row").get_by_role("link").click()
    start_viewing(page, customer)
    expect(page.get_by_test_id("impersonation-banner")).to_be_visible()
    shoot(page, "staff-08-viewing-as-dashboard", size)

    page.goto(page.url.rstrip("/") + "/keys")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate").click()
    expect(page.get_by_test_id("impersonation-refusal")).to_be_visible()
    shoot(page, "staff-09-viewing-as-refused", size)
