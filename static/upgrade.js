// Upgrade: card → PaymentMethod (Stripe.js) → Tally attaches it and subscribes.
(() => {
  "use strict";
  const form = document.getElementById("upgrade-form");
  if (!form || !form.dataset.publishableKey) return;
  const cardError = document.getElementById("card-error");
  const status = document.getElementById("upgrade-status");
  const button = document.getElementById("subscribe");
  const csrf = form.querySelector("[name=csrf_token]").value;
  const show = (message) => { cardError.textContent = message; cardError.hidden = !message; };
  if (typeof window.Stripe !== "function") {
    show("The card form could not load. Check your connection and reload the page.");
    button.disabled = true;
    return;
  }
  const stripe = window.Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");

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
      const response = await fetch(form.dataset.submitUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrf, Accept: "application/json" },
        body: new URLSearchParams({ csrf_token: csrf, plan: form.dataset.plan,
                                    payment_method_id: result.paymentMethod.id }),
      });
      const body = await response.json().catch(() => ({ message: "Unexpected answer from the server." }));
      if (!response.ok) {
        show(body.message);
        status.textContent = "";
        return;
      }
      status.textContent = "Done: you are on Pro.";
      window.location.assign(body.redirect);
    } catch (err) {
      status.textContent = "Something went wrong; you were not charged twice. Try again.";
    } finally {
      button.disabled = false;
    }
  });
})();
