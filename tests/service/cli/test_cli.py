"""Tests of the ``e2rnas`` command line, run as real subprocesses as scripts run it.

The references are independent of the code under test: the published size of DARTS-V2
(3.349342 M parameters, ~528 M multiply-adds, the DARTS paper's Table 1 network), the original
DARTS ``genotypes.py`` text, and an uninterrupted run of the same search for kill-and-resume.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import search_core.evaluate as evaluate_module
import search_core.search as search_module
from search_core.config import PRESETS
from search_core.eval_config import eval_preset
from search_core.genotypes import BUNDLED, Genotype
from search_core.model_eval import EvalNetwork, count_flops_m, count_params_m
from service import cli

SCRIPT = Path(sys.executable).parent / "e2rnas"
OBJECTIVES = ("val", "ood", "adv", "nop", "flops")
METRIC_KEYS = {f"{name}_loss" for name in OBJECTIVES} | {
    "epoch",
    "mgda_weights",
    "params_m",
    "flops_m",
    "genotype",
}
TINY = ("--preset", "cpu-tiny")

# The original text of DARTS's genotypes.py (quark0/darts, cnn/genotypes.py), abridged.
DARTS_GENOTYPES_PY = """\
from collections import namedtuple

Genotype = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')

PRIMITIVES = [
    'none',
    'max_pool_3x3',
    'avg_pool_3x3',
    'skip_connect',
    'sep_conv_3x3',
    'sep_conv_5x5',
    'dil_conv_3x3',
    'dil_conv_5x5'
]

DARTS_V1 = Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), \
('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), \
('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), \
('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), \
('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])
DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), \
('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), \
('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), \
('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), \
('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])

DARTS = DARTS_V2
"""

DARTS_V2_JSON = {
    "normal": [
        ["sep_conv_3x3", 0],
        ["sep_conv_3x3", 1],
        ["sep_conv_3x3", 0],
        ["sep_conv_3x3", 1],
        ["sep_conv_3x3", 1],
        ["skip_connect", 0],
        ["skip_connect", 0],
        ["dil_conv_3x3", 2],
    ],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [
        ["max_pool_3x3", 0],
        ["max_pool_3x3", 1],
        ["skip_connect", 2],
        ["max_pool_3x3", 1],
        ["max_pool_3x3", 0],
        ["skip_connect", 2],
        ["skip_connect", 2],
        ["max_pool_3x3", 1],
    ],
    "reduce_concat": [2, 3, 4, 5],
}


def _env() -> dict[str, str]:
    # One intra-op thread: the tiny networks gain nothing from a second one, and on a shared
    # 2-core machine two threads meeting at every op's barrier make a step 10-100x slower.
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def e2rnas(*args: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m service.cli ARGS`` in ``cwd`` (so the relative ``data`` is its own)."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *map(str, args)],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """Exit code 2 and exactly one line ``e2rnas: error: ...`` naming every one of ``names``."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith("e2rnas: error: "), line
    for name in names:
        assert name in line, f"{name!r} not in {line!r}"
    assert result.stdout == ""
    return line


def read_metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- the installed script ------------------------------------------------------------------


def test_console_script_lists_the_subcommands(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "search" in result.stdout
    assert "evaluate" in result.stdout
    assert "count" in result.stdout


# -- count ---------------------------------------------------------------------------------


def count(genotype: str, cwd: Path) -> dict[str, float]:
    result = e2rnas("count", genotype, "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert isinstance(value, dict)
    assert {"params_m", "flops_m"} <= set(value)
    return {key: float(value[key]) for key in ("params_m", "flops_m")}


@pytest.fixture(scope="module")
def darts_v2_size(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    return count("darts_v2", tmp_path_factory.mktemp("count"))


def test_count_darts_v2_is_the_published_size(darts_v2_size: dict[str, float]) -> None:
    assert darts_v2_size["params_m"] == pytest.approx(3.349342, abs=1e-6)
    assert darts_v2_size["flops_m"] == pytest.approx(528.359, abs=1e-3)


@pytest.mark.parametrize("form", ["json", "darts_text"])
def test_count_of_a_file_matches_the_bundled_genotype(
    form: str,
    darts_v2_size: dict[str, float],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # In this process (the fixture ran the installed command): the same main() without a
    # second interpreter's torch import.
    if form == "json":
        (tmp_path / "darts_v2.json").write_text(json.dumps(DARTS_V2_JSON))
        spec = "darts_v2.json"
    else:
        (tmp_path / "genotypes.py").write_text(DARTS_GENOTYPES_PY)
        spec = "genotypes.py:DARTS_V2"
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli.main(["count", spec, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    size = json.loads(out)
    assert {key: float(size[key]) for key in ("params_m", "flops_m")} == darts_v2_size


@pytest.mark.parametrize(
    ("normal_1", "names"),
    [
        (["conv_9x9", 1], ("normal[1]", "conv_9x9", "sep_conv_3x3")),
        (["sep_conv_3x3", 2], ("normal[1]", "input 2", "out of range")),
    ],
    ids=["unknown-op", "input-out-of-range"],
)
def test_count_rejects_a_bad_genotype_file(
    normal_1: list[Any], names: tuple[str, ...], tmp_path: Path
) -> None:
    bad = json.loads(json.dumps(DARTS_V2_JSON))
    bad["normal"][1] = normal_1
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert_one_line_error(e2rnas("count", "bad.json", cwd=tmp_path), "bad.json", *names)


# -- search: bad input leaves nothing behind -----------------------------------------------


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("--set", "L=-1"), ("L:", "-1", ">= 0")),
        (("--set", "L="), ("L:", "missing")),
        (("--preset", "nope"), ("preset", "nope", "cpu-tiny")),
        ((*TINY, "--set", "nope=1"), ("nope",)),
        ((*TINY, "--set", "L2.5"), ("--set", "L2.5", "KEY=VALUE")),
        ((*TINY, "--config", "bad.yaml"), ("--config", "bad.yaml", "line 2")),
        ((*TINY, "--config", "absent.yaml"), ("--config", "absent.yaml", "No such file")),
        ((*TINY, "--set", "backbone=pcdarts"), ("backbone:", "pcdarts", "pc_darts")),
        ((*TINY, "--set", "backbone=pc_darts", "--set", "pc_k=3"), ("pc_k:", "3", "divisor")),
        ((*TINY, "--set", "backbone=pdarts", "--set", "layers=4"), ("pdarts_stage_layers:",)),
    ],
    ids=[
        "L-negative",
        "L-missing",
        "preset-unknown",
        "key-unknown",
        "set-without-equals",
        "config-malformed-yaml",
        "config-missing",
        "backbone-unknown",
        "K-not-dividing-the-channels",
        "stages-not-fitting-the-cells",
    ],
)
def test_search_rejects_bad_input_before_creating_anything(
    args: tuple[str, ...], names: tuple[str, ...], tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text("epochs: 1\n  L: 0.5\n")
    before = snapshot(tmp_path)
    result = e2rnas("search", *args, "--out", "out", cwd=tmp_path)
    assert_one_line_error(result, *names)
    assert snapshot(tmp_path) == before


def test_search_rejects_an_out_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    result = e2rnas("search", *TINY, "--out", "a-file", cwd=tmp_path)
    assert_one_line_error(result, "--out", "a-file", "directory")
    assert snapshot(tmp_path) == {"a-file": b""}


def test_search_names_a_missing_dataset_and_its_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = e2rnas(
        "search",
        *TINY,
        "--set",
        "dataset=cifar10",
        "--set",
        f"data_root={empty}",
        "--out",
        "out",
        cwd=tmp_path,
    )
    assert_one_line_error(result, "cifar10", str(empty))
    assert not (tmp_path / "out").exists()
    assert list(empty.iterdir()) == []


def test_resume_from_a_corrupt_checkpoint_deletes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    garbage = b"\x00not a checkpoint\xff" * 64
    (out / "checkpoint.pt").write_bytes(garbage)
    result = e2rnas("search", *TINY, "--set", "epochs=1", "--out", out, "--resume", cwd=tmp_path)
    assert_one_line_error(result, str(out / "checkpoint.pt"), "corrupt")
    assert snapshot(out) == {"checkpoint.pt": garbage}


# -- search: a real tiny search -----------------------------------------------------------


SEARCH_ARGS = (*TINY, "--set", "epochs=2", "--set", "steps_per_epoch=2", "--set", "nodes=2")


@pytest.fixture(scope="module")
def finished_search(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    cwd = tmp_path_factory.mktemp("search")
    result = e2rnas("search", *SEARCH_ARGS, "--out", "run", cwd=cwd)
    return cwd / "run", result


def test_search_writes_genotype_and_metrics(
    finished_search: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, result = finished_search
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "epoch 2/2" in result.stderr  # the progress bar

    genotype = Genotype.loads((out / "genotype.json").read_text())
    assert Genotype.from_darts_text((out / "genotype.py").read_text()) == genotype

    records = read_metrics(out)
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert METRIC_KEYS.issubset(record), METRIC_KEYS - set(record)
        for name in OBJECTIVES:
            assert isinstance(record[f"{name}_loss"], float)
        weights = record["mgda_weights"]
        assert len(weights) == 5
        assert all(isinstance(w, float) and w >= -1e-6 for w in weights)
        assert sum(weights) == pytest.approx(1.0, abs=1e-5)
        assert record["params_m"] > 0
        assert record["flops_m"] > 0
        Genotype.from_json(record["genotype"])
    assert Genotype.from_json(records[-1]["genotype"]) == genotype

    # The summary names the three files and the final genotype and its size.
    for name in ("genotype.json", "genotype.py", "metrics.jsonl"):
        assert str(Path("run") / name) in result.stdout
    last = result.stdout.splitlines()[-1]
    assert genotype.genotype_hash() in last
    assert f"params_m {records[-1]['params_m']:.6f}" in last
    assert f"flops_m {records[-1]['flops_m']:.6f}" in last


def test_search_refuses_an_existing_search_without_resume(
    finished_search: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = finished_search
    before = snapshot(out)
    result = e2rnas("search", *TINY, "--out", out, cwd=out.parent)
    assert_one_line_error(result, str(out), "--resume")
    assert snapshot(out) == before


# -- configuration layers and Ctrl-C, in process ------------------------------------------


def test_layers_preset_then_config_file_then_set(tmp_path: Path) -> None:
    config_file = tmp_path / "search.yaml"
    config_file.write_text("preset: cpu-tiny\nL: 0.5\nF: 3\nobjectives: [val, adv]\n")
    config = cli.load_search_config(None, config_file, ["F=4", "augment=false"])
    assert config.dataset == "digits"  # from the file's preset
    assert (config.L, config.F) == (0.5, 4.0)
    assert config.objectives == ("val", "adv")
    assert config.augment is False
    assert cli.load_search_config("paper", config_file, []).dataset == "cifar10"
    assert cli.load_search_config(None, None, []).dataset == "cifar10"  # paper by default


def test_set_values_are_read_as_yaml() -> None:
    assert cli.parse_setting("L=2.5") == ("L", 2.5)
    assert cli.parse_setting("F=400") == ("F", 400)
    assert cli.parse_setting("augment=true") == ("augment", True)
    assert cli.parse_setting("objectives=val,adv") == ("objectives", "val,adv")
    assert cli.parse_setting("data_root=a=b") == ("data_root", "a=b")
    assert cli.parse_setting("L=") == ("L", None)
    config = cli.load_search_config(None, None, ["L=2.5", "F=400", "objectives=val,adv"])
    assert (config.L, config.F, config.objectives) == (2.5, 400.0, ("val", "adv"))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_epochs_1_works_with_every_preset(name: str) -> None:
    assert cli.load_search_config(name, None, ["epochs=1"]).epochs == 1


@pytest.mark.parametrize("checkpoint", [True, False], ids=["after-an-epoch", "before"])
def test_ctrl_c_says_how_to_resume(
    checkpoint: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(search_module, "run_search", interrupted)
    out = tmp_path / "out"
    if checkpoint:
        out.mkdir()
        (out / "checkpoint.pt").write_bytes(b"")
    assert cli.main(["search", *TINY, "--out", str(out)]) == 130
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "--resume" in lines[0]
    assert (str(out / "checkpoint.pt") in lines[0]) is checkpoint


# -- acceptance: a real kill, then --resume ------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_killed_search_resumes_to_the_uninterrupted_result(
    finished_search: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    # The uninterrupted search is the module's finished one, run with the same arguments.
    args = SEARCH_ARGS
    a, whole = finished_search
    b = tmp_path / "b"
    assert whole.returncode == 0, whole.stderr

    # Output to files, not pipes: an unread pipe would fill with the progress bar and block.
    with (tmp_path / "b.stdout").open("w") as stdout, (tmp_path / "b.stderr").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "search", *args, "--out", str(b)],
            cwd=tmp_path,
            env=_env(),
            stdout=stdout,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 600
            while process.poll() is None and time.monotonic() < deadline:
                if (b / "checkpoint.pt").exists() and len(read_metrics(b)) >= 1:
                    break
                time.sleep(0.02)
            if process.poll() is not None:
                pytest.fail(
                    f"search B ended (exit {process.returncode}) before it could be killed: "
                    f"nothing was resumed; give it more epochs or steps\n"
                    f"{(tmp_path / 'b.stderr').read_text()}"
                )
            assert time.monotonic() < deadline, "search B wrote no checkpoint in time"
            process.kill()  # SIGKILL: no handler runs, as when a machine is lost
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_after = [r["epoch"] for r in read_metrics(b)]
    assert not (b / "genotype.json").exists(), "search B had finished before the kill"
    assert killed_after and killed_after[-1] < 2

    resumed = e2rnas("search", *args, "--out", b, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    state_a = torch.load(a / "checkpoint.pt", weights_only=True)
    state_b = torch.load(b / "checkpoint.pt", weights_only=True)
    for name in ("alpha_normal", "alpha_reduce"):
        assert torch.equal(state_a["net"][name], state_b["net"][name]), name
    assert (a / "genotype.json").read_text() == (b / "genotype.json").read_text()
    assert [r["epoch"] for r in read_metrics(b)] == [1, 2]


# -- evaluate ------------------------------------------------------------------------------

FRONT = ("test_error", "params_m", "flops_m", "pgd_acc", "ood_aupr")
EVAL_KEYS = {*FRONT, "latency_ms", "mode", "device", "settings"}
QUICK_EVAL = (*TINY, "--set", "epochs=3", "--set", "latency_repeats=3")
TIMINGS = {"latency_ms", "eval_seconds"}  # machine load, not the seed, sets these


def read_eval(out: Path) -> dict[str, Any]:
    metrics = json.loads((out / "metrics.json").read_text())
    assert isinstance(metrics, dict)
    assert EVAL_KEYS.issubset(metrics), EVAL_KEYS - set(metrics)
    return metrics


def assert_sane(metrics: dict[str, Any]) -> None:
    """Acceptance 3: robust accuracy below clean, AUPR above chance (the OoD share)."""
    clean = 100.0 - metrics["test_error"]
    assert 0.0 <= metrics["pgd_acc"] <= clean
    assert metrics["ood_base_rate"] < metrics["ood_aupr"] <= 100.0
    assert metrics["latency_ms"] > 0.0
    assert metrics["device"] == "cpu"


def tiny_eval_network(genotype: Genotype, layers: int, channels: int) -> EvalNetwork:
    # digits: 5 classes of 8x8 grey images
    return EvalNetwork(genotype, 5, layers, channels, input_size=8, in_channels=1, auxiliary=True)


@pytest.fixture
def misfit_genotype(tmp_path: Path) -> str:
    misfit = json.loads(json.dumps(DARTS_V2_JSON))
    misfit["reduce_concat"] = [4, 5]  # two nodes where the normal cells concatenate four
    (tmp_path / "misfit.json").write_text(json.dumps(misfit))
    return "misfit.json"


@pytest.mark.parametrize(
    ("genotype", "args", "names"),
    [
        ("absent.json", (), ("GENOTYPE", "absent.json", "no such file")),
        ("darts_v2", ("--set", "dataset=mnist"), ("dataset", "mnist", "cifar10")),
        ("misfit.json", (), ("GENOTYPE", "misfit.json", "reduce_concat")),
        ("darts_v2", ("--set", "layers=2"), ("layers", "at least 3")),
        ("darts_v2", ("--set", "epoch=3"), ("epoch", "did you mean 'epochs'")),
        ("darts_v2", ("--preset", "nope"), ("preset", "nope", "cpu-tiny")),
    ],
    ids=["genotype-file-unknown", "dataset-unknown", "genotype-misfit", "layers", "key", "preset"],
)
def test_evaluate_rejects_bad_input_before_creating_anything(
    genotype: str,
    args: tuple[str, ...],
    names: tuple[str, ...],
    misfit_genotype: str,
    tmp_path: Path,
) -> None:
    before = snapshot(tmp_path)
    result = e2rnas("evaluate", genotype, *TINY, *args, "--out", "out", cwd=tmp_path)
    assert_one_line_error(result, *names)
    assert snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def quick_eval(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A three-epoch retrain of DARTS V2 (the tests only read it)."""
    cwd = tmp_path_factory.mktemp("quick-eval")
    result = e2rnas("evaluate", "darts_v2", *QUICK_EVAL, "--out", "ev", cwd=cwd)
    return cwd / "ev", result


def test_evaluate_writes_the_five_metrics(
    quick_eval: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, result = quick_eval
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "epoch 3/3" in result.stderr  # the progress bar
    metrics = read_eval(out)
    assert_sane(metrics)
    assert metrics["mode"] == "retrain"
    assert (
        metrics["settings"]
        == eval_preset("cpu-tiny", {"epochs": 3, "latency_repeats": 3}).to_dict()
    )
    net = tiny_eval_network(BUNDLED["darts_v2"], layers=6, channels=8)
    assert metrics["params_m"] == count_params_m(net)
    assert metrics["flops_m"] == count_flops_m(net, 8, 1)
    # The summary names metrics.json and prints the five metrics.
    head, line = result.stdout.splitlines()[-2:]
    assert str(Path("ev") / "metrics.json") in head and "retrain" in head
    for name in FRONT:
        assert f"{name} " in line
    assert f"pgd_acc {metrics['pgd_acc']:.2f}" in line


def test_search_then_proxy_evaluation(tmp_path: Path) -> None:
    result = e2rnas(
        "search",
        *TINY,
        "--set",
        "epochs=1",
        "--set",
        "steps_per_epoch=2",
        "--set",
        "nodes=2",
        "--evaluate",
        "proxy",
        "--out",
        "run",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "run"
    metrics = read_eval(out)
    assert metrics["mode"] == "proxy"
    assert_sane(metrics)
    genotype = Genotype.loads((out / "genotype.json").read_text())
    assert Genotype.from_json(metrics["genotype"]) == genotype
    assert (metrics["settings"]["layers"], metrics["settings"]["init_channels"]) == (3, 4)
    net = tiny_eval_network(genotype, layers=3, channels=4)  # the search's size
    assert metrics["trained_network"]["params_m"] == count_params_m(net)
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["params_m"] == pytest.approx(record["params_m"], rel=1e-6)  # L's units
    assert metrics["flops_m"] == pytest.approx(record["flops_m"], rel=1e-6)  # F's units
    assert metrics["inherits_supernet_weights"] is True
    assert (out / "checkpoint.pt").exists() and (out / "eval_checkpoint.pt").exists()
    assert "proxy" in result.stdout.splitlines()[-2]


def test_evaluate_ctrl_c_says_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_module, "run_evaluation", interrupted)
    out = tmp_path / "out"
    assert cli.main(["evaluate", "darts_v2", *TINY, "--out", str(out)]) == 130
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "--resume" in lines[0], lines


# -- acceptance: the cpu-tiny retrain, whole and killed ------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_tiny_retrain_is_sane(quick_eval: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, result = quick_eval
    assert result.returncode == 0, result.stderr
    metrics = read_eval(out)
    assert_sane(metrics)
    # The tiny network does learn the digits, in three of the preset's twelve epochs already
    # (3.3 % test error on this machine).
    assert metrics["test_error"] < 20
    assert (
        metrics["settings"]
        == eval_preset("cpu-tiny", {"epochs": 3, "latency_repeats": 3}).to_dict()
    )


@pytest.mark.slow
@pytest.mark.integration
def test_killed_retrain_resumes_to_the_uninterrupted_metrics(
    quick_eval: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    # The uninterrupted retrain is the module's three-epoch one, run with the same arguments.
    whole_dir, whole_run = quick_eval
    assert whole_run.returncode == 0, whole_run.stderr
    b = tmp_path / "b"
    checkpoint = b / "eval_checkpoint.pt"
    command = [
        *(sys.executable, "-m", "service.cli", "evaluate", "darts_v2", *QUICK_EVAL),
        *("--out", str(b)),
    ]
    # Output to files, not pipes: an unread pipe would fill with the progress bar and block.
    with (tmp_path / "b.stdout").open("w") as stdout, (tmp_path / "b.stderr").open("w") as stderr:
        process = subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + 600
            while process.poll() is None and time.monotonic() < deadline:
                if checkpoint.exists():
                    break
                time.sleep(0.02)
            if process.poll() is not None:
                pytest.fail(
                    f"retrain B ended (exit {process.returncode}) before it could be killed\n"
                    f"{(tmp_path / 'b.stderr').read_text()}"
                )
            assert time.monotonic() < deadline, "retrain B wrote no checkpoint in time"
            process.kill()  # SIGKILL: no handler runs, as when a machine is lost
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (b / "metrics.json").exists(), "retrain B had finished before the kill"
    killed_at = torch.load(checkpoint, weights_only=True)["epoch"]
    assert killed_at < 3

    resumed = e2rnas("evaluate", "darts_v2", *QUICK_EVAL, "--out", b, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    whole, after_kill = read_eval(whole_dir), read_eval(b)
    for metrics in (whole, after_kill):
        for key in TIMINGS:
            metrics.pop(key)
    assert after_kill == whole
    state_a = torch.load(whole_dir / "eval_checkpoint.pt", weights_only=True)
    state_b = torch.load(checkpoint, weights_only=True)
    for name, tensor in state_a["net"].items():
        assert torch.equal(tensor, state_b["net"][name]), name


# -- report ----------------------------------------------------------------------------------

REPORT_SWEEP = """\
name: rep
search: {preset: cpu-tiny}
grid: {L: [0.03, 0.05], F: [0.4, 0.6]}
report: {projection_2d: [L, flops_m]}
"""


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    """A run directory as a finished sweep leaves it: sweep.json and results.parquet."""
    import pandas as pd

    from service.objectives import FRONT_METRICS
    from service.orchestration.spec import parse_sweep

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    spec = parse_sweep(REPORT_SWEEP, "rep.yaml")
    state = {"sweep_id": "rep-1", "spec": spec.model_dump(mode="json"), "status": "done"}
    (run_dir / "sweep.json").write_text(json.dumps(state), encoding="utf-8")
    rows = []
    for i, name in enumerate(("darts_v1", "darts_v2", "pdarts", "pc_darts")):
        genotype = BUNDLED[name]
        row: dict[str, Any] = {"L": (0.03, 0.05)[i // 2], "F": (0.4, 0.6)[i % 2], "seed": 0}
        row.update(zip(FRONT_METRICS, (3.0 - i / 2, 1.0 + i, 100.0 + i, 40.0, 90.0), strict=True))
        row.update(genotype=genotype.dumps(), genotype_hash=genotype.genotype_hash())
        rows.append(row)
    pd.DataFrame(rows).to_parquet(run_dir / "results.parquet", index=False)
    return run_dir


def _projection_titles(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(r"<h2>(Projection: [^<]*)</h2>", text)


def test_report_rewrites_the_page_with_the_chosen_projections(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without flags: the sweep file's report: section (2-D chosen, 3-D the default).
    assert cli.main(["report", str(finished_run)]) == 0
    page = finished_run / "report.html"
    assert str(page) in capsys.readouterr().out
    assert _projection_titles(page) == [
        "Projection: L vs flops_m",
        "Projection: test_error, params_m, pgd_acc",
    ]
    # Flags override the file; --out writes elsewhere.
    other = tmp_path / "other.html"
    command = ["report", str(finished_run), "--projection-2d", "F, ood_aupr"]
    command += ["--projection-3d", "L,F,test_error", "--out", str(other)]
    assert cli.main(command) == 0
    assert _projection_titles(other) == [
        "Projection: F vs ood_aupr",
        "Projection: L, F, test_error",
    ]
    text = other.read_text(encoding="utf-8")
    assert '"xaxis":{"title":{"text":"F"}' in text
    assert '"zaxis":{"title":{"text":"test_error (min)"}' in text


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--projection-2d", "L,bogus"], "--projection-2d[1]: unknown column 'bogus'; expected"),
        (["--projection-2d", "L"], "--projection-2d: expected 2 column names, got 1"),
        (["--projection-3d", "L,F,F"], "--projection-3d[2]: 'F' is repeated"),
    ],
)
def test_report_rejects_bad_projections(
    finished_run: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expected: str
) -> None:
    assert cli.main(["report", str(finished_run), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("e2rnas: error: ")
    assert expected in err
    assert not (finished_run / "report.html").exists()


def test_report_needs_a_collected_run_directory(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (finished_run / "results.parquet").unlink()
    for target, expected in ((finished_run, "no results.parquet"), (tmp_path, "no sweep.json")):
        assert cli.main(["report", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err
