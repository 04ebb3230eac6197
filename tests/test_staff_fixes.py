"""Fixes to the staff console and the staff API found by QA."""

from __future__ import annotations

import pytest

from tests.support.staff import audit_rows, customer_id_of, make_staff, staff_login


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


@pytest.mark.money
@pytest.mark.parametrize("customer_filter", ["cust_nope", "%"])
def test_audit_export_filtered_by_an_unknown_customer(app, client, staff, customer_filter,
                                                       backend):
    staff_login(client, staff)
    page = client.get("/staff/audit", query_string={"customer": customer_filter})
    assert page.status_code == 200
    export = client.get("/staff/audit.csv", query_string={"customer": customer_filter})
    assert export.status_code == 200
    lines = export.get_data(as_text=True).splitlines()
    assert len(lines) == 1  # the header only: no rows for that customer
    rows = audit_rows(app, action="audit.export")
    assert len(rows) == 1
    assert rows[0].customer_id is None and rows[0].meta == {"customer": customer_filter}


@pytest.mark.money
def test_audit_export_filtered_by_a_real_customer_names_it(app, client, staff, customer, backend):
    staff_login(client, staff)
    cid = customer_id_of(app, customer.account_id)
    assert client.get("/staff/audit.csv", query_string={"customer": cid}).status_code == 200
    rows = audit_rows(app, action="audit.export")
    assert [(r.customer_id, r.meta) for r in rows] == [(cid, {"customer": cid})]
