"""Security headers, CSRF on every form, login throttling, sessions that end when they
should, and API keys that never reach a log."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from app import create_app
from tests.conftest import csrf_token, login, signup_link
from tests.support.staff import make_staff, staff_login
from tests.support.state import snapshot

STRIPE_ORIGINS = {"https://js.stripe.com", "https://api.stripe.com", "https://hooks.stripe.com",
                  "https://checkout.stripe.com", "https://billing.stripe.com"}
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
        assert policy["base-uri"] == ["'self'"]
        # Forms post to Tally; its Checkout and Portal buttons redirect on to Stripe's pages.
        assert policy["form-action"] == ["'self'", "https://checkout.stripe.com",
                                         "https://billing.stripe.com", "https://api.stripe.com"]
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


def test_authenticated_pages_and_api_answers_are_never_cached(app, client, customer):
    """A shared cache or the back button must not keep a balance, a key or a CSRF token."""
    login(client, customer)
    answers = {path: client.get(path) for path in (
        "/", "/keys", "/activity", "/usage", "/plans", "/billing/invoices", "/account", "/topup")}
    answers["htmx /"] = client.get("/", headers={"HX-Request": "true", "HX-Target": "balance"})
    api = app.test_client()
    for path in ("/v1/me", "/v1/billing/balance", "/v1/keys", "/v1/billing/ledger", "/v1/nope"):
        answers[path] = api.get(path, headers=customer.headers)
    answers["POST /v1/keys"] = api.post("/v1/keys", headers=customer.headers, json={"name": "k"})
    answers["401"] = api.get("/v1/me")
    desk = app.test_client()
    staff_login(desk, make_staff(app))
    answers["/staff/"] = desk.get("/staff/")
    answers["/staff/audit.csv"] = desk.get("/staff/audit.csv")
    for where, response in answers.items():
        assert response.status_code < 500, where
        assert response.headers.get("Cache-Control") == "no-store", where
    # Static files keep their own caching.
    assert "no-store" not in client.get("/static/tally.css").headers.get("Cache-Control", "")


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
           "invoice_id": "inv_x", "event_id": "evt_x", "configuration_id": "bpc_x",
           "address": "0x" + "ab" * 20,
           "session_id": "sess_x", "member_id": "mem_x", "invitation_id": "inv_x",
           "payment_method_id": "pm_x"}
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


# Login throttling -----------------------------------------------------------------


def attempt(client, email: str, password: str, ip: str = "203.0.113.7"):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": ip})


def test_failed_logins_are_throttled_per_email_beside_the_form(app, customer):
    for n in range(10):  # ten guesses from ten addresses
        guess = attempt(app.test_client(), customer.email, "wrong-password", f"198.51.100.{n}")
        assert guess.status_code == 400
    refused = attempt(app.test_client(), customer.email, customer.password, "198.51.100.99")
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    html = refused.get_data(as_text=True)
    assert "Too many login attempts" in html and 'name="password"' in html  # beside the form
    other = attempt(app.test_client(), "someone-else@example.com", "whatever-pass", "198.51.100.99")
    assert other.status_code == 400  # another address and email are not held up


def test_failed_logins_are_throttled_per_ip(app, make_customer):
    victim = make_customer()
    client = app.test_client()
    for n in range(10):
        assert attempt(client, f"guess{n}@example.com", "wrong-password").status_code == 400
    assert attempt(client, victim.email, victim.password).status_code == 429
    assert attempt(client, victim.email, victim.password, ip="192.0.2.1").status_code == 303


def owners_browser(app, customer, ip: str):
    """The owner's own browser: it has logged in before (and logged out since)."""
    browser = app.test_client()
    assert attempt(browser, customer.email, customer.password, ip).status_code == 303
    assert browser.get_cookie("tally_device", path="/login") is not None
    browser.post("/logout", data={"csrf_token": csrf_token(browser.get("/").get_data(as_text=True))})
    return browser


@pytest.mark.parametrize("shared_address", [False, True], ids=["elsewhere", "behind-the-same-nat"])
def test_an_attacker_cannot_lock_the_owner_out(app, customer, shared_address):
    home = "192.0.2.10"
    browser = owners_browser(app, customer, home)
    for n in range(30):  # wrong passwords for the owner's email, from everywhere
        attacker = app.test_client()
        attempt(attacker, customer.email, "wrong-password", home if shared_address else f"198.51.100.{n}")
    # Guessing stays slow: a new browser is refused, even with the right password...
    stranger = attempt(app.test_client(), customer.email, customer.password, "203.0.113.50")
    assert stranger.status_code == 429
    # ...but the owner's own browser logs in.
    assert attempt(browser, customer.email, customer.password, home).status_code == 303
    assert browser.get("/").status_code == 200


def test_a_known_browser_guessing_is_throttled_too(app, customer, make_customer):
    browser = owners_browser(app, customer, "192.0.2.10")
    for _ in range(10):
        assert attempt(browser, customer.email, "wrong-password", "192.0.2.10").status_code == 400
    assert attempt(browser, customer.email, customer.password, "192.0.2.10").status_code == 429
    # The device cookie speaks for its own user only: for another account, this browser is a
    # stranger, held by the per-email limit like any other.
    other = make_customer("Other")
    for n in range(10):
        attempt(app.test_client(), other.email, "wrong-password", f"198.51.100.{n}")
    assert attempt(browser, other.email, other.password, "192.0.2.11").status_code == 429


def test_a_forged_device_cookie_counts_for_nothing(app, customer):
    for n in range(10):
        attempt(app.test_client(), customer.email, "wrong-password", f"198.51.100.{n}")
    forger = app.test_client()
    forger.set_cookie("tally_device", '{"u": "usr_x", "d": "y"}', path="/login")
    assert attempt(forger, customer.email, customer.password, "203.0.113.8").status_code == 429


def test_successful_logins_do_not_count(app, customer):
    client = app.test_client()
    for _ in range(12):
        assert attempt(client, customer.email, customer.password).status_code == 303
        client.post("/logout", data={"csrf_token": csrf_token(client.get("/").get_data(as_text=True))})


# Sessions -------------------------------------------------------------------------


def session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def with_cookie(app, value: str):
    other = app.test_client()
    other.set_cookie("session", value)
    return other


def test_the_session_is_renewed_at_login(app, client, customer):
    client.get("/login")
    before = session_cookie(client)
    login(client, customer)
    assert session_cookie(client) != before
    # A session planted before login (fixation) is still anonymous afterwards.
    assert with_cookie(app, before).get("/").status_code == 302


def test_logout_kills_the_session_and_every_copy_of_it(app, client, customer):
    token = login(client, customer)
    stolen = with_cookie(app, session_cookie(client))
    assert stolen.get("/").status_code == 200
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/").status_code == 302
    assert stolen.get("/").status_code == 302


def change_password(client, current: str, new: str):
    token = csrf_token(client.get("/account").get_data(as_text=True))
    return client.post("/account/password", data={"current_password": current, "new_password": new,
                                                   "confirm_password": new, "csrf_token": token})


def test_changing_the_password_ends_every_other_session(app, client, customer):
    login(client, customer)
    laptop = app.test_client()
    login(laptop, customer)
    before = session_cookie(client)
    response = change_password(client, customer.password, "a-brand-new-password")
    assert response.status_code == 303
    assert "Every other session has been logged out" in client.get("/account").get_data(as_text=True)
    assert session_cookie(client) != before and client.get("/").status_code == 200
    assert laptop.get("/").status_code == 302
    assert with_cookie(app, before).get("/").status_code == 302
    assert attempt(app.test_client(), customer.email, customer.password).status_code == 400
    assert attempt(app.test_client(), customer.email, "a-brand-new-password").status_code == 303


@pytest.mark.parametrize(("current", "new", "message"), [
    ("not-my-password", "a-brand-new-password", "not your current password"),
    (None, "short", "at least 10 characters"),
    (None, None, "different from the current one")])
def test_a_refused_password_change_says_why_and_changes_nothing(app, client, customer, current, new,
                                                                message):
    login(client, customer)
    laptop = app.test_client()
    login(laptop, customer)
    before = snapshot(app)
    response = change_password(client, current or customer.password, new or customer.password)
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert snapshot(app) == before and laptop.get("/").status_code == 200


def test_the_password_page_needs_a_login(client):
    assert client.get("/account").status_code == 302


# Logs -----------------------------------------------------------------------------


def test_api_keys_and_other_secrets_never_reach_the_logs(app, client, customer, caplog, mail):
    """Every logger at DEBUG (SQL statements and their parameters included) while keys are
    made, shown, used, refused and rotated, Stripe is called and people log in: no record
    holds a key, a password or a Stripe secret."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # SQLAlchemy sets WARN itself
    keys = [customer.api_key]
    assert client.post("/signup", data={
        "email": "logs@example.com", "password": "long-enough-password", "name": "Logs",
        "csrf_token": csrf_token(client.get("/signup").get_data(as_text=True))}).status_code == 200
    link = signup_link(mail.messages[-1])
    signup = client.post("/signup/confirm", data={
        "token": unquote(link.split("token=")[1]),
        "csrf_token": csrf_token(client.get(link).get_data(as_text=True))})
    keys.append(signup.get_data(as_text=True).split('data-testid="new-api-key">')[1].split("<")[0])
    created = client.post("/v1/keys", json={"kind": "usage"}, headers=customer.headers).get_json()
    keys.append(created["api_key"])
    assert client.post("/v1/authorize", headers={"Authorization": f"Bearer {keys[-1]}"}).status_code == 200
    rotated = client.post("/v1/keys/rotate", headers=customer.headers).get_json()["api_key"]
    keys.append(rotated)
    assert client.get("/v1/me", headers=customer.headers).status_code == 401  # the old one, refused
    assert client.get("/v1/me", headers={"X-Api-Key": rotated}).status_code == 200
    wrong = "tly_" + "x" * 40
    assert client.get("/v1/me", headers={"X-Api-Key": wrong}).status_code == 401
    assert client.post("/v1/billing/payment-intents", json={"amount": 2500},  # calls Stripe
                       headers={"X-Api-Key": rotated}).status_code == 200
    web = app.test_client()
    login(web, customer)
    page = web.post("/keys", data={"kind": "account", "name": "page key",
                                   "csrf_token": csrf_token(web.get("/keys").get_data(as_text=True))})
    keys.append(re.search(r"tly_[0-9A-Za-z]{40}", page.get_data(as_text=True)).group(0))
    # The key lookups' SQL and its parameters were logged (or the test would prove nothing).
    assert any("key_hash" in r.getMessage() for r in caplog.records)
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    for key in [*keys, wrong]:
        assert key not in logged and key[4:] not in logged
    for secret in (customer.password, "long-enough-password", app.config["STRIPE_SECRET_KEY"],
                   app.config["STRIPE_WEBHOOK_SECRET"]):
        assert secret not in logged
