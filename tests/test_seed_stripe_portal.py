"""Stripe's Customer Portal API through Tally, called as the Stripe portal seed calls it: every
field of a configuration (JSON and Stripe's form encoding), a GET posted back unchanged,
lists with Stripe's filters, sessions with Stripe's parameters, and the official `stripe`
library pointed at Tally."""

from __future__ import annotations

import pytest
import stripe

from tests.support.staff import audit_rows, customer_id_of, make_staff

FEATURES = {
    "customer_update": {"enabled": True, "allowed_updates": ["email", "address", "name"]},
    "invoice_history": {"enabled": True},
    "payment_method_update": {"enabled": True},
    "subscription_cancel": {"enabled": True, "mode": "immediately",
                            "proration_behavior": "create_prorations",
                            "cancellation_reason": {"enabled": True,
                                                    "options": ["too_expensive", "unused"]}},
    "subscription_pause": {"enabled": False},
    "subscription_update": {"enabled": False, "default_allowed_updates": [],
                            "proration_behavior": "always_invoice",
                            "billing_cycle_anchor": "unchanged",
                            "schedule_at_period_end": {"conditions": [
                                {"type": "decreasing_item_amount"}]},
                            "trial_update_behavior": "continue_trial"},
}
PROFILE = {"headline": "Acme billing", "privacy_policy_url": "https://acme.example/privacy",
           "terms_of_service_url": "https://acme.example/terms"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_configuration_takes_every_field_and_a_get_posts_back(app, client):
    staff = make_staff(app)
    created = client.post("/v1/billing-portal/configurations", headers=bearer(staff.api_key), json={
        "features": FEATURES, "business_profile": PROFILE, "active": True, "is_default": False,
        "default_return_url": "https://acme.example/account", "login_page": {"enabled": False},
        "metadata": {"team": "billing"}, "name": "Acme portal"})
    assert created.status_code == 201, created.get_json()
    config = created.get_json()
    assert config["object"] == "billing_portal.configuration"
    assert config["business_profile"] == PROFILE
    assert config["default_return_url"] == "https://acme.example/account"
    assert config["metadata"] == {"team": "billing"} and config["name"] == "Acme portal"
    assert config["login_page"]["enabled"] is False and config["active"] is True
    assert "is_default" in config
    for name, given in FEATURES.items():
        for field, value in given.items():
            assert config["features"][name][field] == value, (name, field)
    # What a GET answers goes back unchanged, on both spellings of the path.
    for path in (f"/v1/billing-portal/configurations/{config['id']}",
                 f"/v1/billing_portal/configurations/{config['id']}"):
        fetched = client.get(path, headers=bearer(staff.api_key)).get_json()
        posted = client.post(path, headers=bearer(staff.api_key), json=fetched)
        assert posted.status_code == 200, posted.get_json()
        again = posted.get_json()
        assert {k: v for k, v in again.items() if k != "updated"} == \
            {k: v for k, v in fetched.items() if k != "updated"}
    # An update changes what it names, and clears with null.
    changed = client.post(f"/v1/billing-portal/configurations/{config['id']}",
                          headers=bearer(staff.api_key),
                          json={"business_profile": {"headline": None}, "name": "Renamed",
                                "metadata": {"team": None, "tier": "gold"}})
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert body["business_profile"]["headline"] is None and body["name"] == "Renamed"
    assert body["metadata"] == {"tier": "gold"}
    refused = client.post("/v1/billing-portal/configurations", headers=bearer(staff.api_key), json={
        "features": {"invoice_history": {"enabled": True}}, "login_page": {"enabled": True}})
    assert refused.status_code == 400 and refused.get_json()["param"] == "login_page.enabled"


def test_stripe_form_encoding(app, client):
    staff = make_staff(app)
    form = {"features[invoice_history][enabled]": "true",
            "features[customer_update][enabled]": "true",
            "features[customer_update][allowed_updates][0]": "email",
            "features[customer_update][allowed_updates][1]": "tax_id",
            "features[subscription_cancel][enabled]": "true",
            "features[subscription_cancel][cancellation_reason][enabled]": "true",
            "features[subscription_cancel][cancellation_reason][options][0]": "other",
            "business_profile[headline]": "Form billing",
            "business_profile[privacy_policy_url]": "https://acme.example/privacy",
            "default_return_url": "https://acme.example/back",
            "login_page[enabled]": "false", "metadata[source]": "form", "name": "Form portal"}
    created = client.post("/v1/billing_portal/configurations", headers=bearer(staff.api_key),
                          data=form)
    assert created.status_code == 201, created.get_json()
    config = created.get_json()
    assert config["features"]["customer_update"]["allowed_updates"] == ["email", "tax_id"]
    assert config["features"]["subscription_cancel"]["cancellation_reason"]["options"] == ["other"]
    assert config["business_profile"]["headline"] == "Form billing"
    assert config["metadata"] == {"source": "form"} and config["name"] == "Form portal"
    updated = client.post(f"/v1/billing-portal/configurations/{config['id']}",
                          headers=bearer(staff.api_key),
                          data={"active": "false", "name": "", "metadata[source]": ""})
    assert updated.status_code == 200, updated.get_json()
    body = updated.get_json()
    assert body["active"] is False and body["name"] is None and body["metadata"] == {}
    bad = client.post("/v1/billing_portal/configurations", headers=bearer(staff.api_key),
                      data={"features[invoice_history][enabled]": "maybe"})
    # At Stripe's own paths an error has Stripe's shape, with Stripe's spelling of the field.
    assert bad.status_code == 400 and bad.get_json()["error"] == {
        "type": "invalid_request_error", "code": "invalid_request",
        "message": bad.get_json()["error"]["message"], "param": "features[invoice_history][enabled]"}
    tally_shape = client.post("/v1/billing-portal/configurations", headers=bearer(staff.api_key),
                              data={"features[invoice_history][enabled]": "maybe"}).get_json()
    assert tally_shape["code"] == "invalid_request"
    assert tally_shape["param"] == "features.invoice_history.enabled"
    # Elsewhere a form is still not JSON.
    assert client.post("/v1/billing/cancel", headers=bearer(staff.api_key),
                       data={"a": "b"}).status_code == 415


def test_lists_take_stripe_filters(app, client):
    staff = make_staff(app)
    made = []
    for n in range(3):
        made.append(client.post("/v1/billing-portal/configurations", headers=bearer(staff.api_key),
                                json={"features": {"invoice_history": {"enabled": True}},
                                      "name": f"list-{n}"}).get_json()["id"])
    client.post(f"/v1/billing-portal/configurations/{made[1]}", headers=bearer(staff.api_key),
                json={"active": False})
    page = client.get("/v1/billing_portal/configurations?limit=2", headers=bearer(staff.api_key))
    assert page.status_code == 200
    body = page.get_json()
    assert body["object"] == "list" and body["url"] == "/v1/billing_portal/configurations"
    assert len(body["data"]) == 2 and body["has_more"] is True
    assert [c["id"] for c in body["data"]] == [made[2], made[1]]
    after = client.get(f"/v1/billing-portal/configurations?limit=1&starting_after={made[2]}",
                       headers=bearer(staff.api_key)).get_json()
    assert [c["id"] for c in after["data"]] == [made[1]]
    before = client.get(f"/v1/billing-portal/configurations?ending_before={made[1]}",
                        headers=bearer(staff.api_key)).get_json()
    assert [c["id"] for c in before["data"]] == [made[2]]
    inactive = client.get("/v1/billing-portal/configurations?active=false&limit=100",
                          headers=bearer(staff.api_key)).get_json()
    assert made[1] in [c["id"] for c in inactive["data"]]
    assert all(c["active"] is False for c in inactive["data"])
    default = client.get("/v1/billing-portal/configurations?is_default=true",
                         headers=bearer(staff.api_key)).get_json()
    assert len(default["data"]) <= 1 and all(c["is_default"] for c in default["data"])


def test_portal_session_with_stripe_parameters(app, client, customer):
    staff = make_staff(app)
    tally_id = customer_id_of(app, customer.account_id)
    for path in ("/v1/billing-portal/sessions", "/v1/billing_portal/sessions"):
        opened = client.post(path, headers=bearer(staff.api_key), json={
            "customer": tally_id, "return_url": "https://acme.example/account", "locale": "fr"})
        assert opened.status_code == 200, opened.get_json()
        session = opened.get_json()
        assert session["object"] == "billing_portal.session" and session["id"].startswith("bps_")
        assert session["url"].startswith("http") and session["return_url"] == "https://acme.example/account"
        assert session["customer"].startswith("cus_") and session["configuration"].startswith("bpc_")
        assert session["locale"] == "fr" and session["livemode"] is False
        assert isinstance(session["created"], int)
    # The same customer by its Stripe id, with a chosen configuration, as a form.
    config = client.post("/v1/billing-portal/configurations", headers=bearer(staff.api_key), json={
        "features": {"invoice_history": {"enabled": True}}}).get_json()["id"]
    by_stripe = client.post("/v1/billing_portal/sessions", headers=bearer(staff.api_key), data={
        "customer": session["customer"], "configuration": config,
        "return_url": "https://acme.example/x"})
    assert by_stripe.status_code == 200, by_stripe.get_json()
    assert by_stripe.get_json()["configuration"] == config
    assert by_stripe.get_json()["customer"] == session["customer"]
    missing = client.post("/v1/billing-portal/sessions", headers=bearer(staff.api_key),
                          json={"customer": "cus_nobody", "return_url": "https://acme.example/"})
    assert missing.status_code == 404 and missing.get_json()["param"] == "customer"
    assert client.post("/v1/billing-portal/sessions", headers=customer.headers, json={
        "customer": tally_id, "return_url": "https://acme.example/"}).status_code == 403
    assert len(audit_rows(app, action="portal.session", customer_id=tally_id)) == 3


def test_the_official_stripe_library_pointed_at_tally(app, live_server, customer):
    staff = make_staff(app)
    tally = stripe.StripeClient(staff.api_key, base_addresses={"api": live_server.url})
    created = tally.v1.billing_portal.configurations.create(params={
        "features": {"invoice_history": {"enabled": True},
                     "customer_update": {"enabled": True, "allowed_updates": ["email"]}},
        "business_profile": {"headline": "Through Tally"}, "metadata": {"via": "stripe-python"},
        "default_return_url": "https://acme.example/back"})
    assert isinstance(created, stripe.billing_portal.Configuration)
    assert created.business_profile.headline == "Through Tally"
    assert created.features.customer_update.allowed_updates == ["email"]
    listed = tally.v1.billing_portal.configurations.list(params={"limit": 100, "active": True})
    assert created.id in [c.id for c in listed.data]
    fetched = tally.v1.billing_portal.configurations.retrieve(created.id)
    assert fetched.metadata["via"] == "stripe-python"
    updated = tally.v1.billing_portal.configurations.update(created.id, params={
        "business_profile": {"headline": "Renamed"}, "name": "Via the library"})
    assert updated.business_profile.headline == "Renamed" and updated.name == "Via the library"
    session = tally.v1.billing_portal.sessions.create(params={
        "customer": customer_id_of(app, customer.account_id), "configuration": created.id,
        "return_url": "https://acme.example/account"})
    assert isinstance(session, stripe.billing_portal.Session)
    assert session.configuration == created.id and session.url.startswith("http")
    # Refusals come back as the library's own errors.
    with pytest.raises(stripe.InvalidRequestError) as refused:
        tally.v1.billing_portal.configurations.update(created.id, params={
            "features": {"customer_update": {"enabled": True, "allowed_updates": ["shoe_size"]}}})
    assert refused.value.param == "features[customer_update][allowed_updates]"
    assert refused.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as missing:
        tally.v1.billing_portal.configurations.retrieve("bpc_nothing")
    assert missing.value.http_status == 404
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("tly_" + "x" * 40, base_addresses={"api": live_server.url}).v1 \
            .billing_portal.configurations.list()
    # Tally's own gateway (the stripe module) still talks to the simulator.
    with app.app_context():
        from services.billing.gateway import gateway

        assert created.id in [c["id"] for c in gateway().list_portal_configurations()]
