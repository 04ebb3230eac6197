"""Helpers for the staff console tests: staff users, logging in, impersonating."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask.testing import FlaskClient
from sqlalchemy import select

from extensions import db
from models import Account, AuditEvent, User
from services.identity import accounts

STAFF_PASSWORD = "staff-password-123"


@dataclass
class Staff:
    email: str
    password: str
    api_key: str
    user_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.api_key}


def make_staff(app, email: str = "support@tally.test", permissions: tuple[str, ...] = ()) -> Staff:
    with app.app_context():
        out = accounts.create_staff(email=email, password=STAFF_PASSWORD)
        user = db.session.execute(select(User).where(User.email == out["email"])).scalar_one()
        user.permissions = list(permissions)
        db.session.commit()
        staff = Staff(out["email"], STAFF_PASSWORD, out["api_key"], user.id)
        db.session.remove()
    return staff


def token(html: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def user_id_of(app, email: str) -> str:
    with app.app_context():
        user_id = db.session.execute(select(User.id).where(User.email == email)).scalar_one()
        db.session.remove()
    return user_id


def customer_id_of(app, account_id: str) -> str:
    with app.app_context():
        cid = db.session.get(Account, account_id).customer_id
        db.session.remove()
    return cid


def audit_rows(app, **where) -> list[AuditEvent]:
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.id)
        for name, value in where.items():
            query = query.where(getattr(AuditEvent, name) == value)
        rows = list(db.session.execute(query).scalars())
        for row in rows:
            db.session.expunge(row)
        db.session.remove()
    return rows


def impersonate(client: FlaskClient, app, customer_email: str,
                reason: str = "Ticket 4242: balance looks wrong"):
    """Start viewing as the customer user; returns the response of the start POST."""
    user_id = user_id_of(app, customer_email)
    csrf = token(client.get("/staff/").get_data(as_text=True))
    return client.post(f"/staff/users/{user_id}/impersonate",
                       data={f"{user_id}-imp-reason": reason, f"{user_id}-imp-csrf_token": csrf})


def staff_login(client: FlaskClient, staff: Staff) -> str:
    """Log a staff member in through the real form; returns a CSRF token."""
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"email": staff.email, "password": staff.password,
                                           "csrf_token": token(page)})
    assert response.status_code == 303, response.get_data(as_text=True)
    return token(client.get("/staff/").get_data(as_text=True))
