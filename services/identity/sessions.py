"""Each login is a session with a row of its own: the Account page lists them (device,
address, last seen) and ends any one; logging out ends this one; "log out everywhere", a
password change or reset end them all (the user's session version moves too, so a
cookie from before stops working even without its row)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from extensions import db
from models import User, UserSession
from models.base import utcnow
from services.errors import NotFound

# Writing last_seen_at on every request would make every page a write; a minute is enough.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


def start(user: User, *, ip: str | None, user_agent: str | None) -> UserSession:
    """A new session for this person (the caller commits)."""
    row = UserSession(user_id=user.id, ip=(ip or None) and ip[:64],
                      user_agent=(user_agent or None) and user_agent[:500])
    db.session.add(row)
    db.session.flush()
    return row


def live(session_id: object, user_id: str) -> UserSession | None:
    """The session if it is this person's and has not ended; touches last_seen_at (at
    most once a LAST_SEEN_RESOLUTION). None otherwise."""
    if not isinstance(session_id, str):
        return None
    row = db.session.get(UserSession, session_id)
    if row is None or row.user_id != user_id or row.ended_at is not None:
        return None
    now = utcnow()
    if now - row.last_seen_at > LAST_SEEN_RESOLUTION:
        db.session.execute(update(UserSession).where(UserSession.id == row.id)
                           .values(last_seen_at=now))
    return row


def active(user: User) -> list[UserSession]:
    """The person's sessions that have not ended, most recently seen first."""
    return list(db.session.execute(
        select(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .order_by(UserSession.last_seen_at.desc())).scalars())


def end(user: User, session_id: str) -> None:
    """End one of the person's sessions (404 for anyone else's)."""
    row = db.session.get(UserSession, session_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"No such session: {session_id}", param="session_id")
    db.session.execute(update(UserSession).where(UserSession.id == row.id,
                                                 UserSession.ended_at.is_(None))
                       .values(ended_at=utcnow()))


def end_all(user: User) -> None:
    """End every session of the person, on every device, copies of the cookie included."""
    db.session.execute(update(UserSession).where(UserSession.user_id == user.id,
                                                 UserSession.ended_at.is_(None))
                       .values(ended_at=utcnow()))
    db.session.execute(update(User).where(User.id == user.id)
                       .values(session_version=User.session_version + 1))
    db.session.refresh(user)
