"""A forgotten password: the same answer for every email, a single-use link by email that
expires in an hour and dies when the password changes, every session ended, throttled."""

from __future__ import annotations

import re
import time

from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tests.conftest import PASSWORD, csrf_token, login, text_of

NEW_PASSWORD = "a-brand-new-password"


def ask(client, email: str):
    token = csrf_token(client.get("/password/forgot").get_data(as_text=True))
    return client.post("/password/forgot", data={"email": email, "csrf_token": token})


def reset_link(message) -> str:
    match = re.search(r"https?://[^/\s]+(/password/reset\?token=\S+)", text_of(message))
    assert match, text_of(message)
    return match.group(1)


def choose(client, link: str, password: str = NEW_PASSWORD):
    token = link.split("token=", 1)[1]
    return client.post("/password/reset", data={
        "token": token, "new_password": password, "confirm_password": password,
        "csrf_token": csrf_token(client.get("/password/forgot").get_data(as_text=True))})


def can_log_in(app, email: str, password: str) -> bool:
    client = app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    return response.status_code == 303


def test_the_login_page_links_to_it_and_every_email_gets_the_same_answer(app, client, customer, mail):
    assert "Forgot password?" in client.get("/login").get_data(as_text=True)
    answers = []
    for address in ("nobody@example.com", customer.email, "not an email"):
        response = ask(app.test_client(), address)
        page = response.get_data(as_text=True).replace(address, "EMAIL")
        answers.append((response.status_code, re.sub(r'(value="|"X-CSRFToken": ")[^"]+"', "", page)))
    assert answers[0] == answers[1] == answers[2] and answers[0][0] == 200
    [message] = mail.messages  # only the address with a login gets an email
    assert message["To"] == customer.email and message["Subject"] == "Reset your Tally password"


def test_the_link_sets_a_new_password_once_and_ends_every_session(app, client, customer, mail):
    elsewhere = app.test_client()
    login(elsewhere, customer)
    assert elsewhere.get("/").status_code == 200
    ask(client, customer.email)
    link = reset_link(mail.messages[0])
    page = client.get(link)
    assert page.status_code == 200 and customer.email in page.get_data(as_text=True)
    done = choose(client, link)
    assert done.status_code == 303 and done.headers["Location"].startswith("/login")
    assert "Log in with the new password" in client.get("/login").get_data(as_text=True)
    assert elsewhere.get("/").status_code == 302  # the other session ended
    assert not can_log_in(app, customer.email, PASSWORD)
    assert can_log_in(app, customer.email, NEW_PASSWORD)
    assert client.get(link).status_code == 400  # used: the link is dead
    again = choose(app.test_client(), link, "yet-another-password")
    assert again.status_code == 400 and "does not work" in again.get_data(as_text=True)
    assert can_log_in(app, customer.email, NEW_PASSWORD)


def test_a_link_dies_when_the_password_changes_and_after_an_hour(app, client, customer, mail):
    ask(client, customer.email)
    link = reset_link(mail.messages[0])
    token = login(client, customer)
    changed = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD,
        "confirm_password": NEW_PASSWORD, "csrf_token": token})
    assert changed.status_code == 303
    page = app.test_client().get(link)
    assert page.status_code == 400 and "does not work" in page.get_data(as_text=True)

    class MadeEarlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 3601

    ask(client, customer.email)
    fresh = reset_link(mail.messages[-1]).split("token=", 1)[1]
    with app.app_context():
        payload = URLSafeTimedSerializer("test-secret", salt="tally-password-reset").loads(fresh)
    old = URLSafeTimedSerializer("test-secret", salt="tally-password-reset",
                                 signer=MadeEarlier).dumps(payload)
    assert app.test_client().get(f"/password/reset?token={old}").status_code == 400
    assert app.test_client().get(f"/password/reset?token={fresh}").status_code == 200


def test_requests_are_throttled_per_email(app, customer, mail):
    statuses = [ask(app.test_client(), customer.email).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert "Too many reset requests" in ask(app.test_client(), customer.email).get_data(as_text=True)
    assert len(mail.messages) == 5
