"""Hostile bodies on every JSON endpoint: a clear 4xx in the error shape, never a 5xx,
and nothing stored or changed.

The routes come from the app's url_map (every POST and DELETE under /v1), so a new
endpoint is covered the day it is added. Path parameters are filled with the caller's
own objects, so each request gets past "not found" to the body.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import config
from app import create_app
from extensions import db
from models import Account, ApiKey, Meter
from tests.conftest import login
from tests.support.staff import make_staff, staff_login
from tests.support.state import snapshot
from views.api import TAKES_FORMS

# Bodies no endpoint may act on: (name, raw body, content type).
HOSTILE_BODIES = [
    ("truncated json", b'{"amount": ', "application/json"),
    ("not json", b"amount=2500&kind=account", "application/json"),
    ("a json array", b'[{"amount": 2500}]', "application/json"),
    ("a json string", b'"pay me"', "application/json"),
    ("a json number", b"2500", "application/json"),
    ("json null", b"null", "application/json"),
    ("invalid utf-8", b'{"name": "\xff\xfe\xfa"}', "application/json"),
    ("a byte order mark and junk", b"\xef\xbb\xbf{,}", "application/json"),
    ("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ("nul in a key", b'{"\\u0000": 1}', "application/json"),
    ("a lone surrogate", b'{"name": "\\udc00"}', "application/json"),
    ("form data", b"amount=2500", "application/x-www-form-urlencoded"),
    ("3 MiB", b'{"name": "' + b"x" * 3 * 1024 * 1024 + b'"}', "application/json"),
]


def _routes() -> list[tuple[str, str]]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x"})
    return sorted((rule.rule, method) for rule in app.url_map.iter_rules()
                  if rule.rule.startswith("/v1/")
                  for method in sorted(rule.methods & {"POST", "DELETE"}))


def _takes_stripe_forms(app, path: str, method: str) -> bool:
    """Stripe's Customer Portal endpoints read Stripe's form encoding (views/api/stripe_form.py):
    a form is no hostile body there (an update naming nothing Tally knows changes nothing)."""
    endpoint, _ = app.url_map.bind("localhost").match(path, method=method)
    return getattr(app.view_functions[endpoint], TAKES_FORMS, False)


@pytest.fixture
def world(app, customer):
    """The caller's own objects, by path parameter name."""
    staff = make_staff(app)
    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.id).where(ApiKey.account_id == customer.account_id))
        customer_id = db.session.get(Account, customer.account_id).customer_id
        meter = db.session.scalar(select(Meter.name))
        db.session.remove()
    params = {"account_id": customer.account_id, "key_id": key_id, "customer_id": customer_id,
              "name": meter, "invoice_id": "inv_hostile", "configuration_id": "bpc_hostile",
              "event_id": "evt_hostile", "address": "0x" + "ab" * 20, "member_id": "mem_hostile",
              "invitation_id": "inv_hostile", "session_id": "sess_hostile",
              "payment_method_id": "pm_hostile"}
    return customer, staff, params


@pytest.mark.parametrize(("rule", "method"), _routes())
def test_hostile_bodies_are_refused_and_change_nothing(app, client, world, rule, method):
    customer, staff, params = world
    path = rule
    for name in [part[1:-1].split(":")[-1] for part in rule.split("/") if part.startswith("<")]:
        assert name in params, f"add a value for <{name}> (route {rule}) to the world fixture"
        path = path.replace(f"<{name}>", params[name]).replace(f"<string:{name}>", params[name])
    before = snapshot(app)
    forms = _takes_stripe_forms(app, path, method)
    for label, body, content_type in HOSTILE_BODIES:
        if forms and content_type == "application/x-www-form-urlencoded":
            continue
        for who, headers in (("customer", customer.headers), ("staff", staff.headers),
                             ("anonymous", {})):
            response = client.open(path, method=method, data=body, content_type=content_type,
                                   headers=headers)
            answer = response.get_json(silent=True)
            where = f"{method} {path} as {who} with {label}: {response.status_code} {answer}"
            assert 400 <= response.status_code < 500, where
            shape = {"error", "code", "message"}
            if path.startswith("/v1/billing_portal/"):  # Stripe's own paths: Stripe's error shape
                answer, shape = answer["error"], {"type", "code", "message"}
            assert isinstance(answer, dict) and shape <= answer.keys(), where
    assert snapshot(app) == before


@pytest.mark.parametrize("amount", [-1, 0, -(10**6), 10**30, 2**63, 1.5, 1e400, "2500", "25.00",
                                    True, None, [2500], {"value": 2500}, "٢٥٠٠", "NaN"])
def test_bad_amounts_are_400s_naming_the_field(app, client, customer, amount):
    """Top-ups and credit grants: only a whole number of minor units, in range, is money."""
    staff = make_staff(app)
    before = snapshot(app)
    for path, headers, extra in (
            ("/v1/billing/payment-intents", customer.headers, {}),
            (f"/v1/accounts/{customer.account_id}/credits", staff.headers, {"reason": "hostile"})):
        response = client.post(path, json={"amount": amount, **extra}, headers=headers)
        assert response.status_code == 400, (path, amount, response.get_json())
        assert response.get_json()["param"] == "amount"
    assert snapshot(app) == before


def test_the_body_limit_comes_from_the_environment():
    assert config.from_environment(Path("instance"), {"TALLY_MAX_BODY_BYTES": "1024",
                                                      "SECRET_KEY": "x"})["MAX_CONTENT_LENGTH"] == 1024
    assert config.from_environment(Path("instance"), {"SECRET_KEY": "x"})["MAX_CONTENT_LENGTH"] == 2 << 20


@pytest.mark.parametrize("app_config", [{"MAX_CONTENT_LENGTH": 1024}])
def test_a_body_over_the_limit_is_a_413_in_the_error_shape(app, client, customer):
    before = snapshot(app)
    for path in ("/v1/events", "/v1/billing/webhook", "/login"):
        response = client.post(path, headers={**customer.headers, "Accept": "application/json"},
                               json={"id": "big", "event_name": "api_call", "properties": {"x": "y" * 2000}})
        assert response.status_code == 413, path
        assert response.get_json()["code"] == "request_too_large", path
        assert "over the 1,024-byte limit (TALLY_MAX_BODY_BYTES)" in response.get_json()["message"]
    assert snapshot(app) == before
    small = client.post("/v1/events", headers=customer.headers, json={"id": "s", "event_name": "api_call"})
    assert small.status_code == 200


FORM_AMOUNTS = ["-5", "1e400", "1e30", "99999999999999999999", "NaN", "Infinity", "2.555", "$-1",
                "٢٥٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠", "",
                # Once read as 100 times what was meant (5,50 as 550.00), or as 1,000.00:
                "5,50", "1e3", "1_000", "1 000"]


@pytest.mark.money  # PostgreSQL's BIGINT overflows where SQLite's does not: run on both
@pytest.mark.parametrize("amount", FORM_AMOUNTS)
def test_bad_amounts_in_forms_are_400s_and_change_nothing(app, client, customer, backend, amount):
    """The money fields people type into: top-up, spend cap, staff grant and adjustment."""
    staff = make_staff(app)
    token = login(client, customer)
    before = snapshot(app)
    topup = client.post("/topup/intent", data={"amount": amount, "csrf_token": token},
                        headers={"Accept": "application/json"})
    assert topup.status_code == 400, (amount, topup.get_data(as_text=True)[:300])
    cap = client.post("/usage/settings", data={"time_zone": "UTC", "alert_thresholds": "80",
                                               "spend_cap": amount or "x", "csrf_token": token})
    assert cap.status_code == 400, amount
    desk = app.test_client()
    token = staff_login(desk, staff)
    acct = customer.account_id
    for action in ("grant", "adjust"):
        response = desk.post(f"/staff/accounts/{acct}/{action}", data={
            f"{acct}-{action}-amount": amount, f"{acct}-{action}-reason": "hostile",
            f"{acct}-{action}-csrf_token": token})
        assert response.status_code == 400, (action, amount)
    assert snapshot(app) == before
