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


def confirm_setup(localstripe_url: str, client_secret: str, card: str = "4242424242424242",
                  *, authenticate: bool | None = None) -> dict:
    """Confirm a SetupIntent as Stripe.js `confirmCardSetup` does with a typed card (the
    simulator's Stripe.js endpoints); `authenticate` answers the 3-D Secure step. Returns
    the SetupIntent (its `payment_method` is the saved card)."""
    import json
    import urllib.request

    seti = client_secret.split("_secret_")[0]

    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(localstripe_url + path, data=json.dumps(body).encode(),
                                         method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            return dict(json.loads(answer.read()))

    result = post(f"/js.stripe.com/tally/setup_intents/{seti}/confirm", {
        "key": "pk_test_tally", "client_secret": client_secret,
        "payment_method_data": {"type": "card", "card": {
            "number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}})
    if result["status"] == "requires_action" and authenticate is not None:
        result = post(f"/js.stripe.com/tally/setup_intents/{seti}/_authenticate"
                      f"?success={'true' if authenticate else 'false'}",
                      {"key": "pk_test_tally", "client_secret": client_secret})
    return result
