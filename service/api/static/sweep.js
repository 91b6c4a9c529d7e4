/* The sweep page (/sweeps/{id}): status, downloads, the figures of
 * GET /api/sweeps/{id}/figures, the selected trial with its cells, and the trial table; all
 * refreshed every two seconds until the sweep has ended. */
(function () {
  "use strict";

  const {
    POLL_MS, el, $, clear, isNumber, apiSweep, statusBadge, fmt, compactJson, localTime, api,
    showError, progressBar, fillSelect, plot,
  } = window.e2rnas;
  const TERMINAL = ["done", "failed", "cancelled"];
  const PROJECTIONS = ["projection_2d", "projection_3d"];
  const isDone = (row) => row.status === "done";
  const selectsOf = (name) => [...document.querySelectorAll(`select[data-projection="${name}"]`)];

  /** A projection's chosen columns as a query value, "x,y[,z]"; "" before the first load. */
  function axesOf(name) {
    const columns = selectsOf(name).map((select) => select.value);
    return columns.every(Boolean) ? columns.join(",") : "";
  }

  function sweepPage() {
    const id = $("sweep-id").textContent;
    const error = $("sweep-error");
    const state = {
      sweep: null, columns: [], rows: [], objectives: {}, front: {}, knee: null,
      selected: null, sortKey: "trial_id", sortDir: 1, lastKey: null,
    };
    const isFront = (row) => Boolean(state.front[row.trial_id]);

    /** A click on a point selects its trial: its customdata is [trial_id, genotype_hash]. */
    function onClick(event) {
      const point = event && event.points && event.points[0];
      const data = point && (point.customdata ??
        (point.data.customdata || [])[point.pointIndex ?? point.pointNumber]);
      if (Array.isArray(data)) selectTrial(String(data[0]));
    }

    $("cancel").addEventListener("click", () => {
      if (!window.confirm(`Cancel sweep ${id}? Finished trials stay in the results.`)) return;
      api(apiSweep(id) + "/cancel", { method: "POST", auth: true })
        .then(renderHeader).catch((e) => showError(error, e));
    });
    $("table-filter").addEventListener("input", drawTable);
    // A new axis redraws the figures over those axes alone (the fronts by backbone and of the
    // two stages follow the 2-D projection's); the next refresh keeps the chosen axes.
    const SHARING = {
      projection_2d: ["projection_2d", "fronts_by_backbone", "two_stage", "seed_robustness"],
      projection_3d: ["projection_3d"],
    };
    PROJECTIONS.forEach((name) => selectsOf(name).forEach((select) => {
      select.addEventListener("change", () => {
        const axes = axesOf(name).split(",").map((column, i) => ["xyz"[i], column]);
        SHARING[name].forEach((figureName) => {
          const div = document.querySelector(`[data-figure="${figureName}"]`);
          if (!div || (figureName !== name && div.classList.contains("hidden"))) return;
          api(`${apiSweep(id)}/figures/${figureName}?${new URLSearchParams(axes)}`)
            .then((figure) => plot(div, figure, onClick))
            .catch((e) => showError(error, e));
        });
      });
    }));

    function renderHeader(sweep) {
      state.sweep = sweep;
      $("sweep-name").textContent = sweep.name;
      clear($("sweep-status")).append(statusBadge(sweep.status));
      document.body.setAttribute("data-status", sweep.status);
      clear($("sweep-progress")).append(progressBar(finalProgress(sweep)));
      $("sweep-created").textContent = localTime(sweep.created_at);
      $("sweep-updated").textContent = localTime(sweep.updated_at);
      $("sweep-job").textContent = sweep.job_id || "-";
      $("sweep-message").textContent = sweep.message || "";
      $("sweep-message").classList.toggle("hidden", !sweep.message);
      $("cancel-box").classList.toggle("hidden", TERMINAL.includes(sweep.status));
    }

    /** The sweep's progress; once it ended, counted from the results table when that holds
     * more finished trials than the progress (which may date from before the last ones). */
    function finalProgress(sweep) {
      const progress = sweep.progress;
      const done = state.rows.filter(isDone).length;
      const stopped = state.rows.filter((row) => row.status === "stopped").length;
      const failed = state.rows.length - done - stopped;
      const counted = (progress.done || 0) + (progress.stopped || 0) + (progress.failed || 0);
      if (!TERMINAL.includes(sweep.status) || done + stopped + failed <= counted) return progress;
      const pending = Math.max(0, (progress.total || 0) - done - stopped - failed);
      return { ...progress, done, stopped, failed, running: 0, pending };
    }

    async function loadData() {
      const query = new URLSearchParams();
      PROJECTIONS.filter(axesOf).forEach((name) => query.set(name, axesOf(name)));
      // The robustness loads on its own: its failure (e.g. past the service's budget) shows
      // in its section and leaves the rest of the page.
      api(apiSweep(id) + "/robust").then(drawRobust).catch((e) => {
        $("robust-summary").textContent = `Seed robustness not available: ${e.message}`;
      });
      const [results, pareto, figures] = await Promise.all([
        api(apiSweep(id) + "/results"),
        api(apiSweep(id) + "/pareto"),
        api(`${apiSweep(id)}/figures?${query}`),
      ]);
      const { objectives, knee } = pareto;
      Object.assign(state, { columns: results.columns, rows: results.data, objectives, knee });
      state.front = Object.fromEntries(pareto.front.map((row) => [row.trial_id, true]));
      state.rows.forEach((row) => {
        row.front_rank = pareto.ranks[row.trial_id] >= 0 ? pareto.ranks[row.trial_id] : null;
      });
      if (state.sweep) renderHeader(state.sweep);
      $("front-summary").textContent = `${state.rows.length} trials, ` +
        `${state.rows.filter(isDone).length} done, ${pareto.front.length} on the Pareto front ` +
        `of ${Object.keys(objectives).join(", ")}; hypervolume ${fmt(pareto.hypervolume)}` +
        (knee ? `; knee: trial ${knee}.` : ".");
      drawFigures(figures);
      drawTable();
    }

    /** The answer of GET .../robust: the draws and the hypervolume interval, the
     * configurations ranked by dominance probability, and the duplicate genotypes. */
    function drawRobust(robust) {
      const hv = robust.hypervolume;
      const draws = robust.method === "exact"
        ? `exact over all ${fmt(robust.combinations)} combinations`
        : `${robust.resamples} random draws (seed ${robust.random_seed})`;
      const runs = robust.runs.min === robust.runs.max ? robust.runs.min
        : `${robust.runs.min}-${robust.runs.max}`;
      $("robust-summary").textContent = `${robust.configurations.length} configurations, ` +
        `${runs} valid runs each; dominance probability ${draws}. ` +
        `Hypervolume of one seed per configuration: ${fmt(hv.mean)}, ` +
        `${Math.round(hv.confidence * 100)} % interval [${fmt(hv.low)}, ${fmt(hv.high)}]; ` +
        `all seeds pooled ${fmt(hv.pooled)}.` +
        Object.entries(robust.hypervolume_by_backbone).map(([name, b]) =>
          ` ${name}: ${fmt(b.mean)} [${fmt(b.low)}, ${fmt(b.high)}].`).join("") +
        (robust.note ? " " + robust.note : "");
      const objectives = Object.keys(robust.objectives);
      const columns = ["configuration", "P(front)", "runs", "genotypes", ...objectives];
      clear($("robust-head")).append(el("tr", {}, columns.map((name) =>
        el("th", { scope: "col", text: name }))));
      const spread = (row, name) => {
        const [mean, std] = [row[name + "_mean"], row[name + "_std"]];
        if (!isNumber(mean)) return "-";
        return isNumber(std) ? `${fmt(mean)} ± ${fmt(std)}` : fmt(mean);
      };
      clear($("robust-body")).append(...robust.configurations.map((row) =>
        el("tr", { "data-configuration": row.configuration }, [
          el("td", { text: row.configuration }),
          el("td", { className: "num probability", text: fmt(row.dominance_probability) }),
          el("td", { className: "num", text: `${row.valid_runs}/${row.runs}` }),
          el("td", { className: "num", text: String(row.genotypes) }),
          ...objectives.map((name) => el("td", { className: "num", text: spread(row, name) })),
        ])));
      const twins = robust.twins.map((group) => el("li", { className: "twins",
        text: `Same genotype under every seed: ${group.join(" = ")}` }));
      clear($("duplicates")).append(...twins, ...(robust.duplicates.length ? robust.duplicates.map((group) =>
        el("li", { "data-hash": group.genotype_hash, text: `${group.genotype_hash}: ` +
          `${group.trials.length} trials (${group.trials.join(", ")}) from ` +
          `${group.configurations.length} configuration(s): ${group.configurations.join(", ")}` }))
        : [el("li", { className: "muted", text: "No two finished trials found one genotype." })]));
    }

    /** The figures of the answer into their [data-figure] divs, and the notes of the
     * sections missing some into their [data-note] paragraphs. */
    function drawFigures(answer) {
      PROJECTIONS.forEach((name) => selectsOf(name).forEach((select, i) =>
        fillSelect(select, answer.axes, answer[name][i])));
      const divs = [...document.querySelectorAll("[data-figure]")];
      // Every div shown or hidden first, so that the grids around them settle before any
      // figure is drawn at its div's width.
      divs.forEach((div) => div.classList.toggle("hidden", !answer.figures[div.dataset.figure]));
      divs.forEach((div) => plot(div, answer.figures[div.dataset.figure], onClick));
      document.querySelectorAll("[data-note]").forEach((note) => {
        note.textContent = answer.notes[note.dataset.note] || "";
        note.classList.toggle("hidden", !note.textContent);
      });
    }

    function tableColumns() {
      const wanted = ["trial_id", "status", "search_epochs", "L", "F", "seed", "variant",
        ...Object.keys(state.objectives), "front_rank", "genotype_hash", "search_seconds",
        "eval_seconds"];
      return [...new Set(wanted)].filter((name) =>
        state.columns.includes(name) || name === "front_rank");
    }

    function compareRows(a, b) {
      const [x, y] = [a[state.sortKey], b[state.sortKey]];
      if (x === null || x === undefined) return 1; // missing values stay last both ways
      if (y === null || y === undefined) return -1;
      if (isNumber(x) && isNumber(y)) return state.sortDir * (x - y);
      return state.sortDir * String(x).localeCompare(String(y), undefined, { numeric: true });
    }

    function sortButton(name) {
      const sorted = state.sortKey === name;
      const [arrow, order] = state.sortDir > 0 ? [" ▲", "ascending"] : [" ▼", "descending"];
      return el("th", { scope: "col", "aria-sort": sorted ? order : "none" }, [el("button", {
        type: "button", "data-column": name, title: "Sort by " + name,
        text: name + (sorted ? arrow : ""),
        onclick: () => {
          state.sortDir = sorted ? -state.sortDir : 1;
          state.sortKey = name;
          drawTable();
        },
      })]);
    }

    function tableRow(row, columns) {
      const trial = String(row.trial_id);
      const classes = ["clickable", isFront(row) && "front", state.selected === trial && "selected"]
        .filter(Boolean);
      return el("tr", {
        className: classes.join(" "), "data-trial": trial, tabindex: 0,
        title: "Show the genotype of trial " + trial, onclick: () => selectTrial(trial),
        onkeydown: (event) => {
          if (event.key !== "Enter" && event.key !== " ") return;
          event.preventDefault();
          selectTrial(trial);
        },
      }, columns.map((name) => el("td", {
        className: isNumber(row[name]) ? "num" : "",
        text: fmt(row[name]) + (name === "trial_id" && state.knee === trial ? " (knee)" : ""),
      })));
    }

    function drawTable() {
      const columns = tableColumns();
      clear($("trials-head")).append(el("tr", {}, columns.map(sortButton)));
      const filter = $("table-filter").value.trim().toLowerCase();
      const rows = state.rows.filter((row) => !filter ||
        columns.some((name) => fmt(row[name]).toLowerCase().includes(filter)));
      clear($("trials-body")).append(...rows.sort(compareRows).map((r) => tableRow(r, columns)));
      $("table-count").textContent = `${rows.length} of ${state.rows.length} trials shown`;
    }

    function selectTrial(trialId) {
      const row = state.rows.find((r) => String(r.trial_id) === trialId);
      if (!row) return;
      state.selected = trialId;
      document.querySelectorAll("#trials-body tr").forEach((tr) =>
        tr.classList.toggle("selected", tr.dataset.trial === trialId));
      Object.assign($("selection").dataset, { trial: trialId, front: String(isFront(row)) });
      $("selection-title").textContent = `Trial ${trialId}` +
        (isFront(row) ? " (on the front)" : "") +
        (row.genotype_hash ? ", genotype " + row.genotype_hash : "");
      $("selection-metrics").textContent = ["L", "F", "seed", ...Object.keys(state.objectives)]
        .filter((key) => state.columns.includes(key))
        .map((key) => `${key}=${fmt(row[key])}`).join(", ");
      const cells = { normal: $("cell-normal"), reduce: $("cell-reduce") };
      Object.values(cells).forEach((div) => Plotly.purge(div));
      const note = $("cells-note");
      note.textContent = row.genotype ? "Drawing the cells..." : "";
      if (!row.genotype) {
        $("genotype").textContent = `This trial has no genotype (status ${row.status}).`;
        return;
      }
      try {
        $("genotype").textContent = compactJson(JSON.parse(row.genotype));
      } catch (e) {
        $("genotype").textContent = String(row.genotype);
      }
      api(`${apiSweep(id)}/genotypes/${encodeURIComponent(row.genotype_hash)}/cells`)
        .then((answer) => {
          if (state.selected !== trialId) return;
          note.textContent = "";
          Object.entries(cells).forEach(([which, div]) => plot(div, answer[which]));
        })
        .catch((e) => { note.textContent = e.message; });
    }

    // After the sweep ends, its last rows may still be on their way into the database:
    // reload until three loads in a row find the same rows, then stop (data-loaded="true").
    const settled = { last: null, same: 0 };

    async function refresh() {
      const sweep = await api(apiSweep(id));
      error.classList.add("hidden");
      renderHeader(sweep);
      const p = sweep.progress;
      const key = [sweep.status, p.done, p.stopped, p.failed].join("/");
      const [over, changed] = [TERMINAL.includes(sweep.status), key !== state.lastKey];
      state.lastKey = key;
      if (!changed && !over) return;
      await loadData();
      if (!over) return;
      const rows = state.rows.map((r) => r.trial_id + ":" + r.status).join(",");
      settled.same = rows === settled.last ? settled.same + 1 : 0;
      settled.last = rows;
    }

    (function poll() {
      refresh().catch((e) => {
        showError(error, e);
        state.lastKey = null;
      }).then(() => {
        // A done sweep has rows: wait longer for them than for a late update.
        const empty = state.sweep && state.sweep.status === "done" && !state.rows.length;
        if (settled.same >= (empty ? 10 : 2)) document.body.setAttribute("data-loaded", "true");
        else window.setTimeout(poll, POLL_MS);
      });
    })();
  }

  document.addEventListener("DOMContentLoaded", sweepPage);
})();
