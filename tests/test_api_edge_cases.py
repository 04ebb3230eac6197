"""Bad input the contract run (tests/test_contract.py) or reading for it turned up: each
answered 500 before its fix, and must be a 400 naming the field."""

from __future__ import annotations

import pytest

from tests.support.staff import make_staff


@pytest.mark.parametrize("time_zone", ["Europe", "America", "x" * 300])
def test_a_time_zone_that_is_a_folder_or_too_long_is_a_400(client, customer, time_zone):
    response = client.post("/v1/billing/settings", json={"time_zone": time_zone},
                           headers=customer.headers)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["param"] == "time_zone"
    assert client.get("/v1/billing/settings", headers=customer.headers).get_json()["time_zone"] == "UTC"


def test_a_portal_configuration_with_no_features_is_a_400_not_a_stripe_refusal(app, client):
    staff = make_staff(app)
    response = client.post("/v1/billing-portal/configurations", headers=staff.headers,
                           json={"features": {}, "headline": "Acme"})
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["param"] == "features"
    created = client.post("/v1/billing-portal/configurations", headers=staff.headers,
                          json={"features": {"invoice_history": {"enabled": True}}})
    assert created.status_code == 201, created.get_json()
