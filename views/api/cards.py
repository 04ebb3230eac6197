"""Saved cards: SetupIntents, list, attach, default, remove (services/billing/cards.py)."""

from __future__ import annotations

from services.billing import cards
from services.identity import members
from services.pagination import paginate_list
from views.api import ACCOUNT_KEY, account, bp
from views.api.declare import operation
from views.api.schemas.cards import (
    AttachRequest,
    PaymentMethod,
    PaymentMethodList,
    SetupIntent,
)
from views.api.schemas.common import PageQuery
from views.idempotency import operation_key


@bp.post("/billing/setup-intents")
@operation(ACCOUNT_KEY, "Payment methods", "Start saving a card", SetupIntent, stripe=True,
           description="Confirm `client_secret` with Stripe.js confirmCardSetup (3-D Secure "
                       "included), then POST /v1/payment-methods with its PaymentMethod.",
           permission=members.PAY)
def setup_intents() -> SetupIntent:
    started = cards.start_setup(account(), idempotency_key=operation_key())
    return SetupIntent(setup_intent_id=started.setup_intent_id,
                       client_secret=started.client_secret)


@bp.get("/payment-methods")
@operation(ACCOUNT_KEY, "Payment methods", "The account's saved cards, the default first",
           PaymentMethodList, query=PageQuery, stripe=True,
           permission=members.READ)
def list_payment_methods(query: PageQuery) -> PaymentMethodList:
    page = paginate_list(cards.list_cards(account()), lambda c: c.id, **query.page())
    return PaymentMethodList.of(page, PaymentMethod.model_validate)


@bp.post("/payment-methods")
@operation(ACCOUNT_KEY, "Payment methods", "Save a card", PaymentMethod, status=201,
           body=AttachRequest, stripe=True, errors=(404,),
           description="The first card saved becomes the default. Someone else's card is a 404.",
           permission=members.PAY)
def attach_payment_method(body: AttachRequest) -> tuple[PaymentMethod, int]:
    return PaymentMethod.model_validate(cards.attach(account(), body.payment_method_id)), 201


@bp.post("/payment-methods/<payment_method_id>/default")
@operation(ACCOUNT_KEY, "Payment methods", "Make a card the default", PaymentMethod, stripe=True,
           errors=(404,), description="The default pays the subscription, one-click top-ups "
                                      "and auto-recharge.",
           permission=members.PAY)
def default_payment_method(payment_method_id: str) -> PaymentMethod:
    return PaymentMethod.model_validate(cards.make_default(account(), payment_method_id))


@bp.delete("/payment-methods/<payment_method_id>")
@operation(ACCOUNT_KEY, "Payment methods", "Remove a card", PaymentMethod, stripe=True,
           errors=(404,),
           permission=members.PAY)
def delete_payment_method(payment_method_id: str) -> PaymentMethod:
    return PaymentMethod.model_validate(cards.remove(account(), payment_method_id))
