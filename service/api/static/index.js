/* The sweep list (/): every sweep with its status and progress, refreshed live. */
(function () {
  "use strict";

  const {
    POLL_MS, el, $, clear, sweepUrl, statusBadge, localTime, api, showError, progressBar,
  } = window.e2rnas;

  function indexPage() {
    const error = $("list-error");
    const row = (sweep) => el("tr", { "data-sweep": sweep.id }, [
      el("td", {}, [
        el("a", { href: sweepUrl(sweep.id), text: sweep.name }),
        el("div", { className: "muted", text: sweep.id }),
      ]),
      el("td", {}, [statusBadge(sweep.status)]),
      el("td", {}, [progressBar(sweep.progress)]),
      el("td", { text: localTime(sweep.created_at) }),
      el("td", { className: "muted", text: sweep.message || "" }),
    ]);
    const none = el("tr", {}, [el("td", { colspan: 5, className: "muted" }, [
      "No sweeps yet. ", el("a", { href: "/submit", text: "Submit one" }), ".",
    ])]);
    (function poll() {
      api("/api/sweeps").then((answer) => {
        error.classList.add("hidden");
        $("sweeps-count").textContent = answer.count + (answer.count === 1 ? " sweep" : " sweeps");
        clear($("sweeps-body")).append(...(answer.count ? answer.data.map(row) : [none]));
      }).catch((e) => showError(error, e)).then(() => window.setTimeout(poll, POLL_MS));
    })();
  }

  document.addEventListener("DOMContentLoaded", indexPage);
})();
