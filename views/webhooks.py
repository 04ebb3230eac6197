"""Stripe webhooks: raw body, no session, no CSRF. 2xx only after the work is committed."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from services.billing import webhooks

bp = Blueprint("webhooks", __name__)


@bp.post("/v1/billing/webhook")
@bp.post("/billing/webhook", endpoint="legacy")
def receive():
    outcome = webhooks.receive(request.get_data(), request.headers.get("Stripe-Signature"))
    return jsonify(received=True, id=outcome.event_id, type=outcome.type, status=outcome.status,
                   detail=outcome.detail)
