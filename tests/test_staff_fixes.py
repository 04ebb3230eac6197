"""Fixes to the staff console and the staff API found by QA."""

from __future__ import annotations

import pytest

from tests.support.staff import make_staff, staff_login


@pytest.fixture
def staff(app):
    return make_staff(app)


@pytest.mark.parametrize("status_filter", ["", "all", "failed", "pending", "bogus"])
def test_webhook_inbox_answers_200_for_every_filter(client, staff, status_filter):
    staff_login(client, staff)
    query = f"?status={status_filter}" if status_filter else ""
    response = client.get(f"/staff/webhooks{query}")
    assert response.status_code == 200
    shown = status_filter if status_filter in ("all", "failed", "pending") else "all"
    page = response.get_data(as_text=True)
    assert f'status={shown}" aria-current="page"' in page
