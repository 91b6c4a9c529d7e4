/* The submit page (/submit): the YAML editor, checked by the service as you type. */
(function () {
  "use strict";

  const { el, $, clear, sweepUrl, api, showError, fillSelect } = window.e2rnas;

  /** The editor line an error message points at: "line N" in it, or the key it names. */
  function errorLine(detail, text) {
    const match = /line (\d+)/.exec(detail);
    if (match) return Number(match[1]);
    const path = /^(?:body: )?([A-Za-z0-9_.\[\]]+):/.exec(detail);
    if (!path) return null;
    const keys = path[1].split(".").filter((k) => !/^\[?\d+\]?$/.test(k))
      .map((k) => k.replace(/[^A-Za-z0-9_]/g, ""));
    const lines = text.split("\n");
    // Follow the path down the indentation: each key must sit under the previous one.
    let [from, found, indent] = [0, null, -1];
    for (const key of keys) {
      const pattern = new RegExp("^(\\s*)(?:- )?" + key + "\\s*:");
      const flow = new RegExp("[{,]\\s*" + key + "\\s*:");
      let hit = null;
      for (let i = from; i < lines.length && hit === null; i++) {
        const m = pattern.exec(lines[i]);
        if (m && m[1].length > indent) [hit, indent] = [i, m[1].length];
        else if (found !== null && flow.test(lines[i])) hit = i;
        else if (found !== null && i > found && /^\S/.test(lines[i])) break;
      }
      if (hit === null) break;
      [found, from] = [hit, hit];
    }
    return found === null ? null : found + 1;
  }

  function submitPage() {
    const [editor, gutter, problem, okBox] =
      ["yaml", "gutter", "validation", "validation-ok"].map($);
    const submitError = $("submit-error");
    let [timer, sequence, badLine] = [null, 0, null];

    function drawGutter() {
      const numbers = editor.value.split("\n").map((_, k) => k + 1);
      clear(gutter).append(...numbers.flatMap((n) => [
        n === badLine ? el("span", { className: "bad", text: String(n) }) : String(n), "\n",
      ]));
      gutter.scrollTop = editor.scrollTop;
    }

    function validated(ok, detail, text) {
      badLine = ok ? null : errorLine(String(detail), text);
      const where = el("strong", { text: badLine ? `Line ${badLine}: ` : "Error: " });
      clear(problem).append(...(ok ? [] : [where, String(detail)]));
      problem.classList.toggle("hidden", ok);
      okBox.textContent = ok ? `Valid sweep: it would run as ${detail}.` : "";
      okBox.classList.toggle("hidden", !ok);
      if (ok) editor.removeAttribute("aria-invalid");
      else editor.setAttribute("aria-invalid", "true");
      document.body.setAttribute("data-valid", String(ok));
      drawGutter();
    }

    function validate() {
      const [mine, text] = [++sequence, editor.value];
      const headers = { "Content-Type": "application/yaml" };
      api("/api/sweeps/validate", { method: "POST", headers, body: text })
        .then((answer) => mine === sequence &&
          validated(true, `'${answer.name}' (${answer.trials} trials)`, text))
        .catch((e) => mine === sequence && validated(false, e.detail ?? e.message, text));
    }

    function schedule() {
      drawGutter();
      document.body.removeAttribute("data-valid");
      window.clearTimeout(timer);
      timer = window.setTimeout(validate, 400);
    }

    function load(text) {
      editor.value = text;
      schedule();
    }

    editor.addEventListener("input", schedule);
    editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });
    editor.addEventListener("keydown", (event) => {
      if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.altKey) return;
      // Two spaces, as YAML wants; Shift+Tab / Esc-then-Tab still leave the editor.
      event.preventDefault();
      editor.setRangeText("  ", editor.selectionStart, editor.selectionEnd, "end");
      schedule();
    });
    $("load-example").addEventListener("click", () => {
      const headers = { Accept: "application/yaml" };
      api("/api/examples/" + encodeURIComponent($("example").value), { headers })
        .then(load).catch((e) => showError(submitError, e));
    });
    // The page's textarea holds the minimal example: its default value.
    $("load-minimal").addEventListener("click", () => load(editor.defaultValue));
    api("/api/examples").then(({ data }) => {
      fillSelect($("example"), data, data.includes("quickstart") ? "quickstart" : data[0]);
      $("examples").classList.remove("hidden");
    }).catch(() => { /* no examples route: only the minimal example */ });

    $("submit-form").addEventListener("submit", (event) => {
      event.preventDefault();
      submitError.classList.add("hidden");
      $("submit").disabled = true;
      const headers = { "Content-Type": "application/yaml" };
      api("/api/sweeps", { method: "POST", auth: true, headers, body: editor.value })
        .then((answer) => window.location.assign(sweepUrl(answer.id)))
        .catch((e) => {
          const denied = [401, 403].includes(e.status);
          showError(submitError, e.message +
            (denied ? " (enter the service's API token in the token box)" : ""));
          $("submit").disabled = false;
        });
    });
    load(editor.defaultValue);
  }

  document.addEventListener("DOMContentLoaded", submitPage);
})();
