"""Stripe Customer Portal: configurations and sessions, managed by staff, in Stripe's own
shapes, at Tally's paths (`/v1/billing-portal/...`) and at Stripe's own
(`/v1/billing_portal/...`), so Stripe's libraries pointed at Tally work unchanged. Bodies
come as JSON or in Stripe's form encoding."""

from __future__ import annotations

from services.billing import portal
from services.pagination import paginate_list
from views.api import STAFF_KEY, bp, staff_actor
from views.api.declare import operation
from views.api.schemas.portal import (
    PortalConfiguration,
    PortalConfigurationCreateRequest,
    PortalConfigurationList,
    PortalConfigurationQuery,
    PortalConfigurationRequest,
    PortalSession,
    PortalSessionRequest,
)

TAG = "Customer Portal"
STRIPE_PATHS = "Stripe's own path `/v1/billing_portal/...` answers the same."


@bp.get("/billing_portal/configurations", endpoint="stripe_list_portal_configurations")
@bp.get("/billing-portal/configurations")
@operation(STAFF_KEY, TAG, "Portal configurations", PortalConfigurationList,
           query=PortalConfigurationQuery, stripe=True, description=STRIPE_PATHS)
def list_portal_configurations(query: PortalConfigurationQuery) -> PortalConfigurationList:
    """Stripe's configurations, newest first (up to 100; there are a handful)."""
    found = portal.list_configurations(active=query.active, is_default=query.is_default)
    return PortalConfigurationList.of(paginate_list(found, lambda c: c["id"], **query.page()),
                                      PortalConfiguration.model_validate)


@bp.post("/billing_portal/configurations", endpoint="stripe_create_portal_configuration")
@bp.post("/billing-portal/configurations")
@operation(STAFF_KEY, TAG, "Create a portal configuration", PortalConfiguration, status=201,
           body=PortalConfigurationCreateRequest, stripe=True, form=True, errors=(404,),
           description="404 `resource_missing` for a product or price Stripe does not have. "
                       + STRIPE_PATHS)
def create_portal_configuration(
        body: PortalConfigurationCreateRequest) -> tuple[PortalConfiguration, int]:
    return PortalConfiguration.model_validate(portal.create_configuration(body.changes())), 201


@bp.get("/billing_portal/configurations/<configuration_id>",
        endpoint="stripe_get_portal_configuration")
@bp.get("/billing-portal/configurations/<configuration_id>")
@operation(STAFF_KEY, TAG, "A portal configuration", PortalConfiguration, stripe=True,
           description=STRIPE_PATHS)
def get_portal_configuration(configuration_id: str) -> PortalConfiguration:
    return PortalConfiguration.model_validate(portal.get_configuration(configuration_id))


@bp.post("/billing_portal/configurations/<configuration_id>",
         endpoint="stripe_update_portal_configuration")
@bp.post("/billing-portal/configurations/<configuration_id>")
@operation(STAFF_KEY, TAG, "Change a portal configuration", PortalConfiguration,
           body=PortalConfigurationRequest, stripe=True, form=True, description=STRIPE_PATHS)
def update_portal_configuration(configuration_id: str,
                                body: PortalConfigurationRequest) -> PortalConfiguration:
    return PortalConfiguration.model_validate(
        portal.update_configuration(configuration_id, body.changes()))


@bp.post("/billing_portal/sessions", endpoint="stripe_create_portal_session")
@bp.post("/billing-portal/sessions")
@operation(STAFF_KEY, TAG, "Open a customer's portal session", PortalSession,
           body=PortalSessionRequest, stripe=True, form=True, errors=(404,),
           description="Stripe's parameters; `customer` is the customer's Stripe id or its Tally "
                       "id (its Stripe customer is created on first use; another is a 404). "
                       "Audited. "
                       + STRIPE_PATHS)
def create_portal_session(body: PortalSessionRequest) -> PortalSession:
    return PortalSession.model_validate(portal.open_session(
        staff_actor(), body.customer, return_url=body.return_url,
        configuration=body.configuration, locale=body.locale))
