"""Sessions per device: the Account page lists them; logging out ends only this one; one
can be ended from another; "Log out everywhere" ends them all."""

from __future__ import annotations

from tests.conftest import csrf_token, login


def test_logging_out_ends_only_this_session_and_everywhere_ends_all(app, client, customer):
    laptop, phone, tablet = app.test_client(), app.test_client(), app.test_client()
    laptop_token = login(laptop, customer)
    phone_token = login(phone, customer)
    login(tablet, customer)
    page = laptop.get("/account", headers={"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) "
                                                         "AppleWebKit/537.36 Chrome/131.0 Safari/537.36"})
    assert page.get_data(as_text=True).count('data-testid="session-row"') == 3
    assert phone.post("/logout", data={"csrf_token": phone_token}).status_code == 303
    assert phone.get("/").status_code == 302
    assert laptop.get("/").status_code == 200 and tablet.get("/").status_code == 200
    ended = laptop.post("/account/sessions/end-all", data={"csrf_token": laptop_token})
    assert ended.status_code == 303 and ended.headers["Location"] == "/login"
    assert laptop.get("/").status_code == 302 and tablet.get("/").status_code == 302


def test_another_session_is_ended_from_the_account_page(app, client, customer):
    token = login(client, customer)
    phone = app.test_client()
    login(phone, customer)
    with phone.session_transaction() as cookie:
        phone_session = cookie["sid"]
    assert client.post(f"/account/sessions/{phone_session}/end",
                       data={"csrf_token": token}).status_code == 303
    assert phone.get("/").status_code == 302 and client.get("/").status_code == 200
    account = client.get("/account").get_data(as_text=True)
    assert account.count('data-testid="session-row"') == 1 and "this device" in account
    assert csrf_token(account)
