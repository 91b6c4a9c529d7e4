/* The compare page (/compare?a=ID&b=ID&x=..&y=..): two sweeps' fronts and hypervolumes. */
(function () {
  "use strict";

  const { el, $, clear, sweepUrl, fmt, api, showError, fillSelect, plot } = window.e2rnas;

  function comparePage() {
    const params = new URLSearchParams(window.location.search);
    const [selA, selB, selX, selY] = ["sweep-a", "sweep-b", "axis-x", "axis-y"].map($);
    const error = $("compare-error");
    const row = (sweep) => el("tr", {}, [
      el("th", { scope: "row" }, [el("a", { href: sweepUrl(sweep.id), text: sweep.label })]),
      el("td", { className: "num", text: String(sweep.finished) }),
      el("td", { className: "num", text: String(sweep.front_size) }),
      el("td", { className: "num", text: fmt(sweep.hypervolume) }),
      el("td", { text: sweep.reference ? sweep.reference.map(fmt).join(", ") : "-" }),
      el("td", { className: "num shared-hv", text: fmt(sweep.shared_hypervolume) }),
      el("td", { className: "num seed-hv", text: seedInterval(sweep), title: sweep.seed_note || "" }),
    ]);
    /** The hypervolume of one seed per configuration: "mean [low, high]" at its confidence. */
    const seedInterval = (sweep) => {
      const hv = sweep.seed_hypervolume;
      if (!hv) return "-";
      return `${fmt(hv.mean)} [${fmt(hv.low)}, ${fmt(hv.high)}] ` +
        `(${Math.round(hv.confidence * 100)} %, ${hv.draws} draws)`;
    };

    async function draw() {
      error.classList.add("hidden");
      const query = new URLSearchParams({ a: selA.value, b: selB.value });
      for (const [key, select] of [["x", selX], ["y", selY]]) {
        if (select.value || params.get(key)) query.set(key, select.value || params.get(key));
      }
      const answer = await api("/api/compare?" + query);
      [selX.value, selY.value] = Object.keys(answer.objectives);
      query.set("x", selX.value);
      query.set("y", selY.value);
      window.history.replaceState(null, "", "/compare?" + query);
      plot($("compare-plot"), answer.figure);
      clear($("compare-body")).append(...answer.sweeps.map(row));
      const shared = answer.shared_reference;
      $("shared-reference").textContent =
        shared ? `Shared reference point: ${shared.map(fmt).join(", ")}.` : "";
    }
    const redraw = () => draw().catch((e) => showError(error, e));

    Promise.all([api("/api/sweeps"), api("/api/objectives")]).then(([sweeps, objectives]) => {
      const metrics = objectives.data.map((m) => [m.name, `${m.name} (${m.direction})`]);
      // No axis selected: the first answer's are the URL's, or else the service's defaults.
      [selX, selY].forEach((select) => fillSelect(select, metrics, null));
      [selX.value, selY.value] = ["", ""];
      const options = sweeps.data.map((s) => [s.id, `${s.name} (${s.id}, ${s.status})`]);
      [selA, selB].forEach((select, i) =>
        fillSelect(select, options, params.get("ab"[i]) || (sweeps.data[i] || {}).id));
      [selA, selB, selX, selY].forEach((select) => select.addEventListener("change", redraw));
      if (sweeps.count >= 2) return redraw();
      showError(error, `Comparing needs two sweeps; the service has ${sweeps.count}.`);
    }).catch((e) => showError(error, e));
  }

  document.addEventListener("DOMContentLoaded", comparePage);
})();
