"""The unit of work: one operation, one transaction, committed once at its boundary.

A request, a CLI command, a webhook delivery, an MCP call or a scheduled job is one unit
of work. Services read and write through `db.session` and never commit or roll back:
they raise a `TallyError` to refuse, and whoever started the operation decides.

- **Requests**: `init_app` makes the end of every request the boundary. An exception
  (a refusal or a fault) rolls the operation back in the error handlers
  (views/errors.py); otherwise the answer is committed after every `after_request` hook
  has run, so what those hooks write (the stored `Idempotency-Key` answer, the audit
  row of an action taken while viewing as a customer) commits with the work or not at
  all. A view that catches a refusal to show it beside a form calls `rollback()`.
- **Locks**: `lock(Model, id)` is the one way to lock a row for the rest of the
  operation (an account's money, a customer's invoice numbers).
- **Everything else** (CLI commands, jobs, tests): `with unit(): ...`, or `commit()` /
  `rollback()` at the boundary of each batch of a batched job.

Work that must happen outside the transaction has one mechanism each:
- **Before**: a network call (Stripe) runs before the operation writes anything. The
  gateway calls `assert_no_writes()`, which refuses a call from a transaction that has
  written or locked a row: no network call ever waits while holding a row lock (or
  SQLite's write lock).
- **After**: work that must follow the commit (an email, a charge triggered by a balance
  change) is written as an outbox row in the same transaction
  (services/notifications/outbox.py) and delivered after the commit by the hooks
  registered with `on_commit`.

This module is the only place in services/ that commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from flask import Flask, Response
from sqlalchemy import CursorResult, Executable, event, select
from sqlalchemy import update as sa_update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from extensions import db

_WROTE = "tally_uow_wrote"  # session.info: this transaction has written or locked a row
_QUEUED = "tally_uow_queued"  # session.info: this transaction wrote outbox rows
_commit_hooks: list[Callable[[], None]] = []
_Row = TypeVar("_Row")
_Result = TypeVar("_Result")


class WriteBeforeNetworkCall(RuntimeError):
    """A network call was made from a transaction that had already written or locked rows.

    A programming error, not a user's: call Stripe first, then write.
    """


def commit() -> None:
    """Commit the operation; then run the after-commit hooks if it queued outbox work."""
    session = db.session()
    queued = session.info.pop(_QUEUED, False)
    session.commit()
    if queued:
        for hook in _commit_hooks:
            hook()


def rollback() -> None:
    """Undo everything the operation wrote (and what it queued for after the commit)."""
    session = db.session()
    session.info.pop(_QUEUED, None)
    session.rollback()


@contextmanager
def unit() -> Iterator[None]:
    """One operation outside a request: commits when the block ends, rolls back if it raises."""
    try:
        yield
    except BaseException:
        rollback()
        raise
    commit()


def attempt(work: Callable[[], _Result], on_failure: Callable[[BaseException], None]) -> _Result:
    """Run `work` as one unit of work. If it raises: roll it back, record the failure with
    `on_failure` as a unit of its own, and raise again (a webhook delivery that failed is
    kept, with its error, for Stripe's retry or a replay)."""
    try:
        with unit():
            return work()
    except Exception as exc:
        with unit():
            on_failure(exc)
        raise


def mark_queued() -> None:
    """Called by the outbox when it adds a row: the commit then wakes delivery."""
    db.session().info[_QUEUED] = True


def on_commit(hook: Callable[[], None]) -> None:
    """Run `hook` after every commit of a unit that queued outbox work (registered once)."""
    if hook not in _commit_hooks:
        _commit_hooks.append(hook)


def has_written() -> bool:
    """Whether the current transaction has written or locked anything."""
    return bool(db.session().info.get(_WROTE))


def assert_no_writes(what: str) -> None:
    """Refuse `what` (a network call) from a transaction that has written or locked rows."""
    if has_written():
        raise WriteBeforeNetworkCall(
            f"{what} inside a transaction that has already written or locked rows; make the "
            "call first, then write (services/uow.py)")


def lock(model: type[_Row], key: str) -> _Row | None:
    """Lock one row until the operation ends and read it fresh (None if there is none).

    PostgreSQL: SELECT ... FOR UPDATE. SQLite has no row locks, so a no-op UPDATE takes
    the database's write lock first (pysqlite begins the transaction only at a write).
    Either way no other writer changes the row until the commit, so what the operation
    reads of it stays exact.
    """
    table = model.__table__  # type: ignore[attr-defined]
    column = table.primary_key.columns.values()[0]
    if db.session.get_bind().dialect.name == "sqlite":
        other = next(c for c in table.columns if not c.primary_key and not c.foreign_keys)
        db.session.execute(sa_update(model).where(column == key).values({other.name: other})
                           .execution_options(synchronize_session=False))
    return db.session.execute(
        select(model).where(column == key).with_for_update()
        .execution_options(populate_existing=True)).scalar_one_or_none()


def rows_changed(statement: Executable) -> int:
    """Execute an UPDATE or DELETE in the operation; how many rows it changed (a
    conditional UPDATE that changed none lost its race)."""
    result = db.session.execute(statement)
    return int(cast("CursorResult[Any]", result).rowcount)


# Tracking writes ------------------------------------------------------------------


@event.listens_for(Session, "do_orm_execute")
def _track_statement(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete or (
            state.is_select and getattr(state.statement, "_for_update_arg", None) is not None):
        state.session.info[_WROTE] = True


@event.listens_for(Session, "before_flush")
def _track_flush(session: Session, flush_context: Any, instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        session.info[_WROTE] = True


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_WROTE, None)


# Requests ---------------------------------------------------------------------------


def _commit_answer(response: Response) -> Response:
    """The request's boundary: commit what the request did (errors rolled back already)."""
    commit()
    return response


def init_app(app: Flask) -> None:
    """Make the end of each request its boundary. Register before any other after_request
    hook: Flask runs them in reverse order, so this one runs last."""
    app.after_request(_commit_answer)
