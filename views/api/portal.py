"""Stripe Customer Portal configurations, managed by staff (Stripe's object shapes)."""

from __future__ import annotations

from services.billing import portal
from services.pagination import paginate_list
from views.api import STAFF_KEY, bp
from views.api.declare import operation
from views.api.schemas.common import PageQuery
from views.api.schemas.portal import (
    PortalConfiguration,
    PortalConfigurationList,
    PortalConfigurationRequest,
)

TAG = "Customer Portal"


@bp.get("/billing-portal/configurations")
@operation(STAFF_KEY, TAG, "Portal configurations", PortalConfigurationList, query=PageQuery,
           stripe=True)
def list_portal_configurations(query: PageQuery) -> PortalConfigurationList:
    """Stripe's configurations, newest first (up to 100; there are a handful)."""
    return PortalConfigurationList.of(
        paginate_list(portal.list_configurations(), lambda c: c["id"], **query.page()),
        PortalConfiguration.model_validate)


@bp.post("/billing-portal/configurations")
@operation(STAFF_KEY, TAG, "Create a portal configuration", PortalConfiguration, status=201,
           body=PortalConfigurationRequest, stripe=True)
def create_portal_configuration(body: PortalConfigurationRequest) -> tuple[PortalConfiguration, int]:
    return PortalConfiguration.model_validate(portal.create_configuration(body.changes())), 201


@bp.get("/billing-portal/configurations/<configuration_id>")
@operation(STAFF_KEY, TAG, "A portal configuration", PortalConfiguration, stripe=True)
def get_portal_configuration(configuration_id: str) -> PortalConfiguration:
    return PortalConfiguration.model_validate(portal.get_configuration(configuration_id))


@bp.post("/billing-portal/configurations/<configuration_id>")
@operation(STAFF_KEY, TAG, "Change a portal configuration", PortalConfiguration,
           body=PortalConfigurationRequest, stripe=True)
def update_portal_configuration(configuration_id: str,
                                body: PortalConfigurationRequest) -> PortalConfiguration:
    return PortalConfiguration.model_validate(
        portal.update_configuration(configuration_id, body.changes()))
