"""Members and roles: invitations by email (page and API), acceptance with a new or an
existing login, role changes and removals (audited), at least one owner, keys that act
with their creator's role, and the switcher between customers."""

from __future__ import annotations

import re

from sqlalchemy import select

from extensions import db
from models import ApiKey, AuditEvent
from tests.conftest import PASSWORD, csrf_token, login, text_of
from tests.support.members import add_member


def invitation_link(message) -> str:
    match = re.search(r"https?://[^/\s]+(/invitations/accept\?token=\S+)", text_of(message))
    assert match, text_of(message)
    return match.group(1)


def invite_on_page(client, token: str, email: str, role: str):
    return client.post("/members/invitations", data={"email": email, "role": role,
                                                     "csrf_token": token})


def accept_new(client, link: str, password: str = PASSWORD, name: str = "Dev"):
    page = client.get(link)
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post("/invitations/accept", data={
        "token": link.split("token=", 1)[1], "name": name, "password": password,
        "csrf_token": csrf_token(page.get_data(as_text=True))})


def test_an_owner_invites_a_developer_who_creates_a_login_and_cannot_pay(app, client, customer, mail):
    token = login(client, customer)
    members_page = client.get("/members").get_data(as_text=True)
    assert customer.email in members_page and "Owner" in members_page
    sent = invite_on_page(client, token, "dev@example.com", "developer")
    assert sent.status_code == 303
    assert "dev@example.com" in client.get("/members").get_data(as_text=True)  # pending
    [message] = mail.messages
    assert message["To"] == "dev@example.com" and "as developer" in text_of(message)
    link = invitation_link(message)
    dev = app.test_client()
    joined = accept_new(dev, link)
    assert joined.status_code == 303
    dashboard = dev.get("/")
    assert dashboard.status_code == 200 and "joined as developer" in dashboard.get_data(as_text=True)
    assert ">Top up<" not in dashboard.get_data(as_text=True)  # the nav shows what the role may do
    refused = dev.get("/topup")
    assert refused.status_code == 403
    assert "Your role (developer) cannot make payments" in refused.get_data(as_text=True)
    dev_token = csrf_token(dev.get("/keys").get_data(as_text=True))
    assert dev.post("/keys", data={"kind": "usage", "csrf_token": dev_token}).status_code == 200
    # The link works once.
    again = app.test_client().get(link)
    assert again.status_code == 400 and "not valid" in again.get_data(as_text=True)
    listed = client.get("/v1/members", headers=customer.headers).get_json()["data"]
    assert sorted((m["email"], m["role"]) for m in listed) == [
        ("acme1@example.com", "owner"), ("dev@example.com", "developer")]


def test_members_api_invites_lists_revokes_and_checks_roles(app, client, customer, mail):
    h = customer.headers
    bad = client.post("/v1/members/invitations", headers=h, json={"email": "x@example.com",
                                                                  "role": "boss"})
    assert bad.status_code == 400 and bad.get_json()["param"] == "role"
    made = client.post("/v1/members/invitations", headers=h,
                       json={"email": "Ada@Example.com", "role": "admin"})
    assert made.status_code == 201, made.get_json()
    invitation = made.get_json()
    assert invitation["email"] == "ada@example.com" and invitation["status"] == "pending"
    listed = client.get("/v1/members/invitations", headers=h).get_json()["data"]
    assert [i["id"] for i in listed] == [invitation["id"]]
    revoked = client.delete(f"/v1/members/invitations/{invitation['id']}", headers=h)
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "revoked"
    assert client.get("/v1/members/invitations", headers=h).get_json()["data"] == []
    link = invitation_link(mail.messages[0])
    assert app.test_client().get(link).status_code == 400  # a revoked invitation's link is dead


def test_role_changes_keep_an_owner_and_are_audited(app, client, customer):
    admin = add_member(app, customer.account_id, "admin")
    viewer = add_member(app, customer.account_id, "viewer")
    by_email = {m["email"]: m for m in client.get("/v1/members", headers=customer.headers)
                .get_json()["data"]}
    owner_id, viewer_id = by_email[customer.email]["id"], by_email[viewer.email]["id"]
    last = client.post(f"/v1/members/{owner_id}", headers=customer.headers, json={"role": "admin"})
    assert last.status_code == 409 and last.get_json()["code"] == "last_owner"
    # An admin manages members but not ownership.
    made_owner = client.post(f"/v1/members/{viewer_id}", headers=admin.headers, json={"role": "owner"})
    assert made_owner.status_code == 403 and made_owner.get_json()["code"] == "role_forbidden"
    demote = client.post(f"/v1/members/{owner_id}", headers=admin.headers, json={"role": "viewer"})
    assert demote.status_code == 403
    changed = client.post(f"/v1/members/{viewer_id}", headers=admin.headers, json={"role": "billing"})
    assert changed.status_code == 200 and changed.get_json()["role"] == "billing"
    # A viewer's key reads but changes nothing.
    assert client.get("/v1/members", headers=viewer.headers).status_code == 200
    refused = client.post("/v1/members/invitations", headers=viewer.headers,
                          json={"email": "z@example.com", "role": "viewer"})
    assert refused.status_code == 403
    removed = client.delete(f"/v1/members/{viewer_id}", headers=admin.headers)
    assert removed.status_code == 200 and removed.get_json() == {"id": viewer_id, "object": "member",
                                                                 "deleted": True}
    assert client.get("/v1/me", headers=viewer.headers).status_code == 401  # their key is revoked
    with app.app_context():
        actions = [(e.action, e.before, e.after) for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("member.%")).order_by(AuditEvent.id))]
        assert keys_revoked(viewer.api_key)
        db.session.remove()
    assert actions == [("member.role_change", {"role": "viewer"}, {"role": "billing"}),
                       ("member.remove", {"role": "billing"}, None)]


def keys_revoked(plaintext: str) -> bool:
    from services.identity.keys import hash_key
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext)))
    return key is not None and key.revoked_at is not None


def test_a_key_acts_with_its_creators_role(app, client, customer):
    developer = add_member(app, customer.account_id, "developer")
    billing = add_member(app, customer.account_id, "billing")
    pay = {"amount": 1000}
    refused = client.post("/v1/billing/payment-intents", headers=developer.headers, json=pay)
    assert refused.status_code == 403 and refused.get_json()["code"] == "role_forbidden"
    assert client.post("/v1/keys", headers=billing.headers, json={}).status_code == 403
    made = client.post("/v1/keys", headers=developer.headers, json={"kind": "account"})
    assert made.status_code == 201
    minted = {"X-Api-Key": made.get_json()["api_key"]}  # made by the developer's key: a developer's
    assert client.post("/v1/billing/payment-intents", headers=minted, json=pay).status_code == 403


def test_an_existing_login_joins_a_second_customer_and_switches(app, client, make_customer, mail):
    first, second = make_customer("First"), make_customer("Second")
    made = client.post("/v1/members/invitations", headers=second.headers,
                       json={"email": first.email, "role": "viewer"})
    assert made.status_code == 201
    link = invitation_link(mail.messages[0])
    browser = app.test_client()
    page = browser.get(link).get_data(as_text=True)
    assert "Log in to join" in page
    login(browser, first)
    page = browser.get(link)
    assert "Join as " + first.email in page.get_data(as_text=True)
    joined = browser.post("/invitations/accept", data={
        "token": link.split("token=", 1)[1], "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert joined.status_code == 303
    dashboard = browser.get("/").get_data(as_text=True)
    assert "Second 2" in dashboard and 'data-testid="customer-switcher"' in dashboard
    with app.app_context():
        from models import Account
        first_customer = db.session.get(Account, first.account_id).customer_id
        db.session.remove()
    token = csrf_token(dashboard)
    switched = browser.post("/account/customer", data={"customer_id": first_customer,
                                                       "csrf_token": token})
    assert switched.status_code == 303
    assert "First 1" in browser.get("/").get_data(as_text=True)
    stranger = browser.post("/account/customer", data={"customer_id": "cust_nope",
                                                       "csrf_token": token})
    assert stranger.status_code == 404
