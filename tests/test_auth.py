"""Sign-up, login, logout, CSRF and session cookies through the real forms."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import unquote

from sqlalchemy import func, select

from extensions import db
from models import Customer
from services.identity import signup as signup_service
from tests.conftest import PASSWORD, csrf_token, login, signup_link, text_of


def signup(client, email="new@example.com", password=PASSWORD, name="New Co", token=None):
    token = token or csrf_token(client.get("/signup").get_data(as_text=True))
    return client.post("/signup", data={"email": email, "password": password, "name": name,
                                        "csrf_token": token})


def finish(client, link: str):
    """Open the emailed link and press its one button."""
    page = client.get(link)
    assert page.status_code == 200, page.get_data(as_text=True)
    token = unquote(link.split("token=", 1)[1])
    return client.post("/signup/confirm", data={"token": token,
                                                "csrf_token": csrf_token(page.get_data(as_text=True))})


def customers(app) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(Customer))
        db.session.remove()
    return n


def test_signup_by_email_shows_first_key_once_and_creates_a_free_account(app, client, mail):
    response = signup(client)
    assert response.status_code == 200 and "Check your email" in response.get_data(as_text=True)
    assert customers(app) == 0  # nothing is created before the link is used
    [message] = mail.messages
    assert message["To"] == "new@example.com" and message["Subject"] == "Finish creating your Tally account"
    link = signup_link(message)
    assert client.get(link).status_code == 200 and customers(app) == 0  # opening it creates nothing
    welcome = finish(client, link)
    assert welcome.status_code == 200
    html = welcome.get_data(as_text=True)
    key = html.split('data-testid="new-api-key">')[1].split("<")[0]
    assert key.startswith("tly_") and len(key) >= 36
    me = client.get("/v1/me", headers={"X-Api-Key": key}).get_json()
    assert me["email"] == "new@example.com" and me["tier"] == "free" and me["name"] == "New Co"
    # Logged in, and the key is not shown again anywhere.
    dashboard = client.get("/").get_data(as_text=True)
    assert "New Co" in dashboard and key not in dashboard
    assert key not in client.get("/keys").get_data(as_text=True)
    # The link creates the account once.
    again = app.test_client()
    repeat = finish(again, link)
    assert repeat.status_code == 409 and "already been created" in repeat.get_data(as_text=True)
    assert customers(app) == 1 and again.get("/").status_code == 302


def test_signup_answers_the_same_whether_or_not_the_email_exists(app, client, customer, mail):
    """The page and status are the same; the real owner gets an email saying someone tried."""
    before = customers(app)
    answers = []
    for address in ("brand-new@example.com", customer.email):
        response = signup(app.test_client(), email=address, password="another-password-1")
        page = response.get_data(as_text=True).replace(address, "EMAIL")
        answers.append((response.status_code, re.sub(r'"X-CSRFToken": "[^"]+"', "", page)))
    assert answers[0] == answers[1] and answers[0][0] == 200
    new, owner = mail.messages
    assert new["To"] == "brand-new@example.com" and "/signup/confirm?token=" in text_of(new)
    assert owner["To"] == customer.email and "/signup/confirm" not in text_of(owner)
    assert "You already have an account" in text_of(owner) and "/login" in text_of(owner)
    assert customers(app) == before
    login(client, customer)  # the owner's password and account are untouched


def test_a_signup_link_that_was_altered_or_is_too_old_does_nothing(app, client, mail):
    signup(client)
    link = signup_link(mail.messages[0])
    altered = link[:-6] + ("AAAAAA" if not link.endswith("AAAAAA") else "BBBBBB")
    for bad in (altered, "/signup/confirm?token=nope", "/signup/confirm"):
        page = client.get(bad)
        assert page.status_code == 400 and "does not work" in page.get_data(as_text=True), bad
    with app.app_context():  # a link made 25 hours ago
        token = signup_service._fernet().encrypt_at_time(json.dumps(
            {"e": "late@example.com", "n": "Late", "h": "x"}).encode(),
            int(time.time()) - 25 * 3600).decode()
    assert client.get(f"/signup/confirm?token={token}").status_code == 400
    assert customers(app) == 0


def test_without_email_delivery_sign_up_is_closed_for_everyone(app, client, customer):
    assert "Sign-up is not available here" in client.get("/signup").get_data(as_text=True)
    token = csrf_token(client.get("/login").get_data(as_text=True))  # the page has no form
    for address in ("new@example.com", customer.email):
        response = signup(client, email=address, token=token)
        assert response.status_code == 503, address
        assert "this Tally sends no email" in response.get_data(as_text=True)
    assert customers(app) == 1


def test_signup_errors_are_shown_beside_the_field(client, customer, mail):
    short = signup(client, password="short")
    assert short.status_code == 400
    assert "at least 10 characters" in short.get_data(as_text=True)
    bad_email = signup(client, email="not-an-email")
    assert "valid email" in bad_email.get_data(as_text=True)
    assert mail.messages == []


def test_login_and_logout(client, customer):
    assert client.get("/").status_code == 302  # to /login
    login(client, customer)
    assert client.get("/").status_code == 200
    token = csrf_token(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused_with_a_message(client, customer):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": customer.email, "password": "nope-nope-nope",
                                           "csrf_token": token})
    assert response.status_code == 400
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_forms_without_csrf_token_are_refused(client, customer):
    response = client.post("/login", data={"email": customer.email, "password": customer.password})
    assert response.status_code == 400
    assert client.get("/").status_code == 302
    login(client, customer)
    assert client.post("/logout").status_code == 400
    assert client.post("/topup/intent", data={"amount": "25"}).status_code == 400


def test_session_cookie_is_httponly_and_samesite_lax(client, customer):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": customer.email, "password": customer.password,
                                           "csrf_token": token})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_session_cookie_is_secure_over_https(app, customer):
    client = app.test_client()
    page = client.get("/login", base_url="https://localhost").get_data(as_text=True)
    response = client.post("/login", base_url="https://localhost",
                           headers={"Referer": "https://localhost/login"}, data={
        "email": customer.email, "password": customer.password, "csrf_token": csrf_token(page)})
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


def test_login_never_redirects_off_site(client, customer):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=//evil.example/x", data={
        "email": customer.email, "password": customer.password, "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_pages_of_one_customer_show_only_their_account(client, make_customer):
    alice, bob = make_customer("Alice"), make_customer("Bob")
    login(client, alice)
    html = client.get("/keys").get_data(as_text=True)
    assert "Alice" in client.get("/").get_data(as_text=True)
    bob_key_id = client.get("/v1/keys", headers=bob.headers).get_json()["data"][0]["id"]
    assert bob_key_id not in html
    token = csrf_token(html)
    assert client.post(f"/keys/{bob_key_id}/rotate", data={"csrf_token": token}).status_code == 404
    assert client.get("/v1/me", headers=bob.headers).status_code == 200  # Bob's key still works


def test_passwords_are_hashed_at_argon2s_recommended_cost(tmp_path):
    """The suite hashes at Argon2's cheapest (PASSWORD_HASH_CHEAP); a deployed app never does."""
    from argon2 import extract_parameters, profiles

    from app import create_app
    from services.identity import accounts

    deployed = create_app({"SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db"})
    with deployed.app_context():
        stored = accounts.hash_password("correct-horse-battery")
    assert extract_parameters(stored) == profiles.RFC_9106_LOW_MEMORY  # argon2-cffi's default
    assert extract_parameters(stored).memory_cost >= 65536
