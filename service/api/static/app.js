/* e2rnas-sweeps web pages: sweep list, sweep page, submit page, front comparison.
 *
 * Vanilla JS over the REST API (/api/...), plotly.js from /static/plotly.min.js; nothing is
 * loaded from another origin. Text from the API is inserted with textContent (the `el`
 * helper) or, in plotly hover texts, through `escapeHtml`; never as raw HTML.
 * Each page's <body data-page="..."> picks its init function at the bottom of this file.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "e2rnas-api-token";
  var POLL_MS = 2000;
  var TERMINAL = ["done", "failed", "cancelled"];
  var FRONT_COLOUR = "#d62728";
  var OTHER_COLOUR = "#9aa5b1";
  var KNOWN_OBJECTIVES = {
    test_error: "min", params_m: "min", flops_m: "min", pgd_acc: "max", ood_aupr: "max",
  };
  var PLOT_CONFIG = { displaylogo: false, responsive: true };
  // Columns that are numbers but not worth a projection axis.
  var NOT_AXES = ["trial_id", "sweep_id", "front_rank"];

  // -- helpers -----------------------------------------------------------------------------

  /** A DOM element with attributes and children; strings become text nodes (never HTML). */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = String(value);
      else if (key === "className") node.className = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function $(id) {
    return document.getElementById(id);
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function fmt(value) {
    if (value === null || value === undefined || value === "") return "-";
    if (typeof value === "number") {
      if (!isFinite(value)) return "-";
      if (Number.isInteger(value)) return String(value);
      return String(Number(value.toPrecision(4)));
    }
    return String(value);
  }

  /** JSON indented by two, with arrays of scalars (an edge, a concat list) on one line. */
  function compactJson(value) {
    return JSON.stringify(value, null, 2).replace(/\[[^\[\]{}]*\]/g, function (array) {
      return array.replace(/\s*\n\s*/g, " ").replace(/\[ /, "[").replace(/ \]$/, "]");
    });
  }

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  function getToken() {
    try {
      return window.localStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  function setToken(value) {
    try {
      if (value) window.localStorage.setItem(TOKEN_KEY, value);
      else window.localStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* private mode: the token lives in the input only */ }
  }

  /** Bind every input.api-token to localStorage. */
  function bindToken() {
    document.querySelectorAll("input.api-token").forEach(function (input) {
      input.value = getToken();
      input.addEventListener("input", function () {
        setToken(input.value.trim());
      });
    });
  }

  function ApiError(status, detail) {
    this.status = status;
    this.detail = detail;
    this.message = status + ": " + detail;
  }
  ApiError.prototype = Object.create(Error.prototype);

  /** fetch() an API path; answers parsed JSON (or text), throws ApiError with the detail. */
  function api(path, options) {
    options = options || {};
    var headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    if (options.auth) {
      var token = getToken();
      if (token) headers.Authorization = "Bearer " + token;
    }
    return fetch(path, { method: options.method || "GET", headers: headers, body: options.body })
      .then(function (response) {
        var kind = response.headers.get("content-type") || "";
        var body = kind.indexOf("json") >= 0 ? response.json() : response.text();
        return body.then(function (data) {
          if (!response.ok) {
            var detail = data && data.detail !== undefined ? data.detail : data;
            if (typeof detail !== "string") detail = JSON.stringify(detail);
            throw new ApiError(response.status, detail || response.statusText);
          }
          return data;
        });
      });
  }

  function showError(node, error) {
    node.textContent = error && error.message ? error.message : String(error);
    node.classList.remove("hidden");
  }

  function sweepIdFromPath() {
    var parts = window.location.pathname.split("/").filter(Boolean);
    return decodeURIComponent(parts[parts.length - 1] || "");
  }

  function sweepUrl(id) {
    return "/sweeps/" + encodeURIComponent(id);
  }

  function apiSweep(id) {
    return "/api/sweeps/" + encodeURIComponent(id);
  }

  function statusBadge(status) {
    return el("span", { className: "status status-" + status, text: status });
  }

  /** A stacked bar of trials done / running / failed over the total, plus a text line. */
  function progressBar(progress) {
    var total = Math.max(progress.total || 0, 1);
    var bar = el("div", {
      className: "bar",
      role: "img",
      "aria-label": progressText(progress),
    });
    ["done", "running", "failed"].forEach(function (key) {
      var share = (100 * (progress[key] || 0)) / total;
      if (share > 0) {
        bar.appendChild(el("span", { className: "seg-" + key, style: "width:" + share + "%" }));
      }
    });
    return el("div", {}, [bar, el("div", { className: "progress-text", text: progressText(progress) })]);
  }

  function progressText(p) {
    return (
      (p.done || 0) + "/" + (p.total || 0) + " done, " + (p.running || 0) + " running, " +
      (p.pending || 0) + " pending, " + (p.failed || 0) + " failed; " + (p.epochs || 0) +
      " epochs"
    );
  }

  function localTime(text) {
    if (!text) return "-";
    var date = new Date(text);
    return isNaN(date.getTime()) ? String(text) : date.toLocaleString();
  }

  function axisLabel(name) {
    var direction = KNOWN_OBJECTIVES[name];
    return direction ? name + " (" + direction + ")" : name;
  }

  function fillSelect(select, names, chosen) {
    clear(select);
    names.forEach(function (name) {
      select.appendChild(el("option", { value: name, text: name, selected: name === chosen }));
    });
    if (names.indexOf(chosen) < 0 && names.length) select.value = names[0];
  }

  // -- sweep list (/) ----------------------------------------------------------------------

  function indexPage() {
    var body = $("sweeps-body");
    var count = $("sweeps-count");
    var error = $("list-error");
    function render(answer) {
      error.classList.add("hidden");
      count.textContent = answer.count + (answer.count === 1 ? " sweep" : " sweeps");
      clear(body);
      if (!answer.data.length) {
        body.appendChild(el("tr", {}, [el("td", { colspan: 5, className: "muted" }, [
          "No sweeps yet. ", el("a", { href: "/submit", text: "Submit one" }), ".",
        ])]));
      }
      answer.data.forEach(function (sweep) {
        body.appendChild(el("tr", { "data-sweep": sweep.id }, [
          el("td", {}, [
            el("a", { href: sweepUrl(sweep.id), text: sweep.name }),
            el("div", { className: "muted", text: sweep.id }),
          ]),
          el("td", {}, [statusBadge(sweep.status)]),
          el("td", {}, [progressBar(sweep.progress)]),
          el("td", { text: localTime(sweep.created_at) }),
          el("td", { className: "muted", text: sweep.message || "" }),
        ]));
      });
    }
    function poll() {
      api("/api/sweeps")
        .then(render)
        .catch(function (e) { showError(error, e); })
        .then(function () { window.setTimeout(poll, POLL_MS); });
    }
    poll();
  }

  // -- sweep page (/sweeps/{id}) -----------------------------------------------------------

  function sweepPage() {
    var id = sweepIdFromPath();
    var state = {
      sweep: null, columns: [], rows: [], done: [], ranks: {}, objectives: {}, front: {},
      knee: null, hypervolume: null, selected: null, sortKey: "trial_id", sortDir: 1,
      lastKey: null, bound: {},
    };
    window.e2rnasSweep = state; // for debugging and the browser test
    var error = $("sweep-error");
    document.title = "Sweep " + id + " - e2rnas";
    $("sweep-id").textContent = id;

    var exports = [
      ["genotypes.json", "export/genotypes.json"],
      ["genotypes.py", "export/genotypes.py"],
      ["front.csv", "export/front.csv"],
      ["front.parquet", "export/front.parquet"],
      ["results.csv", "results?format=csv"],
      ["results.parquet", "results?format=parquet"],
    ];
    var downloads = clear($("downloads"));
    exports.forEach(function (pair) {
      downloads.appendChild(el("a", {
        className: "button secondary",
        id: "download-" + pair[0].replace(/\./g, "-"),
        href: apiSweep(id) + "/" + pair[1],
        download: id + "-" + pair[0],
        text: "Download " + pair[0],
      }));
    });

    $("cancel").addEventListener("click", function () {
      if (!window.confirm("Cancel sweep " + id + "? Finished trials stay in the results.")) return;
      api(apiSweep(id) + "/cancel", { method: "POST", auth: true })
        .then(function (sweep) { renderHeader(sweep); })
        .catch(function (e) { showError(error, e); });
    });
    ["proj2-x", "proj2-y"].forEach(function (key) {
      $(key).addEventListener("change", drawProjection2d);
    });
    ["proj3-x", "proj3-y", "proj3-z"].forEach(function (key) {
      $(key).addEventListener("change", drawProjection3d);
    });
    $("table-filter").addEventListener("input", drawTable);

    function renderHeader(sweep) {
      state.sweep = sweep;
      $("sweep-name").textContent = sweep.name;
      clear($("sweep-status")).appendChild(statusBadge(sweep.status));
      document.body.setAttribute("data-status", sweep.status);
      clear($("sweep-progress")).appendChild(progressBar(finalProgress(sweep)));
      $("sweep-created").textContent = localTime(sweep.created_at);
      $("sweep-updated").textContent = localTime(sweep.updated_at);
      $("sweep-job").textContent = sweep.job_id || "-";
      var message = $("sweep-message");
      message.textContent = sweep.message || "";
      message.classList.toggle("hidden", !sweep.message);
      $("cancel-box").classList.toggle("hidden", TERMINAL.indexOf(sweep.status) >= 0);
    }

    /** The sweep's progress; once it ended, counted from the results table when that holds
     * more finished trials than the progress (which may date from before the last ones). */
    function finalProgress(sweep) {
      var progress = sweep.progress;
      if (TERMINAL.indexOf(sweep.status) < 0 || !state.rows.length) return progress;
      var done = state.rows.filter(function (r) { return r.status === "done"; }).length;
      var failed = state.rows.length - done;
      if (done + failed <= (progress.done || 0) + (progress.failed || 0)) return progress;
      return Object.assign({}, progress, {
        done: done, failed: failed, running: 0,
        pending: Math.max(0, (progress.total || 0) - done - failed),
      });
    }

    function loadData() {
      return Promise.all([api(apiSweep(id) + "/results"), api(apiSweep(id) + "/pareto")]).then(
        function (answers) {
          var results = answers[0];
          var pareto = answers[1];
          state.columns = results.columns;
          state.rows = results.data;
          state.objectives = pareto.objectives;
          state.ranks = pareto.ranks;
          state.knee = pareto.knee;
          state.hypervolume = pareto.hypervolume;
          state.front = {};
          pareto.front.forEach(function (row) { state.front[row.trial_id] = true; });
          state.rows.forEach(function (row) {
            var rank = state.ranks[row.trial_id];
            row.front_rank = rank === undefined || rank < 0 ? null : rank;
          });
          state.done = state.rows.filter(function (row) { return row.status === "done"; });
          if (state.sweep) renderHeader(state.sweep);
          drawAll();
        }
      );
    }

    function drawAll() {
      var names = Object.keys(state.objectives);
      var nFront = state.done.filter(function (r) { return state.front[r.trial_id]; }).length;
      $("front-summary").textContent =
        state.rows.length + " trials, " + state.done.length + " done, " + nFront +
        " on the Pareto front of " + names.join(", ") + "; hypervolume " +
        fmt(state.hypervolume) + (state.knee ? "; knee: trial " + state.knee : "") + ".";
      var axes = numericColumns();
      fillSelect($("proj2-x"), axes, $("proj2-x").value || "test_error");
      fillSelect($("proj2-y"), axes, $("proj2-y").value || "params_m");
      fillSelect($("proj3-x"), axes, $("proj3-x").value || "test_error");
      fillSelect($("proj3-y"), axes, $("proj3-y").value || "params_m");
      fillSelect($("proj3-z"), axes, $("proj3-z").value || "pgd_acc");
      drawScatterMatrix();
      drawProjection2d();
      drawProjection3d();
      drawParallel();
      drawHeatmaps();
      drawTable();
    }

    function numericColumns() {
      var names = state.columns.concat(["front_rank"]).filter(function (name) {
        if (NOT_AXES.indexOf(name) >= 0 && name !== "front_rank") return false;
        return state.done.some(function (row) { return isNumber(row[name]); });
      });
      return names;
    }

    function hoverText(row, extra) {
      var parts = ["trial " + row.trial_id];
      ["L", "F", "seed"].forEach(function (key) {
        if (state.columns.indexOf(key) >= 0) parts.push(key + "=" + fmt(row[key]));
      });
      parts.push("genotype_hash=" + fmt(row.genotype_hash));
      (extra || []).forEach(function (key) { parts.push(key + "=" + fmt(row[key])); });
      return parts.map(escapeHtml).join("<br>");
    }

    function split(rows) {
      return {
        other: rows.filter(function (r) { return !state.front[r.trial_id]; }),
        front: rows.filter(function (r) { return state.front[r.trial_id]; }),
      };
    }

    function pluck(rows, key) {
      return rows.map(function (r) { return isNumber(r[key]) ? r[key] : null; });
    }

    function traceStyle(isFront, size) {
      return {
        color: isFront ? FRONT_COLOUR : OTHER_COLOUR,
        symbol: isFront ? "diamond" : "circle",
        size: size,
        line: { width: isFront ? 1 : 0, color: "#5a0d0d" },
      };
    }

    /** Attach the click handler once per plot: a point's customdata is its trial_id. */
    function bindClick(div) {
      if (state.bound[div.id]) return;
      state.bound[div.id] = true;
      div.on("plotly_click", function (event) {
        var point = event && event.points && event.points[0];
        if (!point) return;
        var trial = point.customdata;
        if (trial === undefined && point.data && point.data.customdata) {
          trial = point.data.customdata[point.pointIndex !== undefined ? point.pointIndex : point.pointNumber];
        }
        if (trial !== undefined && trial !== null) selectTrial(String(trial));
      });
    }

    function drawScatterMatrix() {
      var names = Object.keys(state.objectives);
      var parts = split(state.done);
      var traces = [["other trials", parts.other, false], ["front", parts.front, true]].map(
        function (spec) {
          return {
            type: "splom",
            name: spec[0],
            uid: spec[2] ? "splom-front" : "splom-other",
            dimensions: names.map(function (name) {
              return { label: axisLabel(name), values: pluck(spec[1], name) };
            }),
            text: spec[1].map(function (r) { return hoverText(r, names); }),
            customdata: spec[1].map(function (r) { return r.trial_id; }),
            hovertemplate: "%{text}<extra>" + spec[0] + "</extra>",
            marker: traceStyle(spec[2], 8),
            diagonal: { visible: false },
            showupperhalf: false,
            showlegend: true,
          };
        }
      );
      var div = $("splom");
      Plotly.react(div, traces, {
        height: Math.max(480, 160 * names.length),
        hovermode: "closest",
        dragmode: "select",
        margin: { l: 70, r: 20, t: 30, b: 60 },
        legend: { orientation: "h", y: 1.06 },
      }, PLOT_CONFIG);
      bindClick(div);
      div.setAttribute("data-markers", String(state.done.length));
    }

    function drawProjection2d() {
      var x = $("proj2-x").value;
      var y = $("proj2-y").value;
      var parts = split(state.done);
      var traces = [["other trials", parts.other, false], ["front", parts.front, true]].map(
        function (spec) {
          return {
            type: "scatter",
            mode: "markers",
            name: spec[0],
            uid: spec[2] ? "proj2-front" : "proj2-other",
            x: pluck(spec[1], x),
            y: pluck(spec[1], y),
            text: spec[1].map(function (r) { return hoverText(r, [x, y]); }),
            customdata: spec[1].map(function (r) { return r.trial_id; }),
            hovertemplate: "%{text}<extra>" + spec[0] + "</extra>",
            marker: traceStyle(spec[2], 11),
          };
        }
      );
      var div = $("projection2d");
      Plotly.react(div, traces, {
        height: 460,
        hovermode: "closest",
        xaxis: { title: { text: axisLabel(x) } },
        yaxis: { title: { text: axisLabel(y) } },
        margin: { l: 70, r: 20, t: 30, b: 60 },
      }, PLOT_CONFIG);
      bindClick(div);
    }

    function drawProjection3d() {
      var x = $("proj3-x").value;
      var y = $("proj3-y").value;
      var z = $("proj3-z").value;
      var parts = split(state.done);
      var traces = [["other trials", parts.other, false], ["front", parts.front, true]].map(
        function (spec) {
          return {
            type: "scatter3d",
            mode: "markers",
            name: spec[0],
            x: pluck(spec[1], x),
            y: pluck(spec[1], y),
            z: pluck(spec[1], z),
            text: spec[1].map(function (r) { return hoverText(r, [x, y, z]); }),
            customdata: spec[1].map(function (r) { return r.trial_id; }),
            hovertemplate: "%{text}<extra>" + spec[0] + "</extra>",
            marker: { color: spec[2] ? FRONT_COLOUR : OTHER_COLOUR, symbol: spec[2] ? "diamond" : "circle", size: 5 },
          };
        }
      );
      var div = $("projection3d");
      Plotly.react(div, traces, {
        height: 560,
        scene: {
          xaxis: { title: { text: axisLabel(x) } },
          yaxis: { title: { text: axisLabel(y) } },
          zaxis: { title: { text: axisLabel(z) } },
        },
        margin: { l: 0, r: 0, t: 20, b: 0 },
      }, PLOT_CONFIG);
      bindClick(div);
    }

    function drawParallel() {
      var names = Object.keys(state.objectives);
      var colour = state.done.map(function (r) { return r.front_rank === null ? -1 : r.front_rank; });
      var cmax = Math.max(1, Math.max.apply(null, colour.concat([0])));
      var frontAt = 1 / (cmax + 1);
      Plotly.react($("parallel"), [{
        type: "parcoords",
        dimensions: names.map(function (name) {
          return { label: axisLabel(name), values: pluck(state.done, name) };
        }),
        line: {
          color: colour,
          colorscale: [
            [0, "#d0d4d9"], [frontAt / 2, "#d0d4d9"], [frontAt / 2, FRONT_COLOUR],
            [frontAt, FRONT_COLOUR], [1, "#1f77b4"],
          ],
          cmin: -1,
          cmax: cmax,
          showscale: true,
          colorbar: { title: { text: "front rank" } },
        },
      }], { height: 420, margin: { l: 70, r: 70, t: 60, b: 30 } }, PLOT_CONFIG);
    }

    function drawHeatmaps() {
      var box = $("heatmaps");
      var note = $("heatmaps-note");
      var has = state.columns.indexOf("L") >= 0 && state.columns.indexOf("F") >= 0;
      var rows = state.done.filter(function (r) { return isNumber(r.L) && isNumber(r.F); });
      if (!has || !rows.length) {
        note.textContent = has
          ? "No finished trial with both L and F yet."
          : "Heatmaps skipped: the results have no L or F column.";
        note.classList.remove("hidden");
        box.classList.add("hidden");
        return;
      }
      note.classList.add("hidden");
      box.classList.remove("hidden");
      var Ls = unique(rows.map(function (r) { return r.L; }));
      var Fs = unique(rows.map(function (r) { return r.F; }));
      [["params_m", "mean", "heat-params"], ["flops_m", "mean", "heat-flops"],
        ["front_rank", "min", "heat-rank"]].forEach(function (spec) {
        var value = spec[0];
        var aggregate = spec[1];
        var z = [];
        var counts = [];
        Ls.forEach(function (L) {
          var zRow = [];
          var cRow = [];
          Fs.forEach(function (F) {
            var cell = rows.filter(function (r) { return r.L === L && r.F === F; });
            var values = cell.map(function (r) { return r[value]; }).filter(isNumber);
            var agg = null;
            if (values.length) {
              if (aggregate === "min") agg = Math.min.apply(null, values);
              else agg = values.reduce(function (a, b) { return a + b; }, 0) / values.length;
            }
            zRow.push(agg);
            cRow.push(cell.length);
          });
          z.push(zRow);
          counts.push(cRow);
        });
        Plotly.react($(spec[2]), [{
          type: "heatmap",
          x: Fs.map(fmt),
          y: Ls.map(fmt),
          z: z,
          customdata: counts,
          colorscale: value === "front_rank" ? "Reds" : "Viridis",
          reversescale: value === "front_rank",
          texttemplate: "%{z:.3g}",
          hovertemplate: "L=%{y}<br>F=%{x}<br>" + aggregate + " " + value +
            "=%{z}<br>trials=%{customdata}<extra></extra>",
          colorbar: { title: { text: value } },
        }], {
          title: { text: value + " (" + aggregate + " over seeds)" },
          height: 340,
          xaxis: { title: { text: "F (M FLOPs)" }, type: "category" },
          yaxis: { title: { text: "L (M params)" }, type: "category" },
          margin: { l: 70, r: 20, t: 50, b: 60 },
        }, PLOT_CONFIG);
      });
    }

    function unique(values) {
      return values.filter(function (v, i) { return values.indexOf(v) === i; })
        .sort(function (a, b) { return a - b; });
    }

    function tableColumns() {
      var wanted = ["trial_id", "status", "L", "F", "seed"]
        .concat(Object.keys(state.objectives))
        .concat(["front_rank", "genotype_hash", "search_seconds", "eval_seconds"]);
      return wanted.filter(function (name, i) {
        return wanted.indexOf(name) === i &&
          (state.columns.indexOf(name) >= 0 || name === "front_rank");
      });
    }

    function drawTable() {
      var columns = tableColumns();
      var head = clear($("trials-head"));
      var headRow = el("tr");
      columns.forEach(function (name) {
        var sorted = state.sortKey === name;
        headRow.appendChild(el("th", {
          scope: "col",
          "aria-sort": sorted ? (state.sortDir > 0 ? "ascending" : "descending") : "none",
        }, [el("button", {
          type: "button",
          "data-column": name,
          title: "Sort by " + name,
          text: name + (sorted ? (state.sortDir > 0 ? " ▲" : " ▼") : ""),
          onclick: function () {
            state.sortDir = state.sortKey === name ? -state.sortDir : 1;
            state.sortKey = name;
            drawTable();
          },
        })]));
      });
      head.appendChild(headRow);
      var filter = $("table-filter").value.trim().toLowerCase();
      var rows = state.rows.filter(function (row) {
        if (!filter) return true;
        return columns.some(function (name) {
          return fmt(row[name]).toLowerCase().indexOf(filter) >= 0;
        });
      });
      var key = state.sortKey;
      rows.sort(function (a, b) {
        var x = a[key];
        var y = b[key];
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        if (isNumber(x) && isNumber(y)) return state.sortDir * (x - y);
        return state.sortDir * String(x).localeCompare(String(y), undefined, { numeric: true });
      });
      var body = clear($("trials-body"));
      rows.forEach(function (row) {
        var classes = ["clickable"];
        if (state.front[row.trial_id]) classes.push("front");
        if (state.selected === String(row.trial_id)) classes.push("selected");
        var tr = el("tr", {
          className: classes.join(" "),
          "data-trial": row.trial_id,
          tabindex: 0,
          title: "Show the genotype of trial " + row.trial_id,
          onclick: function () { selectTrial(String(row.trial_id)); },
          onkeydown: function (event) {
            if (event.key === "Enter" || event.key === " ") {
              event.preventDefault();
              selectTrial(String(row.trial_id));
            }
          },
        }, columns.map(function (name) {
          var text = fmt(row[name]);
          if (name === "trial_id" && state.knee === row.trial_id) text += " (knee)";
          return el("td", { className: isNumber(row[name]) ? "num" : "", text: text });
        }));
        body.appendChild(tr);
      });
      $("table-count").textContent = rows.length + " of " + state.rows.length + " trials shown";
    }

    function selectTrial(trialId) {
      var row = state.rows.filter(function (r) { return String(r.trial_id) === trialId; })[0];
      if (!row) return;
      state.selected = trialId;
      document.querySelectorAll("#trials-body tr").forEach(function (tr) {
        tr.classList.toggle("selected", tr.getAttribute("data-trial") === trialId);
      });
      var box = $("selection");
      box.setAttribute("data-trial", trialId);
      box.setAttribute("data-front", state.front[trialId] ? "true" : "false");
      $("selection-title").textContent =
        "Trial " + trialId + (state.front[trialId] ? " (on the front)" : "") +
        (row.genotype_hash ? ", genotype " + row.genotype_hash : "");
      var details = [];
      ["L", "F", "seed"].concat(Object.keys(state.objectives)).forEach(function (key) {
        if (state.columns.indexOf(key) >= 0) details.push(key + "=" + fmt(row[key]));
      });
      $("selection-metrics").textContent = details.join(", ");
      var genotype = $("genotype");
      var cellsNote = $("cells-note");
      if (!row.genotype) {
        genotype.textContent = "This trial has no genotype (status " + row.status + ").";
        cellsNote.textContent = "";
        Plotly.purge($("cell-normal"));
        Plotly.purge($("cell-reduce"));
        return;
      }
      try {
        genotype.textContent = compactJson(JSON.parse(row.genotype));
      } catch (e) {
        genotype.textContent = String(row.genotype);
      }
      cellsNote.textContent = "Drawing the cells...";
      Plotly.purge($("cell-normal"));
      Plotly.purge($("cell-reduce"));
      api(apiSweep(id) + "/genotypes/" + encodeURIComponent(row.genotype_hash) + "/cells")
        .then(function (cells) {
          if (state.selected !== trialId) return;
          cellsNote.textContent = "";
          ["normal", "reduce"].forEach(function (which) {
            var figure = cells[which];
            Plotly.react($("cell-" + which), figure.data, figure.layout, PLOT_CONFIG);
          });
        })
        .catch(function (e) { cellsNote.textContent = e.message; });
    }

    // After the sweep ends, its last rows may still be on their way into the database:
    // reload until three loads in a row find the same rows, then stop (data-loaded="true").
    var settled = { last: null, same: 0 };

    function rowsKey() {
      return state.rows.map(function (r) { return r.trial_id + ":" + r.status; }).join(",");
    }

    function poll() {
      api(apiSweep(id))
        .then(function (sweep) {
          error.classList.add("hidden");
          renderHeader(sweep);
          var p = sweep.progress;
          var key = [sweep.status, p.done, p.failed].join("/");
          var over = TERMINAL.indexOf(sweep.status) >= 0;
          var changed = key !== state.lastKey;
          state.lastKey = key;
          if (!changed && !over) return null;
          return loadData().then(function () {
            if (!over) return;
            var rows = rowsKey();
            settled.same = rows === settled.last ? settled.same + 1 : 0;
            settled.last = rows;
          });
        })
        .catch(function (e) {
          showError(error, e);
          state.lastKey = null;
        })
        .then(function () {
          // A done sweep has rows: wait longer for them than for a late update.
          var empty = state.sweep && state.sweep.status === "done" && !state.rows.length;
          if (settled.same >= (empty ? 10 : 2)) document.body.setAttribute("data-loaded", "true");
          else window.setTimeout(poll, POLL_MS);
        });
    }
    poll();
  }

  // -- submit page (/submit) ---------------------------------------------------------------

  var MINIMAL_EXAMPLE = [
    "# A sweep file: see sweeps/*.yaml of the repository for commented examples.",
    "name: my-sweep",
    "dataset: digits",
    "ood_dataset: digits-ood",
    "search:",
    "  preset: cpu-tiny",
    "evaluation:",
    "  mode: proxy",
    "  preset: cpu-tiny",
    "grid:",
    "  L: [0.02, 0.15]  # M parameters",
    "  F: [0.6]  # M multiply-adds",
    "  seed: [0]",
    "strategy:",
    "  kind: grid",
    "resources:",
    "  gpu: 0",
    "  cpu: 1",
    "max_trials: 2",
    "",
  ].join("\n");

  /** The editor line an error message points at: "line N" in it, or the key it names. */
  function errorLine(detail, text) {
    var match = /line (\d+)/.exec(detail);
    if (match) return Number(match[1]);
    var path = /^(?:body: )?([A-Za-z0-9_.\[\]]+):/.exec(detail);
    if (!path) return null;
    var keys = path[1].split(".").filter(function (k) { return !/^\[?\d+\]?$/.test(k); });
    var lines = text.split("\n");
    // Follow the path down the indentation: each key must sit under the previous one.
    var from = 0;
    var found = null;
    var indent = -1;
    for (var k = 0; k < keys.length; k++) {
      var pattern = new RegExp("^(\\s*)(?:- )?" + keys[k].replace(/[^A-Za-z0-9_]/g, "") + "\\s*:");
      var flow = new RegExp("[{,]\\s*" + keys[k].replace(/[^A-Za-z0-9_]/g, "") + "\\s*:");
      var hit = null;
      for (var i = from; i < lines.length; i++) {
        var m = pattern.exec(lines[i]);
        if (m && m[1].length > indent) { hit = i; indent = m[1].length; break; }
        if (found !== null && flow.test(lines[i])) { hit = i; break; }
        if (found !== null && i > found && /^\S/.test(lines[i])) break;
      }
      if (hit === null) break;
      found = hit;
      from = hit;
    }
    return found === null ? null : found + 1;
  }

  function submitPage() {
    var editor = $("yaml");
    var gutter = $("gutter");
    var problem = $("validation");
    var okBox = $("validation-ok");
    var submitError = $("submit-error");
    var submit = $("submit");
    var timer = null;
    var sequence = 0;
    var badLine = null;

    function drawGutter() {
      var count = editor.value.split("\n").length;
      clear(gutter);
      for (var i = 1; i <= count; i++) {
        gutter.appendChild(i === badLine ? el("span", { className: "bad", text: String(i) }) : document.createTextNode(String(i)));
        gutter.appendChild(document.createTextNode("\n"));
      }
      gutter.scrollTop = editor.scrollTop;
    }

    function validate() {
      var mine = ++sequence;
      var text = editor.value;
      return api("/api/sweeps/validate", {
        method: "POST", headers: { "Content-Type": "application/yaml" }, body: text,
      }).then(function (answer) {
        if (mine !== sequence) return;
        badLine = null;
        problem.classList.add("hidden");
        editor.removeAttribute("aria-invalid");
        okBox.textContent = "Valid sweep: it would run as '" + answer.id + "'.";
        okBox.classList.remove("hidden");
        document.body.setAttribute("data-valid", "true");
        drawGutter();
      }).catch(function (e) {
        if (mine !== sequence) return;
        var detail = e.detail !== undefined ? e.detail : e.message;
        badLine = errorLine(String(detail), text);
        clear(problem);
        problem.appendChild(el("strong", { text: badLine ? "Line " + badLine + ": " : "Error: " }));
        problem.appendChild(document.createTextNode(String(detail)));
        problem.classList.remove("hidden");
        editor.setAttribute("aria-invalid", "true");
        okBox.classList.add("hidden");
        document.body.setAttribute("data-valid", "false");
        drawGutter();
      });
    }

    function schedule() {
      drawGutter();
      document.body.removeAttribute("data-valid");
      window.clearTimeout(timer);
      timer = window.setTimeout(validate, 400);
    }

    editor.addEventListener("input", schedule);
    editor.addEventListener("scroll", function () { gutter.scrollTop = editor.scrollTop; });
    editor.addEventListener("keydown", function (event) {
      if (event.key === "Tab" && !event.shiftKey && !event.ctrlKey && !event.altKey) {
        // Two spaces, as YAML wants; Shift+Tab / Esc-then-Tab still leave the editor.
        event.preventDefault();
        var start = editor.selectionStart;
        editor.setRangeText("  ", start, editor.selectionEnd, "end");
        schedule();
      }
    });

    function load(text) {
      editor.value = text;
      schedule();
    }

    $("load-example").addEventListener("click", function () {
      var name = $("example").value;
      api("/api/examples/" + encodeURIComponent(name), { headers: { Accept: "application/yaml" } })
        .then(load)
        .catch(function (e) { showError(submitError, e); });
    });
    $("load-minimal").addEventListener("click", function () { load(MINIMAL_EXAMPLE); });

    api("/api/examples").then(function (answer) {
      var select = $("example");
      fillSelect(select, answer.data, answer.data.indexOf("quickstart") >= 0 ? "quickstart" : answer.data[0]);
      $("examples").classList.remove("hidden");
    }).catch(function () { /* no examples route: only the minimal example */ });

    $("submit-form").addEventListener("submit", function (event) {
      event.preventDefault();
      submitError.classList.add("hidden");
      submit.disabled = true;
      api("/api/sweeps", {
        method: "POST",
        auth: true,
        headers: { "Content-Type": "application/yaml" },
        body: editor.value,
      }).then(function (answer) {
        window.location.assign(sweepUrl(answer.id));
      }).catch(function (e) {
        var hint = e.status === 401 || e.status === 403
          ? " (enter the service's API token in the token box)" : "";
        showError(submitError, e.message + hint);
        submit.disabled = false;
      });
    });

    load(MINIMAL_EXAMPLE);
  }

  // -- compare page (/compare?a=ID&b=ID) ---------------------------------------------------

  function comparePage() {
    var params = new URLSearchParams(window.location.search);
    var selA = $("sweep-a");
    var selB = $("sweep-b");
    var selX = $("axis-x");
    var selY = $("axis-y");
    var error = $("compare-error");
    var names = Object.keys(KNOWN_OBJECTIVES);
    fillSelect(selX, names, params.get("x") || "test_error");
    fillSelect(selY, names, params.get("y") || "params_m");

    api("/api/sweeps").then(function (answer) {
      [selA, selB].forEach(function (select, i) {
        clear(select);
        answer.data.forEach(function (sweep) {
          select.appendChild(el("option", {
            value: sweep.id, text: sweep.name + " (" + sweep.id + ", " + sweep.status + ")",
          }));
        });
        var wanted = params.get(i === 0 ? "a" : "b");
        if (wanted) select.value = wanted;
        else if (answer.data.length > i) select.value = answer.data[i].id;
      });
      if (answer.data.length < 2) {
        showError(error, "Comparing needs two sweeps; the service has " + answer.count + ".");
      }
      draw();
    }).catch(function (e) { showError(error, e); });

    [selA, selB, selX, selY].forEach(function (select) { select.addEventListener("change", draw); });

    function draw() {
      var a = selA.value;
      var b = selB.value;
      var x = selX.value;
      var y = selY.value;
      if (!a || !b) return;
      if (x === y) {
        showError(error, "Choose two different objectives for x and y.");
        return;
      }
      error.classList.add("hidden");
      var query = new URLSearchParams({ a: a, b: b, x: x, y: y });
      window.history.replaceState(null, "", "/compare?" + query.toString());
      var objectives = encodeURIComponent(x + "," + y);
      Promise.all([a, b].map(function (id) {
        return Promise.all([
          api(apiSweep(id) + "/pareto?objectives=" + objectives),
          api(apiSweep(id) + "/results"),
        ]);
      })).then(function (answers) {
        var colours = ["#1f77b4", "#ff7f0e"];
        var traces = [];
        var table = clear($("compare-body"));
        var fronts = [];
        answers.forEach(function (pair, i) {
          var pareto = pair[0];
          var results = pair[1];
          var label = (i === 0 ? "A: " : "B: ") + (i === 0 ? a : b);
          var done = results.data.filter(function (r) {
            return r.status === "done" && isNumber(r[x]) && isNumber(r[y]);
          });
          traces.push({
            type: "scatter", mode: "markers", name: label + " (all trials)",
            x: done.map(function (r) { return r[x]; }),
            y: done.map(function (r) { return r[y]; }),
            text: done.map(function (r) { return escapeHtml("trial " + r.trial_id); }),
            marker: { color: colours[i], opacity: 0.25, size: 7 },
            hovertemplate: "%{text}<br>" + x + "=%{x}<br>" + y + "=%{y}<extra></extra>",
          });
          var front = pareto.front.slice().sort(function (p, q) { return p[x] - q[x]; });
          traces.push({
            type: "scatter", mode: "lines+markers", name: label + " front",
            x: front.map(function (r) { return r[x]; }),
            y: front.map(function (r) { return r[y]; }),
            text: front.map(function (r) { return escapeHtml("trial " + r.trial_id + " genotype " + fmt(r.genotype_hash)); }),
            line: { color: colours[i], shape: "hv", width: 2 },
            marker: { color: colours[i], size: 10, symbol: i === 0 ? "diamond" : "square" },
            hovertemplate: "%{text}<br>" + x + "=%{x}<br>" + y + "=%{y}<extra>" + escapeHtml(label) + "</extra>",
          });
          fronts.push({ pareto: pareto, front: front });
          table.appendChild(el("tr", {}, [
            el("th", { scope: "row" }, [el("a", { href: sweepUrl(i === 0 ? a : b), text: label })]),
            el("td", { className: "num", text: String(done.length) }),
            el("td", { className: "num", text: String(front.length) }),
            el("td", { className: "num", text: fmt(pareto.hypervolume) }),
            el("td", { text: pareto.reference ? pareto.reference.map(fmt).join(", ") : "-" }),
            el("td", { className: "num shared-hv" }),
          ]));
        });
        var shared = sharedHypervolumes(fronts, [x, y]);
        table.querySelectorAll("td.shared-hv").forEach(function (cell, i) {
          cell.textContent = shared ? fmt(shared.values[i]) : "-";
        });
        $("shared-reference").textContent = shared
          ? "Shared reference point: " + shared.reference.map(fmt).join(", ") + "."
          : "";
        Plotly.react($("compare-plot"), traces, {
          height: 520,
          hovermode: "closest",
          xaxis: { title: { text: axisLabel(x) } },
          yaxis: { title: { text: axisLabel(y) } },
          margin: { l: 70, r: 20, t: 30, b: 60 },
        }, PLOT_CONFIG);
      }).catch(function (e) { showError(error, e); });
    }
  }

  /** Both fronts' 2-D hypervolumes against one reference point, the worse of their two
   * references in each objective, so the numbers compare; null without two references. */
  function sharedHypervolumes(fronts, names) {
    if (fronts.some(function (f) { return !f.pareto.reference; })) return null;
    var sign = names.map(function (name) {
      var direction = fronts[0].pareto.objectives[name] || KNOWN_OBJECTIVES[name] || "min";
      return direction === "max" ? -1 : 1;
    });
    var reference = names.map(function (name, k) {
      var values = fronts.map(function (f) { return sign[k] * f.pareto.reference[k]; });
      return sign[k] * Math.max.apply(null, values);
    });
    var ref = reference.map(function (v, k) { return sign[k] * v; });
    var values = fronts.map(function (f) {
      var points = f.front
        .map(function (r) { return [sign[0] * r[names[0]], sign[1] * r[names[1]]]; })
        .filter(function (p) { return isNumber(p[0]) && isNumber(p[1]) && p[0] < ref[0] && p[1] < ref[1]; })
        .sort(function (p, q) { return p[0] - q[0] || p[1] - q[1]; });
      var area = 0;
      var level = ref[1];
      points.forEach(function (p) {
        if (p[1] < level) {
          area += (ref[0] - p[0]) * (level - p[1]);
          level = p[1];
        }
      });
      return area;
    });
    return { reference: reference, values: values };
  }

  // -- start -------------------------------------------------------------------------------

  var PAGES = { index: indexPage, sweep: sweepPage, submit: submitPage, compare: comparePage };

  document.addEventListener("DOMContentLoaded", function () {
    bindToken();
    var init = PAGES[document.body.getAttribute("data-page")];
    if (init) init();
  });

  window.e2rnas = { el: el, api: api, fmt: fmt, escapeHtml: escapeHtml, errorLine: errorLine };
})();
