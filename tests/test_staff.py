"""The staff console: who may reach it, search, the customer page and its audited actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Account, Invoice, LedgerEntry, Subscription
from models.base import utcnow
from services import uow
from services.ledger import entries as ledger
from services.ledger import grants
from tests.conftest import login
from tests.support.staff import (
    audit_rows,
    customer_id_of,
    make_staff,
    staff_login,
    token,
    user_id_of,
)
from tests.support.state import snapshot

STAFF_PAGES = ("/staff/", "/staff/customers/{customer}", "/staff/audit", "/staff/audit.csv",
               "/staff/webhooks", "/staff/webhooks/evt_x")
STAFF_POSTS = ("/staff/accounts/{account}/grant", "/staff/accounts/{account}/adjust",
               "/staff/accounts/{account}/plan", "/staff/accounts/{account}/grace",
               "/staff/accounts/{account}/invoices/inv_x/resend", "/staff/users/{user}/impersonate",
               "/staff/impersonation/stop", "/staff/webhooks/evt_x/replay")


@pytest.fixture
def staff(app):
    return make_staff(app)


def fill(paths, app, customer) -> list[str]:
    values = {"customer": customer_id_of(app, customer.account_id), "account": customer.account_id,
              "user": user_id_of(app, customer.email)}
    return [p.format(**values) for p in paths]


def test_customer_gets_404_on_every_staff_page_and_action(app, client, customer):
    csrf = login(client, customer)
    for path in fill(STAFF_PAGES, app, customer):
        assert client.get(path).status_code == 404, path
    for path in fill(STAFF_POSTS, app, customer):
        response = client.post(path, data={"csrf_token": csrf, "reason": "let me in"})
        assert response.status_code == 404, path
    assert audit_rows(app) == []


def test_logged_out_visitors_are_sent_to_login(app, client, customer):
    for path in fill(STAFF_PAGES, app, customer):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_staff_land_on_the_console_after_staff_login(client, staff):
    response = client.get("/login")
    response = client.post("/login", data={"email": staff.email, "password": staff.password,
                                           "csrf_token": token(response.get_data(as_text=True))})
    assert response.status_code == 303
    landing = client.get(response.headers["Location"])
    assert landing.status_code == 302 and landing.headers["Location"].endswith("/staff/")
    page = client.get("/staff/").get_data(as_text=True)
    assert "<h1>Customers</h1>" in page and "Audit log" in page and "Webhooks" in page
    # Customer pages other than the dashboard stay closed to staff.
    assert client.get("/topup").status_code == 404


def test_search_by_email_name_account_and_stripe_id(app, client, staff, make_customer):
    first, second = make_customer("Acme"), make_customer("Globex")
    with app.app_context():
        account = db.session.get(Account, second.account_id)
        account.customer.stripe_customer_id = "cus_GLOBEX123"
        db.session.commit()
        db.session.remove()
    staff_login(client, staff)

    def names(q: str, **headers) -> str:
        response = client.get("/staff/", query_string={"q": q}, headers=headers)
        assert response.status_code == 200
        return response.get_data(as_text=True)

    assert "Acme 1" in names(first.email) and "Globex" not in names(first.email)
    assert "Globex 2" in names("globex") and "Acme" not in names("globex")
    assert "Acme 1" in names(first.account_id[:10])
    assert "Globex 2" in names("cus_GLOBEX")
    assert "No customer matches" in names("nobody-at-all")
    assert "Acme 1" in names("") and "Globex 2" in names("")  # empty: newest customers
    assert "No customer matches" in names("%")  # LIKE wildcards are matched literally
    # Search-as-you-type: htmx asks for the results block only.
    fragment = names("acme", **{"HX-Request": "true", "HX-Target": "results"})
    assert fragment.lstrip().startswith('<section id="results"') and "<html" not in fragment


def test_customer_page_shows_accounts_money_keys_and_audit(app, client, staff, customer):
    customer_id = customer_id_of(app, customer.account_id)
    staff_login(client, staff)
    page = client.get(f"/staff/customers/{customer_id}").get_data(as_text=True)
    assert customer.email in page and customer.account_id in page
    assert "$0.00" in page and "Free" in page
    assert customer.api_key[:12] + "…" in page and customer.api_key not in page  # prefixes only
    assert "View as customer" in page and "Audit trail" in page
    views = audit_rows(app, action="customer.view")
    assert len(views) == 1 and views[0].staff_user_id == staff.user_id
    assert views[0].customer_id == customer_id and views[0].via == "console"
    # The customer sees on their own dashboard that staff looked.
    other = app.test_client()
    login(other, customer)
    dashboard = other.get("/").get_data(as_text=True)
    assert "Tally support last viewed your account on" in dashboard
    assert client.get("/staff/customers/cust_nope").status_code == 404


def test_the_customer_pages_trail_is_not_filled_by_views_of_it(app, client, staff, customer):
    """Each open of the customer page is recorded, but its trail lists what was done;
    the full log, linked from it, has the views too."""
    customer_id = customer_id_of(app, customer.account_id)
    staff_login(client, staff)
    for _ in range(25):
        page = client.get(f"/staff/customers/{customer_id}").get_data(as_text=True)
    trail = page[page.index('id="audit_trail"'):]
    assert "customer.view" not in trail and "Nothing recorded yet." in trail
    full = client.get(f"/staff/audit?customer={customer_id}").get_data(as_text=True)
    assert full.count("customer.view") >= 20


def test_dashboard_says_nothing_when_staff_never_looked(client, customer):
    login(client, customer)
    assert "Tally support last viewed" not in client.get("/").get_data(as_text=True)


def post_action(client, account_id: str, action: str, **fields):
    page = client.get(f"/staff/customers/{customer_id_of_client(client, account_id)}")
    csrf = token(page.get_data(as_text=True))
    prefix = f"{account_id}-{action}"
    data = {f"{prefix}-{k}": v for k, v in fields.items()}
    data[f"{prefix}-csrf_token"] = csrf
    return client.post(f"/staff/accounts/{account_id}/{action}", data=data)


def customer_id_of_client(client, account_id: str) -> str:
    with client.application.app_context():
        cid = db.session.get(Account, account_id).customer_id
        db.session.remove()
    return cid


@pytest.mark.money
def test_grant_credit_posts_once_with_its_audit_row(app, client, staff, customer, backend):
    staff_login(client, staff)
    refused = post_action(client, customer.account_id, "grant", amount="25.00", reason="")
    assert refused.status_code == 400 and "Give a reason" in refused.get_data(as_text=True)
    done = post_action(client, customer.account_id, "grant", amount="25.00",
                       reason="Goodwill for the outage")
    assert done.status_code == 303
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Granted $25.00" in page
    with app.app_context():
        assert ledger.current_balance(customer.account_id) == 2500 == ledger.ledger_sum(customer.account_id)
        entry = db.session.execute(select(LedgerEntry)).scalar_one()
        assert entry.kind == "grant" and entry.source == "credit_grant"
        db.session.remove()
    grants = audit_rows(app, action="credit.grant")
    assert len(grants) == 1
    row = grants[0]
    assert row.staff_user_id == staff.user_id and row.staff_email == staff.email
    assert row.reason == "Goodwill for the outage" and row.account_id == customer.account_id
    assert row.before == {"balance": 0} and row.after == {"balance": 2500}
    assert row.ip == "127.0.0.1" and row.via == "console"


@pytest.mark.money
def test_adjust_balance_both_ways_never_below_zero(app, client, staff, customer, backend):
    staff_login(client, staff)
    assert post_action(client, customer.account_id, "adjust", amount="10.00",
                       reason="Refund of a double charge").status_code == 303
    assert post_action(client, customer.account_id, "adjust", amount="-4.50",
                       reason="Reverse part of it").status_code == 303
    too_much = post_action(client, customer.account_id, "adjust", amount="-6.00",
                           reason="Take more than there is")
    assert too_much.status_code == 400 and "Not enough credit" in too_much.get_data(as_text=True)
    with app.app_context():
        assert ledger.current_balance(customer.account_id) == 550 == ledger.ledger_sum(customer.account_id)
        kinds = db.session.execute(select(LedgerEntry.kind, LedgerEntry.amount)).all()
        assert sorted(kinds) == [("adjustment", -450), ("adjustment", 1000)]
        db.session.remove()
    rows = audit_rows(app, action="balance.adjust")
    assert [(r.before, r.after) for r in rows] == [
        ({"balance": 0}, {"balance": 1000}), ({"balance": 1000}, {"balance": 550})]


def customer_sees(app, customer) -> str:
    """Everything the customer can read about their ledger: dashboard, activity, API."""
    web = app.test_client()
    login(web, customer)
    pages = web.get("/").get_data(as_text=True) + web.get("/activity").get_data(as_text=True)
    api = web.get("/v1/billing/ledger", headers=customer.headers).get_data(as_text=True)
    grants = web.get(f"/v1/accounts/{customer.account_id}/credits",
                     headers=customer.headers).get_data(as_text=True)
    return pages + api + grants


def test_the_customer_sees_the_note_never_the_internal_reason(app, client, staff, customer):
    staff_login(client, staff)
    assert post_action(client, customer.account_id, "grant", amount="25.00",
                       reason="QA goodwill credit", note="Sorry about the outage").status_code == 303
    assert post_action(client, customer.account_id, "grant", amount="5.00",
                       reason="Internal: tester account top-up").status_code == 303
    assert post_action(client, customer.account_id, "adjust", amount="-2.00",
                       reason="Clawback, ticket 77 (fraud review)",
                       note="Correction of a duplicate credit").status_code == 303
    assert post_action(client, customer.account_id, "adjust", amount="1.00",
                       reason="Rounding fix per finance").status_code == 303
    seen = customer_sees(app, customer)
    for internal in ("QA goodwill credit", "tester account", "Clawback", "fraud review", "finance"):
        assert internal not in seen, internal
    for shown in ("Credit from Tally: Sorry about the outage", "Credit from Tally",
                  "Adjustment by Tally support: Correction of a duplicate credit",
                  "Adjustment by Tally support"):
        assert shown in seen, shown
    # Staff and the audit log keep the reasons.
    staff_view = client.get(f"/v1/accounts/{customer.account_id}/credits", headers=staff.headers)
    assert {g["reason"] for g in staff_view.get_json()["data"]} == {
        "QA goodwill credit", "Internal: tester account top-up"}
    assert {r.reason for r in audit_rows(app, action="balance.adjust")} == {
        "Clawback, ticket 77 (fraud review)", "Rounding fix per finance"}
    assert [r.meta["note"] for r in audit_rows(app, action="credit.grant")] == [
        "Sorry about the outage", None]


def test_a_scheduled_grant_shows_its_note_when_it_posts(app, client, staff, customer):
    later = (utcnow() + timedelta(hours=1)).isoformat()
    created = client.post(f"/v1/accounts/{customer.account_id}/credits", headers=staff.headers,
                          json={"amount": 700, "reason": "Partner deal #12 (internal)",
                                "note": "Welcome credit", "effective_from": later})
    assert created.status_code == 201 and created.get_json()["note"] == "Welcome credit"
    with app.app_context(), uow.unit():
        assert grants.post_due(now=utcnow() + timedelta(hours=2)) == 1
    ledger_entries = client.get("/v1/billing/ledger", headers=customer.headers).get_json()["data"]
    assert [e["description"] for e in ledger_entries] == ["Credit from Tally: Welcome credit"]
    assert "Partner deal" not in customer_sees(app, customer)
    too_long = client.post(f"/v1/accounts/{customer.account_id}/credits", headers=staff.headers,
                           json={"amount": 700, "reason": "Long note", "note": "x" * 201})
    assert too_long.status_code == 400 and too_long.get_json()["param"] == "note"


@pytest.mark.money
def test_an_adjustment_takes_one_plain_sign_and_nothing_else(app, client, staff, customer, backend):
    """`+-5` once posted +5.00 and `--5` -5.00: any amount that is not one optional sign
    followed by an amount is refused beside the field, and nothing is posted."""
    staff_login(client, staff)
    assert post_action(client, customer.account_id, "adjust", amount="+20.00",
                       reason="Plus sign").status_code == 303
    before = snapshot(app) | {"audit_events": None}  # each form fetch records a look
    for typed in ("+-5", "--5", "-+5", "++5", "- -5", "$-5", "5-", "-5-", "+-$5"):
        refused = post_action(client, customer.account_id, "adjust", amount=typed, reason="Typo")
        assert refused.status_code == 400, typed
        assert "one sign at most" in refused.get_data(as_text=True), typed
    assert snapshot(app) | {"audit_events": None} == before
    assert post_action(client, customer.account_id, "adjust", amount="-$5",
                       reason="Minus before the symbol").status_code == 303
    with app.app_context():
        assert ledger.current_balance(customer.account_id) == 1500
        db.session.remove()


def test_change_plan_and_the_subscription_guard(app, client, staff, customer):
    staff_login(client, staff)
    assert post_action(client, customer.account_id, "plan", plan="pro",
                       reason="Comp for the partner programme").status_code == 303
    rows = audit_rows(app, action="plan.change")
    assert rows[0].before == {"plan": "free"} and rows[0].after == {"plan": "pro"}
    same = post_action(client, customer.account_id, "plan", plan="pro", reason="again")
    assert same.status_code == 400 and "already on Pro" in same.get_data(as_text=True)
    unknown = post_action(client, customer.account_id, "plan", plan="platinum", reason="why not")
    assert unknown.status_code == 400
    with app.app_context():
        db.session.add(Subscription(id="sub_live", account_id=customer.account_id, plan="pro",
                                    status="active", price_id="price_x"))
        db.session.commit()
        db.session.remove()
    guarded = post_action(client, customer.account_id, "plan", plan="free", reason="downgrade")
    assert guarded.status_code == 400 and "Stripe subscription" in guarded.get_data(as_text=True)
    assert len(audit_rows(app, action="plan.change")) == 1


def test_extend_grace_period(app, client, staff, customer):
    staff_login(client, staff)
    refused = post_action(client, customer.account_id, "grace", days="7", reason="Customer asked")
    assert refused.status_code == 400 and "not in a grace period" in refused.get_data(as_text=True)
    ends = utcnow() + timedelta(days=2)
    with app.app_context():
        account = db.session.get(Account, customer.account_id)
        account.grace_period_ends_at = ends
        db.session.commit()
        db.session.remove()
    assert post_action(client, customer.account_id, "grace", days="7",
                       reason="Card replacement in the post").status_code == 303
    with app.app_context():
        new_end = db.session.get(Account, customer.account_id).grace_period_ends_at
        db.session.remove()
    assert abs((new_end - ends) - timedelta(days=7)) < timedelta(seconds=1)
    row = audit_rows(app, action="grace.extend")[0]
    assert row.reason == "Card replacement in the post" and row.meta["days"] == 7
    assert row.before["grace_period_ends_at"] != row.after["grace_period_ends_at"]
    too_long = post_action(client, customer.account_id, "grace", days="365", reason="forever")
    assert too_long.status_code == 400


def _invoice(app, customer) -> None:
    with app.app_context():
        account = db.session.get(Account, customer.account_id)
        db.session.add(Invoice(id="inv_test1", customer_id=account.customer_id,
                               account_id=account.id, number="T-0001", kind="receipt",
                               source_id="pi_x", currency="usd", total=2500))
        db.session.commit()
        db.session.remove()


def test_resend_invoice_says_when_no_email_is_set_up(app, client, staff, customer):
    _invoice(app, customer)
    staff_login(client, staff)
    page = client.get(f"/staff/customers/{customer_id_of(app, customer.account_id)}")
    assert "T-0001" in page.get_data(as_text=True)
    csrf = token(page.get_data(as_text=True))
    url = f"/staff/accounts/{customer.account_id}/invoices/inv_test1/resend"
    no_reason = client.post(url, data={"resend-csrf_token": csrf, "resend-reason": ""})
    assert no_reason.status_code == 400 and "Give a reason" in no_reason.get_data(as_text=True)
    response = client.post(url, data={"resend-csrf_token": csrf,
                                      "resend-reason": "Customer lost the email"})
    assert response.status_code == 400
    assert "no email delivery set up" in response.get_data(as_text=True)
    wrong = client.post(f"/staff/accounts/{customer.account_id}/invoices/inv_nope/resend",
                        data={"resend-csrf_token": csrf, "resend-reason": "Customer lost it"})
    assert "No such invoice" in wrong.get_data(as_text=True)
    assert audit_rows(app, action="invoice.resend") == []


def test_resend_invoice_emails_the_pdf_and_is_audited(app, client, staff, customer, smtp_server):
    controller, inbox = smtp_server
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{controller.port}"
    _invoice(app, customer)
    staff_login(client, staff)
    page = client.get(f"/staff/customers/{customer_id_of(app, customer.account_id)}")
    csrf = token(page.get_data(as_text=True))
    response = client.post(f"/staff/accounts/{customer.account_id}/invoices/inv_test1/resend",
                           data={"resend-csrf_token": csrf, "resend-reason": "Lost in spam"},
                           follow_redirects=True)
    assert response.status_code == 200
    assert f"Invoice sent to {customer.email}." in response.get_data(as_text=True)
    [message] = inbox.messages
    assert message["To"] == customer.email and "T-0001" in message["Subject"]
    assert "$25.00" in message.get_body(("plain",)).get_content()
    [pdf] = list(message.iter_attachments())
    assert pdf.get_filename() == "invoice-T-0001.pdf"
    assert pdf.get_content().startswith(b"%PDF-")
    [row] = audit_rows(app, action="invoice.resend")
    assert row.reason == "Lost in spam" and row.meta["to"] == customer.email
    assert row.staff_user_id == staff.user_id


def test_every_staff_form_needs_csrf(app, client, staff, customer):
    staff_login(client, staff)
    response = client.post(f"/staff/accounts/{customer.account_id}/grant",
                           data={f"{customer.account_id}-grant-amount": "5",
                                 f"{customer.account_id}-grant-reason": "no token"})
    assert response.status_code == 400
    with app.app_context():
        assert ledger.current_balance(customer.account_id) == 0
        db.session.remove()


def test_price_plans_page_creates_plans_and_the_customer_page_assigns_them(app, client, staff,
                                                                           customer):
    csrf = staff_login(client, staff)
    page = client.get("/staff/price-plans/")
    assert page.status_code == 200 and "No price plans yet" in page.get_data(as_text=True)
    bad_json = client.post("/staff/price-plans/", data={
        "csrf_token": csrf, "name": "Calls", "currency": "usd", "charges": "[{"})
    assert bad_json.status_code == 400
    assert 'id="pp-charges-error">Charges must be JSON' in bad_json.get_data(as_text=True)
    bad_meter = client.post("/staff/price-plans/", data={
        "csrf_token": csrf, "name": "Calls", "currency": "usd",
        "charges": '[{"meter": "storage", "model": "per_unit", "unit_amount": 1}]'})
    assert bad_meter.status_code == 400
    assert "Only count and sum meters can be priced" in bad_meter.get_data(as_text=True)
    no_name = client.post("/staff/price-plans/", data={
        "csrf_token": csrf, "name": "", "currency": "usd",
        "charges": '[{"meter": "apiCalls", "model": "per_unit", "unit_amount": 3}]'})
    assert 'id="pp-name-error">name must be' in no_name.get_data(as_text=True)
    created = client.post("/staff/price-plans/", follow_redirects=True, data={
        "csrf_token": csrf, "name": "Calls", "currency": "usd",
        "charges": '[{"meter": "apiCalls", "model": "per_unit", "unit_amount": 3, '
                   '"included_units": 10}]'})
    listed = created.get_data(as_text=True)
    assert "Price plan Calls" in listed and "$0.03 a unit" in listed
    [plan_row] = audit_rows(app, action="price_plan.create")
    plan_id = plan_row.meta["price_plan_id"]

    account_page = client.get(f"/staff/customers/{customer_id_of(app, customer.account_id)}")
    form_token = token(account_page.get_data(as_text=True))
    prefix = f"{customer.account_id}-pricing"
    no_reason = client.post(f"/staff/accounts/{customer.account_id}/price-plan", data={
        f"{prefix}-csrf_token": form_token, f"{prefix}-price_plan": plan_id,
        f"{prefix}-reason": ""})
    assert no_reason.status_code == 400
    assigned = client.post(f"/staff/accounts/{customer.account_id}/price-plan",
                           follow_redirects=True, data={
                               f"{prefix}-csrf_token": form_token, f"{prefix}-price_plan": plan_id,
                               f"{prefix}-reason": "Signed the usage contract"})
    assert "is on the price plan Calls now" in assigned.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Account, customer.account_id).price_plan_id == plan_id
        db.session.remove()
    [row] = audit_rows(app, action="price_plan.assign")
    assert row.reason == "Signed the usage contract" and row.staff_user_id == staff.user_id
    assert row.before == {"price_plan_id": None} and row.after == {"price_plan_id": plan_id}
    # The customer's own API sees its plan.
    mine = client.get("/v1/price-plans", headers=customer.headers).get_json()["data"]
    assert [p["id"] for p in mine] == [plan_id]
