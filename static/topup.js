// Top-up: amount → PaymentIntent (Tally) → confirmCardPayment (Stripe.js) → credit (Tally).
// The balance on the page refreshes through htmx when the credit lands.
(() => {
  "use strict";
  const form = document.getElementById("topup-form");
  if (!form) return;

  const amountInput = document.getElementById("amount");
  const amountError = document.getElementById("amount-error");
  const cardError = document.getElementById("card-error");
  const status = document.getElementById("topup-status");
  const pay = document.getElementById("pay");
  const csrf = form.querySelector("[name=csrf_token]").value;

  const show = (el, message) => { el.textContent = message; el.hidden = !message; };
  const clearErrors = () => {
    show(amountError, ""); show(cardError, ""); status.textContent = "";
    status.classList.remove("ok");
    document.getElementById("amount-field").classList.remove("has-error");
    amountInput.removeAttribute("aria-invalid");
    amountInput.removeAttribute("aria-describedby");
  };

  if (!form.dataset.publishableKey) return;
  if (typeof window.Stripe !== "function") {
    show(cardError, "The card form could not load. Check your connection and reload the page.");
    pay.disabled = true;
    return;
  }
  const stripe = window.Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");

  // The Pay button says what will be charged, for an amount written the way the server
  // reads it (services/money.parse_major: digits, commas in threes, a point for decimals).
  // Anything else keeps the plain label; the server then says what is wrong.
  const AMOUNT = /^(?:(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?|\.[0-9]+)$/;
  const money = new Intl.NumberFormat("en-US", {
    style: "currency", currency: (form.dataset.currency || "usd").toUpperCase() });
  const chosenAmount = () => {
    const preset = form.querySelector("[name=preset]:checked");
    return amountInput.value.trim() || (preset ? preset.value : "");
  };
  const labelPay = () => {
    const text = chosenAmount();
    pay.textContent = AMOUNT.test(text)
      ? `Pay ${money.format(Number(text.replace(/,/g, "")))} and add credit`
      : "Pay and add credit";
  };

  amountInput.addEventListener("input", () => {
    if (amountInput.value) form.querySelectorAll("[name=preset]").forEach((r) => { r.checked = false; });
    labelPay();
  });
  form.querySelectorAll("[name=preset]").forEach((r) =>
    r.addEventListener("change", () => { amountInput.value = ""; clearErrors(); labelPay(); }));
  labelPay();

  const post = (url, fields) => window.tallyPost(url, csrf, fields);

  // The session ended while the page was open (logged out elsewhere, password changed):
  // Tally answers 401 `login_required` with where to log in, and coming back here after.
  const sessionEnded = (answer) => answer.status === 401 && answer.body.code === "login_required";
  const showSessionEnded = (answer) => {
    const link = document.createElement("a");
    link.href = answer.body.login_url || "/login";
    link.textContent = "Log in again";
    status.replaceChildren("Your session has ended. ", link, " to continue.");
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const amount = chosenAmount();
    pay.disabled = true;
    status.textContent = "Processing…";
    try {
      // The key goes with this attempt: resent after a lost answer, Tally answers the same
      // PaymentIntent again; once answered, the next attempt is a new one.
      const createIntent = () => window.tallyPost(form.dataset.intentUrl, csrf, { amount },
        form.elements.idempotency_key.value);
      let intent = await createIntent();
      window.tallyRenewKey(form);
      if (intent.body.code === "idempotency_key_reused") {
        intent = await createIntent();  // the amount changed after a lost answer: a new attempt
        window.tallyRenewKey(form);
      }
      if (sessionEnded(intent)) {
        showSessionEnded(intent);
        return;
      }
      if (!intent.ok) {
        if (intent.body.param === "amount") {
          show(amountError, intent.body.message);
          document.getElementById("amount-field").classList.add("has-error");
          amountInput.setAttribute("aria-invalid", "true");
          amountInput.setAttribute("aria-describedby", "amount-error");
          status.textContent = "";
        } else {
          status.textContent = intent.body.message;
        }
        return;
      }
      const result = await stripe.confirmCardPayment(intent.body.client_secret, {
        payment_method: { card },
      });
      if (result.error) {
        show(cardError, `${result.error.message} Nothing was charged or credited.`);
        status.textContent = "";
        return;
      }
      const credit = await post(form.dataset.confirmUrl, {
        payment_intent_id: result.paymentIntent.id,
      });
      if (sessionEnded(credit)) {
        showSessionEnded(credit);
        return;
      }
      if (!credit.ok) {
        status.textContent = credit.body.message;
        return;
      }
      status.textContent = `Added ${credit.body.amount_display}. Your balance is ${credit.body.balance_display}.`;
      status.classList.add("ok");
      amountInput.value = "";  // paid: a second click must not pay the same amount again
      labelPay();
      // The balance card (hx-trigger "balance-changed from:body") reloads from the server.
      window.htmx.trigger(document.body, "balance-changed");
    } catch (err) {
      status.textContent = "Something went wrong; nothing was credited twice. Try again.";
    } finally {
      pay.disabled = false;
    }
  });
})();
