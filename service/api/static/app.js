/* e2rnas-sweeps web pages: the helpers every page's script uses.
 *
 * The pages are Jinja2 templates (service/api/templates); each loads this file, then its own
 * script (index.js, sweep.js, submit.js, compare.js), which takes these helpers from
 * `window.e2rnas`. They work over the REST API (/api/...), with plotly.js from
 * /static/plotly.min.js; nothing is loaded from another origin. The service builds every
 * figure (the same the offline report embeds) and the scripts only hand them to
 * Plotly.react; they keep what must run in the browser: clicks and selection, live refresh,
 * the trial table, the editor and the token box (here). Text from the API goes in with
 * textContent (the `el` helper), never as HTML.
 */
(function () {
  "use strict";

  const TOKEN_KEY = "e2rnas-api-token";
  const POLL_MS = 2000;
  const PLOT_CONFIG = { displaylogo: false, responsive: true };

  /** A DOM element with attributes and children; strings become text nodes (never HTML). */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => {
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = String(value);
      else if (key === "className") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    node.append(...(children || []).filter((child) => child !== null && child !== undefined));
    return node;
  }

  const $ = (id) => document.getElementById(id);
  const clear = (node) => { node.replaceChildren(); return node; };
  const isNumber = (value) => typeof value === "number" && isFinite(value);
  const apiSweep = (id) => "/api/sweeps/" + encodeURIComponent(id);
  const sweepUrl = (id) => "/sweeps/" + encodeURIComponent(id);
  const statusBadge = (status) =>
    el("span", { className: "status status-" + status, text: status });

  function fmt(value) {
    if (value === null || value === undefined || value === "") return "-";
    if (typeof value !== "number") return String(value);
    if (!isFinite(value)) return "-";
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  }

  /** JSON indented by two, with arrays of scalars (an edge, a concat list) on one line. */
  function compactJson(value) {
    return JSON.stringify(value, null, 2).replace(/\[[^\[\]{}]*\]/g, (array) =>
      array.replace(/\s*\n\s*/g, " ").replace(/\[ /, "[").replace(/ \]$/, "]"));
  }

  function localTime(text) {
    const date = new Date(text);
    if (!text) return "-";
    return isNaN(date.getTime()) ? String(text) : date.toLocaleString();
  }

  /** The token of the box at the top, kept in localStorage (in private mode, in the box). */
  function token() {
    try {
      return window.localStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return $("api-token").value.trim();
    }
  }

  function bindToken() {
    const input = $("api-token");
    input.value = token();
    input.addEventListener("input", () => {
      try {
        window.localStorage.setItem(TOKEN_KEY, input.value.trim());
      } catch (e) { /* private mode: token() reads the box */ }
    });
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(status + ": " + detail);
      Object.assign(this, { status, detail });
    }
  }

  /** fetch() an API path; answers parsed JSON (or text), throws ApiError with the detail. */
  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...options.headers };
    if (options.auth && token()) headers.Authorization = "Bearer " + token();
    const { method = "GET", body } = options;
    const response = await fetch(path, { method, headers, body });
    const isJson = (response.headers.get("content-type") || "").includes("json");
    const data = await (isJson ? response.json() : response.text());
    if (response.ok) return data;
    const detail = data && data.detail !== undefined ? data.detail : data;
    throw new ApiError(response.status,
      (typeof detail === "string" ? detail : JSON.stringify(detail)) || response.statusText);
  }

  function showError(node, error) {
    node.textContent = error && error.message ? error.message : String(error);
    node.classList.remove("hidden");
  }

  /** A stacked bar of trials done / stopped early / running / failed over the total, plus a
   * text line. */
  function progressBar(p) {
    const stopped = p.stopped ? `${p.stopped} stopped early, ` : "";
    const text = `${p.done || 0}/${p.total || 0} done, ${stopped}${p.running || 0} running, ` +
      `${p.pending || 0} pending, ${p.failed || 0} failed; ${p.epochs || 0} epochs`;
    const total = Math.max(p.total || 0, 1);
    const parts = ["done", "stopped", "running", "failed"];
    const segments = parts.filter((key) => p[key] > 0).map((key) =>
      el("span", { className: "seg-" + key, style: `width:${(100 * p[key]) / total}%` }));
    const bar = el("div", { className: "bar", role: "img", "aria-label": text }, segments);
    return el("div", {}, [bar, el("div", { className: "progress-text", text })]);
  }

  /** ``options`` (values, or [value, text] pairs) into a select, ``chosen`` selected. */
  function fillSelect(select, options, chosen) {
    clear(select).append(...options.map((option) => {
      const [value, text] = Array.isArray(option) ? option : [option, option];
      return el("option", { value, text, selected: value === chosen });
    }));
  }

  /** Draw a figure of the API into its div (clicks go to ``onClick``), or hide the div. */
  function plot(div, figure, onClick) {
    div.classList.toggle("hidden", !figure);
    if (!figure) {
      Plotly.purge(div);
      delete div.dataset.clicks;
      return;
    }
    // As in plotly's own HTML, the div is as tall as the figure: `responsive` refits the
    // figure to its div when the window resizes, and the div must not shrink it.
    div.style.height = figure.layout.height ? `${figure.layout.height}px` : "";
    Plotly.react(div, figure.data, figure.layout, PLOT_CONFIG);
    if (onClick && !div.dataset.clicks) {
      div.dataset.clicks = "bound";
      div.on("plotly_click", onClick);
    }
  }

  window.e2rnas = Object.freeze({
    POLL_MS, el, $, clear, isNumber, apiSweep, sweepUrl, statusBadge, fmt, compactJson,
    localTime, api, showError, progressBar, fillSelect, plot,
  });
  document.addEventListener("DOMContentLoaded", bindToken);
})();
