"""Cursor pagination, Stripe style: `limit`, `starting_after`, `ending_before`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    """A page size from 1 to 100 (default 10), or a 400 naming `limit`."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:  # not "²"
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}.", param="limit")
    return int(raw)


def _check_cursors(starting_after: str | None, ending_before: str | None) -> None:
    if starting_after and ending_before:
        raise InvalidInput("Use starting_after or ending_before, not both.", param="ending_before")


def _no_such_object(cursor_id: str, starting_after: str | None) -> InvalidInput:
    return InvalidInput(f"No such object in this list: {cursor_id}",
                        param="starting_after" if starting_after else "ending_before")


def paginate(query: Select[Any], model: Any, time_column: Any, *, limit: int,
             starting_after: str | None = None, ending_before: str | None = None) -> Page[Any]:
    """Newest first by (time_column, id). A cursor is the id of an item of the same list."""
    _check_cursors(starting_after, ending_before)
    cursor_id = starting_after or ending_before
    if cursor_id:
        cursor_value: str | int = cursor_id
        if model.id.type.python_type is int:  # integer ids (ledger entries) arrive as text
            if not (cursor_id.isascii() and cursor_id.isdigit()) or int(cursor_id) >= 2**63:
                raise _no_such_object(cursor_id, starting_after)  # not "²", nor past BIGINT
            cursor_value = int(cursor_id)
        cursor = db.session.execute(
            query.with_only_columns(time_column, model.id).where(model.id == cursor_value)
        ).first()
        if cursor is None:
            raise _no_such_object(cursor_id, starting_after)
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


def paginate_list(items: Sequence[T], id_of: Callable[[T], str], *, limit: int,
                  starting_after: str | None = None, ending_before: str | None = None) -> Page[T]:
    """The same cursors over a short list already in memory (plans from the configuration,
    meters, Stripe's portal configurations), in the list's own order."""
    _check_cursors(starting_after, ending_before)
    ids = [id_of(item) for item in items]
    cursor_id = starting_after or ending_before
    if cursor_id and cursor_id not in ids:
        raise _no_such_object(cursor_id, starting_after)
    if ending_before:
        end = ids.index(ending_before)
        begin = max(0, end - limit)
        return Page(list(items[begin:end]), begin > 0)
    begin = ids.index(starting_after) + 1 if starting_after else 0
    return Page(list(items[begin:begin + limit]), begin + limit < len(items))
