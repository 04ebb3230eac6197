"""Stripe webhooks: raw body, no session, no CSRF. 2xx only after the work is committed."""

from __future__ import annotations

from functools import partial

from flask import Blueprint, request

from services import uow
from services.billing import webhooks
from views.api import PUBLIC
from views.api.declare import operation
from views.api.schemas.meta import StripeEvent, WebhookReceipt

bp = Blueprint("webhooks", __name__)


@bp.post("/v1/billing/webhook")
@bp.post("/billing/webhook", endpoint="legacy")
@operation(PUBLIC, "Webhooks", "Stripe events", WebhookReceipt, body=StripeEvent, raw_body=True,
           headers=(("Stripe-Signature", "Stripe's signature of the raw body."),),
           errors=(400, 500, 503),
           description="Answers 2xx only after the work is committed; 500 on a transient failure, "
                       "so Stripe retries. Also served at /billing/webhook.")
def receive() -> WebhookReceipt:
    with uow.unit():  # the delivery is stored, whatever becomes of its work
        event_id = webhooks.record(request.get_data(), request.headers.get("Stripe-Signature"))
    outcome = uow.attempt(partial(webhooks.process, event_id),
                          partial(webhooks.record_failure, event_id))
    return WebhookReceipt(id=outcome.event_id, type=outcome.type, status=outcome.status,
                          detail=outcome.detail)
