// Upgrade: card → PaymentMethod (Stripe.js) → Tally attaches it and subscribes. When the
// card's bank asks for 3-D Secure, Tally answers 402 `requires_action` with the first
// payment's client secret: Stripe.js confirmCardPayment shows the challenge, then Tally
// finishes the upgrade (or, when it failed, ends the subscription; nothing is charged).
(() => {
  "use strict";
  const form = document.getElementById("upgrade-form");
  if (!form || !form.dataset.publishableKey) return;
  const cardError = document.getElementById("card-error");
  const status = document.getElementById("upgrade-status");
  const button = document.getElementById("subscribe");
  const csrf = form.querySelector("[name=csrf_token]").value;
  const show = (message) => { cardError.textContent = message; cardError.hidden = !message; };
  const nothingCharged = `Nothing was charged; you are still on ${form.dataset.currentPlan}.`;
  if (typeof window.Stripe !== "function") {
    show("The card form could not load. Check your connection and reload the page.");
    button.disabled = true;
    return;
  }
  const stripe = window.Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");

  const post = (url, fields) => window.tallyPost(url, csrf, fields);

  const done = (answer) => {
    status.textContent = "Done: you are on Pro.";
    window.location.assign(answer.body.redirect);
  };

  // The bank's challenge, then Tally's confirm: Stripe's state decides, so a failed or
  // cancelled challenge also reaches Tally, which ends the incomplete subscription.
  const authenticate = async (required) => {
    status.textContent = "Your bank asks you to confirm this payment…";
    const result = await stripe.confirmCardPayment(required.payment_intent_client_secret);
    status.textContent = "Processing…";
    const answer = await post(form.dataset.confirmUrl, { subscription_id: required.subscription_id });
    if (answer.ok) {
      done(answer);
      return;
    }
    status.textContent = "";
    show(result.error ? `${result.error.message} ${nothingCharged}` : answer.body.message);
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    show("");
    button.disabled = true;
    status.textContent = "Processing…";
    try {
      const result = await stripe.createPaymentMethod({ type: "card", card });
      if (result.error) {
        show(result.error.message);
        status.textContent = "";
        return;
      }
      const answer = await window.tallyPost(form.dataset.submitUrl, csrf, {
        plan: form.dataset.plan, payment_method_id: result.paymentMethod.id,
      }, form.elements.idempotency_key.value);
      if (answer.ok) {
        done(answer);
      } else if (answer.body.code === "requires_action") {
        await authenticate(answer.body);
      } else {
        show(answer.body.message);
        status.textContent = "";
      }
    } catch (err) {
      status.textContent = "Something went wrong; you were not charged twice. Try again.";
    } finally {
      window.tallyRenewKey(form);  // each attempt brings a new card: a new operation
      button.disabled = false;
    }
  });
})();
