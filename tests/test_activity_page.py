"""The Activity page: the whole ledger a page at a time, linked from the dashboard, which
shows only the last 10 entries."""

from __future__ import annotations

import re

from extensions import db
from models.ledger import KIND_ADJUSTMENT
from models.recharge import RechargeAttempt
from services.ledger import entries as ledger
from tests.conftest import login


def post_entries(app, account_id: str, n: int) -> None:
    with app.app_context():
        for i in range(1, n + 1):
            ledger.post_entry(account_id, i, kind=KIND_ADJUSTMENT, source="test",
                              source_id=f"activity-{i}", description=f"Entry {i}")
        db.session.commit()
        db.session.remove()


def descriptions(html: str) -> list[int]:
    return [int(n) for n in re.findall(r"Entry (\d+)", html)]


def test_every_entry_is_reachable_page_by_page(app, client, customer):
    post_entries(app, customer.account_id, 55)
    login(client, customer)
    dashboard = client.get("/").get_data(as_text=True)
    assert descriptions(dashboard) == list(range(55, 45, -1))
    assert 'href="/activity"' in dashboard

    first = client.get("/activity").get_data(as_text=True)
    assert descriptions(first) == list(range(55, 5, -1))
    assert ">Newer<" not in first
    older = re.search(r'href="(/activity\?starting_after=[^"]+)"', first)
    assert older, "an Older link"
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert descriptions(second) == [5, 4, 3, 2, 1]
    assert ">Older<" not in second
    newer = re.search(r'href="(/activity\?ending_before=[^"]+)"', second)
    assert newer, "a Newer link"
    back = client.get(newer.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert descriptions(back) == list(range(55, 5, -1))


def test_a_few_entries_need_no_link_and_no_pages(app, client, customer):
    post_entries(app, customer.account_id, 3)
    login(client, customer)
    assert 'href="/activity"' not in client.get("/").get_data(as_text=True)
    page = client.get("/activity").get_data(as_text=True)
    assert descriptions(page) == [3, 2, 1] and ">Older<" not in page and ">Newer<" not in page


def test_the_page_title_is_only_its_name(app, client, customer):
    """The auto-recharge attempts were once pasted into the title block as well."""
    with app.app_context():
        db.session.add(RechargeAttempt(account_id=customer.account_id, seq=1, amount=1000,
                                       currency="usd", outcome="succeeded"))
        db.session.commit()
        db.session.remove()
    login(client, customer)
    page = client.get("/activity").get_data(as_text=True)
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    assert title and "<section" not in title.group(1) and "Activity" in title.group(1)
    assert "Auto-recharge attempts" in page
