"""Security headers, CSRF on every form, login throttling, sessions that end when they
should, and API keys that never reach a log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import create_app
from tests.conftest import csrf_token, login
from tests.support.staff import make_staff, staff_login
from tests.support.state import snapshot

STRIPE_ORIGINS = {"https://js.stripe.com", "https://api.stripe.com", "https://hooks.stripe.com"}
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def csp(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in policy.split(";")) if d}


# Headers --------------------------------------------------------------------------


@pytest.mark.parametrize("app_config", [{"STRIPE_JS_URL": "https://js.stripe.com/v3/",
                                         "STRIPE_API_BASE": ""}])
def test_the_content_security_policy_allows_stripe_js_and_nothing_else_foreign(client, customer):
    login(client, customer)
    for path in ("/", "/topup", "/login", "/v1/me", "/no-such-page", "/static/tally.css"):
        response = client.get(path, headers=customer.headers)
        policy = csp(response)
        assert policy["default-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]
        assert policy["script-src"] == ["'self'", "https://js.stripe.com"]  # no inline, no eval
        foreign = {source for sources in policy.values() for source in sources
                   if source.startswith(("http:", "https:", "*")) or "." in source}
        assert foreign <= STRIPE_ORIGINS, (path, foreign - STRIPE_ORIGINS)
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
    assert "https://js.stripe.com/v3/" in client.get("/topup").get_data(as_text=True)


def test_pages_carry_no_inline_script_for_the_policy_to_block(client, customer):
    login(client, customer)
    for path in ("/", "/topup", "/keys", "/usage", "/plans", "/billing/invoices", "/login"):
        html = client.get(path).get_data(as_text=True)
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
        assert all("src=" in attrs and not body.strip() for attrs, body in scripts), path
        assert not re.search(r"\son[a-z]+=", html), f"an inline event handler on {path}"


def test_hsts_only_over_https(app, client):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    secure = client.get("/login", base_url="https://tally.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert int(secure.headers["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 31536000
    # A forwarded https counts only from a trusted proxy (TALLY_PROXY_COUNT).
    spoofed = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in spoofed.headers


def test_hsts_behind_a_trusted_proxy(app):
    proxied = create_app({**app.config, "PROXY_COUNT": 1})
    response = proxied.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in response.headers


# CSRF -----------------------------------------------------------------------------

# Webhooks are verified by Stripe's signature instead (tests/test_topups.py).
CSRF_EXEMPT = {"webhooks.legacy"}
# A plausible form for any of them: the token is the only thing missing.
FORM = {"amount": "25", "reason": "CSRF test", "kind": "usage", "name": "x", "plan": "pro",
        "email": "someone@example.com", "password": "long-enough-password", "time_zone": "UTC",
        "payment_intent_id": "pi_x", "current_password": "x", "new_password": "y" * 12}


def form_routes(app) -> list[tuple[str, str]]:
    return sorted((rule.rule, rule.endpoint) for rule in app.url_map.iter_rules()
                  if "POST" in rule.methods and not rule.rule.startswith("/v1/")
                  and rule.endpoint not in CSRF_EXEMPT)


def test_every_form_route_refuses_a_post_without_a_token(app, customer):
    staff = make_staff(app)
    ids = {"account_id": customer.account_id, "key_id": "key_x", "user_id": "usr_x",
           "invoice_id": "inv_x", "event_id": "evt_x", "configuration_id": "bpc_x"}
    routes = form_routes(app)
    assert len(routes) >= 20  # the walk found the forms
    for rule, endpoint in routes:
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: ids[m.group(1)], rule)
        for who in ("anonymous", "customer", "staff"):
            client = app.test_client()
            if who == "customer":
                login(client, customer)
            elif who == "staff":
                staff_login(client, staff)
            before = snapshot(app)
            response = client.post(path, data=FORM)
            where = f"{who} POST {path} ({endpoint}): {response.status_code}"
            assert response.status_code == 400, where
            assert "Form expired" in response.get_data(as_text=True), where
            assert snapshot(app) == before, where


def test_a_token_from_another_session_is_refused(app, client, customer):
    stolen = csrf_token(app.test_client().get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": customer.email, "password": customer.password,
                                           "csrf_token": stolen})
    assert response.status_code == 400 and client.get("/").status_code == 302


def test_every_post_form_in_the_templates_carries_a_token():
    forms = 0
    for template in TEMPLATES.rglob("*.html"):
        for attrs, body in re.findall(r"<form\b([^>]*)>(.*?)</form>", template.read_text(), flags=re.S):
            if re.search(r'method="post"', attrs, flags=re.I):
                forms += 1
                assert re.search(r"csrf_token|hidden_tag\(\)", body), f"a form in {template.name}"
    assert forms >= 15
