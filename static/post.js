// POST form fields to Tally from a page script (top-up, upgrade), with the page's CSRF
// token; answers {ok, status, body}, body being the JSON answer (or a message when the
// answer was not JSON).
window.tallyPost = async (url, csrf, fields) => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    body: new URLSearchParams({ csrf_token: csrf, ...fields }),
  });
  const body = await response.json().catch(() => ({ message: "Unexpected answer from the server." }));
  return { ok: response.ok, status: response.status, body };
};
