"""`flask --app app seed-demo` and `create-staff`: one line of JSON each."""

from __future__ import annotations

import json


def run(app, *args: str) -> dict:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_seed_demo_finds_the_same_customer_and_issues_a_fresh_key(app, client):
    first = run(app, "seed-demo")
    assert set(first) == {"email", "password", "api_key", "account_id"}
    second = run(app, "seed-demo")
    assert second["account_id"] == first["account_id"]
    assert second["api_key"] != first["api_key"]
    for key in (first["api_key"], second["api_key"]):  # earlier demo keys stay valid
        me = client.get("/v1/me", headers={"X-Api-Key": key})
        assert me.status_code == 200 and me.get_json()["account_id"] == first["account_id"]


def test_create_staff_prints_a_staff_key(app, client):
    out = run(app, "create-staff", "--email", "Support@Tally.test", "--password", "staff-pass-123")
    assert out["email"] == "support@tally.test" and out["api_key"].startswith("tly_")
    # A staff key is not an account key.
    response = client.get("/v1/me", headers={"X-Api-Key": out["api_key"]})
    assert response.status_code == 403 and response.get_json()["code"] == "key_scope"


def test_create_staff_rejects_bad_input(app):
    result = app.test_cli_runner().invoke(args=["create-staff", "--email", "x", "--password", "p"])
    assert result.exit_code != 0 and "valid email" in result.output
