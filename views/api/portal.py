"""Stripe Customer Portal configurations, managed by staff (Stripe's object shapes)."""

from __future__ import annotations

from flask import jsonify

from services.billing import portal
from services.pagination import paginate_list
from views.api import STAFF_KEY, bp, json_body, key_required
from views.api.lists import list_response, page_args


@bp.get("/billing-portal/configurations")
@key_required(*STAFF_KEY)
def list_portal_configurations():
    """Stripe's configurations, newest first (up to 100; there are a handful)."""
    return list_response(paginate_list(portal.list_configurations(), lambda c: c["id"], **page_args()),
                         lambda c: c)


@bp.post("/billing-portal/configurations")
@key_required(*STAFF_KEY)
def create_portal_configuration():
    return jsonify(portal.create_configuration(json_body())), 201


@bp.get("/billing-portal/configurations/<configuration_id>")
@key_required(*STAFF_KEY)
def get_portal_configuration(configuration_id: str):
    return jsonify(portal.get_configuration(configuration_id))


@bp.post("/billing-portal/configurations/<configuration_id>")
@key_required(*STAFF_KEY)
def update_portal_configuration(configuration_id: str):
    return jsonify(portal.update_configuration(configuration_id, json_body()))
