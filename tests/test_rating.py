"""Pricing models at their tier edges, price plans, and rated usage drawn from credit."""

from __future__ import annotations

import json

import pytest

from models import PriceCharge
from services.usage.rating import price
from tests.support.staff import audit_rows

GRADUATED = [{"up_to": 100, "unit_amount": 10, "flat_amount": 0},
             {"up_to": 1000, "unit_amount": 5, "flat_amount": 100},
             {"up_to": None, "unit_amount": 1, "flat_amount": 0}]


def charge(model: str, **kw) -> PriceCharge:
    return PriceCharge(model=model, included_units=kw.pop("included_units", 0),
                       tiers=kw.pop("tiers", []), **kw)


@pytest.mark.parametrize("units, expected", [
    (0, 0), (1, 0), (2, 0), (3, 3), (10, 24),  # 2 included: only units beyond them are priced
])
def test_per_unit_with_included_units(units, expected):
    assert price(charge("per_unit", unit_amount=3, included_units=2), units) == expected


@pytest.mark.parametrize("units, expected", [
    (0, 0), (1, 10), (100, 1000),  # first tier only
    (101, 1000 + 5 + 100),  # first unit of tier 2 brings its flat fee
    (1000, 1000 + 900 * 5 + 100),  # last unit of tier 2
    (1001, 1000 + 4500 + 100 + 1),  # first unit of the open tier
])
def test_graduated_tier_edges(units, expected):
    assert price(charge("graduated", tiers=GRADUATED), units) == expected


@pytest.mark.parametrize("units, expected", [
    (0, 0), (100, 100 * 10), (101, 101 * 5 + 100), (1000, 1000 * 5 + 100), (1001, 1001 * 1),
])
def test_volume_tier_edges(units, expected):
    assert price(charge("volume", tiers=GRADUATED), units) == expected


@pytest.mark.parametrize("units, expected", [(0, 0), (1, 250), (1000, 250), (1001, 500), (5000, 1250)])
def test_package_edges(units, expected):
    assert price(charge("package", package_size=1000, package_amount=250), units) == expected


def test_included_units_shift_every_model():
    c = charge("graduated", tiers=GRADUATED, included_units=50)
    assert price(c, 50) == 0 and price(c, 150) == 1000


def staff_key(app) -> str:
    out = app.test_cli_runner().invoke(args=["create-staff", "--email", "ops@tally.test",
                                             "--password", "staff-pass-123"]).output
    return json.loads(out)["api_key"]


@pytest.mark.parametrize("body, param", [
    ({"currency": "usd", "charges": []}, "name"),
    ({"name": "x", "charges": []}, "charges"),
    ({"name": "x", "charges": [{"meter": "nope", "model": "per_unit", "unit_amount": 1}]},
     "charges[0].meter"),
    ({"name": "x", "charges": [{"meter": "apiCalls", "model": "per_unit", "unit_amount": 1},
                               {"meter": "nope", "model": "per_unit", "unit_amount": 1}]},
     "charges[1].meter"),
    ({"name": "x", "charges": [{"meter": "storage", "model": "per_unit", "unit_amount": 1}]},
     "charges[0].meter"),
    ({"name": "x", "charges": [{"meter": "apiCalls", "model": "magic"}]}, "charges[0].model"),
    ({"name": "x", "charges": [{"meter": "apiCalls", "model": "per_unit", "unit_amount": -1}]},
     "charges[0].unit_amount"),
    ({"name": "x", "charges": [{"meter": "apiCalls", "model": "graduated",
                                "tiers": [{"up_to": 10, "unit_amount": 1}]}]}, "charges[0].tiers"),
    ({"name": "x", "charges": [{"meter": "apiCalls", "model": "volume",
                                "tiers": [{"up_to": 10, "unit_amount": 1},
                                          {"up_to": 5, "unit_amount": 1},
                                          {"up_to": None, "unit_amount": 1}]}]},
     "charges[0].tiers[1].up_to"),
    ({"name": "x", "charges": [{"meter": "apiCalls", "model": "package", "package_size": 0,
                                "package_amount": 5}]}, "charges[0].package_size"),
])
def test_bad_price_plans_are_400_naming_the_field(app, client, body, param):
    response = client.post("/v1/price-plans", json=body, headers={"X-Api-Key": staff_key(app)})
    assert response.status_code == 400
    assert response.get_json()["param"] == param


def test_staff_create_price_plans_and_accounts_see_theirs(app, client, customer):
    staff = {"X-Api-Key": staff_key(app)}
    created = client.post("/v1/price-plans", headers=staff, json={
        "name": "Tokens", "currency": "usd", "charges": [
            {"meter": "llmTokens", "model": "graduated", "tiers": GRADUATED, "included_units": 10}]})
    assert created.status_code == 201
    plan = created.get_json()
    assert plan["charges"][0] == {"meter": "llmTokens", "model": "graduated", "included_units": 10,
                                  "tiers": GRADUATED}
    assert client.post("/v1/price-plans", headers=customer.headers, json={}).status_code == 403
    assert client.get("/v1/price-plans", headers=customer.headers).get_json()["data"] == []
    assigned = client.post(f"/v1/accounts/{customer.account_id}/price-plan", headers=staff,
                           json={"price_plan_id": plan["id"], "reason": "Usage contract"})
    assert assigned.status_code == 200
    [row] = audit_rows(app, action="price_plan.assign")
    assert row.via == "api" and row.reason == "Usage contract"
    assert row.after == {"price_plan_id": plan["id"]}
    mine = client.get("/v1/price-plans", headers=customer.headers).get_json()["data"]
    assert [p["id"] for p in mine] == [plan["id"]]
    assert len(client.get("/v1/price-plans", headers=staff).get_json()["data"]) == 1
