"""Cursor pagination, Stripe style: `limit`, `starting_after`, `ending_before`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_

from extensions import db
from services.errors import InvalidInput

T = TypeVar("T")
DEFAULT_LIMIT, MAX_LIMIT = 10, 100


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}.", param="limit")
    return int(raw)


def paginate(query: Select, model: Any, time_column: Any, *, limit: int,
             starting_after: str | None = None, ending_before: str | None = None) -> Page:
    """Newest first by (time_column, id). A cursor is the id of an item of the same list."""
    if starting_after and ending_before:
        raise InvalidInput("Use starting_after or ending_before, not both.", param="ending_before")
    cursor_id = starting_after or ending_before
    if cursor_id:
        cursor = db.session.execute(
            query.with_only_columns(time_column, model.id).where(model.id == cursor_id)
        ).first()
        if cursor is None:
            raise InvalidInput(f"No such object in this list: {cursor_id}",
                               param="starting_after" if starting_after else "ending_before")
        at, cid = cursor
        if starting_after:  # older than the cursor
            query = query.where(or_(time_column < at, and_(time_column == at, model.id < cid)))
        else:  # newer than the cursor, nearest first, then flipped back
            query = query.where(or_(time_column > at, and_(time_column == at, model.id > cid)))
    if ending_before:
        rows = list(db.session.execute(
            query.order_by(time_column.asc(), model.id.asc()).limit(limit + 1)).scalars())
        has_more = len(rows) > limit
        return Page(list(reversed(rows[:limit])), has_more)
    rows = list(db.session.execute(
        query.order_by(time_column.desc(), model.id.desc()).limit(limit + 1)).scalars())
    return Page(rows[:limit], len(rows) > limit)



