"""The web pages: served offline by the app, and driven in headless Chromium.

Fast tests (TestClient) check that every page and its static files are served and that no page
refers to another origin (plotly.js comes from the installed package, so the pages work
offline), that the templates escape what they insert, and that the scripts build no figure:
the service does, and they only hand its figures to ``Plotly.react``. The browser tests start
the real service with uvicorn in a subprocess on a free loopback port, with a temporary
storage directory, an API token and the default SQLite database, and drive Debian's
``/usr/bin/chromium`` with Playwright (no browser download):

- ``test_pages_in_browser`` (integration) uses sweeps written straight into the database, so it
  needs neither Ray nor a search: sorting, filtering, selection, the compare page and the
  submit page's inline errors;
- ``test_quickstart_through_the_browser`` (integration, slow) submits a shrunken quickstart
  sweep through the submit page and follows it to the end on the sweep page.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest
from fastapi.testclient import TestClient
from plotly.basedatatypes import BaseTraceType

from search_core.genotypes import BUNDLED
from service.api.main import create_app
from service.api.settings import load_settings
from service.objectives import FRONT_METRICS
from service.orchestration.rundir import SWEEP_FILE
from service.orchestration.spec import parse_sweep
from service.results.store import ResultStore
from service.results.table import FLOAT_COLUMNS, RESULT_COLUMNS, package_versions, results_frame

REPO = Path(__file__).resolve().parents[3]
STATIC = REPO / "service" / "api" / "static"
TEMPLATES = REPO / "service" / "api" / "templates"
SCRIPTS = sorted(STATIC.glob("*.js"))
PAGES = {"/": "index", "/submit": "submit", "/sweeps/some-id": "sweep", "/compare": "compare"}
CHROMIUM = Path("/usr/bin/chromium")
# ENVIRONMENT.md's headless flags; Playwright gives each launch a fresh --user-data-dir itself
# (it refuses one in args).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "web-test-token"
ARTIFACTS = REPO / "runs" / "ci-artifacts"
# A URL to another origin: http(s):// or protocol-relative //host.
EXTERNAL_URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}""")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(storage=tmp_path / "storage", api_token=TOKEN)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


# -- fast: pages and static files -----------------------------------------------------------


@pytest.mark.parametrize(("path", "page"), PAGES.items())
def test_every_page_is_served_and_offline(client: TestClient, path: str, page: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    text = answer.text
    assert f'data-page="{page}"' in text
    assert '<script src="/static/app.js"></script>' in text
    assert '<html lang="en">' in text and "<h1" in text
    assert EXTERNAL_URL.search(text) is None, EXTERNAL_URL.search(text)
    # Every script and stylesheet the page loads is one of the app's own and is served.
    for ref in re.findall(r"""(?:src|href)="([^"]+)\"""", text):
        assert ref.startswith("/") or ref == "data:,", ref
        if ref.startswith("/static/"):
            assert client.get(ref).status_code == 200, ref
    if page in ("sweep", "compare"):
        assert '<script src="/static/plotly.min.js"></script>' in text


def test_static_files_are_served_without_other_origins(client: TestClient) -> None:
    # app.js, the helpers, and one script per page.
    assert [p.stem for p in SCRIPTS] == ["app", *sorted(PAGES.values())]
    files = [*((p.name, "javascript") for p in SCRIPTS), ("app.css", "text/css")]
    for name, kind in files:
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
        assert EXTERNAL_URL.search(answer.text) is None, (name, EXTERNAL_URL.search(answer.text))
    plotly = client.get("/static/plotly.min.js")
    assert plotly.status_code == 200
    assert "javascript" in plotly.headers["content-type"]
    assert "plotly.js v" in plotly.text[:500] and len(plotly.content) > 1_000_000


def test_pages_insert_api_text_as_text_only() -> None:
    """No innerHTML/outerHTML/insertAdjacentHTML/document.write: API text goes in as text."""
    for script in SCRIPTS:
        source = script.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in source, (script.name, sink)


TRACE_TYPES = {
    name.lower()
    for name in go.__all__
    if isinstance(getattr(go, name), type) and issubclass(getattr(go, name), BaseTraceType)
}
# Words of plotly's figure schema that only figure construction writes, the old copy of the
# metric directions, and a call of a function computing hypervolumes.
FIGURE_WORDS = re.compile(
    r"\b(?:hovertemplate|texttemplate|colorscale|colorbar|marker|dimensions|[xyz]axis|scene|"
    r"legend|KNOWN_OBJECTIVES)\b|[Hh]ypervolumes?\s*\("
)


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_scripts_build_no_figure(script: Path) -> None:
    """The service builds every figure: a script holds no trace or layout literal, no metric
    direction, no computation of hypervolumes, and calls plotly.js only to hand a figure of
    the API to ``Plotly.react`` or to clear a div with ``Plotly.purge``."""
    source = script.read_text(encoding="utf-8")
    assert len(source.splitlines()) < 400
    types = set(re.findall(r"""\btype\s*:\s*["'](\w+)["']""", source))
    assert not types & TRACE_TYPES, types & TRACE_TYPES
    assert not FIGURE_WORDS.findall(source), FIGURE_WORDS.findall(source)
    assert not re.search(r"\blayout\s*[:=]", source)
    assert not re.search(r"""["'](min|max)["']""", source)
    assert set(re.findall(r"Plotly\.(\w+)", source)) <= {"react", "purge"}
    for call in re.findall(r"Plotly\.react\(([^)]*)\)", source):
        assert re.fullmatch(r"\w+, (\w+)\.data, \1\.layout, PLOT_CONFIG", call), call


def test_templates_escape_what_they_insert(client: TestClient) -> None:
    answer = client.get("/sweeps/%3Cscript%3Ex%22")
    assert answer.status_code == 200
    assert "<script>x" not in answer.text
    assert '<code id="sweep-id" class="muted">&lt;script&gt;x&#34;</code>' in answer.text
    assert "<title>Sweep &lt;script&gt;x&#34; - e2rnas</title>" in answer.text
    assert 'href="/api/sweeps/%3Cscript%3Ex%22/export/genotypes.json"' in answer.text


def test_templates_and_scripts_are_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["service"]
    shipped = [*TEMPLATES.iterdir(), *STATIC.iterdir()]
    names = [p.relative_to(REPO / "service").as_posix() for p in shipped]
    pages = {f"{page}.html" for page in PAGES.values()}
    assert {p.name for p in TEMPLATES.iterdir()} == {*pages, "layout.html"}
    assert all(any(fnmatch(n, pattern) for pattern in patterns) for n in names), names


def test_examples_are_listed_and_served(client: TestClient) -> None:
    listed = client.get("/api/examples").json()
    assert "quickstart" in listed["data"] and listed["count"] == len(listed["data"])
    answer = client.get("/api/examples/quickstart")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(
        "application/yaml"
    )
    assert answer.text == (REPO / "sweeps" / "quickstart.yaml").read_text(encoding="utf-8")
    for bad in ("nope", "quickstart.yaml", ".quickstart"):
        missing = client.get(f"/api/examples/{bad}")
        assert missing.status_code == 404 and "quickstart" in missing.json()["detail"]
    assert client.get("/api/examples/..%2Fpyproject").status_code == 404


# -- the service in a subprocess, for the browser ------------------------------------------

_SERVER = """
import sys
import uvicorn
from service.api.main import create_app
from service.api.settings import load_settings
app = create_app(load_settings())
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _start_time(pid: int) -> str | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> dict[int, str]:
    """The processes under ``pid``, with their start times (to tell a reused pid)."""
    tree = _children()
    found: dict[int, str] = {}
    todo = list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        started = _start_time(child)
        if started is not None:
            found[child] = started
        todo.extend(tree.get(child, []))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


@dataclass
class Service:
    url: str
    storage: Path
    process: subprocess.Popen[bytes]
    log: Path
    seen: dict[int, str]  # every descendant process seen while it ran

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as answer:
            return json.loads(answer.read())

    def watch(self) -> None:
        self.seen.update(descendants(self.process.pid))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """The app under uvicorn in a subprocess (SQLite under a temporary storage, a token);
    stopped with SIGINT, which runs the app's shutdown (ray.shutdown() of the embedded Ray),
    after which none of the processes it started may remain."""
    storage = tmp_path / "storage"
    port = free_port()
    log = tmp_path / "service.log"
    env = {
        **os.environ,
        "E2RNAS_STORAGE": str(storage),
        "E2RNAS_API_TOKEN": TOKEN,
        # Workaround, to remove once fixed: SweepManager.create records run_dir before the
        # job id, and a refresh in between resubmits the sweep (two jobs, one fails with
        # "already holds a sweep"). With the loop idle after its first pass, the job's own
        # collection writes the final status and rows; progress then stays as submitted.
        "E2RNAS_POLL_SECONDS": "2",
        "RAY_AUTH_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    }
    env.pop("E2RNAS_DATABASE_URL", None)
    env.pop("E2RNAS_RAY_ADDRESS", None)
    storage.mkdir(parents=True)
    # The synthetic sweeps of `test_pages_in_browser` go in before the service starts.
    write_synthetic_sweeps(ResultStore(f"sqlite:///{storage / 'service.db'}"))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Service(f"http://127.0.0.1:{port}", storage, process, log, {})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if running.get("/api/health")["status"] == "ok":
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the service did not start:\n{log.read_text()}")
            time.sleep(0.5)
        yield running
    finally:
        running.watch()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        deadline = time.monotonic() + 30
        left: list[int] = []
        while time.monotonic() < deadline:
            left = [pid for pid, born in running.seen.items() if _start_time(pid) == born]
            if not left:
                break
            time.sleep(1)
        remaining = {pid: _cmdline(pid) for pid in left}
        for pid in left:  # clean up what the service left behind, then fail
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert process.returncode == 0, f"service exited {process.returncode}:\n{log.read_text()}"
    assert not remaining, f"processes of the service still running after it stopped: {remaining}"


# -- synthetic sweeps ----------------------------------------------------------------------

SYNTHETIC_A = "synthetic-a"
SYNTHETIC_B = "synthetic-b"
_SPEC = """
name: {name}
dataset: digits
ood_dataset: digits-ood
search: {{preset: cpu-tiny}}
evaluation: {{mode: proxy, preset: cpu-tiny}}
grid: {{L: [0.02, 0.07, 0.15], F: [0.3, 0.9, 2.0], seed: [0]}}
max_trials: 9
"""


def _trial(sweep_id: str, index: int, shift: float) -> dict[str, Any]:
    """Trial ``index`` of a 3×3 L×F grid; trial 4 failed, the others trade error for size."""
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(dict.fromkeys(FLOAT_COLUMNS, math.nan))
    L, F = (0.02, 0.07, 0.15)[index // 3], (0.3, 0.9, 2.0)[index % 3]
    row.update(
        sweep_id=sweep_id,
        trial_id=f"{index:04d}",
        status="failed",
        evaluation="none",
        versions=package_versions(),
        L=L,
        F=F,
        seed=0,
    )
    if index == 4:
        return row
    genotype = BUNDLED[sorted(BUNDLED)[index % len(BUNDLED)]]
    if index == 8 and sweep_id == SYNTHETIC_B:  # stopped early by MO-ASHA after 3 epochs
        row.update(status="stopped", val_loss=0.75, params_m=0.1, flops_m=1.5, search_epochs=3.0)
        row.update(genotype=genotype.dumps(), genotype_hash=genotype.genotype_hash())
        return row
    row.update(
        status="done",
        val_loss=0.5,
        ood_loss=0.25,
        adv_loss=1.5,
        nop_loss=0.125,
        flops_loss=0.0625,
        test_error=shift + 0.3 - 0.02 * index - (0.05 if index % 2 else 0.0),
        params_m=0.02 + 0.015 * index,
        flops_m=0.3 + 0.2 * index + 0.1 * (index % 3),
        pgd_acc=0.2 + 0.01 * ((index * 7) % 9),
        ood_aupr=0.6 + 0.02 * ((index * 5) % 9),
        latency_ms=1.0,
        evaluation="proxy",
        genotype=genotype.dumps(),
        genotype_hash=genotype.genotype_hash(),
        search_seconds=10.0 + index,
        eval_seconds=5.0,
        device="cpu",
    )
    if sweep_id == SYNTHETIC_B:  # two-staged: every trial's proxy, the first four retrained
        for name in FRONT_METRICS:
            row[f"proxy_{name}"] = row[name] * 1.05
            row[name] = row[name] if index < 4 else math.nan
        row["evaluation"] = "retrain" if index < 4 else "proxy"
    return row


def write_synthetic_sweeps(store: ResultStore) -> None:
    store.create_schema()
    for sweep_id, shift in ((SYNTHETIC_A, 0.0), (SYNTHETIC_B, 0.04)):
        spec = parse_sweep(_SPEC.format(name=sweep_id)).model_dump(mode="json")
        store.upsert_sweep(sweep_id, sweep_id, "done", spec)
        progress = {"total": 9, "pending": 0, "running": 0, "done": 8, "failed": 1, "epochs": 40}
        if sweep_id == SYNTHETIC_B:
            progress.update(done=7, stopped=1, epochs=38)
        store.update_sweep(sweep_id, progress=progress)
        store.ingest(results_frame([_trial(sweep_id, i, shift) for i in range(9)]))
    store.close()


# -- browser -------------------------------------------------------------------------------


def _browser(playwright: Any) -> Any:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (no playwright install)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)


def _markers(page: Any, div: str) -> dict[str, int]:
    """Markers per trace name of a plotly graph div (splom: values of its first dimension)."""
    counts: dict[str, int] = page.evaluate(
        """(id) => {
          const counts = {};
          for (const t of document.getElementById(id).data) {
            const values = t.type === "splom" ? t.dimensions[0].values : t.x;
            counts[t.name] = values.length;
          }
          return counts;
        }""",
        div,
    )
    return counts


def _click_front_point(page: Any) -> str:
    """Click a front marker of the 2-D projection with the mouse, on its SVG path; answers
    how (``"mouse"``, or ``"plotly"`` if the real click did not select it)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # Plotly classes a scatter trace's group "trace" + its uid; the front's uid is "front".
    point = page.locator("#projection2d g.tracefront path.point").first
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    assert box is not None, "the front trace of the 2-D projection has no drawn point"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    try:
        page.wait_for_function(
            "document.getElementById('selection').dataset.trial !== undefined", timeout=5000
        )
        return "mouse"
    except PlaywrightTimeout:  # the fallback the brief allows: plotly's own click event
        page.evaluate(
            """() => {
              const gd = document.getElementById("projection2d");
              const trace = gd.data[1];
              gd.emit("plotly_click", {points: [{customdata: trace.customdata[0],
                data: trace, pointIndex: 0}]});
            }"""
        )
        return "plotly"


def _wait_genotype(page: Any) -> dict[str, Any]:
    page.wait_for_function(
        "document.getElementById('genotype').textContent.includes('normal')", timeout=10_000
    )
    genotype: dict[str, Any] = json.loads(page.locator("#genotype").inner_text())
    assert {"normal", "reduce"} <= set(genotype)
    page.wait_for_selector("#cell-normal .main-svg", timeout=20_000)
    page.wait_for_selector("#cell-reduce .main-svg", timeout=20_000)
    return genotype


def _problems(page: Any) -> list[str]:
    """Collects the page's uncaught errors, console errors and failed requests (but the 422
    answers of the submit page's validation, which it shows inline)."""
    found: list[str] = []
    page.on("pageerror", lambda error: found.append(f"pageerror: {error}"))

    def console(msg: Any) -> None:
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            found.append(f"console: {msg.text}")

    def response(answer: Any) -> None:
        expected = answer.url.endswith("/api/sweeps/validate") and answer.status == 422
        if answer.status >= 400 and not expected:
            found.append(f"{answer.status}: {answer.request.method} {answer.url}")

    page.on("console", console)
    page.on("response", response)
    return found


@pytest.mark.integration
def test_pages_in_browser(service: Service, tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    front = service.get(f"/api/sweeps/{SYNTHETIC_A}/pareto")["front"]
    front_2d = service.get(f"/api/sweeps/{SYNTHETIC_A}/pareto?objectives=test_error,params_m")[
        "front"
    ]
    with playwright_api.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        problems = _problems(page)

        page.goto(service.url + "/")
        page.wait_for_selector(f'tr[data-sweep="{SYNTHETIC_A}"] .bar')
        assert "8/9 done" in page.locator(f'tr[data-sweep="{SYNTHETIC_A}"]').inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "sweep_list.png"), full_page=True)

        page.goto(f"{service.url}/sweeps/{SYNTHETIC_A}")
        page.wait_for_selector('body[data-loaded="true"]')
        assert _markers(page, "splom") == {
            "other trials": 8 - len(front),
            "Pareto front": len(front),
        }
        # The 2-D projection also draws the front of its two columns, the sweep's default axes.
        assert _markers(page, "projection2d") == {
            "other trials": 8 - len(front),
            "Pareto front": len(front),
            "front of test_error and params_m": len(front_2d),
        }
        assert page.locator("#trials-body tr").count() == 9
        assert page.locator("#heat-params .main-svg").count() >= 1
        assert page.locator("#parallel .main-svg").count() >= 1
        # Sorting by a header, both ways; failed trials (no test_error) stay last.
        header = page.locator('#trials-head button[data-column="test_error"]')
        header.click()
        column = list(page.locator("#trials-head th").all_inner_texts()).index("test_error ▲")
        cells = page.locator(f"#trials-body tr td:nth-child({column + 1})").all_inner_texts()
        numbers = [float(c) for c in cells if c != "-"]
        assert numbers == sorted(numbers) and cells[-1] == "-"
        page.locator('#trials-head button[data-column="test_error"]').click()
        cells = page.locator(f"#trials-body tr td:nth-child({column + 1})").all_inner_texts()
        numbers = [float(c) for c in cells if c != "-"]
        assert numbers == sorted(numbers, reverse=True)
        # Filtering.
        page.fill("#table-filter", "failed")
        assert page.locator("#trials-body tr").count() == 1
        page.fill("#table-filter", "")
        assert page.locator("#trials-body tr").count() == 9
        # A table row selects its trial, a front point too.
        page.locator('#trials-body tr[data-trial="0000"]').click()
        assert _wait_genotype(page) == json.loads(
            service.get(f"/api/sweeps/{SYNTHETIC_A}/results")["data"][0]["genotype"]
        )
        assert page.locator("#selection").get_attribute("data-trial") == "0000"
        page.evaluate("delete document.getElementById('selection').dataset.trial")
        assert _click_front_point(page) == "mouse"
        assert page.locator("#selection").get_attribute("data-front") == "true"
        _wait_genotype(page)
        page.screenshot(path=str(ARTIFACTS / "synthetic_sweep_page.png"), full_page=True)

        # A trial stopped early: its status and epochs in the table, apart in the progress.
        page.goto(f"{service.url}/sweeps/{SYNTHETIC_B}")
        page.wait_for_selector('body[data-loaded="true"]')
        assert "1 stopped early" in page.locator("#sweep-progress").inner_text()
        page.fill("#table-filter", "stopped")
        assert page.locator("#trials-body tr").count() == 1
        stopped_row = page.locator("#trials-body tr").inner_text().split("\t")
        assert stopped_row[:3] == ["0008", "stopped", "3"], stopped_row
        # Its two stages: the proxy front and the retrained one, each retrained point linked.
        two_stage = page.evaluate(
            """() => { const div = document.getElementById("two-stage");
              return { names: div.data.map((t) => t.name),
                       title: div.layout.title.text }; }"""
        )
        assert "retrain front" in two_stage["names"] and "proxy front" in two_stage["names"]
        assert "retrained point and its proxy" in two_stage["names"]
        assert two_stage["title"].startswith("4 of 7 trials retrained"), two_stage
        page.screenshot(path=str(ARTIFACTS / "two_stage_sweep_page.png"), full_page=True)

        page.goto(f"{service.url}/compare?a={SYNTHETIC_A}&b={SYNTHETIC_B}&x=test_error&y=params_m")
        page.wait_for_selector("#compare-body tr:nth-child(2)")
        rows = page.locator("#compare-body tr").all_inner_texts()
        for sweep_id, row in zip((SYNTHETIC_A, SYNTHETIC_B), rows, strict=True):
            pareto = service.get(f"/api/sweeps/{sweep_id}/pareto?objectives=test_error,params_m")
            assert sweep_id in row and f"{pareto['hypervolume']:.4g}"[:4] in row
        names = page.evaluate("document.getElementById('compare-plot').data.map(t => t.name)")
        assert f"A: {SYNTHETIC_A} front" in names and f"B: {SYNTHETIC_B} front" in names
        # Against a shared reference, B's front (A's, 0.04 worse in test_error) covers less.
        shared = [float(t) for t in page.locator("#compare-body td.shared-hv").all_inner_texts()]
        assert shared[0] > shared[1] > 0
        # One seed each: the one-seed hypervolume's interval is that hypervolume, no width.
        seeds = page.locator("#compare-body td.seed-hv").all_inner_texts()
        for hv, text in zip(shared, seeds, strict=True):
            mean, low, high = (float(v) for v in re.findall(r"[-+0-9.e]+(?=[ \],])", text)[:3])
            assert mean == low == high == pytest.approx(hv, rel=1e-3), text
            assert "(95 %, 1 draws)" in text
        page.screenshot(path=str(ARTIFACTS / "compare_page.png"), full_page=True)

        page.goto(service.url + "/submit")
        page.wait_for_selector('body[data-valid="true"]')  # the minimal example is valid
        page.fill("#yaml", "name: x\ngrid:\n  L: [1]\n  F: [1]\nbogus: 3\n")
        page.wait_for_selector("#validation:not(.hidden)")
        assert "bogus" in page.locator("#validation").inner_text()
        assert "Line 5" in page.locator("#validation").inner_text()
        assert page.locator("#gutter .bad").inner_text() == "5"
        page.screenshot(path=str(ARTIFACTS / "submit_page.png"), full_page=True)
        browser.close()
    assert not problems, problems


def _submit(page: Any) -> None:
    """Click Submit and wait for the new sweep's page (the service waits for a fresh Ray's
    job agent itself)."""
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/sweeps/[^/]+$"), timeout=240_000)
    page.wait_for_load_state()


def _smaller_quickstart(quickstart: str) -> str:
    """The quickstart file with two grid points under two seeds, two first-order search
    epochs of one step and a one-epoch proxy, edited as a user would."""
    edits = {
        "L: [0.02, 0.07, 0.15]": "L: [0.02, 0.15]",
        "F: [0.3, 0.9, 2.0]": "F: [0.9]",
        "seed: [0]": "seed: [0, 1]",
        "max_trials: 9": "max_trials: 4",
        "    order: first  #": (
            "    epochs: 2\n    steps_per_epoch: 1\n    nodes: 2\n    order: first  #"
        ),
        "  mode: proxy\n  preset: cpu-tiny\n": (
            "  mode: proxy\n  preset: cpu-tiny\n  overrides: {epochs: 1}\n"
        ),
    }
    for old, new in edits.items():
        assert quickstart.count(old) == 1, old
        quickstart = quickstart.replace(old, new)
    return quickstart


@pytest.mark.integration
@pytest.mark.slow
def test_quickstart_through_the_browser(service: Service) -> None:
    """Submit the quickstart sweep through the submit page and browse its front.

    The file loaded into the editor is ``sweeps/quickstart.yaml`` itself; an unknown key typed
    into it must show an inline validation error, which goes away once undone. The grid is then
    cut in the editor to two points under two seeds, of two epochs each (about three minutes
    on two cores instead of nine trials' six) and submitted. After the sweep is done the Pareto
    plot must hold one marker per done trial with a front trace, a click on a front point
    must show its genotype, and ``genotypes.json`` must download. The sweep's seed robustness
    is then checked end to end (:func:`_check_robust`). A full-page screenshot goes
    to ``runs/ci-artifacts/sweep_page.png`` and into the sweep's run dir.
    """
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        problems = _problems(page)
        page.goto(service.url + "/submit")
        page.fill("#api-token", TOKEN)
        page.wait_for_selector("#examples:not(.hidden)")
        page.select_option("#example", "quickstart")
        page.click("#load-example")
        page.wait_for_function("document.getElementById('yaml').value.includes('name: quickstart')")
        quickstart = page.input_value("#yaml")
        assert quickstart == (REPO / "sweeps" / "quickstart.yaml").read_text(encoding="utf-8")
        page.wait_for_selector('body[data-valid="true"]')

        page.fill("#yaml", quickstart.replace("max_trials:", "max_trails: 2\nmax_trials:"))
        page.wait_for_selector('body[data-valid="false"]')
        assert "max_trails" in page.locator("#validation").inner_text()
        assert page.locator("#validation").is_visible()
        # Two points of the grid, two epochs each, prove the path as well as nine would.
        smaller = _smaller_quickstart(quickstart)
        page.fill("#yaml", smaller)
        page.wait_for_selector('body[data-valid="true"]')
        assert not page.locator("#validation").is_visible()
        assert page.locator("#validation-ok").is_visible()
        assert "it would run as 'quickstart' (4 trials)" in page.inner_text("#validation-ok")

        _submit(page)
        sweep_id = page.url.rsplit("/", 1)[1]
        deadline = time.monotonic() + 20 * 60
        while page.get_attribute("body", "data-loaded") != "true":
            service.watch()
            assert time.monotonic() < deadline, "the sweep did not finish in 20 minutes"
            page.wait_for_timeout(2000)
        sweep = service.get(f"/api/sweeps/{sweep_id}")
        assert sweep["status"] == "done", sweep.get("message")
        results = service.get(f"/api/sweeps/{sweep_id}/results")["data"]
        done = [row for row in results if row["status"] == "done"]
        assert len(results) == 4 and len(done) >= 3

        markers = _markers(page, "splom")
        assert sum(markers.values()) == len(done) and markers["Pareto front"] >= 1
        assert page.locator("#projection2d .scatterlayer path.point").count() == len(done)
        how = _click_front_point(page)
        assert page.locator("#selection").get_attribute("data-front") == "true"
        genotype = _wait_genotype(page)
        assert how == "mouse"

        with page.expect_download() as info:
            page.click("#download-genotypes-json")
        exported = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
        assert isinstance(exported, list) and exported
        assert any(genotype == item.get("genotype") for item in exported), exported

        (run_dir,) = [d for d in service.storage.glob("quickstart-*") if (d / SWEEP_FILE).exists()]
        _check_robust(service, page, sweep_id, results, run_dir)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "sweep_page.png"), full_page=True)
        page.screenshot(path=str(run_dir / "sweep_page.png"), full_page=True)
        browser.close()
    assert not problems, problems


def _brute_force_probability(results: list[dict[str, Any]]) -> dict[str, float]:
    """Each configuration's dominance probability by enumerating every combination of one
    finished seed per configuration, each draw's front by the Pareto code (moocore)."""
    import itertools

    from service.analysis.pareto import nondominated_mask
    from service.objectives import directions

    objectives = directions(FRONT_METRICS)
    runs: dict[str, list[list[float]]] = {}
    for row in results:
        label = f"F={row['F']}_L={row['L']}"
        values = [row[name] for name in objectives]
        if row["status"] == "done" and all(v is not None for v in values):
            runs.setdefault(label, []).append(values)
    labels = sorted(runs)
    on_front = dict.fromkeys(labels, 0)
    combinations = list(itertools.product(*(runs[label] for label in labels)))
    for points in combinations:
        for label, flag in zip(labels, nondominated_mask(points, objectives), strict=True):
            on_front[label] += int(flag)
    return {label: on_front[label] / len(combinations) for label in labels}


def _check_robust(
    service: Service, page: Any, sweep_id: str, results: list[dict[str, Any]], run_dir: Path
) -> None:
    """The sweep's seed robustness end to end: the API's probabilities against brute force,
    the sweep page's table, figure and duplicates in Chromium, ``robust.csv`` downloaded, the
    command line's ``e2rnas robust --json`` and the report."""
    answer = service.get(f"/api/sweeps/{sweep_id}/robust")
    assert answer["seed_key"] == "seed" and answer["keys"] == ["F", "L"]
    assert answer["method"] == "exact" and answer["runs"]["max"] == 2
    probability = {
        row["configuration"]: row["dominance_probability"] for row in answer["configurations"]
    }
    expected = _brute_force_probability(results)
    assert set(probability) == {"F=0.9_L=0.02", "F=0.9_L=0.15"}
    for label, value in expected.items():
        assert probability[label] == pytest.approx(value)
    hashes: dict[str, list[str]] = {}
    for row in results:
        if row["status"] == "done":
            hashes.setdefault(row["genotype_hash"], []).append(row["trial_id"])
    shared = {h: sorted(t) for h, t in hashes.items() if len(t) > 1}
    assert {g["genotype_hash"]: sorted(g["trials"]) for g in answer["duplicates"]} == shared

    page.wait_for_selector("#robust-body tr")
    rows = page.locator("#robust-body tr")
    assert rows.count() == len(answer["configurations"])
    for number, row in enumerate(answer["configurations"]):
        cells = rows.nth(number)
        assert cells.get_attribute("data-configuration") == row["configuration"]
        shown = float(cells.locator("td.probability").inner_text())
        assert shown == pytest.approx(row["dominance_probability"], abs=5e-4)
    assert "Hypervolume of one seed per configuration" in page.inner_text("#robust-summary")
    items = page.locator("#duplicates li")
    assert items.count() == max(1, len(shared))
    drawn = page.evaluate(
        """() => Object.fromEntries(document.getElementById("robust-plot").data
            .map((trace) => [trace.uid, trace.x.length]))"""
    )
    finished = [row for row in results if row["status"] == "done"]
    assert drawn["robust-runs"] == len(finished)
    assert drawn["robust-configurations"] == len(expected)
    assert any(uid.startswith("robust-eaf-") and n for uid, n in drawn.items())

    with page.expect_download() as info:
        page.click("#download-robust-csv")
    import pandas as pd

    csv = pd.read_csv(info.value.path())
    assert dict(zip(csv["configuration"], csv["dominance_probability"], strict=True)) == (
        pytest.approx(probability)
    )
    assert set(csv["method"]) == {"exact"}

    env = {**os.environ, "E2RNAS_DATABASE_URL": f"sqlite:///{service.storage / 'service.db'}"}

    def robust(*args: str) -> subprocess.CompletedProcess[str]:
        script = str(Path(sys.executable).parent / "e2rnas")
        return subprocess.run(
            [script, "robust", str(run_dir), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    cli = robust("--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == answer
    text = robust("--limit", "1")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("2 configurations over test_error, params_m, flops_m")
    assert "exact over all 4 combinations" in lines[0] and "interval" in lines[1]
    top = answer["configurations"][0]
    assert any(
        line.split()[:2] == [top["configuration"], f"{top['dominance_probability']:.3f}"]
        for line in lines
    )
    assert "... 1 more (--limit)" in text.stdout
    bad = robust("--resamples", "0")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("e2rnas: error: resamples: got 0")
    report = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Seed robustness" in report and "Configurations by dominance probability" in report
