"""The webhook inbox: every Stripe event received, its outcome, and replay."""

from __future__ import annotations

import json
from functools import partial

from flask import (
    flash,
    redirect,
    request,
    url_for,
)

from services import uow
from services.billing import webhooks
from services.billing.stripe_objects import API_VERSION
from services.errors import TallyError
from services.pagination import parse_limit
from services.staff import webhook_inbox
from views.htmx import render_page
from views.session import (
    actor,
)
from views.staff.base import bp, staff_page
from views.staff.forms import ConfirmForm

# Webhook inbox --------------------------------------------------------------------------


@bp.get("/webhooks")
@staff_page
def webhooks_index():
    status_filter = request.args.get("status", "all")
    if status_filter not in webhook_inbox.WEBHOOK_FILTERS:
        status_filter = "all"
    page = webhook_inbox.webhook_events(status_filter,
                                limit=parse_limit(request.args.get("limit") or "50"),
                                starting_after=request.args.get("starting_after") or None)
    # Not `status=`: render_page's `status` is the HTTP status of the answer.
    return render_page("staff/webhooks.html", blocks=("events",), page=page,
                       status_filter=status_filter, api_version=API_VERSION)


@bp.get("/webhooks/<event_id>")
@staff_page
def webhook(event_id: str):
    row = webhook_inbox.get_webhook_event(event_id)
    try:
        payload = json.dumps(json.loads(row.payload), indent=2, sort_keys=True)
    except ValueError:
        payload = row.payload
    return render_page("staff/webhook.html", event=row, payload=payload, form=ConfirmForm(),
                       api_version=API_VERSION)


@bp.post("/webhooks/<event_id>/replay")
@staff_page
def replay_webhook(event_id: str):
    ConfirmForm().validate_on_submit()
    before = webhook_inbox.webhook_state(event_id)
    try:  # the handler's work is one unit; a failure is kept on the event, then shown here
        outcome = uow.attempt(partial(webhooks.process, event_id),
                              partial(webhooks.record_failure, event_id))
    except TallyError as exc:
        outcome = webhooks.Outcome(event_id, before["type"], "error", exc.message)
    webhook_inbox.record_replay(actor(), event_id, before, outcome)
    if outcome.status == "error":
        flash(f"Replay failed: {outcome.detail}", "error")
    else:
        detail = f" ({outcome.detail})" if outcome.detail else ""
        flash({"duplicate": "Already processed: nothing to do, nothing changed.",
               "processed": f"Processed{detail}.",
               "ignored": f"Stored; Tally has no handler for {outcome.type}.",
               "refused": f"Refused{detail}."}.get(outcome.status, outcome.status))
    return redirect(url_for("staff.webhook", event_id=event_id), code=303)
