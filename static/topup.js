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

  // A saved card pays in one click (Tally confirms it); "A new card" shows the card form.
  const newCardField = document.getElementById("new-card-field");
  const savedCard = () => {
    const chosen = form.querySelector("[name=payment_method_id]:checked");
    return chosen ? chosen.value : "";
  };
  form.querySelectorAll("[name=payment_method_id]").forEach((r) =>
    r.addEventListener("change", () => { newCardField.hidden = Boolean(savedCard()); }));

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
      const pm = savedCard();
      const fields = pm ? { amount, payment_method_id: pm } : { amount };
      const createIntent = () => window.tallyPost(form.dataset.intentUrl, csrf, fields,
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
      if (!pm || intent.body.status === "requires_action") {
        // A new card, or a saved one whose bank asks for 3-D Secure: Stripe.js finishes it.
        const result = await stripe.confirmCardPayment(intent.body.client_secret,
          pm ? undefined : { payment_method: { card } });
        if (result.error) {
          const message = `${result.error.message} Nothing was charged or credited.`;
          if (pm) {
            status.textContent = message;  // the card form is hidden: say it here
          } else {
            show(cardError, message);
            status.textContent = "";
          }
          return;
        }
      }
      const credit = await post(form.dataset.confirmUrl, {
        payment_intent_id: intent.body.payment_intent_id,
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

  // Auto-recharge waiting for 3-D Secure: confirm its PaymentIntent with the card it tried,
  // then credit it (auto-recharge then counts it as succeeded).
  const complete = document.getElementById("complete-payment");
  if (complete) {
    const completeStatus = document.getElementById("complete-status");
    complete.addEventListener("click", async () => {
      complete.disabled = true;
      completeStatus.textContent = "Waiting for your bank…";
      try {
        const pmId = complete.dataset.paymentMethod;
        const result = await stripe.confirmCardPayment(complete.dataset.clientSecret,
          pmId ? { payment_method: pmId } : undefined);
        if (result.error) {
          completeStatus.textContent = `${result.error.message} Nothing was charged.`;
          return;
        }
        const credit = await post(form.dataset.confirmUrl, {
          payment_intent_id: complete.dataset.paymentIntent,
        });
        if (!credit.ok) {
          completeStatus.textContent = credit.body.message;
          return;
        }
        completeStatus.textContent = `Added ${credit.body.amount_display}. Your balance is ${credit.body.balance_display}.`;
        completeStatus.classList.add("ok");
        window.htmx.trigger(document.body, "balance-changed");
      } catch (err) {
        completeStatus.textContent = "Something went wrong; nothing was credited twice. Try again.";
      } finally {
        complete.disabled = false;
      }
    });
  }
})();
