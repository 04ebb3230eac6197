"""`Idempotency-Key` on every POST under /v1: a retry gets the first answer and runs nothing
again; another request under the same key is a 409; so is a retry while the first runs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import func, select, update

from app import create_app
from extensions import db
from models import ApiKey, CreditGrant, IdempotencyRecord, TopUp
from models.base import utcnow
from services import idempotency
from services.ledger import entries as ledger
from tests.support.staff import make_staff
from tests.support.threads import at_once

pytestmark = pytest.mark.money  # money moves; the race runs on PostgreSQL too

REPLAYED = "Idempotent-Replayed"


def with_key(headers: dict[str, str], key: str) -> dict[str, str]:
    return headers | {"Idempotency-Key": key}


def error_code(response) -> str:
    body = response.get_json()
    assert set(body) >= {"error", "code", "message"}, body
    return body["code"]


def count(app, model, *where) -> int:
    with app.app_context():
        n = db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()
        db.session.remove()
    return n


def test_a_retried_top_up_creates_one_payment_intent(app, client, customer, backend):
    headers = with_key(customer.headers, "topup-7f3a")
    first = client.post("/v1/billing/payment-intents", headers=headers, json={"amount": 2500})
    assert first.status_code == 200 and REPLAYED not in first.headers
    again = client.post("/v1/billing/payment-intents", headers=headers, json={"amount": 2500})
    assert again.status_code == 200 and again.headers[REPLAYED] == "true"
    assert again.get_data() == first.get_data()
    assert count(app, TopUp, TopUp.account_id == customer.account_id) == 1
    # The same key on the other path of the same operation is a different request.
    other_path = client.post("/v1/billing/create-payment-intent", headers=headers, json={"amount": 2500})
    assert other_path.status_code == 409 and error_code(other_path) == "idempotency_key_reused"
    reused = client.post("/v1/billing/payment-intents", headers=headers, json={"amount": 2600})
    assert reused.status_code == 409 and error_code(reused) == "idempotency_key_reused"
    assert reused.get_json()["param"] == "Idempotency-Key"
    assert count(app, TopUp, TopUp.account_id == customer.account_id) == 1


def test_a_retried_credit_grant_credits_once(app, client, customer, backend):
    staff = make_staff(app)
    url = f"/v1/accounts/{customer.account_id}/credits"
    headers = with_key(staff.headers, "ticket-9001")
    body = {"amount": 1500, "reason": "Outage credit"}
    first = client.post(url, headers=headers, json=body)
    assert first.status_code == 201
    # Key order and spacing do not make a different request.
    again = client.post(url, headers=headers | {"Content-Type": "application/json"},
                        data=json.dumps({"reason": "Outage credit", "amount": 1500}, indent=2))
    assert again.status_code == 201 and again.headers[REPLAYED] == "true"
    assert again.get_json() == first.get_json()
    reused = client.post(url, headers=headers, json=body | {"amount": 999})
    assert reused.status_code == 409 and error_code(reused) == "idempotency_key_reused"
    assert client.get("/v1/billing/balance", headers=customer.headers).get_json()["balance"] == 1500
    assert count(app, CreditGrant, CreditGrant.account_id == customer.account_id) == 1
    with app.app_context():
        assert ledger.ledger_sum(customer.account_id) == 1500
        db.session.remove()


def test_a_retried_rotation_rotates_once(app, client, customer, backend):
    created = client.post("/v1/keys", headers=customer.headers, json={"kind": "usage", "name": "prod"})
    key_id = created.get_json()["key"]["id"]
    headers = with_key(customer.headers, "rotate-prod-1")
    first = client.post("/v1/keys/rotate", headers=headers, json={"key_id": key_id})
    again = client.post("/v1/keys/rotate", headers=headers, json={"key_id": key_id})
    assert first.status_code == again.status_code == 200 and again.headers[REPLAYED] == "true"
    new_key = first.get_json()["api_key"]
    # The key is shown once and stored only as a hash: the replay has the same key object,
    # but not the secret, and no stored answer holds it.
    assert again.get_json() == first.get_json() | {"api_key": None}
    assert client.get("/v1/billing/balance", headers={"X-Api-Key": new_key}).status_code == 200
    assert count(app, ApiKey, ApiKey.account_id == customer.account_id, ApiKey.revoked_at.is_not(None)) == 1
    assert len(client.get("/v1/keys", headers=customer.headers).get_json()["data"]) == 2


def test_no_stored_answer_holds_an_api_key(app, client, customer, backend):
    made = client.post("/v1/keys", headers=with_key(customer.headers, "new-key-1"),
                       json={"kind": "usage", "name": "prod"})
    replay = client.post("/v1/keys", headers=with_key(customer.headers, "new-key-1"),
                         json={"kind": "usage", "name": "prod"})
    assert made.status_code == replay.status_code == 201 and replay.headers[REPLAYED] == "true"
    assert made.get_json()["api_key"].startswith("tly_") and replay.get_json()["api_key"] is None
    assert replay.get_json()["key"] == made.get_json()["key"]
    with app.app_context():
        bodies = db.session.execute(select(IdempotencyRecord.body)).scalars().all()
        db.session.remove()
    assert bodies and not any(made.get_json()["api_key"] in (body or "") for body in bodies)


def test_errors_are_replayed_too_and_other_accounts_are_independent(client, make_customer, backend):
    alice, bob = make_customer("Alice"), make_customer("Bob")
    bad = client.post("/v1/billing/payment-intents", headers=with_key(alice.headers, "k1"),
                      json={"amount": 1})
    assert bad.status_code == 400 and error_code(bad) == "amount_out_of_range"
    again = client.post("/v1/billing/payment-intents", headers=with_key(alice.headers, "k1"),
                        json={"amount": 1})
    assert again.status_code == 400 and again.headers[REPLAYED] == "true"
    # Bob's "k1" is his own.
    bobs = client.post("/v1/billing/payment-intents", headers=with_key(bob.headers, "k1"),
                       json={"amount": 2500})
    assert bobs.status_code == 200 and REPLAYED not in bobs.headers
    # Without a key nothing is stored: each call runs.
    one = client.post("/v1/keys", headers=alice.headers, json={"name": "a"}).get_json()
    two = client.post("/v1/keys", headers=alice.headers, json={"name": "a"}).get_json()
    assert one["key"]["id"] != two["key"]["id"]


def usage_key(client, customer) -> dict[str, str]:
    made = client.post("/v1/keys", headers=customer.headers, json={"kind": "usage", "name": "server"})
    return {"X-Api-Key": made.get_json()["api_key"]}


def test_an_answer_is_replayed_only_to_the_credential_scope_that_earned_it(app, client, customer,
                                                                          backend):
    """A usage key that sends an account key's Idempotency-Key and body gets its own 403,
    not the account key's client secret or portal URL."""
    usage = usage_key(client, customer)
    secret = client.post("/v1/billing/payment-intents", json={"amount": 2500},
                         headers=with_key(customer.headers, "topup-1"))
    assert secret.status_code == 200 and secret.get_json()["client_secret"]
    stolen = client.post("/v1/billing/payment-intents", json={"amount": 2500},
                         headers=with_key(usage, "topup-1"))
    assert stolen.status_code == 403 and error_code(stolen) == "key_scope"
    assert REPLAYED not in stolen.headers and "client_secret" not in stolen.get_json()
    portal = client.post("/v1/billing/portal", json={"returnUrl": "https://example.com/back"},
                         headers=with_key(customer.headers, "portal-1"))
    assert portal.status_code == 200 and portal.get_json()["url"]
    stolen = client.post("/v1/billing/portal", json={"returnUrl": "https://example.com/back"},
                         headers=with_key(usage, "portal-1"))
    assert stolen.status_code == 403 and "url" not in stolen.get_json()
    # The owner's retry still gets its own answer.
    again = client.post("/v1/billing/payment-intents", json={"amount": 2500},
                        headers=with_key(customer.headers, "topup-1"))
    assert again.headers[REPLAYED] == "true" and again.get_data() == secret.get_data()


def test_a_refusal_earned_by_one_scope_is_never_handed_to_another(app, client, customer, backend):
    """A usage key's 403 is not stored, so the account key with the same Idempotency-Key and
    body runs; and the two scopes of one account each keep their own answers."""
    usage = usage_key(client, customer)
    refused = client.post("/v1/keys", json={"name": "ci"}, headers=with_key(usage, "k-shared"))
    assert refused.status_code == 403 and error_code(refused) == "key_scope"
    made = client.post("/v1/keys", json={"name": "ci"}, headers=with_key(customer.headers, "k-shared"))
    assert made.status_code == 201 and REPLAYED not in made.headers
    events = {"id": "evt-scope-1", "event_name": "api_call"}
    by_usage = client.post("/v1/events", json=events, headers=with_key(usage, "batch-1"))
    by_account = client.post("/v1/events", json=events, headers=with_key(customer.headers, "batch-1"))
    assert REPLAYED not in by_account.headers  # not the usage key's stored answer
    assert by_usage.get_json()["accepted"] == 1 and by_account.get_json()["duplicates"] == 1
    with app.app_context():
        owners = set(db.session.execute(select(IdempotencyRecord.owner)).scalars())
        db.session.remove()
    assert owners == {f"account:{customer.account_id}:account_key",
                      f"account:{customer.account_id}:usage_key"}


def test_a_payment_intents_client_secret_is_never_stored(app, client, customer, backend):
    first = client.post("/v1/billing/payment-intents", json={"amount": 2500},
                        headers=with_key(customer.headers, "topup-secret"))
    secret = first.get_json()["client_secret"]
    assert secret and "_secret_" in secret
    with app.app_context():
        [body] = db.session.execute(select(IdempotencyRecord.body)).scalars().all()
        db.session.remove()
    assert secret not in body and json.loads(body)["client_secret"] is None
    # A replay reads it again from Stripe, for this account's own PaymentIntent.
    again = client.post("/v1/billing/payment-intents", json={"amount": 2500},
                        headers=with_key(customer.headers, "topup-secret"))
    assert again.headers[REPLAYED] == "true" and again.get_json()["client_secret"] == secret


def test_key_length_and_a_bad_api_key(client, customer, backend):
    too_long = client.post("/v1/keys", headers=with_key(customer.headers, "x" * 256), json={})
    assert too_long.status_code == 400 and error_code(too_long) == "invalid_request"
    assert too_long.get_json()["param"] == "Idempotency-Key"
    assert client.post("/v1/keys", headers=with_key(customer.headers, ""), json={}).status_code == 400
    longest = client.post("/v1/keys", headers=with_key(customer.headers, "x" * 255), json={})
    assert longest.status_code == 201
    # An invalid API key is refused before the key is looked at or stored.
    refused = client.post("/v1/keys", headers={"X-Api-Key": "tly_" + "0" * 40,
                                                "Idempotency-Key": "x" * 255}, json={})
    assert refused.status_code == 401


def test_a_server_error_is_not_stored(app, client, customer, backend):
    """Stripe unreachable is a 503; the key is released, so the retry runs (and may succeed)."""
    down = create_app({**{k: app.config[k] for k in (
        "TESTING", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "STRIPE_SECRET_KEY",
        "RATELIMIT_STORAGE_URI", "RATELIMIT_KEY_PREFIX")}, "STRIPE_API_BASE": "http://127.0.0.1:9"})
    headers = with_key(customer.headers, "retry-me")
    failed = down.test_client().post("/v1/billing/payment-intents", headers=headers,
                                     json={"amount": 2500})
    assert failed.status_code == 503
    retried = client.post("/v1/billing/payment-intents", headers=headers, json={"amount": 2500})
    assert retried.status_code == 200 and REPLAYED not in retried.headers
    with down.app_context():
        db.engine.dispose()


def age_records(app, age: timedelta) -> None:
    with app.app_context():
        db.session.execute(update(IdempotencyRecord).values(created_at=utcnow() - age))
        db.session.commit()
        db.session.remove()


def test_a_key_is_kept_for_a_day(app, client, customer, backend):
    headers = with_key(customer.headers, "daily")
    first = client.post("/v1/keys", headers=headers, json={"name": "one"}).get_json()
    age_records(app, idempotency.TTL - timedelta(minutes=1))
    assert client.post("/v1/keys", headers=headers, json={"name": "one"}).headers[REPLAYED] == "true"
    age_records(app, idempotency.TTL + timedelta(minutes=1))
    # A day later the key is free again, even for another body.
    fresh = client.post("/v1/keys", headers=headers, json={"name": "two"})
    assert fresh.status_code == 201 and REPLAYED not in fresh.headers
    assert fresh.get_json()["key"]["id"] != first["key"]["id"]
    client.post("/v1/keys", headers=with_key(customer.headers, "other"), json={"name": "three"})
    age_records(app, idempotency.TTL + timedelta(minutes=1))
    purged = app.test_cli_runner().invoke(args=["purge-idempotency-keys"])
    assert purged.exit_code == 0 and json.loads(purged.output) == {"deleted": 2}
    assert count(app, IdempotencyRecord) == 0


def post(url: str, body: dict, headers: dict[str, str]) -> tuple[int, dict, bool]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response), response.headers.get(REPLAYED) == "true"
    except urllib.error.HTTPError as error:
        return error.code, json.load(error), False


@pytest.mark.parametrize("path, body, ok", [
    ("/v1/keys", {"kind": "usage", "name": "racer"}, 201),
    ("credits", {"amount": 700, "reason": "Race credit"}, 201),
])
def test_concurrent_retries_run_once(app, live_server, customer, backend, path, body, ok):
    staff = make_staff(app)
    headers = customer.headers
    if path == "credits":
        path, headers = f"/v1/accounts/{customer.account_id}/credits", staff.headers
    headers = with_key(headers, "same-key-everywhere")
    results = at_once([partial(post, live_server.url + path, body, headers)] * 8)
    ran = [r for r in results if r[0] == ok and not r[2]]
    replayed = [r for r in results if r[0] == ok and r[2]]
    busy = [r for r in results if r[0] == 409]
    assert len(ran) == 1, results
    assert len(ran) + len(replayed) + len(busy) == 8, results
    assert all(r[1]["code"] == "idempotency_key_in_use" for r in busy)
    # A replay is the first answer; a new key's secret is never kept, so it replays as null.
    first = ran[0][1] | ({"api_key": None} if "api_key" in ran[0][1] else {})
    assert all(r[1] == first for r in replayed)
    # After the race, a retry gets the answer.
    status, answer, was_replayed = post(live_server.url + path, body, headers)
    assert status == ok and was_replayed and answer == first
    if "credits" in path:
        assert count(app, CreditGrant, CreditGrant.account_id == customer.account_id) == 1
        with app.app_context():
            assert ledger.ledger_sum(customer.account_id) == 700 == ledger.current_balance(
                customer.account_id)
            db.session.remove()
    else:
        assert count(app, ApiKey, ApiKey.account_id == customer.account_id) == 2


# Pages: the same store, the same rules -------------------------------------------------


def test_a_double_submitted_staff_grant_credits_once(app, client, customer, backend):
    from tests.support.staff import customer_id_of, staff_login, token

    staff = make_staff(app)
    staff_login(client, staff)
    page = client.get(f"/staff/customers/{customer_id_of(app, customer.account_id)}")
    html = page.get_data(as_text=True)
    assert 'name="idempotency_key"' in html  # every money form carries one
    prefix = f"{customer.account_id}-grant"
    form = {f"{prefix}-csrf_token": token(html), f"{prefix}-amount": "12.50",
            f"{prefix}-reason": "Goodwill for the outage", "idempotency_key": "grant-form-1"}
    url = f"/staff/accounts/{customer.account_id}/grant"
    first = client.post(url, data=form)
    again = client.post(url, data=form)  # the second click of a double click
    assert first.status_code == again.status_code == 303
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers[REPLAYED] == "true"
    assert count(app, CreditGrant, CreditGrant.account_id == customer.account_id) == 1
    with app.app_context():
        assert ledger.current_balance(customer.account_id) == 1250
        db.session.remove()
    # A new rendering of the form is a new operation.
    fresh = client.post(url, data=form | {"idempotency_key": "grant-form-2"})
    assert fresh.status_code == 303 and REPLAYED not in fresh.headers
    assert count(app, CreditGrant, CreditGrant.account_id == customer.account_id) == 2


def test_a_retried_page_top_up_gets_the_same_payment_intent(app, client, customer, backend):
    from tests.conftest import login

    csrf = login(client, customer)
    headers = {"X-CSRFToken": csrf, "Accept": "application/json", "Idempotency-Key": "pay-1"}
    first = client.post("/topup/intent", data={"amount": "25.00", "csrf_token": csrf}, headers=headers)
    again = client.post("/topup/intent", data={"amount": "25.00", "csrf_token": csrf}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers[REPLAYED] == "true"
    assert again.get_json()["payment_intent_id"] == first.get_json()["payment_intent_id"]
    # The client secret comes back (read again from Stripe), though the store never keeps it.
    assert again.get_json()["client_secret"] == first.get_json()["client_secret"]
    assert count(app, TopUp, TopUp.account_id == customer.account_id) == 1
    changed = client.post("/topup/intent", data={"amount": "30.00", "csrf_token": csrf},
                          headers=headers)
    assert changed.status_code == 409 and error_code(changed) == "idempotency_key_reused"


def test_a_page_key_is_the_persons_own(app, client, make_customer, backend):
    """Two people sending the same key never share an answer."""
    from tests.conftest import login

    answers = []
    for who in (make_customer("First"), make_customer("Second")):
        client.cookie_jar.clear() if hasattr(client, "cookie_jar") else None
        csrf = login(client, who)
        answers.append(client.post("/topup/intent", data={"amount": "25.00", "csrf_token": csrf},
                                   headers={"X-CSRFToken": csrf, "Accept": "application/json",
                                            "Idempotency-Key": "same-key"}))
        client.post("/logout", data={"csrf_token": csrf})
    assert all(a.status_code == 200 and REPLAYED not in a.headers for a in answers)
    assert answers[0].get_json()["payment_intent_id"] != answers[1].get_json()["payment_intent_id"]


def test_stripe_keys_derive_from_the_operation_within_stripes_limit():
    long_key = "k" * 255
    derived = idempotency.stripe_key("topup", "acct_1", f"account:acct_1:account_key:{long_key}")
    assert len(derived) <= 255 and derived.startswith("tally-topup-")
    assert derived == idempotency.stripe_key("topup", "acct_1", f"account:acct_1:account_key:{long_key}")
    assert derived != idempotency.stripe_key("topup", "acct_1", f"account:acct_1:usage_key:{long_key}")
    assert idempotency.stripe_key("customer", "cust_1") == "tally-customer-cust_1"
