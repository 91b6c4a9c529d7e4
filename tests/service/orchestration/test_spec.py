"""Tests of the sweep file schema: the example sweeps load, grids expand in a stable order,
and every kind of bad input fails with one ConfigError line naming the dotted field path."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from search_core.config import preset
from search_core.errors import ConfigError
from service.orchestration.points import (
    check_local_gpu,
    eval_config_for,
    grid_points,
    plottable_columns,
    search_config_for,
    trial_count,
    trial_resources,
)
from service.orchestration.rundir import trial_key
from service.orchestration.spec import SweepSpec, load_sweep, parse_sweep

SWEEPS = Path(__file__).resolve().parents[3] / "sweeps"
EXAMPLES = (
    "quickstart",
    "cifar10_paper",
    "cifar100_paper",
    "optuna_nsga2",
    "backbones",
    "quickstart_seeds",
    "ablations",
)

BASE = """\
name: t
search: {preset: cpu-tiny}
grid: {L: [0.03, 0.05], F: [0.4, 0.6, 0.9]}
"""
OPTUNA = """\
name: t
search: {preset: cpu-tiny}
strategy: {kind: optuna, num_samples: 4, L: {low: 0.02, high: 0.1}, F: {low: 0.3, high: 1.5}}
"""


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_sweep_loads(name: str) -> None:
    path = SWEEPS / f"{name}.yaml"
    assert path.read_text().startswith("#"), "each example opens with a header comment"
    spec = load_sweep(path)
    assert spec.name == name
    points = grid_points(spec)
    assert 1 <= trial_count(spec) <= spec.max_trials
    for point in points:
        config = search_config_for(spec, point)
        for key, value in point.items():
            if key != "variant":  # a name: its overrides are the config's (test below)
                assert getattr(config, key) == value


def test_example_settings() -> None:
    quick = load_sweep(SWEEPS / "quickstart.yaml")
    assert quick.search.preset == "cpu-tiny" and quick.evaluation.mode == "proxy"
    assert quick.dataset == "digits" and trial_count(quick) == 9
    assert quick.grid["L"] == [0.02, 0.07, 0.15] and quick.grid["F"] == [0.3, 0.9, 2.0]
    for name in ("cifar10_paper", "cifar100_paper"):
        spec = load_sweep(SWEEPS / f"{name}.yaml")
        assert {2.5, 3.5} <= set(spec.grid["L"])
        assert spec.evaluation.mode == "retrain" and spec.search.preset == "paper"
        config = search_config_for(spec, grid_points(spec)[0])
        assert config.dataset == name.removesuffix("_paper")
        assert config.eval_layers == 20 and config.eval_init_channels == 36
    nsga2 = load_sweep(SWEEPS / "optuna_nsga2.yaml")
    assert nsga2.strategy.kind == "optuna" and nsga2.strategy.sampler == "nsga2"
    assert trial_count(nsga2) == nsga2.strategy.num_samples


def test_backbones_sweep_switches_each_backbones_schedule() -> None:
    """A grid over the backbone brings each one's own cpu-tiny schedule, under the file's
    overrides; every row of the grid is a valid config."""
    spec = load_sweep(SWEEPS / "backbones.yaml")
    assert spec.search.preset == "cpu-tiny" and spec.dataset == "digits"
    configs = {p["backbone"]: search_config_for(spec, p) for p in grid_points(spec)}
    assert set(configs) == {"darts", "pc_darts", "pdarts"}
    assert configs["pc_darts"].pc_k == 4 and configs["pc_darts"].arch_warmup_epochs == 1
    assert configs["pdarts"].pdarts_stage_layers == (3, 4, 5)
    assert configs["pdarts"].total_epochs == 6 and configs["darts"].total_epochs == 5
    assert len(set(spec.grid["L"])) >= 2


def test_grid_points_are_the_cartesian_product_in_file_order() -> None:
    spec = parse_sweep(
        "name: t\nsearch: {preset: cpu-tiny}\n"
        "grid: {F: [0.9, 0.4], L: [0.05, 0.03, 0.08], seed: [1, 0]}\n",
        "t",
    )
    expected = [
        {"F": f, "L": bound, "seed": s}
        for f, bound, s in itertools.product([0.9, 0.4], [0.05, 0.03, 0.08], [1, 0])
    ]
    assert grid_points(spec) == expected
    assert trial_count(spec) == 12
    assert grid_points(spec) == grid_points(spec)


def test_search_config_layers_preset_overrides_dataset_and_point() -> None:
    spec = parse_sweep(
        {
            "name": "layers",
            "dataset": "digits",
            "search": {"preset": "cpu-tiny", "overrides": {"epochs": 2, "lr": 0.1}},
            "grid": {"L": [0.04], "F": [0.5], "lr": [0.02], "weighting": ["equal", "mgda"]},
        },
        "mapping",
    )
    configs = [search_config_for(spec, p) for p in grid_points(spec)]
    expected = preset("cpu-tiny", {"epochs": 2, "lr": 0.02, "L": 0.04, "F": 0.5})
    assert configs[0] == expected.replace(weighting="equal")
    assert configs[1] == expected.replace(weighting="mgda")


def test_defaults_and_resources() -> None:
    spec = parse_sweep(BASE, "t")
    assert spec.strategy.kind == "grid" and spec.evaluation.mode == "proxy"
    assert spec.storage.path == "runs" and spec.ray.address is None
    assert trial_resources(spec, cuda_available=True) == {"cpu": 1.0, "gpu": 1.0}
    assert trial_resources(spec, cuda_available=False) == {"cpu": 1.0, "gpu": 0.0}
    packed = parse_sweep(BASE + "resources: {gpu: 0.25, cpu: 2}\n", "t")
    assert trial_resources(packed, cuda_available=False) == {"cpu": 2.0, "gpu": 0.25}


def test_evaluation_configs() -> None:
    spec = parse_sweep(BASE + "evaluation: {mode: retrain, overrides: {epochs: 3}}\n", "t")
    search = search_config_for(spec, grid_points(spec)[0])
    retrain = eval_config_for(spec, search)
    assert retrain is not None and retrain.epochs == 3 and retrain.layers == search.eval_layers
    none = parse_sweep(BASE + "evaluation: {mode: none}\n", "t")
    assert eval_config_for(none, search) is None


def test_spec_is_frozen_and_rejects_unknown_keys_when_built_directly() -> None:
    spec = parse_sweep(BASE, "t")
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "other"
    with pytest.raises(ValueError, match="extra"):
        SweepSpec.model_validate({"name": "t", "grid": {"L": [1], "F": [1]}, "bogus": 1})


BAD = {
    "malformed YAML": ("name: t\ngrid: {L: [1, 2\n", "malformed YAML: line 3, column 1"),
    "not a mapping": ("- 1\n- 2\n", "expected a mapping"),
    "unknown top-level key": (BASE + "bogus: 1\n", "bogus: unknown key"),
    "unknown nested key": (BASE + "resources: {gpus: 1}\n", "resources.gpus: unknown key"),
    "unknown search key": (
        BASE.replace("{preset: cpu-tiny}", "{preset: cpu-tiny, overide: {}}"),
        "search.overide: unknown key",
    ),
    "negative L": (BASE.replace("[0.03, 0.05]", "[0.03, -2]"), "grid.L[1]: expected a bound >= 0"),
    "negative F": (BASE.replace("[0.4, 0.6, 0.9]", "[-0.4]"), "grid.F[0]: expected a bound >= 0"),
    "unknown preset": (BASE.replace("cpu-tiny", "tiny"), "search.preset: unknown preset 'tiny'"),
    "unknown evaluation preset": (
        BASE + "evaluation: {preset: huge}\n",
        "evaluation.preset: unknown preset 'huge'",
    ),
    "bad evaluation mode": (BASE + "evaluation: {mode: full}\n", "evaluation.mode:"),
    "unknown config key in grid": (
        BASE.replace("]}", "], lrr: [0.1]}"),
        "grid.lrr: unknown config key",
    ),
    "bad config value in grid": (
        BASE.replace("]}", "], order: [first, third]}"),
        "grid.order[1]: got 'third'",
    ),
    "bad override": (
        BASE.replace("{preset: cpu-tiny}", "{preset: cpu-tiny, overrides: {epochs: 0}}"),
        "search.overrides.epochs: got 0",
    ),
    "unknown backbone in the grid": (
        BASE.replace("]}", "], backbone: [darts, pc-darts]}"),
        "grid.backbone[1]: got 'pc-darts'; expected one of darts, pc_darts, pdarts",
    ),
    "K that does not divide the channels": (
        BASE.replace("]}", "], backbone: [pc_darts], pc_k: [3]}"),
        "'backbone': 'pc_darts', 'pc_k': 3}: pc_k: got 3; expected a divisor of init_channels (8)",
    ),
    "a stage layout that does not fit the cells": (
        BASE.replace("{preset: cpu-tiny}", "{preset: cpu-tiny, overrides: {layers: 4}}").replace(
            "]}", "], backbone: [darts, pdarts]}"
        ),
        "grid.backbone[1]: pdarts_stage_layers: got (3, 4, 5); expected its last stage at "
        "layers=4 cells",
    ),
    "grid over max_trials": (BASE + "max_trials: 5\n", "max_trials: the sweep has 6 trials"),
    "optuna over max_trials": (OPTUNA + "max_trials: 3\n", "max_trials: the sweep has 4 trials"),
    "optuna reversed range": (
        OPTUNA.replace("{low: 0.02, high: 0.1}", "{low: 3, high: 2}"),
        "strategy.L: expected low < high",
    ),
    "optuna negative range": (
        OPTUNA.replace("{low: 0.3, high: 1.5}", "{low: -1, high: 1.5}"),
        "strategy.F.low:",
    ),
    "optuna without ranges": (
        "name: t\nstrategy: {kind: optuna, num_samples: 2}\n",
        "strategy: kind optuna needs L, F",
    ),
    "optuna with L in the grid": (OPTUNA + "grid: {L: [0.05]}\n", "grid.L: optuna samples L"),
    "optuna keys under grid": (BASE + "strategy: {sampler: tpe}\n", "strategy: sampler: used"),
    "unsafe name": (BASE.replace("name: t", "name: '../x y'"), "name: expected"),
    "negative gpu": (BASE + "resources: {gpu: -1}\n", "resources.gpu:"),
    "grid value not a list": ("name: t\ngrid: {L: 2.5, F: [1]}\n", "grid.L:"),
    "grid without F": ("name: t\ngrid: {L: [1]}\n", "grid: no F"),
    "unknown storage scheme": (
        BASE + "storage: {path: 'ftp://host/runs'}\n",
        "storage.path: unknown filesystem scheme 'ftp' in 'ftp://host/runs'; expected a local "
        "directory or a URI of file, s3",
    ),
    "relative file URI": (
        BASE + "storage: {path: 'file://runs/x'}\n",
        "storage.path: 'file://runs/x': a file URI needs an absolute path, file:///abs/path",
    ),
    "URI without bucket": (BASE + "storage: {path: 's3:///x'}\n", "storage.path: 's3:///x': no"),
    "URI with a space": (BASE + "storage: {path: 's3://b/a b'}\n", "storage.path: 's3://b/a b'"),
    "unknown report key": (
        BASE + "report: {projection: [L, F]}\n",
        "report.projection: unknown key; expected one of projection_2d, projection_3d",
    ),
    "unknown projection column": (
        BASE + "report: {projection_2d: [test_error, accuracy]}\n",
        "report.projection_2d[1]: unknown column 'accuracy'; expected one of test_error, "
        "params_m, flops_m, pgd_acc, ood_aupr, val_loss",
    ),
    "string grid key is not plottable": (
        BASE.replace("]}", "], order: [first]}") + "report: {projection_3d: [L, F, order]}\n",
        "report.projection_3d[2]: unknown column 'order'",
    ),
    "projection of three names": (
        BASE + "report: {projection_2d: [L, F, seed]}\n",
        "report.projection_2d: expected 2 column names, got 3",
    ),
    # Issue 10, items 8 and 9: values that used to pass and only failed inside trials.
    "name with a newline": (BASE.replace("name: t", 'name: "nl\\n"'), "name: expected 1 to 64"),
    "unknown dataset": (BASE + "dataset: cifar11\n", "dataset: got 'cifar11'"),
    "OoD set equal to the in-distribution set": (
        BASE + "dataset: digits\nood_dataset: digits\n",
        "ood_dataset: got 'digits', the in-distribution set itself",
    ),
    "bad device in the grid": (
        BASE.replace("]}", "], device: [cudaXYZ]}"),
        "grid.device[0]: got 'cudaXYZ'; expected cpu, cuda, cuda:N or mps",
    ),
    "seed over 32 bits": (
        BASE.replace("]}", "], seed: [1180591620717411303424]}"),
        "grid.seed[0]: got 1180591620717411303424; expected 0 to 4294967295",
    ),
    "huge bound": (BASE.replace("[0.03, 0.05]", "[1e308]"), "grid.L[0]: expected a bound <= 10000"),
    "database URL": (
        BASE + "storage: {database_url: 'not a url'}\n",
        "storage.database_url: expected a database URL DIALECT[+DRIVER]://..., e.g. "
        "sqlite:////abs/results.db or postgresql+psycopg://user@host/db, or env:VARIABLE, "
        "got 'not a url'",
    ),
    "a billionth of a CPU": (BASE + "resources: {cpu: 1e-9}\n", "resources.cpu: expected 0.01 to"),
    "a billionth of a GPU": (BASE + "resources: {gpu: 1e-9}\n", "resources.gpu: expected 0, a"),
    "max_trials over the limit": (BASE + "max_trials: 1000000\n", "max_trials: Input should be"),
    "optuna range over the limit": (
        OPTUNA.replace("{low: 0.3, high: 1.5}", "{low: 0.3, high: 1e9}"),
        "strategy: F.high: got 1e+09; expected at most 100000",
    ),
    "variants without a variant key": (
        BASE + "variants: {a: {weighting: equal}}\n",
        "variants: a defined but the grid has no variant key",
    ),
    "unknown variant": (
        BASE.replace("F: [0.4, 0.6, 0.9]}", "F: [0.4], variant: [a, b]}") + "variants: {a: {}}\n",
        "grid.variant[1]: unknown variant 'b'",
    ),
    "variant key without variants": (
        BASE.replace("F: [0.4, 0.6, 0.9]}", "F: [0.4], variant: [a]}"),
        "grid.variant[0]: unknown variant 'a'; expected one of the variants section's names "
        "(none defined)",
    ),
    "variant with an unknown search key": (
        BASE.replace("F: [0.4, 0.6, 0.9]}", "F: [0.4], variant: [a]}")
        + "variants: {a: {weigthing: equal}}\n",
        "variants.a.weigthing: unknown",
    ),
    "variant with a bad value": (
        BASE.replace("F: [0.4, 0.6, 0.9]}", "F: [0.4], variant: [a]}")
        + "variants: {a: {weighting: best}}\n",
        "variants.a.weighting",
    ),
    "variant with an unsafe name": (
        BASE.replace("F: [0.4, 0.6, 0.9]}", "F: [0.4], variant: ['w/o']}")
        + "variants: {'w/o': {}}\n",
        "variants.'w/o': expected a name",
    ),
    "repeated projection column": (
        BASE + "report: {projection_3d: [L, F, L]}\n",
        "report.projection_3d[2]: 'L' is repeated",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_with_one_line_naming_the_field(case: str) -> None:
    text, expected = BAD[case]
    with pytest.raises(ConfigError) as error:
        parse_sweep(text, "sweeps/bad.yaml")
    message = str(error.value)
    assert message.startswith("sweeps/bad.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_variants_override_the_search_and_the_point_overrides_them() -> None:
    """A point's variant is applied over the search overrides, and its other keys over the
    variant; the variant is a grid key like any other (trial keys, counts)."""
    spec = load_sweep(SWEEPS / "ablations.yaml")
    points = grid_points(spec)
    assert trial_count(spec) == len(points) == 15
    by_variant = {p["variant"]: search_config_for(spec, p) for p in points if p["seed"] == 1}
    assert by_variant["no_mgda"].weighting == "equal"
    assert by_variant["at_in_ll"].adv_train_in_lower is True
    assert by_variant["no_ood_in_ll"].ood_in_lower is False
    assert by_variant["darts"].objectives == ("val",)
    assert by_variant["e2rnas"] == search_config_for(
        spec, {"L": 0.07, "F": 0.9, "seed": 1}
    )  # the empty variant is the plain search
    assert all(config.order == "first" and config.seed == 1 for config in by_variant.values())
    text = BASE.replace("F: [0.4, 0.6, 0.9]}", "F: [0.4], variant: [a], seed: [3]}")
    spec = parse_sweep(text + "variants: {a: {seed: 9, weighting: equal}}\n", "t")
    (point,) = grid_points(spec)[:1]
    assert search_config_for(spec, point).seed == 3  # the point's own key wins
    assert trial_key(point) == "F=0.4_L=0.03_seed=3_variant=a"


def test_load_sweep_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(BASE.replace("[0.03, 0.05]", "[0.03, -2]"))
    with pytest.raises(ConfigError, match=r"x\.yaml: grid\.L\[1\]: expected a bound >= 0, got -2"):
        load_sweep(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_sweep(tmp_path / "missing.yaml")


def test_storage_uri_and_report_section() -> None:
    spec = parse_sweep(BASE, "t")
    assert spec.report.projection_2d == ("test_error", "params_m")
    assert spec.report.projection_3d == ("test_error", "params_m", "pgd_acc")
    for uri in ("s3://bucket/prefix", "gs://bucket", "file:///abs/runs", "abfs://c@acct/p"):
        assert parse_sweep(BASE + f"storage: {{path: '{uri}'}}\n", "t").storage.path == uri
    chosen = parse_sweep(
        BASE.replace("]}", "], lr: [0.1]}")
        + "report: {projection_2d: [L, lr], projection_3d: [F, search_seconds, ood_aupr]}\n",
        "t",
    )
    assert chosen.report.projection_2d == ("L", "lr")
    assert chosen.report.projection_3d == ("F", "search_seconds", "ood_aupr")
    assert "lr" in plottable_columns(chosen) and "lr" not in plottable_columns(spec)


# -- work before the caps (issue 10, item 3) --------------------------------------------------


@pytest.fixture
def configs_built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many SearchConfig objects are built (each runs the core's checks once)."""
    import search_core.config

    built = [0]
    check = search_core.config.validate

    def counting(config: search_core.config.SearchConfig) -> None:
        built[0] += 1
        check(config)

    monkeypatch.setattr(search_core.config, "validate", counting)
    return built


def _values(count: int, step: float) -> str:
    return ", ".join(f"{step * (i + 1):g}" for i in range(count))


def test_a_large_grid_is_refused_on_its_count_before_any_config(configs_built: list[int]) -> None:
    cube = (
        f"name: cube\nsearch: {{preset: cpu-tiny}}\ngrid:\n  L: [{_values(30, 0.01)}]\n"
        f"  F: [{_values(30, 0.1)}]\n  seed: [{', '.join(map(str, range(30)))}]\n"
    )
    assert len(cube) < 600
    with pytest.raises(ConfigError, match="max_trials: the sweep has 27000 trials"):
        parse_sweep(cube, "t")
    square = cube.split("  seed:")[0] + "max_trials: 1000\n"
    with pytest.raises(ConfigError, match="grid: 900 trials exceed this service's cap of 50"):
        parse_sweep(square, "t", service_cap=50)
    assert configs_built[0] == 0


def _seed_sweep(count: int, repeat: bool) -> str:
    seeds = [10_000_000 + i for i in range(count)]
    if repeat:
        seeds[-1] = seeds[0]
    return (
        "name: seeds\nsearch: {preset: cpu-tiny}\nmax_trials: 10000\n"
        f"grid: {{L: [0.05], F: [0.5], seed: [{', '.join(map(str, seeds))}]}}\n"
    )


def test_a_long_grid_list_is_checked_in_linear_work(configs_built: list[int]) -> None:
    text = _seed_sweep(8500, repeat=False)
    assert len(text) > 85_000
    with pytest.raises(ConfigError, match="max_trials: the sweep has 8500 trials"):
        parse_sweep(text.replace("max_trials: 10000", "max_trials: 100"), "t")
    assert configs_built[0] == 0
    with pytest.raises(ConfigError, match=r"grid\.seed\[8499\]: repeated value 10000000; list"):
        parse_sweep(_seed_sweep(8500, repeat=True), "t")
    assert configs_built[0] < 10  # the preset and the base; no grid value or point
    configs_built[0] = 0
    spec = parse_sweep(text, "t")
    assert trial_count(spec) == 8500
    # One config per distinct grid value, one per point, and a few for the preset and base.
    assert configs_built[0] <= 2 * 8500 + 10


def test_equal_numbers_are_repeats() -> None:
    with pytest.raises(ConfigError, match=r"grid\.L\[1\]: repeated value 1\.0"):
        parse_sweep(BASE.replace("[0.03, 0.05]", "[1, 1.0]"), "t")


def test_gpus_of_an_embedded_local_ray_are_checked() -> None:
    spec = parse_sweep(BASE + "resources: {gpu: 0.5}\n", "t")
    with pytest.raises(ConfigError, match=r"resources\.gpu: 0\.5 GPU per trial, but this machine"):
        check_local_gpu(spec, cuda_available=False)
    check_local_gpu(spec, cuda_available=True)
    check_local_gpu(parse_sweep(BASE + "resources: {gpu: 0}\n", "t"), cuda_available=False)
    check_local_gpu(parse_sweep(BASE, "t"), cuda_available=False)  # unset: 1 only with CUDA
