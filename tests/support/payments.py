"""Pay a PaymentIntent the way Stripe.js would after the customer enters a card."""

from __future__ import annotations

import stripe


def pay(stripe_client: stripe.StripeClient, payment_intent_id: str,
        payment_method: str = "pm_card_visa") -> str:
    """Attach a test card and confirm; returns the resulting status."""
    stripe_client.v1.payment_intents.update(payment_intent_id,
                                            params={"payment_method": payment_method})
    try:
        intent = stripe_client.v1.payment_intents.confirm(payment_intent_id)
    except stripe.CardError:
        return stripe_client.v1.payment_intents.retrieve(payment_intent_id).status
    return intent.status
