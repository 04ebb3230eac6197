"""What customers read about their usage on the dashboard, /usage and the plan pages:
alerts that still hold against the current plan, worded as past events with their moment
and zone, meters by their labels, and bytes in binary units."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from extensions import db
from models import UsageAlert
from tests.conftest import login, write_plans
from tests.support.staff import customer_id_of, make_staff, staff_login, token
from views.filters import format_bytes, format_moment, format_quantity

FREE = {"apiCalls": 10, "llmTokens": 10000, "storage": 104857600, "requestsPerMinute": 600}
PRO = {"apiCalls": 1000, "llmTokens": 1000000, "storage": 10737418240, "requestsPerMinute": 600,
       "price": {"amount": 4900, "currency": "usd", "interval": "month"}}


@pytest.fixture
def app_config(tmp_path):
    return {"TALLY_CONFIG_FILE": write_plans(tmp_path / "plans.json", free=FREE, pro=PRO)}


class _Text(HTMLParser):
    """The text a person reads: no tags, attributes, scripts or styles."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style", "title")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style", "title")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def text_of(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return re.sub(r"\s+", " ", " ".join(parser.parts)).strip()


def alerts_text(html: str) -> list[str]:
    return [text_of(m) for m in re.findall(r'<p class="alert[^"]*" role="status" '
                                           r'data-testid="usage-alert">.*?</p>', html, re.S)]


def send(client, customer, event_id: str, event_name: str = "api_call", **properties) -> None:
    response = client.post("/v1/events", headers=customer.headers, json={
        "id": event_id, "event_name": event_name, "properties": properties})
    assert response.status_code == 200 and response.get_json()["accepted"] == 1, response.get_json()


def calls(client, customer, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        response = client.post("/v1/authorize", headers=customer.headers, json={"id": f"c{i}"})
        assert response.status_code == 200, response.get_json()


def change_plan(app, staff, account_id: str, plan: str) -> None:
    """What support does in the console: Change plan, with a reason."""
    console: FlaskClient = app.test_client()
    staff_login(console, staff)
    page = console.get(f"/staff/customers/{customer_id_of(app, account_id)}").get_data(as_text=True)
    prefix = f"{account_id}-plan"
    response = console.post(f"/staff/accounts/{account_id}/plan", data={
        f"{prefix}-plan": plan, f"{prefix}-reason": "Ticket 77: plan change",
        f"{prefix}-csrf_token": token(page)})
    assert response.status_code == 303, response.get_data(as_text=True)


def recorded_alerts(app, account_id: str) -> list[UsageAlert]:
    with app.app_context():
        rows = list(db.session.execute(select(UsageAlert).where(
            UsageAlert.account_id == account_id).order_by(UsageAlert.threshold)).scalars())
        for row in rows:
            db.session.expunge(row)
        db.session.remove()
    return rows


# Alerts against the current plan ------------------------------------------------


def test_after_an_upgrade_the_new_limits_thresholds_are_recorded_too(app, client, customer):
    """80% of Free's 10 calls was crossed; after the move to Pro in the same month, 80% of
    Pro's 1,000 is a new crossing, recorded and shown (the Free one stays as history)."""
    staff = make_staff(app)
    calls(client, customer, 9)
    change_plan(app, staff, customer.account_id, "pro")
    batch = [{"id": f"e{i}", "event_name": "api_call"} for i in range(800 - 9 - 1)]
    assert client.post("/v1/events", headers=customer.headers,
                       json={"events": batch}).get_json()["accepted"] == len(batch)
    calls(client, customer, 1, start=9)  # the 800th, through the gate
    login(client, customer)
    shown = alerts_text(client.get("/").get_data(as_text=True))
    assert len(shown) == 1 and shown[0].startswith("API calls passed 80% of this period's limit")
    assert "(800 of 1,000 calls)" in shown[0]
    assert [(a.threshold, a.limit) for a in recorded_alerts(app, customer.account_id)] == [
        (80, 10), (80, 1000)]


def test_an_alert_crossed_on_free_goes_away_on_pro_and_comes_back_on_free(app, client, customer):
    staff = make_staff(app)
    calls(client, customer, 10)
    login(client, customer)
    dashboard = alerts_text(client.get("/").get_data(as_text=True))
    assert len(dashboard) == 1
    assert dashboard[0].startswith("API calls reached 100% of this period's limit on ")
    assert dashboard[0].endswith("(10 of 10 calls). Upgrade to keep going.")
    assert len(alerts_text(client.get("/usage").get_data(as_text=True))) == 1

    change_plan(app, staff, customer.account_id, "pro")
    page = client.get("/").get_data(as_text=True)
    assert alerts_text(page) == [] and "Upgrade to keep going" not in page
    assert "10 calls of 1,000 calls this period" in text_of(page)
    usage = client.get("/usage").get_data(as_text=True)
    assert alerts_text(usage) == [] and "Limit reached" not in usage
    assert [a.threshold for a in recorded_alerts(app, customer.account_id)] == [80, 100]  # history kept

    change_plan(app, staff, customer.account_id, "free")
    assert alerts_text(client.get("/").get_data(as_text=True)) == dashboard
    assert len(alerts_text(client.get("/usage").get_data(as_text=True))) == 1


def test_the_top_plan_is_never_told_to_upgrade(app, client, customer):
    change_plan(app, make_staff(app), customer.account_id, "pro")
    send(client, customer, "big", quantity=1000)  # 100% of Pro's 1,000 calls
    login(client, customer)
    dashboard = alerts_text(client.get("/").get_data(as_text=True))
    assert len(dashboard) == 1
    assert dashboard[0].endswith("(1,000 of 1,000 calls). More is refused until the period ends.")
    usage = client.get("/usage").get_data(as_text=True)
    assert "Limit reached: calls are refused with 402 until the period ends." in text_of(usage)
    for page in (client.get("/").get_data(as_text=True), usage):
        assert "upgrade" not in text_of(page).lower()


def test_the_banner_is_the_crossing_with_its_moment_zone_and_recorded_figures(app, client, customer):
    client.post("/v1/billing/settings", json={"time_zone": "Asia/Tokyo"}, headers=customer.headers)
    calls(client, customer, 8)
    calls(client, customer, 1, start=8)  # 9 of 10 now; the alert says what happened at 8
    (alert,) = recorded_alerts(app, customer.account_id)
    local = alert.created_at.astimezone(ZoneInfo("Asia/Tokyo"))
    expected = (f"API calls passed 80% of this period's limit on {local:%b} {local.day} at "
                f"{local:%H:%M} JST (8 of 10 calls).")
    login(client, customer)
    dashboard = client.get("/").get_data(as_text=True)
    assert alerts_text(dashboard) == [expected]
    assert f'<time datetime="{alert.created_at.isoformat()}">' in dashboard
    assert "9 calls of 10 calls this period" in text_of(dashboard)
    assert alerts_text(client.get("/usage").get_data(as_text=True)) == [expected]


def test_moments_carry_their_zone():
    from datetime import UTC, datetime
    at = datetime(2026, 11, 23, 19, 57, tzinfo=UTC)
    assert format_moment(at) == "Nov 23 at 19:57 UTC"
    assert format_moment(at, "Asia/Tokyo") == "Nov 24 at 04:57 JST"
    assert format_moment(at, "America/Sao_Paulo") == "Nov 23 at 16:57 UTC-03"
    assert format_moment(at, "Asia/Kathmandu") == "Nov 24 at 01:42 UTC+05:45"


# Labels, not internal names ---------------------------------------------------------


def test_pages_name_meters_by_their_labels(app, client, customer):
    staff = make_staff(app)
    created = client.post("/v1/meters", headers=staff.headers, json={
        "name": "gpuSeconds", "event_name": "gpu_job", "aggregation": "max", "property": "seconds",
        "unit": "seconds"})
    assert created.status_code in (200, 201), created.get_json()
    calls(client, customer, 9)
    send(client, customer, "t1", "llm_completion", tokens=2500)
    send(client, customer, "s1", "storage_usage", bytes=5_000_000)
    login(client, customer)
    usage = text_of(client.get("/usage").get_data(as_text=True))
    dashboard = text_of(client.get("/").get_data(as_text=True))
    for heading in ("API calls", "LLM tokens", "Storage", "gpuSeconds"):  # a meter without a label: its name
        assert heading in usage
    assert "API calls passed 80%" in usage and "API calls passed 80%" in dashboard
    assert "API calls" in dashboard
    for internal in ("apiCalls", "llmTokens", "storage ", "count", "sum of", "latest of", "max of"):
        assert internal not in usage and internal not in dashboard, internal
    assert "latest reading" in usage and "highest this period" in usage
    # The JSON API keeps its names.
    body = client.get("/v1/billing/usage", headers=customer.headers).get_json()
    assert "apiCalls" in str(body) and "API calls" not in str(body)


def test_plans_and_usage_use_one_label_and_byte_formatter(client, customer):
    send(client, customer, "s1", "storage_usage", bytes=5_000_000)
    login(client, customer)
    plans = text_of(client.get("/plans").get_data(as_text=True))
    assert "API calls a month 10 calls" in plans and "LLM tokens a month 10,000 tokens" in plans
    assert "Storage 100 MiB" in plans and "Storage 10 GiB" in plans
    assert "MB" not in plans and "GB" not in plans
    usage = text_of(client.get("/usage").get_data(as_text=True))
    assert "4.8 MiB of 100 MiB" in usage
    upgrade = text_of(client.get("/billing/upgrade").get_data(as_text=True))
    assert "Storage 10 GiB" in upgrade and "API calls a month 1,000 calls" in upgrade


# Bytes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "shown"), [
    (0, "0 B"), (1, "1 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"),
    (5_000_000, "4.8 MiB"), (104_857_600, "100 MiB"), (10_737_418_240, "10 GiB"),
    (1_048_575, "1 MiB"), (150 * 1024**2 + 1, "150 MiB"), (2**50, "1 PiB"),
])
def test_bytes_in_binary_units(value, shown):
    assert format_bytes(value) == shown
    assert format_quantity(value, "bytes") == shown


def test_other_quantities_keep_their_unit():
    assert format_quantity(12345, "calls") == "12,345 calls"
    assert format_quantity(None, "calls") == "—"
    assert format_quantity(60) == "60"


def test_times_on_the_dashboard_and_keys_page_are_in_the_accounts_zone(client, customer):
    """Activity and 'last used' read in the account's time zone, with the zone named."""
    assert client.post("/v1/billing/settings", json={"time_zone": "Asia/Tokyo"},
                       headers=customer.headers).status_code == 200
    assert client.post("/v1/billing/payment-intents", json={"amount": 2500},
                       headers=customer.headers).status_code == 200  # the key is now used
    login(client, customer)
    keys_page = client.get("/keys").get_data(as_text=True)
    assert re.search(r"\w{3} \d{1,2}, \d{4} \d{2}:\d{2} JST", keys_page), "last used in JST"
    assert " UTC</time>" not in keys_page
    dashboard = client.get("/").get_data(as_text=True)
    month = f"{datetime.now(UTC).astimezone(ZoneInfo('Asia/Tokyo')):%B %Y}"
    assert f"Period {month} (Asia/Tokyo)" in dashboard
