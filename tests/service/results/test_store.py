"""Tests of the results store on real databases: the same suite on a SQLite file and on a
real PostgreSQL server (a fresh database per test on the throwaway server of
``tests/conftest.py``, or on the server ``E2RNAS_TEST_POSTGRES_URL`` names).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pandas.testing as pdt
import pytest
from sqlalchemy import event, insert, inspect
from sqlalchemy.dialects import postgresql

from search_core.errors import ConfigError, E2RNASError
from search_core.genotypes import BUNDLED
from service.results.store import (
    ResultStore,
    StoreError,
    UnknownSweepError,
    default_url,
    sweeps_table,
    trials_table,
)
from service.results.table import FLOAT_COLUMNS, RESULT_COLUMNS, package_versions, results_frame

SPEC = {"preset": "tiny", "grid": {"L": [1.0, 2.5], "F": [100.0, 400.0]}, "seeds": [0, 1]}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ResultStore]:
    if request.param == "sqlite":
        url = default_url(tmp_path)
    else:
        # Requested here, not as an argument: the SQLite variant starts no PostgreSQL server.
        url = request.getfixturevalue("postgres_db_url")
    result_store = ResultStore(url)
    assert result_store.engine.dialect.name == request.param
    result_store.create_schema()
    yield result_store
    result_store.close()


def trial(sweep_id: str, index: int, genotype: str | None, **changes: Any) -> dict[str, Any]:
    """A results row as `service.results.trial_row` makes it; ``genotype=None``: failed."""
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(dict.fromkeys(FLOAT_COLUMNS, math.nan))
    row.update(
        sweep_id=sweep_id,
        trial_id=f"{index:04d}",
        status="failed",
        evaluation="none",
        versions=package_versions(),
        L=1.0 + index,
        F=100.0 * (index + 1),
        seed=index,
        no_ood=index % 2 == 1,
    )
    if genotype is not None:
        g = BUNDLED[genotype]
        row.update(
            status="completed",
            val_loss=0.5 + index,
            ood_loss=0.25,
            adv_loss=1.5,
            nop_loss=0.125,
            flops_loss=0.0625,
            mgda_weights=json.dumps([0.2, 0.2, 0.2, 0.2, 0.2]),
            test_error=2.5 + index / 10,
            params_m=3.349342,
            flops_m=528.1 + index,
            pgd_acc=40.0,
            ood_aupr=90.0 - index,
            ood_aupr_paper=33.0 + index,
            pgd_acc_paper=52.5,
            ood_fpr95_in=41.25,
            grad_norms=json.dumps([0.5, 1.0, 2.0, 0.25, 3.0 + index]),
            effective_weights=json.dumps([0.1, 0.2, 0.4, 0.05, 0.6]),
            search_options=json.dumps({"cost_scale": 7.5, "mgda_on": "direct"}, sort_keys=True),
            latency_ms=4.5,
            evaluation="proxy",
            genotype=g.dumps(),
            genotype_hash=g.genotype_hash(),
            search_seconds=123.0,
            eval_seconds=45.0,
            device="cpu",
        )
    row.update(changes)
    return row


def rows_of(sweep_id: str = "sw1") -> list[dict[str, Any]]:
    return [
        trial(sweep_id, 0, "darts_v1"),
        trial(sweep_id, 1, "darts_v2"),
        trial(sweep_id, 2, None),
        trial(sweep_id, 3, "pdarts"),
    ]


def count_trials(store: ResultStore) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(trials_table.select()).all())


def test_schema_has_the_contract_columns(store: ResultStore) -> None:
    found = inspect(store.engine)
    assert {"sweeps", "trials"} <= set(found.get_table_names())
    columns = [c["name"] for c in found.get_columns("trials")]
    assert set(columns) == {"swept", *RESULT_COLUMNS}
    assert found.get_pk_constraint("trials")["constrained_columns"] == ["sweep_id", "trial_id"]
    assert found.get_pk_constraint("sweeps")["constrained_columns"] == ["sweep_id"]
    store.create_schema()  # a second call changes nothing


def test_sweeps_are_created_updated_and_listed(store: ResultStore) -> None:
    store.upsert_sweep("sw1", "grid", "running", SPEC)
    first = store.get_sweep("sw1")
    assert first["name"] == "grid" and first["status"] == "running" and first["spec"] == SPEC
    assert first["created_at"].tzinfo is not None
    store.upsert_sweep("sw1", "grid v2", "running", {"preset": "paper"})
    store.set_sweep_status("sw1", "completed")
    second = store.get_sweep("sw1")
    assert second["name"] == "grid v2" and second["spec"] == {"preset": "paper"}
    assert second["status"] == "completed"
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] >= first["updated_at"]
    store.upsert_sweep("sw2", "other", "pending", {})
    assert [s["sweep_id"] for s in store.sweeps()] == ["sw1", "sw2"]


def test_a_stale_status_never_overwrites_one_written_meanwhile(store: ResultStore) -> None:
    # The service's refresh reads "running", the job's collection then writes "done" through
    # a store of its own; the refresh's write, conditional on what it read, keeps "done".
    store.upsert_sweep("sw1", "grid", "running", SPEC)
    seen = store.get_sweep("sw1")["status"]
    job = ResultStore(store.url)
    try:
        job.update_sweep("sw1", status="done", progress={"done": 2})
    finally:
        job.close()
    store.update_sweep("sw1", if_status=seen, status="running", progress={"done": 1})
    row = store.get_sweep("sw1")
    assert row["status"] == "done" and row["progress"] == {"done": 1}
    # While the status is still the one read, the conditional write goes through.
    store.update_sweep("sw1", if_status="done", status="failed", message="m")
    assert (store.get_sweep("sw1")["status"], store.get_sweep("sw1")["message"]) == ("failed", "m")


def test_unknown_sweep_ids_are_clear_key_errors(store: ResultStore) -> None:
    for call in (
        lambda: store.get_sweep("nope"),
        lambda: store.set_sweep_status("nope", "failed"),
        lambda: store.trials_frame("nope"),
        lambda: store.ingest(results_frame(rows_of("nope"))),
    ):
        with pytest.raises(UnknownSweepError, match="no sweep 'nope'") as info:
            call()
        assert isinstance(info.value, KeyError) and isinstance(info.value, E2RNASError)
    assert count_trials(store) == 0


def test_ingest_twice_does_not_duplicate(store: ResultStore) -> None:
    store.upsert_sweep("sw1", "grid", "running", SPEC)
    frame = results_frame(rows_of())
    assert store.ingest(frame) == 4
    assert store.ingest(frame) == 4
    assert count_trials(store) == 4
    pdt.assert_frame_equal(store.trials_frame("sw1"), frame)


def test_an_updated_row_replaces_the_old_values(store: ResultStore) -> None:
    store.upsert_sweep("sw1", "grid", "running", SPEC)
    store.ingest(results_frame(rows_of()))
    rows = rows_of()
    rows[2] = trial("sw1", 2, "pc_darts", test_error=9.5)  # the failed trial was rerun
    rows.append(trial("sw1", 4, "darts_v2"))
    updated = results_frame(rows[2:])
    assert store.ingest(updated) == 3
    stored = store.trials_frame("sw1")
    assert stored["trial_id"].tolist() == ["0000", "0001", "0002", "0003", "0004"]
    pdt.assert_frame_equal(stored, results_frame(rows))
    assert stored.loc[2, "status"] == "completed" and stored.loc[2, "test_error"] == 9.5


def test_round_trip_keeps_columns_dtypes_and_missing_values(store: ResultStore) -> None:
    store.upsert_sweep("sw1", "grid", "running", SPEC)
    store.upsert_sweep("sw2", "other", "running", SPEC)
    frame = results_frame(rows_of())
    store.ingest(pd.concat([frame, results_frame(rows_of("sw2"))], ignore_index=True))
    stored = store.trials_frame("sw1")
    pdt.assert_frame_equal(stored, frame)
    assert list(stored.columns) == [*RESULT_COLUMNS, "F", "L", "no_ood", "seed"]
    assert stored["no_ood"].dtype == "bool" and stored["seed"].dtype == "int64"
    assert stored.loc[2, ["genotype", "device"]].isna().all()
    assert math.isnan(stored.loc[2, "test_error"])
    assert len(store.trials_frame("sw2")) == 4


def test_an_empty_sweep_has_an_empty_frame(store: ResultStore) -> None:
    store.upsert_sweep("sw1", "grid", "pending", SPEC)
    assert store.ingest(results_frame([])) == 0
    empty = store.trials_frame("sw1")
    assert list(empty.columns) == list(RESULT_COLUMNS) and empty.empty


def test_a_wrongly_typed_row_leaves_the_table_unchanged(store: ResultStore) -> None:
    store.upsert_sweep("sw1", "grid", "running", SPEC)
    store.ingest(results_frame(rows_of()))
    before = store.trials_frame("sw1")
    frame = results_frame(rows_of()).astype({"test_error": object})
    frame["test_error"] = frame["test_error"] + 1.0
    frame.loc[3, "test_error"] = "fast"
    with pytest.raises(ConfigError, match="row 3, column test_error: expected a number"):
        store.ingest(frame)
    pdt.assert_frame_equal(store.trials_frame("sw1"), before)


def test_a_failure_inside_the_transaction_rolls_back_every_row(store: ResultStore) -> None:
    store.upsert_sweep("sw1", "grid", "running", SPEC)
    store.ingest(results_frame(rows_of()))
    before = store.trials_frame("sw1")
    rows = [trial("sw1", k, "darts_v2", test_error=50.0) for k in range(6)]
    written: list[str] = []

    def fail_on_the_fourth_trial(*args: Any) -> None:
        statement = str(args[2])
        if statement.lstrip().upper().startswith("INSERT INTO TRIALS"):
            written.append(statement)
            if len(written) == 4:
                raise RuntimeError("disk full")

    event.listen(store.engine, "before_cursor_execute", fail_on_the_fourth_trial)
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            store.ingest(results_frame(rows))
    finally:
        event.remove(store.engine, "before_cursor_execute", fail_on_the_fourth_trial)
    assert len(written) == 4  # three rows were written before the failure, then rolled back
    pdt.assert_frame_equal(store.trials_frame("sw1"), before)
    assert count_trials(store) == 4


def test_malformed_frames_are_refused(store: ResultStore) -> None:
    store.upsert_sweep("sw1", "grid", "running", SPEC)
    frame = results_frame(rows_of())
    with pytest.raises(ConfigError, match="missing contract columns"):
        store.ingest(frame.drop(columns=["genotype_hash"]))
    with pytest.raises(ConfigError, match="duplicate"):
        store.ingest(pd.concat([frame, frame.iloc[:1]], ignore_index=True))
    assert count_trials(store) == 0


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    store = ResultStore(default_url(tmp_path))
    store.create_schema()
    row = {"sweep_id": "ghost", "trial_id": "0", "swept": {}, "status": "failed"}
    with pytest.raises(Exception, match="FOREIGN KEY"), store.engine.begin() as conn:
        conn.execute(insert(trials_table), [row])
    store.close()


def test_a_store_reopened_on_the_same_file_sees_the_results(tmp_path: Path) -> None:
    url = default_url(tmp_path)
    assert url == f"sqlite:///{tmp_path.resolve() / 'results.db'}"
    first = ResultStore(url)
    first.create_schema()
    first.upsert_sweep("sw1", "grid", "completed", SPEC)
    frame = results_frame(rows_of())
    first.ingest(frame)
    first.close()
    second = ResultStore(url)
    pdt.assert_frame_equal(second.trials_frame("sw1"), frame)
    assert second.get_sweep("sw1")["status"] == "completed"
    second.close()


def test_writes_to_an_unsupported_dialect_are_refused(tmp_path: Path) -> None:
    store = ResultStore(default_url(tmp_path))
    store.engine.dialect.name = "oracle"
    with pytest.raises(StoreError, match="SQLite or PostgreSQL"):
        store.upsert_sweep("sw1", "grid", "running", SPEC)
    store.close()


def test_the_postgresql_upsert_compiles_to_on_conflict_do_update(tmp_path: Path) -> None:
    """Checked without a server: the statement the PostgreSQL variant would send."""
    store = ResultStore(default_url(tmp_path))
    store.engine.dialect.name = "postgresql"
    pg = postgresql.dialect()
    trials_sql = str(store._upsert(trials_table, ("sweep_id", "trial_id")).compile(dialect=pg))
    assert "ON CONFLICT (sweep_id, trial_id) DO UPDATE SET" in trials_sql
    assert "test_error = excluded.test_error" in trials_sql
    assert "sweep_id = excluded" not in trials_sql
    sweeps_sql = str(
        store._upsert(sweeps_table, ("sweep_id",), keep=("created_at",)).compile(dialect=pg)
    )
    assert "updated_at = excluded.updated_at" in sweeps_sql
    assert "created_at = excluded" not in sweeps_sql
    store.close()
