"""Column types and helpers shared by every model."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:  # Flask-SQLAlchemy builds db.Model at run time; type checkers see its base
    from extensions import Base as Model
else:
    from extensions import db

    Model = db.Model

__all__ = ["BigIntPK", "Model", "UTCDateTime", "public_id", "utcnow"]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# BIGINT everywhere except SQLite, where only INTEGER PRIMARY KEY autoincrements.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def public_id(prefix: str, length: int = 20) -> str:
    """A prefixed, unguessable id such as `acct_3kTg...`: ids in URLs reveal nothing."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use models.base.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
