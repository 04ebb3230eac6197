"""Plans come from the JSON file at TALLY_CONFIG_FILE; lifetime limits hold across periods."""

from __future__ import annotations

import pytest

from app import create_app
from services.billing.plans import PlanConfigError
from tests.conftest import write_plans


@pytest.fixture
def app_config(tmp_path):
    return {"TALLY_CONFIG_FILE": write_plans(
        tmp_path / "plans.json", free={"apiCalls": 100, "lifetimeApiCalls": 2})}


def test_lifetime_limit(client, customer):
    for _ in range(2):
        assert client.post("/v1/authorize", headers=customer.headers).status_code == 200
    refused = client.post("/v1/authorize", headers=customer.headers)
    assert refused.status_code == 402
    assert refused.get_json()["message"] == "API call lifetime limit reached"
    assert refused.get_json()["usage"] == {"current": 2, "limit": 2}
    billing = client.get("/v1/billing", headers=customer.headers).get_json()
    assert billing["calls_total"] == 2 and billing["over_limit"] is True


def test_missing_limits_are_unlimited(client, customer):
    usage = client.get("/v1/billing/usage", headers=customer.headers).get_json()["usage"]
    assert usage["apiCallsLimit"] == 100 and usage["llmTokensLimit"] is None


def test_malformed_plans_file_stops_start_up(tmp_path):
    bad = tmp_path / "bad.json"
    for text, fault in (("{", "not valid JSON"), ('{"billing": {}}', "billing.plans"),
                        ('{"billing": {"plans": {"free": {"apiCalls": -1}}}}', "apiCalls"),
                        ('{"billing": {"plans": {"pro": {}}}}', "'free'")):
        bad.write_text(text)
        with pytest.raises(PlanConfigError) as error:
            create_app({"TALLY_CONFIG_FILE": str(bad), "SQLALCHEMY_DATABASE_URI": "sqlite://"})
        assert str(bad) in str(error.value) and fault in str(error.value)


