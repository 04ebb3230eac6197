"""What a logged-out request, an error and the favicon answer, as pages, htmx and JSON:
htmx is sent to the login page with `HX-Redirect` (never a login page swapped into a
panel), a script's fetch gets a JSON 401, `/v1` keeps its JSON errors, page errors are
Tally's own page, and the password change asks for the new password twice."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import csrf_token, login
from tests.support.state import snapshot

SESSION_ENDED = "Your session has ended. Log in again to continue."


def next_of(location: str) -> str | None:
    parts = urlsplit(location)
    assert parts.path == "/login", location
    return parse_qs(parts.query).get("next", [None])[0]


def ended_session(app, client, customer) -> str:
    """Log `client` in, then "log out everywhere" from another client (which ends every
    session); returns the first client's still-valid CSRF token."""
    token = login(client, customer)
    other = app.test_client()
    other_token = login(other, customer)
    assert other.post("/account/sessions/end-all",
                      data={"csrf_token": other_token}).status_code == 303
    return token


HTMX = {"HX-Request": "true", "HX-Target": "keys_panel"}


def test_htmx_from_an_ended_session_is_sent_to_the_login_page(app, client, customer):
    token = ended_session(app, client, customer)
    before = snapshot(app)
    response = client.post("/keys", data={"name": "ci", "kind": "usage", "csrf_token": token},
                           headers={**HTMX, "X-CSRFToken": token,
                                    "HX-Current-URL": "http://localhost/keys"})
    assert response.status_code == 401
    assert next_of(response.headers["HX-Redirect"]) == "/keys"
    assert response.get_data(as_text=True) == ""  # nothing for htmx to swap into the panel
    assert snapshot(app) == before  # no key was created

    login_page = client.get(response.headers["HX-Redirect"]).get_data(as_text=True)
    assert f'<p class="flash flash-info">{SESSION_ENDED}</p>' in login_page
    assert login_page.count('class="testmode"') == 1


def test_htmx_without_any_session_goes_to_login_and_back(client, customer):
    response = client.get("/", headers={"HX-Request": "true", "HX-Target": "ledger",
                                        "HX-Current-URL": "http://localhost/usage?x=1"})
    assert response.status_code == 401
    assert next_of(response.headers["HX-Redirect"]) == "/usage?x=1"
    page = client.get(response.headers["HX-Redirect"]).get_data(as_text=True)
    assert '<p class="flash flash-info">Log in to continue.</p>' in page

    token = csrf_token(client.get("/login").get_data(as_text=True))
    done = client.post(response.headers["HX-Redirect"], data={
        "email": customer.email, "password": customer.password, "csrf_token": token})
    assert done.status_code == 303 and done.headers["Location"] == "/usage?x=1"


@pytest.mark.parametrize("current", [
    "https://evil.example/keys", "//evil.example/keys", "/\\evil.example/keys",
    "javascript:alert(1)", "http://localhost/login?next=/keys"])
def test_the_page_to_return_to_is_only_ever_this_site(client, current):
    response = client.get("/", headers={"HX-Request": "true", "HX-Current-URL": current})
    assert response.status_code == 401
    assert next_of(response.headers["HX-Redirect"]) is None


def test_a_history_restore_gets_the_whole_login_page(client):
    response = client.get("/keys", headers={"HX-Request": "true",
                                            "HX-History-Restore-Request": "true"})
    assert response.status_code == 302 and next_of(response.headers["Location"]) == "/keys"


def test_a_page_from_an_ended_session_redirects_to_login_with_an_info_message(app, client,
                                                                               customer):
    ended_session(app, client, customer)
    response = client.get("/topup")
    assert response.status_code == 302 and next_of(response.headers["Location"]) == "/topup"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'<p class="flash flash-info">{SESSION_ENDED}</p>' in page


def test_a_script_fetch_from_an_ended_session_gets_json_401(app, client, customer):
    token = ended_session(app, client, customer)
    before = snapshot(app)
    response = client.post("/topup/intent", data={"amount": "25", "csrf_token": token},
                           headers={"Accept": "application/json", "X-CSRFToken": token,
                                    "Referer": "http://localhost/topup"})
    assert response.status_code == 401
    assert response.get_json() == {"error": "Unauthorized", "code": "login_required",
                                   "message": SESSION_ENDED,
                                   "login_url": "/login?next=/topup"}
    assert snapshot(app) == before


def test_v1_without_a_key_stays_json(client):
    response = client.get("/v1/me")
    assert response.status_code == 401 and response.is_json
    body = response.get_json()
    assert set(body) <= {"error", "code", "message", "param"} and body["code"]
    missing = client.get("/v1/no-such-thing")
    assert missing.status_code == 404 and missing.is_json
    assert missing.get_json()["code"] == "not_found"


def test_a_missing_page_is_talleys_404(client, customer):
    login(client, customer)
    response = client.get("/no-such-page")
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "<h1>Page not found</h1>" in html and "There is no page at this address" in html
    assert "If you entered the URL manually" not in html
    assert 'href="/">Back to the dashboard</a>' in html
    assert 'class="topbar"' in html  # the Tally layout, navigation included


@pytest.mark.parametrize(("method", "path", "status", "title"), [
    ("GET", "/logout", 405, "Not available this way"),
    ("GET", "/staff/", 404, "Page not found"),  # customers do not see the console
])
def test_other_page_errors_are_talleys_page_too(client, customer, method, path, status, title):
    login(client, customer)
    response = client.open(path, method=method)
    html = response.get_data(as_text=True)
    assert response.status_code == status, html[:300]
    assert f"<h1>{title}</h1>" in html and "Back to the dashboard" in html
    assert "The method is not allowed" not in html and "requested URL" not in html


def test_an_unexpected_error_is_talleys_page(app, client):
    @app.get("/boom-for-test")
    def boom():
        raise RuntimeError("boom")

    response = client.get("/boom-for-test")
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "<h1>Something went wrong</h1>" in html and "nothing was charged twice" in html
    assert client.get("/boom-for-test", headers={"Accept": "application/json"}).get_json() == {
        "error": "Internal error", "code": "internal_error",
        "message": "Something went wrong on our side; nothing was charged twice. Try again."}


def test_the_favicon_is_served(client):
    ico = client.get("/favicon.ico")
    assert ico.status_code == 200 and ico.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    page = client.get("/login").get_data(as_text=True)
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"


def change_password(client, current: str, new: str, confirm: str):
    token = csrf_token(client.get("/account").get_data(as_text=True))
    return client.post("/account/password", data={
        "current_password": current, "new_password": new, "confirm_password": confirm,
        "csrf_token": token})


def test_a_mismatched_confirmation_says_so_beside_the_field_and_changes_nothing(
        app, client, customer):
    login(client, customer)
    laptop = app.test_client()
    login(laptop, customer)
    before = snapshot(app)
    response = change_password(client, customer.password, "a-brand-new-password",
                               "a-brand-new-passwort")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert ('<small class="error" id="confirm_password-error">This does not match the new '
            'password. Type it again.</small>') in html
    assert snapshot(app) == before and laptop.get("/").status_code == 200
    login(app.test_client(), customer)  # the old password still works


def test_a_changed_password_is_confirmed_as_a_success(client, customer):
    login(client, customer)
    response = change_password(client, customer.password, "a-brand-new-password",
                               "a-brand-new-password")
    assert response.status_code == 303
    page = client.get("/account").get_data(as_text=True)
    assert ('<p class="flash flash-message">Password changed. Every other session has been '
            'logged out.</p>') in page


def test_wrong_login_says_wrong_email_or_password(client, customer):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": customer.email, "password": "nope-nope-nope",
                                           "csrf_token": token})
    assert response.status_code == 400
    assert '<p class="alert alert-error" role="alert">Wrong email or password.</p>' in (
        response.get_data(as_text=True))
