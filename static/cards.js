// Save a card: SetupIntent (Tally) → confirmCardSetup (Stripe.js, 3-D Secure included) →
// save the confirmed PaymentMethod (Tally), then reload the list.
(() => {
  "use strict";
  document.querySelectorAll("form[data-confirm]").forEach((f) =>
    f.addEventListener("submit", (event) => {
      if (!window.confirm(f.dataset.confirm)) event.preventDefault();
    }));
  const form = document.getElementById("card-form");
  if (!form || !form.dataset.publishableKey) return;
  const cardError = document.getElementById("card-error");
  const status = document.getElementById("card-status");
  const save = document.getElementById("save-card");
  const csrf = form.querySelector("[name=csrf_token]").value;
  const show = (message) => { cardError.textContent = message; cardError.hidden = !message; };

  if (typeof window.Stripe !== "function") {
    show("The card form could not load. Check your connection and reload the page.");
    save.disabled = true;
    return;
  }
  const stripe = window.Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    show("");
    save.disabled = true;
    status.textContent = "Saving…";
    try {
      const setup = await window.tallyPost(form.dataset.setupUrl, csrf, {},
                                           form.elements.idempotency_key.value);
      window.tallyRenewKey(form);
      if (!setup.ok) {
        status.textContent = setup.body.message || "Could not start saving the card.";
        return;
      }
      const result = await stripe.confirmCardSetup(setup.body.client_secret, {
        payment_method: { card },
      });
      if (result.error) {
        show(`${result.error.message} The card was not saved.`);
        status.textContent = "";
        return;
      }
      const saved = await window.tallyPost(form.dataset.addUrl, csrf, {
        payment_method_id: result.setupIntent.payment_method,
      });
      if (!saved.ok) {
        status.textContent = saved.body.message;
        return;
      }
      window.location.assign(saved.body.redirect);
    } catch (err) {
      status.textContent = "Something went wrong; try again.";
    } finally {
      save.disabled = false;
    }
  });
})();
