"""The audit log page and its CSV export."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from flask import (
    Response,
    request,
    stream_with_context,
)

from extensions import db
from models import Customer
from services.errors import InvalidInput
from services.staff import audit
from views.htmx import render_page
from views.session import (
    actor,
)
from views.staff.base import bp, staff_page
from views.staff.forms import end_of_day

# Audit log ------------------------------------------------------------------------------


def _audit_filters() -> audit.Filters:
    args = request.args

    def day(name: str) -> date | None:
        raw = args.get(name, "").strip()
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise InvalidInput(f"{name} must be a date such as 2025-01-31.", param=name) from None

    since, until = day("from"), day("to")
    return audit.Filters(
        staff_id=args.get("staff") or None,
        customer_id=(args.get("customer") or "").strip() or None,
        account_id=(args.get("account") or "").strip() or None,
        action=args.get("action") or None,
        since=datetime.combine(since, time.min, tzinfo=UTC) if since else None,
        until=end_of_day(until),
    )


def _cursor(name: str) -> int | None:
    raw = request.args.get(name, "")
    return int(raw) if raw.isdigit() else None


@bp.get("/audit")
@staff_page
def audit_log():
    try:
        filters = _audit_filters()
        error = None
    except InvalidInput as exc:
        filters, error = audit.Filters(), exc.message
    page = audit.page(filters, before=_cursor("before"), after=_cursor("after"))
    args = {k: v for k, v in request.args.items() if k not in ("before", "after") and v}
    return render_page("staff/audit.html", blocks=("audit_results",), page=page, args=args,
                       error=error, actions=audit.actions(), staff_users=audit.staff_users())


@bp.get("/audit.csv")
@staff_page
def audit_csv():
    filters = _audit_filters()
    # The filters are kept in meta; the row names the customer only when one exists (the
    # column is a foreign key, and the filter is free text such as "cust_nope" or "%").
    named = filters.customer_id and db.session.get(Customer, filters.customer_id)
    audit.record(actor(), "audit.export", customer_id=named.id if named else None,
                     meta={k: v for k, v in request.args.items() if v})
    name = f"tally-audit-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
    return Response(stream_with_context(audit.csv_lines(filters)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
