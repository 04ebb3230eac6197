"""TOTP two-factor authentication: turning it on (QR code, a code, 10 recovery codes shown
once), the code asked at login after the password, recovery codes that work once, an
owner requiring it of every member, and staff required to use it by configuration."""

from __future__ import annotations

import re
import threading
import time

import pyotp
import pytest
from sqlalchemy import select

from extensions import db
from models import User
from services import uow
from services.identity import two_factor
from tests.conftest import PASSWORD, csrf_token, login
from tests.support.members import add_member
from tests.support.staff import make_staff


def enable(client, token: str) -> tuple[str, list[str]]:
    """Turn it on through the Account page; returns the secret and the recovery codes."""
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert 'data-testid="totp-qr"' in page and "<svg" in page
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7]+)<', page).group(1)
    done = client.post("/account/two-factor", data={"code": pyotp.TOTP(secret).now(),
                                                    "csrf_token": token})
    assert done.status_code == 200, done.get_data(as_text=True)
    codes = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", done.get_data(as_text=True))
    return secret, codes


def next_code(secret: str) -> str:
    """The code of the next 30-second step (accepted: one step either side of now)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def password_step(client, who):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": who.email, "password": who.password,
                                       "csrf_token": token})


def code_step(client, code: str):
    token = csrf_token(client.get("/login/two-factor").get_data(as_text=True))
    return client.post("/login/two-factor", data={"code": code, "csrf_token": token})


def test_turning_it_on_then_logging_in_with_a_code_or_a_recovery_code(app, client, customer):
    token = login(client, customer)
    client.get("/account/two-factor")
    wrong = client.post("/account/two-factor", data={"code": "000000", "csrf_token": token})
    assert wrong.status_code == 400 and "not right" in wrong.get_data(as_text=True)
    secret, codes = enable(client, token)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "10 recovery codes left" in client.get("/account").get_data(as_text=True)

    browser = app.test_client()
    first = password_step(browser, customer)
    assert first.status_code == 303 and first.headers["Location"] == "/login/two-factor"
    assert browser.get("/").status_code == 302  # not logged in before the code
    assert code_step(browser, "123456").status_code == 400
    assert code_step(browser, next_code(secret)).status_code == 303  # turning it on used now's
    assert browser.get("/").status_code == 200

    other = app.test_client()
    password_step(other, customer)
    assert code_step(other, codes[0].upper()).status_code == 303  # typed any way
    again = app.test_client()
    password_step(again, customer)
    assert code_step(again, codes[0]).status_code == 400  # a recovery code works once
    assert "9 recovery codes left" in client.get("/account").get_data(as_text=True)


def test_a_code_that_let_someone_in_never_works_again(app, client, customer):
    """RFC 6238 5.2: a code seen over a shoulder, or phished and relayed, is spent once used,
    even within its 30 seconds; so is every code before it."""
    token = login(client, customer)
    secret, _ = enable(client, token)
    code = next_code(secret)
    owner = app.test_client()
    password_step(owner, customer)
    assert code_step(owner, code).status_code == 303
    attacker = app.test_client()
    assert password_step(attacker, customer).status_code == 303
    replayed = code_step(attacker, code)
    assert replayed.status_code == 400 and "not right" in replayed.get_data(as_text=True)
    assert code_step(attacker, pyotp.TOTP(secret).now()).status_code == 400  # an older step
    assert attacker.get("/").status_code == 302


def test_turning_it_off_asks_for_the_password(app, client, customer):
    token = login(client, customer)
    enable(client, token)
    client.post("/account/two-factor/disable", data={"password": "wrong-password-1",
                                                    "csrf_token": token})
    assert 'data-testid="two-factor-on"' in client.get("/account").get_data(as_text=True)
    client.post("/account/two-factor/disable", data={"password": PASSWORD, "csrf_token": token})
    assert 'data-testid="two-factor-on"' not in client.get("/account").get_data(as_text=True)
    assert password_step(app.test_client(), customer).headers["Location"] == "/"


def test_an_owner_requires_it_of_every_member(app, client, customer):
    developer = add_member(app, customer.account_id, "developer")
    dev = app.test_client()
    dev_token = login(dev, developer)
    refused = dev.post("/members/two-factor", data={"required": "on", "csrf_token": dev_token})
    assert refused.status_code == 403
    token = login(client, customer)
    assert client.post("/members/two-factor", data={"required": "on",
                                                    "csrf_token": token}).status_code == 303
    later = app.test_client()
    assert password_step(later, developer).status_code == 303
    sent = later.get("/keys")
    assert sent.status_code == 303 and sent.headers["Location"] == "/account/two-factor"
    enable(later, csrf_token(later.get("/account/two-factor").get_data(as_text=True)))
    assert later.get("/keys").status_code == 200
    later_token = csrf_token(later.get("/account").get_data(as_text=True))
    off = later.post("/account/two-factor/disable", data={"password": PASSWORD,
                                                          "csrf_token": later_token})
    assert off.status_code == 303
    assert "cannot be turned off" in later.get("/account").get_data(as_text=True)


@pytest.fixture
def app_config() -> dict:
    return {"STAFF_REQUIRE_TWO_FACTOR": True}


def test_staff_can_be_required_to_use_it(app, client):
    staff = make_staff(app)
    token = csrf_token(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"email": staff.email, "password": staff.password, "csrf_token": token})
    sent = client.get("/staff")
    assert sent.status_code == 303 and sent.headers["Location"] == "/account/two-factor"


@pytest.mark.money
def test_one_code_raced_by_two_logins_lets_one_in(app, client, customer, backend):
    """The step is taken with one conditional UPDATE: the second login waits for the first's
    row lock, then finds the step used (PostgreSQL; SQLite has one writer at a time)."""
    if backend != "postgresql":
        pytest.skip("SQLite writers take turns (one write lock)")
    token = login(client, customer)
    secret, _ = enable(client, token)
    code = next_code(secret)
    with app.app_context():
        user_id = db.session.execute(select(User.id).where(User.email == customer.email)).scalar_one()
        db.session.remove()
    results: list[bool] = []
    first_done = threading.Event()

    def attempt(hold: float) -> None:
        with app.app_context(), uow.unit():
            user = db.session.get(User, user_id)
            results.append(two_factor.verify(user, code))
            first_done.set()
            time.sleep(hold)  # keep the transaction (and its row lock) open

    first = threading.Thread(target=attempt, args=(0.5,))
    first.start()
    assert first_done.wait(10)
    second = threading.Thread(target=attempt, args=(0,))
    second.start()
    first.join()
    second.join()
    assert sorted(results) == [False, True]
