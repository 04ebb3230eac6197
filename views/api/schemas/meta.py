"""Stripe's webhook deliveries and this document."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from views.api.schemas.common import Answer, Request


class StripeEvent(Request):
    """A Stripe event, signed with Stripe-Signature."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str


class WebhookReceipt(Answer):
    received: Literal[True] = True
    id: str
    type: str
    status: str
    detail: str | None


class OpenApiDocument(Answer):
    model_config = ConfigDict(extra="allow")

    openapi: str
    paths: dict[str, object]
