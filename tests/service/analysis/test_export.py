"""Tests of the front export: the four files, read back with independent readers.

``genotypes.py`` is checked the way DARTS uses it: executed (it is our own generated file),
its ``Genotype`` namedtuples compared field by field with the exported genotypes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pandas.testing as pdt
import pytest

from search_core.errors import ConfigError
from search_core.genotypes import BUNDLED, PRIMITIVES, Genotype
from service.analysis.export import (
    FRONT_CSV,
    FRONT_PARQUET,
    GENOTYPES_JSON,
    GENOTYPES_PY,
    ROBUST_CSV,
    export_front,
    genotype_name,
)
from service.results.table import (
    FLOAT_COLUMNS,
    FRONT_METRICS,
    RESULT_COLUMNS,
    TEXT_COLUMNS,
    package_versions,
    results_frame,
)


def front_row(index: int, genotype: str | None, **changes: Any) -> dict[str, Any]:
    """A nondominated row of the results table (``genotype=None``: no genotype)."""
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(dict.fromkeys(FLOAT_COLUMNS, math.nan))
    row.update(
        sweep_id="sw1",
        trial_id=f"{index:03d}",
        status="completed",
        evaluation="retrain",
        versions=package_versions(),
        test_error=2.5 + index,
        params_m=3.0 - index / 10,
        flops_m=500.0 - index,
        pgd_acc=40.0 + index,
        ood_aupr=90.0,
        latency_ms=4.25,
        mgda_weights=json.dumps([0.2] * 5),
        search_seconds=100.0,
        eval_seconds=1000.0,
        device="cpu",
        L=2.0 + index,
        F=400.0,
        seed=index,
    )
    if genotype is not None:
        g = BUNDLED[genotype]
        row.update(genotype=g.dumps(), genotype_hash=g.genotype_hash())
    row.update(changes)
    return row


def front_of(names: Sequence[str | None]) -> pd.DataFrame:
    return results_frame([front_row(k, name) for k, name in enumerate(names)])


def exec_genotypes_py(path: Path) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace


def as_darts_tuple(genotype: Genotype) -> tuple[Any, ...]:
    """What DARTS's namedtuple holds for ``genotype``: lists of tuples and ranges/lists."""
    return (
        list(genotype.normal),
        list(genotype.normal_concat),
        list(genotype.reduce),
        list(genotype.reduce_concat),
    )


def test_export_writes_the_four_files(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "export"
    paths = export_front(front_of(["darts_v2", "pdarts"]), out)
    assert set(paths) == {GENOTYPES_JSON, GENOTYPES_PY, FRONT_CSV, FRONT_PARQUET}
    assert {p.name for p in out.iterdir()} == set(paths)  # no temporary file is left behind
    assert all(paths[name] == out / name for name in paths)


def test_robust_csv_joins_the_set_and_leaves_with_it(tmp_path: Path) -> None:
    """Given the robustness table, the export writes it as robust.csv, unchanged; an export
    without one replaces the whole set, so no stale robust.csv stays beside new files."""
    robust = pd.DataFrame(
        {"configuration": ["F=0.3_L=0.02", "F=0.9_L=0.07"], "dominance_probability": [1.0, 0.5]}
    )
    paths = export_front(front_of(["darts_v2"]), tmp_path, robust)
    assert set(paths) == {GENOTYPES_JSON, GENOTYPES_PY, FRONT_CSV, FRONT_PARQUET, ROBUST_CSV}
    pd.testing.assert_frame_equal(pd.read_csv(paths[ROBUST_CSV]), robust)
    again = export_front(front_of(["pdarts"]), tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == set(again) and ROBUST_CSV not in again


def test_genotypes_json_lists_hash_genotype_metrics_and_bounds(tmp_path: Path) -> None:
    front = front_of(["darts_v2", "pdarts"])
    entries = json.loads(export_front(front, tmp_path)[GENOTYPES_JSON].read_text())
    assert [e["genotype_hash"] for e in entries] == [
        BUNDLED["darts_v2"].genotype_hash(),
        BUNDLED["pdarts"].genotype_hash(),
    ]
    first = entries[0]
    assert set(first) == {"genotype_hash", "genotype", *FRONT_METRICS, "L", "F"}
    assert Genotype.from_json(first["genotype"]) == BUNDLED["darts_v2"]
    assert (first["test_error"], first["params_m"], first["L"], first["F"]) == (
        2.5,
        3.0,
        2.0,
        400.0,
    )


def test_genotypes_json_without_bounds_and_with_missing_metrics(tmp_path: Path) -> None:
    front = front_of(["darts_v1"]).drop(columns=["L", "F"])
    front.loc[0, "pgd_acc"] = math.nan
    (entry,) = json.loads(export_front(front, tmp_path)[GENOTYPES_JSON].read_text())
    assert "L" not in entry and "F" not in entry
    assert entry["pgd_acc"] is None  # JSON null, never the non-standard NaN


def test_duplicate_genotypes_are_exported_once_keeping_the_first_row(tmp_path: Path) -> None:
    front = front_of(["darts_v2", "pdarts", "darts_v2", None])
    paths = export_front(front, tmp_path)
    entries = json.loads(paths[GENOTYPES_JSON].read_text())
    assert [e["genotype_hash"] for e in entries] == [
        BUNDLED["darts_v2"].genotype_hash(),
        BUNDLED["pdarts"].genotype_hash(),
    ]
    assert entries[0]["test_error"] == 2.5  # row 0, not row 2
    namespace = exec_genotypes_py(paths[GENOTYPES_PY])
    assert len(namespace["GENOTYPES"]) == 2
    # the CSV and Parquet files keep every row of the front
    assert len(pd.read_parquet(paths[FRONT_PARQUET])) == 4


def test_genotypes_py_executes_into_darts_namedtuples(tmp_path: Path) -> None:
    names = ["darts_v1", "darts_v2", "pc_darts", "pdarts"]
    paths = export_front(front_of(names), tmp_path)
    namespace = exec_genotypes_py(paths[GENOTYPES_PY])
    darts_genotype = namespace["Genotype"]
    assert darts_genotype._fields == ("normal", "normal_concat", "reduce", "reduce_concat")
    assert len(namespace["GENOTYPES"]) == len(names)
    for name, exported in zip(names, namespace["GENOTYPES"], strict=True):
        genotype = BUNDLED[name]
        assert isinstance(exported, darts_genotype)
        assert namespace[genotype_name(genotype.genotype_hash())] is exported
        assert tuple(list(field) for field in exported) == as_darts_tuple(genotype)
    # DARTS's own loader reads it too: our parser finds each genotype by its name
    text = paths[GENOTYPES_PY].read_text()
    for name in names:
        genotype = BUNDLED[name]
        parsed = Genotype.from_darts_text(text, name=genotype_name(genotype.genotype_hash()))
        assert parsed == genotype


DARTS_PRIMITIVES = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]  # DARTS's cnn/genotypes.py, in its order: the columns of its alphas


def test_genotypes_py_replaces_dartss_own_file(tmp_path: Path) -> None:
    """Imported as a module named ``genotypes`` from the working directory, the way DARTS's
    ``train.py`` does (``import genotypes``, then ``eval("genotypes.%s" % args.arch)``), in a
    fresh interpreter: every exported genotype is found by its name, and ``Genotype`` and
    ``PRIMITIVES`` are DARTS's."""
    import subprocess
    import sys

    names = ["darts_v2", "pdarts"]
    export_front(front_of(names), tmp_path)
    archs = [genotype_name(BUNDLED[name].genotype_hash()) for name in names]
    script = (
        "import json, sys\n"
        "import genotypes\n"
        "found = {}\n"
        "for arch in sys.argv[1:]:\n"
        "    genotype = eval('genotypes.%s' % arch)\n"
        "    found[arch] = [list(map(list, genotype.normal)), list(genotype.normal_concat),\n"
        "                   list(map(list, genotype.reduce)), list(genotype.reduce_concat)]\n"
        "print(json.dumps({'primitives': genotypes.PRIMITIVES,\n"
        "                  'fields': genotypes.Genotype._fields, 'found': found}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *archs],  # sys.path[0]: the working directory
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["primitives"] == DARTS_PRIMITIVES == list(PRIMITIVES)
    assert answer["fields"] == ["normal", "normal_concat", "reduce", "reduce_concat"]
    for name, arch in zip(names, archs, strict=True):
        normal, normal_concat, reduce, reduce_concat = answer["found"][arch]
        genotype = BUNDLED[name]
        assert [tuple(edge) for edge in normal] == list(genotype.normal)
        assert [tuple(edge) for edge in reduce] == list(genotype.reduce)
        assert (normal_concat, reduce_concat) == (
            list(genotype.normal_concat),
            list(genotype.reduce_concat),
        )


def test_front_csv_and_parquet_round_trip(tmp_path: Path) -> None:
    front = front_of(["darts_v2", None, "pdarts"])
    paths = export_front(front, tmp_path)
    parquet = pd.read_parquet(paths[FRONT_PARQUET])
    pdt.assert_frame_equal(parquet, front)
    csv = pd.read_csv(paths[FRONT_CSV], dtype=dict.fromkeys(TEXT_COLUMNS, "str"))
    assert list(csv.columns) == list(front.columns)
    pdt.assert_frame_equal(csv, front, check_exact=False, rtol=1e-12)
    assert csv["trial_id"].tolist() == ["000", "001", "002"]


def test_an_empty_front_exports_empty_files(tmp_path: Path) -> None:
    paths = export_front(results_frame([]), tmp_path)
    assert json.loads(paths[GENOTYPES_JSON].read_text()) == []
    assert exec_genotypes_py(paths[GENOTYPES_PY])["GENOTYPES"] == []
    assert list(pd.read_parquet(paths[FRONT_PARQUET]).columns) == list(RESULT_COLUMNS)


def test_a_second_export_replaces_the_files(tmp_path: Path) -> None:
    export_front(front_of(["darts_v1", "darts_v2"]), tmp_path)
    paths = export_front(front_of(["pdarts"]), tmp_path)
    assert len(json.loads(paths[GENOTYPES_JSON].read_text())) == 1
    assert len(exec_genotypes_py(paths[GENOTYPES_PY])["GENOTYPES"]) == 1
    assert len(pd.read_csv(paths[FRONT_CSV])) == 1
    assert {p.name for p in tmp_path.iterdir()} == set(paths)


def test_bad_fronts_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing contract columns"):
        export_front(front_of(["darts_v2"]).drop(columns=["genotype_hash"]), tmp_path / "a")
    wrong = front_of(["darts_v2"])
    wrong.loc[0, "genotype_hash"] = "0123456789abcdef"
    with pytest.raises(ConfigError, match="does not match its genotype"):
        export_front(wrong, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_the_four_files_are_swapped_in_as_one_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export"
    export_front(front_of(["darts_v1", "darts_v2"]), out)
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    seen: list[dict[str, bytes]] = []
    to_parquet = pd.DataFrame.to_parquet

    def watching(frame: pd.DataFrame, path: Path, **kwargs: Any) -> None:
        # The last file of the new set is being written: readers still see the whole old set.
        seen.append({p.name: p.read_bytes() for p in out.iterdir()})
        to_parquet(frame, path, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", watching)
    paths = export_front(front_of(["pdarts"]), out)
    assert seen == [old]
    assert len(json.loads(paths[GENOTYPES_JSON].read_text())) == 1
    assert len(pd.read_csv(paths[FRONT_CSV])) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary left


def test_a_failed_export_leaves_the_old_set_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export"
    export_front(front_of(["darts_v1", "darts_v2"]), out)
    old = {p.name: p.read_bytes() for p in out.iterdir()}

    def full_disk(frame: pd.DataFrame, path: Path, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    with pytest.raises(OSError, match="No space left"):
        export_front(front_of(["pdarts"]), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_an_export_into_a_folder_with_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"holds files other than the export.s.*.notes\.txt."):
        export_front(front_of(["darts_v2"]), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
