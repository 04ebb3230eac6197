"""What each aggregation means, in one table: how a meter's events make its value.

| aggregation    | a value is            | values of two spans combine by | limited, priced, lifetime |
|----------------|-----------------------|--------------------------------|---------------------------|
| `count`        | events                | adding                         | yes                       |
| `sum`          | a property, added up  | adding                         | yes                       |
| `unique_count` | distinct values       | adding (distinct per span)     | no                        |
| `max`          | the largest value     | the larger                     | no                        |
| `latest`       | the newest value      | the newer (by `latest_at`)     | no                        |

Every place that folds values (events into an hour, hours into a period, rollups into a
series, the SQL upsert of a counter, the rebuild after a time-zone change) asks this
table; none of them names an aggregation itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func
from sqlalchemy.sql import ColumnElement

# How values of two spans combine: the upsert statement is built once per way.
ADD, LARGER, NEWER = "add", "larger", "newer"


@dataclass(frozen=True)
class Aggregation:
    name: str
    combine: str  # ADD, LARGER or NEWER
    limited: bool  # counted against plan limits (monthly and lifetime) and priced by rating
    distinct: bool = False  # values are distinct hashes, counted once per span

    def fold(self, value: int, at: datetime | None, new: int,
             new_at: datetime | None) -> tuple[int, datetime | None]:
        """`value` (as of `at`) combined with `new` (as of `new_at`); only `latest` keeps
        a time."""
        if self.combine == ADD:
            return value + new, None
        if self.combine == LARGER:
            return max(value, new), None
        if new_at is not None and (at is None or new_at >= at):
            return new, new_at
        return value, at


AGGREGATIONS: dict[str, Aggregation] = {a.name: a for a in (
    Aggregation("count", ADD, limited=True),
    Aggregation("sum", ADD, limited=True),
    Aggregation("unique_count", ADD, limited=False, distinct=True),
    Aggregation("max", LARGER, limited=False),
    Aggregation("latest", NEWER, limited=False),
)}
NAMES = tuple(AGGREGATIONS)


def of(name: str) -> Aggregation:
    """The aggregation of this name."""
    return AGGREGATIONS[name]


def greatest(dialect: str, a: Any, b: Any) -> ColumnElement[Any]:
    """The larger of two SQL values, on PostgreSQL and SQLite alike."""
    return func.greatest(a, b) if dialect == "postgresql" else func.max(a, b)


def sql_combine(combine: str, dialect: str, stored: Any, new: Any) -> dict[str, Any]:
    """The ON CONFLICT assignments that combine a stored row with a new one (`value`,
    and `latest_at` where the rows have it)."""
    if combine == ADD:
        value = stored.value + new.value
    elif combine == LARGER:
        value = greatest(dialect, stored.value, new.value)
    else:
        value = case((new.latest_at >= stored.latest_at, new.value), else_=stored.value)
    assignments: dict[str, Any] = {"value": value}
    if combine == NEWER:
        assignments["latest_at"] = greatest(dialect, stored.latest_at, new.latest_at)
    return assignments
