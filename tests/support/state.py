"""What a refused request must leave as it was: a fingerprint of the whole database."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from extensions import db
from models import Account, ApiKey, Invitation, Membership, User, UserSession

# Rows written on the way to a refusal by design: a claimed idempotency key is released
# or kept with its answer (tests/test_idempotency.py covers it).
_IGNORED_TABLES = {"idempotency_keys", "user_sessions"}  # a login on the way adds a session;
# sessions that ended are fingerprinted below


def snapshot(app: Flask) -> dict:
    """Every table's row count, every account's money and settings, every key's and
    every user's state."""
    with app.app_context():
        state: dict = {t.name: db.session.scalar(select(func.count()).select_from(t))
                       for t in db.metadata.sorted_tables if t.name not in _IGNORED_TABLES}
        state["accounts"] = db.session.execute(select(
            Account.id, Account.balance, Account.pending_usage, Account.tier, Account.spend_cap,
            Account.time_zone, Account.alert_thresholds, Account.price_plan_id,
            Account.grace_period_ends_at).order_by(Account.id)).all()
        state["keys"] = db.session.execute(
            select(ApiKey.id, ApiKey.revoked_at).order_by(ApiKey.id)).all()
        state["users"] = db.session.execute(
            select(User.id, User.password_hash, User.permissions, User.email, User.pending_email,
                   User.customer_id, User.totp_enabled_at, User.session_version)
            .order_by(User.id)).all()
        state["members"] = db.session.execute(
            select(Membership.id, Membership.role).order_by(Membership.id)).all()
        state["invitations"] = db.session.execute(
            select(Invitation.id, Invitation.accepted_at, Invitation.revoked_at)
            .order_by(Invitation.id)).all()
        state["ended_sessions"] = db.session.execute(
            select(UserSession.id).where(UserSession.ended_at.is_not(None))
            .order_by(UserSession.id)).all()
        db.session.remove()
    return state


def database_rows(app: Flask, *, without: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """Every row of every table (but `without`), in a stable order: equal before and after
    a request when the request changed nothing at all."""
    with app.app_context():
        rows = {t.name: sorted(tuple(map(repr, row)) for row in db.session.execute(select(t)))
                for t in db.metadata.sorted_tables if t.name not in without}
        db.session.remove()
    return rows
