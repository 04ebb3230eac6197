// While a staff member views as a customer: the banner's countdown, and read-only
// refusals (403) shown in the banner for htmx requests, which htmx would otherwise drop.
(() => {
  "use strict";
  const clock = document.querySelector("[data-seconds-left]");
  if (clock) {
    const ends = performance.now() + Number(clock.dataset.secondsLeft) * 1000;
    const pad = (n) => String(n).padStart(2, "0");
    let timer = null;
    const tick = () => {
      const left = Math.max(0, Math.round((ends - performance.now()) / 1000));
      clock.textContent = `${pad(Math.floor(left / 60))}:${pad(left % 60)}`;
      if (left === 0) {
        clearInterval(timer);
        window.location.reload(); // the server ends the view and returns to the console
      }
    };
    timer = setInterval(tick, 1000);
  }
  document.addEventListener("click", (event) => {
    const dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) dismiss.closest(".refusal").remove();
  });
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status === 403 && xhr.getResponseHeader("HX-Retarget") === "#impersonation-notice") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
