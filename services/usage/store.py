"""The SQL of metering: bulk inserts and upserts of events, rollups and counters.

Every writer (ingestion, the gate, the time-zone rebuild) takes counter and rollup rows
in one lock order, by meter and newest period first, so no two can deadlock.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Table, Text, bindparam, cast, column, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import UsageCounter, UsageEvent, UsageEventId, UsageUnique
from models.base import UTCDateTime, utcnow
from services.usage import aggregation
from services.usage.events import EventIn

NO_LIMIT = 2**63 - 1  # a counter with no limit still goes through the gate's conditional upsert


def dialect() -> str:
    """The database's dialect name (`postgresql` or `sqlite`)."""
    return db.session.get_bind().dialect.name


def insert(model: type) -> Any:
    """INSERT with ON CONFLICT support, on PostgreSQL and SQLite alike."""
    return (postgresql.insert if dialect() == "postgresql" else sqlite.insert)(model)


_BULK_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def insert_rows(model: type, rows: list[dict[str, Any]], tag: str,
                complete: Callable[[Any], Any], **same: Any) -> Any:
    """Execute an INSERT of many rows, in their order, completed by `complete(insert)`
    (ON CONFLICT, RETURNING; `tag` names that completion); `same` holds the columns whose
    value every row shares. The row dicts are the caller's to give away: they may change.

    On PostgreSQL the rows travel as one JSON document that the server unpacks with
    json_to_recordset: one short statement whatever the batch size, built and compiled
    once per process, instead of a VALUES list of thousands of parameters built,
    compiled and parsed on every call.
    """
    if dialect() != "postgresql":
        return db.session.execute(complete(sqlite.insert(model).values(
            [{**r, **same} for r in rows] if same else rows)))
    columns = model.__table__.c  # type: ignore[attr-defined]
    names = tuple(rows[0])
    key = (model, names, tuple(same), tag)
    stmt = _BULK_STATEMENTS.get(key)
    if stmt is None:
        source = (func.json_to_recordset(cast(bindparam("rows", type_=Text), JSON))
                  .table_valued(*[column(n, columns[n].type) for n in names])
                  .render_derived("rows", with_types=True))
        shared = [bindparam(f"same_{n}", type_=columns[n].type).label(n) for n in same]
        stmt = _BULK_STATEMENTS[key] = complete(postgresql.insert(model.__table__).from_select(  # type: ignore[attr-defined]
            [*names, *same], select(*source.c, *shared)))
    for name in [n for n in names if isinstance(columns[n].type, UTCDateTime)]:
        for row in rows:  # as RFC 3339 text, which PostgreSQL reads back exactly (rows are ours)
            value = row[name]
            if value is not None:
                if value.tzinfo is None:
                    raise ValueError("naive datetime given; use models.base.utcnow()")
                row[name] = value.isoformat()
    return db.session.execute(stmt, {"rows": json.dumps(rows),
                                     **{f"same_{n}": value for n, value in same.items()}})


def insert_events(account_id: str, events: list[EventIn]) -> set[str]:
    """Record ids, and store the events whose ids were new; return those ids (the rest
    were recorded before, and are neither stored nor counted again)."""
    if not events:
        return set()
    received_at = utcnow()
    # In id order, so two batches sharing ids take their row locks in one order (no deadlock).
    ordered = sorted(events, key=lambda e: e.id)
    new = set(insert_rows(UsageEventId, [{"event_id": e.id} for e in ordered], "new_ids",
                          _new_ids, account_id=account_id, received_at=received_at).scalars())
    rows = [{"event_id": e.id, "event_name": e.event_name, "timestamp": e.timestamp,
             "properties": e.properties} for e in ordered if e.id in new]
    if rows:
        insert_rows(UsageEvent, rows, "events", lambda stmt: stmt,
                    account_id=account_id, received_at=received_at)
    return new


def _new_ids(stmt: Any) -> Any:
    return (stmt.on_conflict_do_nothing(index_elements=["account_id", "event_id"])
            .returning(UsageEventId.event_id))


def upsert(model: type, keys: tuple[str, ...], rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Merge pre-aggregated (aggregation name, row) pairs into rollups or counters.

    One statement per way of combining (services/usage/aggregation.py).
    """
    ways: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name, row in rows:
        ways[aggregation.of(name).combine].append(row)
    for way, group in sorted(ways.items()):
        # One lock order for every writer, the gate included: by meter, newest period
        # first (the gate moves a period's counter before the LIFETIME one). No deadlocks.
        group.sort(key=lambda r: (r["account_id"], r["meter_id"], -r[keys[2]].timestamp()))
        insert_rows(model, group, f"merge_{way}", functools.partial(_combine_on_conflict, keys, way))


def _combine_on_conflict(keys: tuple[str, ...], way: str, stmt: Any) -> Any:
    table, new = stmt.table.c, stmt.excluded
    assignments = aggregation.sql_combine(way, dialect(), table, new)
    if "events" in table:
        assignments["events"] = table.events + new.events
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=assignments)


def new_uniques(account_id: str, rows: list[tuple[str, datetime, str, str]]) -> set[tuple[Any, ...]]:
    """Insert distinct values; return the (meter, scope_start, scope, hash) that were new."""
    if not rows:
        return set()
    params = [{"meter_id": m, "scope_start": s, "scope": sc, "value_hash": h}
              for m, s, sc, h in sorted(set(rows))]
    return {tuple(r) for r in insert_rows(UsageUnique, params, "new_uniques", _new_unique_rows,
                                          account_id=account_id)}


def _new_unique_rows(stmt: Any) -> Any:
    return stmt.on_conflict_do_nothing().returning(
        UsageUnique.meter_id, UsageUnique.scope_start, UsageUnique.scope, UsageUnique.value_hash)


# Counters -----------------------------------------------------------------------------

_COUNTER_VALUE = select(UsageCounter.value).where(
    UsageCounter.account_id == bindparam("account_id"),
    UsageCounter.meter_id == bindparam("meter_id"),
    UsageCounter.period_start == bindparam("period_start"))


def counter_value(account_id: str, meter_id: str, period_start: datetime) -> int:
    """A counter's value (0 when it has none yet)."""
    value = db.session.execute(_COUNTER_VALUE, {
        "account_id": account_id, "meter_id": meter_id, "period_start": period_start,
    }).scalar_one_or_none()
    return int(value or 0)


def counter_values(account_id: str, keys: list[tuple[str, datetime]]) -> dict[tuple[str, datetime], int]:
    """Several counters of an account, by (meter id, period start)."""
    if not keys:
        return {}
    rows = db.session.execute(select(
        UsageCounter.meter_id, UsageCounter.period_start, UsageCounter.value).where(
        UsageCounter.account_id == account_id,
        UsageCounter.meter_id.in_({m for m, _ in keys}),
        UsageCounter.period_start.in_({s for _, s in keys}))).all()
    return {(m, s): int(v) for m, s, v in rows}


def take(account_id: str, meter_id: str, period_start: datetime, amount: int,
         limit: int) -> int | None:
    """Add `amount` to a counter only if it stays within `limit`; the new value or None.

    One conditional upsert: concurrent gate calls cannot both take the last unit.
    """
    if amount > limit:
        return None
    return db.session.execute(_take_statement(dialect()), {
        "account_id": account_id, "meter_id": meter_id, "period_start": period_start,
        "amount": amount, "limit": limit,
    }).scalar_one_or_none()


@functools.cache
def _take_statement(dialect_name: str) -> Any:
    columns = UsageCounter.__table__.c
    table = UsageCounter.__table__
    assert isinstance(table, Table)
    stmt = (postgresql.insert if dialect_name == "postgresql" else sqlite.insert)(table)
    stmt = stmt.values(account_id=bindparam("account_id", type_=columns.account_id.type),
                       meter_id=bindparam("meter_id", type_=columns.meter_id.type),
                       period_start=bindparam("period_start", type_=columns.period_start.type),
                       value=bindparam("amount", type_=columns.value.type))
    return stmt.on_conflict_do_update(
        index_elements=["account_id", "meter_id", "period_start"],
        set_={"value": columns.value + stmt.excluded.value},
        where=columns.value + stmt.excluded.value <= bindparam("limit", type_=columns.value.type),
    ).returning(columns.value)


# Recording on PostgreSQL: events, uniques, counters and rollups in one statement -------

# The one PostgreSQL implementation of recording, for the gate and for batch ingestion:
# the ids (inserted into usage_event_ids, duplicates skipped) and the raw events of the
# new ones (usage_events, partitioned), then only the new events' contributions:
# distinct values, counters (conditionally, within each counter's limit), rollups. Every
# part is combined in SQL the way services/usage/aggregation.py folds in Python, and the
# parts run in the writers' one lock order (ids in id order, uniques, counters by meter and
# newest period first, then rollups; add, larger, newer): each part waits for the one
# before it (a scalar subquery on it), and the final SELECT reads them in that order.
_COMBINE_SQL = {
    aggregation.ADD: "value = {t}.value + excluded.value",
    aggregation.LARGER: "value = GREATEST({t}.value, excluded.value)",
    aggregation.NEWER: ("value = CASE WHEN excluded.latest_at >= {t}.latest_at THEN excluded.value "
                        "ELSE {t}.value END, latest_at = GREATEST({t}.latest_at, excluded.latest_at)"),
}
_WAYS = (aggregation.ADD, aggregation.LARGER, aggregation.NEWER)


# The gate's WSGI path (views/api/gate_path.py) runs this statement as its own transaction
# (autocommit), so nothing can be decided between the statement and its commit. With
# `whole`, the statement itself refuses to leave anything behind when the call is not one
# that path answers: a new event that a limit refused (some counters would have moved and
# others not), or a counter that reached its `w` (the value at which a usage alert not yet
# known to that process fires). It then fails, by casting this text to a number, and its
# transaction is rolled back; the call goes to Flask, which records it (and the 402 or the
# alert) the usual way. The cast is of a scalar subquery's result, which PostgreSQL cannot
# fold while planning: it fails only when run.
HANDED_TO_FLASK = "tally gate: a limit or an alert threshold; Flask serves the call"


@functools.cache
def _record_statement(ways: tuple[str, ...], whole: bool = False) -> Any:
    """The statement for batches whose cells combine in these ways: a part per table and
    way present (short enough for psycopg to cache its parsing, and built once); `whole`:
    all or nothing (see HANDED_TO_FLASK)."""
    parts = ["""
r AS (SELECT * FROM json_to_recordset(CAST(:events AS json))
  AS r(event_id varchar, event_name varchar, timestamp timestamptz, properties json)),
id AS (
 INSERT INTO usage_event_ids (account_id, event_id, received_at)
 SELECT :account_id, r.event_id, :received_at FROM r
 ON CONFLICT (account_id, event_id) DO NOTHING RETURNING event_id),
ev AS (
 INSERT INTO usage_events (event_id, event_name, timestamp, properties, account_id, received_at)
 SELECT r.event_id, r.event_name, r.timestamp, r.properties, :account_id, :received_at
 FROM r JOIN id USING (event_id)),
fresh AS (SELECT COALESCE(array_agg(event_id), '{}') AS ids FROM id),
uq AS (
 INSERT INTO usage_uniques (account_id, meter_id, scope_start, scope, value_hash)
 SELECT DISTINCT :account_id, u.m, u.s, u.sc, u.h
 FROM json_to_recordset(CAST(:uniques AS json))
  AS u(e varchar, m varchar, s timestamptz, sc varchar, h varchar)
 WHERE u.e = ANY(CAST((SELECT ids FROM fresh) AS varchar[])) ORDER BY 2, 3, 4, 5
 ON CONFLICT DO NOTHING RETURNING meter_id, scope_start, scope),
lim AS (SELECT * FROM json_to_recordset(CAST(:limits AS json))
  AS l(m varchar, s timestamptz, l bigint, w bigint)),
cell AS (
 SELECT c.t, c.m, c.s, c.w, c.v, c.at, c.o
 FROM json_to_recordset(CAST(:cells AS json))
  AS c(e varchar, t text, m varchar, s timestamptz, w text, v bigint, at timestamptz, o int)
 WHERE c.e = ANY(CAST((SELECT ids FROM fresh) AS varchar[]))
 UNION ALL
 SELECT CASE uq.scope WHEN 'hour' THEN 'r' ELSE 'c' END, uq.meter_id, uq.scope_start, 'add', 1, NULL, 0
 FROM uq),
agg AS (
 SELECT t, m, s, w, count(*) AS n, CASE WHEN w = 'newer' THEN max(at) END AS at,
  CASE w WHEN 'add' THEN sum(v)::bigint WHEN 'larger' THEN max(v)
   ELSE (array_agg(v ORDER BY at, o))[count(*)] END AS v
 FROM cell GROUP BY t, m, s, w)"""]
    previous = "uq"
    counters: list[str] = []
    rollups: list[str] = []
    for table, kind, start in (("usage_counters", "c", "period_start"),
                               ("usage_rollups", "r", "bucket_start")):
        for way in ways:
            name = f"{kind}_{way}"
            assign = _COMBINE_SQL[way].format(t=table)
            if kind == "r":
                columns, values, source = ", events", ", a.n", "agg a WHERE"
                assign += f", events = {table}.events + excluded.events"
            else:  # a counter moves only within its limit (the gate's; none for a batch)
                columns, values = "", ""
                source = (f"agg a LEFT JOIN lim ON lim.m = a.m AND lim.s = a.s "
                          f"WHERE a.v <= COALESCE(lim.l, {NO_LIMIT}) AND")
                if way == aggregation.ADD:
                    assign += (f" WHERE {table}.value + excluded.value <= COALESCE((SELECT lim.l"
                               f" FROM lim WHERE lim.m = {table}.meter_id AND lim.s = "
                               f"{table}.period_start), {NO_LIMIT})")
            parts.append(f"""
{name} AS (
 INSERT INTO {table} (account_id, meter_id, {start}, value, latest_at{columns})
 SELECT :account_id, a.m, a.s, a.v, a.at{values} FROM {source}
  a.t = '{kind}' AND a.w = '{way}' AND (SELECT count(*) FROM {previous}) >= 0
 ORDER BY a.m, a.s DESC
 ON CONFLICT (account_id, meter_id, {start}) DO UPDATE SET {assign}
 RETURNING meter_id, {start} AS s, value)""")
            (counters if kind == "c" else rollups).append(name)
            previous = name
    moved = " UNION ALL ".join(f"SELECT * FROM {name}" for name in counters) or (
        "SELECT NULL::varchar AS meter_id, NULL::timestamptz AS s, NULL::bigint AS value WHERE false")
    done = "".join(f", (SELECT count(*) FROM {name})" for name in rollups)
    if whole:
        parts.append(f"""
moved AS ({moved}),
whole AS (SELECT CAST((SELECT '{HANDED_TO_FLASK}' WHERE (SELECT ids FROM fresh) <> '{{}}' AND (
  EXISTS (SELECT 1 FROM lim WHERE lim.l IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM moved c WHERE c.meter_id = lim.m AND c.s = lim.s))
  OR EXISTS (SELECT 1 FROM moved c JOIN lim ON lim.m = c.meter_id AND lim.s = c.s
    WHERE c.value >= lim.w))) AS int) AS failed)""")
        moved, done = "SELECT * FROM moved", done + ", (SELECT failed FROM whole)"
    return text("WITH" + ",".join(parts) + f"""
SELECT (SELECT ids FROM fresh), (SELECT json_agg(json_build_array(c.meter_id, c.s, c.value, a.v))
 FROM ({moved}) c JOIN agg a ON a.t = 'c' AND a.m = c.meter_id AND a.s = c.s){done}""")


@dataclass
class Recorded:
    """What one recording statement did: the ids that were new (the rest were recorded
    before), and each counter it moved, by (meter id, period start): (added, new value).
    A limited counter that is missing was refused (its limit could not take the call)."""

    new_ids: set[str]
    counters: dict[tuple[str, datetime], tuple[int, int]]


def record(account_id: str, events: list[dict[str, Any]], cells: list[dict[str, Any]],
           uniques: list[dict[str, Any]],
           limits: dict[tuple[str, datetime], int] | None = None) -> Recorded:
    """PostgreSQL only: insert `events` (dicts of event_id, event_name, timestamp,
    properties; in id order), and fold the new ones' `cells` (e: event id, t: "c" counter
    or "r" rollup, m: meter id, s: period or bucket start, w: way of combining, v: value,
    at: the event's time, o: its position) and `uniques` (e, m, s, sc: "hour" or
    "period", h: value hash) into the counters and rollups, in one statement. `limits`:
    counters moved only if they stay within these values (the gate)."""
    if not events:
        return Recorded(set(), {})
    statement, params = record_call(account_id, events, cells, uniques, limits)
    return recorded(db.session.execute(statement, params).one())


def record_call(account_id: str, events: list[dict[str, Any]], cells: list[dict[str, Any]],
                uniques: list[dict[str, Any]],
                limits: dict[tuple[str, datetime], int] | None = None,
                alert_at: dict[tuple[str, datetime], int] | None = None) -> tuple[Any, dict[str, Any]]:
    """The recording statement and its parameters (`record` runs them in the session).
    `events` must not be empty; the rows are the caller's to give away (their times
    become text). With `alert_at` (counter: the value at which an unknown alert fires),
    the statement is all or nothing (HANDED_TO_FLASK): the gate's WSGI path,
    views/api/gate_path.py, runs it as its own transaction."""
    def stamp(rows: list[dict[str, Any]], *names: str) -> str:
        for row in rows:
            for name in names:
                value = row[name]
                if value is not None:
                    row[name] = value.isoformat()
        return json.dumps(rows)

    marks = alert_at or {}
    lim = [{"m": m, "s": s.isoformat(), "l": (limits or {}).get((m, s)), "w": marks.get((m, s))}
           for m, s in {**(limits or {}), **marks}]
    ways = {cell["w"] for cell in cells} | ({aggregation.ADD} if uniques else set())
    statement = _record_statement(tuple(w for w in _WAYS if w in ways), alert_at is not None)
    return statement, {
        "account_id": account_id, "received_at": utcnow(),
        "events": stamp(events, "timestamp"), "cells": stamp(cells, "s", "at"),
        "uniques": stamp(uniques, "s"), "limits": json.dumps(lim)}


def recorded(row: Sequence[Any]) -> Recorded:
    """What the recording statement's one row says it did."""
    moved = {(m, datetime.fromisoformat(s)): (int(added), int(value))
             for m, s, value, added in (row[1] or [])}
    return Recorded(set(row[0]), moved)
