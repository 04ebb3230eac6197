"""Sign-up, login, logout, CSRF and session cookies through the real forms."""

from __future__ import annotations

from tests.conftest import PASSWORD, csrf_token, login


def signup(client, email="new@example.com", password=PASSWORD, name="New Co", token=None):
    token = token or csrf_token(client.get("/signup").get_data(as_text=True))
    return client.post("/signup", data={"email": email, "password": password, "name": name,
                                        "csrf_token": token})


def test_signup_shows_first_key_once_and_creates_a_free_account(client):
    response = signup(client)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    key = html.split('data-testid="new-api-key">')[1].split("<")[0]
    assert key.startswith("tly_") and len(key) >= 36
    me = client.get("/v1/me", headers={"X-Api-Key": key}).get_json()
    assert me["email"] == "new@example.com" and me["tier"] == "free" and me["name"] == "New Co"
    # Logged in, and the key is not shown again anywhere.
    dashboard = client.get("/").get_data(as_text=True)
    assert "New Co" in dashboard and key not in dashboard
    assert key not in client.get("/keys").get_data(as_text=True)


def test_signup_errors_are_shown_beside_the_field(client, customer):
    short = signup(client, password="short")
    assert short.status_code == 400
    assert "at least 10 characters" in short.get_data(as_text=True)
    taken = signup(client, email=customer.email)
    assert taken.status_code == 400
    assert "already exists" in taken.get_data(as_text=True)
    bad_email = signup(client, email="not-an-email")
    assert "valid email" in bad_email.get_data(as_text=True)


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
