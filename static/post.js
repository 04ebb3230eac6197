// POST form fields to Tally from a page script (top-up, upgrade), with the page's CSRF
// token and, when given, the operation's Idempotency-Key; answers {ok, status, body}, body
// being the JSON answer (or a message when the answer was not JSON). Send the same key
// again to retry an attempt whose answer was lost: Tally answers the first one again.
window.tallyPost = async (url, csrf, fields, idempotencyKey) => {
  const headers = { "X-CSRFToken": csrf, Accept: "application/json" };
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const response = await fetch(url, {
    method: "POST",
    headers,
    body: new URLSearchParams({ csrf_token: csrf, ...fields }),
  });
  const body = await response.json().catch(() => ({ message: "Unexpected answer from the server." }));
  return { ok: response.ok, status: response.status, body };
};

// A new Idempotency-Key for a form's next attempt, once the last one was answered.
window.tallyRenewKey = (form) => {
  const field = form.elements.idempotency_key;
  if (!field) return;
  field.value = window.crypto.randomUUID ? window.crypto.randomUUID()
    : Array.from(window.crypto.getRandomValues(new Uint8Array(16)),
      (b) => b.toString(16).padStart(2, "0")).join("");
};
