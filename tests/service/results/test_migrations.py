"""Tests of the store's schema migrations on real databases, SQLite files and the PostgreSQL
server of ``tests/conftest.py``: a new database is built by the revisions and equals the
store's tables; databases that old versions wrote (the SQL dumps in ``data/``) are adopted and
upgraded with every value kept; processes that start together migrate once; a database that
cannot be migrated is refused with one clear error.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pandas.testing as pdt
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Engine,
    MetaData,
    Table,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

from service.errors import StoreError
from service.results.migrations import POSTGRES_LOCK_KEY, head_revision, migration_config
from service.results.store import ResultStore, default_url, metadata, trials_table
from service.results.table import FLOAT_COLUMNS, RESULT_COLUMNS, results_frame

ROOT = Path(__file__).resolve().parents[3]
DATA = Path(__file__).resolve().parent / "data"
DIALECTS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
KINDS = ["web-service", "pre-web-service"]
SERVICE_COLUMNS = ("job_id", "run_dir", "progress", "message")
LOCK_HELD_S = 1.0
PROCESSES = 3  # with the lock taken out, three collided on every try


def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database of the dialect the test is parametrised with."""
    if request.param == "sqlite":
        return default_url(tmp_path)
    # Requested here, not as an argument: the SQLite variants start no PostgreSQL server.
    url: str = request.getfixturevalue("postgres_db_url")
    return url


@pytest.fixture(params=DIALECTS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request, tmp_path)


@pytest.fixture
def store(url: str) -> Iterator[ResultStore]:
    result_store = ResultStore(url)
    yield result_store
    result_store.close()


def revision_of(engine: Engine) -> str | None:
    """The revision ``alembic_version`` names; None without one."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_differences(engine: Engine) -> list[Any]:
    """What Alembic's autogenerate would change to make the database equal ``metadata``."""
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))


def load_dump(url: str, kind: str) -> None:
    """Load ``data/<kind>.<dialect>.sql`` into the empty database at ``url``."""
    dialect = make_url(url).get_backend_name()
    dump = (DATA / f"{kind}.{dialect}.sql").read_text()
    if dialect == "sqlite":
        connection = sqlite3.connect(make_url(url).database or "")
        connection.executescript(dump)
        connection.close()
        return
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(dump)
    engine.dispose()


# -- a new database ------------------------------------------------------------------------


def test_a_new_database_is_built_by_the_revisions_and_equals_the_tables(
    store: ResultStore,
) -> None:
    assert revision_of(store.engine) is None
    store.create_schema()
    assert revision_of(store.engine) == head_revision() == "0006"
    assert schema_differences(store.engine) == []


def test_an_up_to_date_database_is_read_and_left_alone(store: ResultStore) -> None:
    store.create_schema()
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.create_schema()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert statements  # it did read the version
    writes = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE", "BEGIN")
    assert not [s for s in statements if s.lstrip().upper().startswith(writes)]
    assert not [s for s in statements if "advisory" in s]


def test_the_revisions_downgrade_and_upgrade_again(store: ResultStore) -> None:
    store.create_schema()
    store.upsert_sweep("sw1", "grid", "running", {"preset": "tiny"})
    with store.engine.begin() as connection:
        command.downgrade(migration_config(connection), "0001")
    assert revision_of(store.engine) == "0001"
    columns = {c["name"] for c in inspect(store.engine).get_columns("sweeps")}
    assert not columns & set(SERVICE_COLUMNS) and "spec" in columns
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM sweeps")).scalars().all() == ["grid"]
    with store.engine.begin() as connection:
        command.downgrade(migration_config(connection), "base")
    assert not {"sweeps", "trials"} & set(inspect(store.engine).get_table_names())
    store.create_schema()
    assert revision_of(store.engine) == head_revision()
    assert schema_differences(store.engine) == []


def test_a_failed_upgrade_leaves_the_schema_as_it_was(url: str) -> None:
    load_dump(url, "pre-web-service")
    store = ResultStore(url)

    def fail_on_the_third_column(*args: Any) -> None:
        if "ADD COLUMN progress" in str(args[2]):
            raise RuntimeError("disk full")

    event.listen(store.engine, "before_cursor_execute", fail_on_the_third_column)
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            store.create_schema()
    finally:
        event.remove(store.engine, "before_cursor_execute", fail_on_the_third_column)
    # Neither the stamp nor the two columns added before the failure were kept.
    assert revision_of(store.engine) is None
    columns = {c["name"] for c in inspect(store.engine).get_columns("sweeps")}
    assert not columns & set(SERVICE_COLUMNS)
    store.create_schema()
    assert revision_of(store.engine) == head_revision()
    assert len(store.trials_frame("grid-9a0f3b7c")) == 2
    store.close()


# -- databases that old versions wrote -------------------------------------------------------

# What the dumps in data/ hold, written out here rather than read from make_legacy_dumps.py,
# so that a wrong dump fails these tests.
GENOTYPE = (
    '{"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], '
    '["sep_conv_3x3", 1], ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], '
    '["dil_conv_3x3", 2]], "normal_concat": [2, 3, 4, 5], "reduce": [["max_pool_3x3", 0], '
    '["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1], ["max_pool_3x3", 0], '
    '["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]], "reduce_concat": '
    "[2, 3, 4, 5]}"
)
VERSIONS = '{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}'
SEARCHED = {
    "val_loss": 0.6931471805599453,
    "ood_loss": 0.25,
    "adv_loss": 1.5,
    "nop_loss": 0.125,
    "flops_loss": 0.0625,
    "mgda_weights": "[0.4, 0.3, 0.1, 0.1, 0.1]",
    "params_m": 3.349342,
    "flops_m": 528.1,
    "genotype": GENOTYPE,
    "genotype_hash": "be4a32607156494b",
    "search_seconds": 123.456789,
    "device": "cpu",
}


def at(minute: int) -> dt.datetime:
    return dt.datetime(2026, 11, 20, 9, minute, 30, tzinfo=dt.UTC)


LEGACY_SWEEPS: dict[str, dict[str, Any]] = {
    "web-service": {
        "sweep_id": "quickstart-5d41402a",
        "name": "quickstart",
        "status": "cancelled",
        "spec": {
            "name": "quickstart",
            "preset": "tiny",
            "grid": {"L": [1.0, 2.5], "F": [100.0, 400.0]},
            "seeds": [0],
            "evaluation": "proxy",
        },
        "created_at": at(15),
        "updated_at": at(48),
        "job_id": "raysubmit_8kq3Z1vN2cXpTt5M",
        "run_dir": "/srv/e2rnas/storage/runs/quickstart-5d41402a",
        "progress": {"total": 3, "pending": 0, "running": 0, "done": 2, "failed": 1},
        "message": "cancelled by request",
    },
    "pre-web-service": {
        "sweep_id": "grid-9a0f3b7c",
        "name": "grid",
        "status": "completed",
        "spec": {
            "name": "grid",
            "preset": "tiny",
            "grid": {"L": [1.0]},
            "seeds": [0, 1],
            "evaluation": "retrain",
        },
        "created_at": at(15),
        "updated_at": at(52),
        **dict.fromkeys(SERVICE_COLUMNS),
    },
}
LEGACY_TRIALS: dict[str, list[dict[str, Any]]] = {
    "web-service": [
        {
            "trial_id": "0000",
            "status": "completed",
            **SEARCHED,
            "evaluation": "proxy",
            "test_error": 12.345678901234567,
            "pgd_acc": 40.0,
            "ood_aupr": 90.5,
            "latency_ms": 4.5,
            "eval_seconds": 45.0,
            "L": 1.0,
            "F": 100.0,
            "seed": 0,
            "no_ood": False,
        },
        {"trial_id": "0001", "status": "failed", "L": 2.5, "F": 100.0, "seed": 0, "no_ood": False},
        {
            "trial_id": "0002",
            "status": "completed",
            **SEARCHED,
            "val_loss": 0.30000000000000004,
            "L": 1.0,
            "F": 400.0,
            "seed": 0,
            "no_ood": True,
            "backbone": "darts",
        },
    ],
    "pre-web-service": [
        {
            "trial_id": "0000",
            "status": "completed",
            **SEARCHED,
            "evaluation": "retrain",
            "test_error": 2.76,
            "pgd_acc": 38.25,
            "ood_aupr": 88.0,
            "latency_ms": 5.0,
            "eval_seconds": 3600.0,
            "L": 1.0,
            "seed": 0,
        },
        {"trial_id": "0001", "status": "failed", "L": 1.0, "seed": 1},
    ],
}


def legacy_frame(kind: str, rerun: dict[str, Any] | None = None) -> pd.DataFrame:
    """The results table of ``kind``'s sweep; ``rerun`` replaces the trial of its id."""
    rows = []
    for values in LEGACY_TRIALS[kind]:
        if rerun is not None and rerun["trial_id"] == values["trial_id"]:
            values = rerun
        row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
        row.update(dict.fromkeys(FLOAT_COLUMNS, math.nan))
        # Every trial stored before revision 0003 searched DARTS; the one whose swept values
        # named it has it in the column now, and no longer among its swept values.
        row.update(
            sweep_id=LEGACY_SWEEPS[kind]["sweep_id"],
            evaluation="none",
            versions=VERSIONS,
            backbone="darts",
        )
        row.update(values)
        rows.append(row)
    return results_frame(rows)


@pytest.mark.parametrize("kind", KINDS)
def test_a_database_an_old_version_wrote_is_upgraded_with_every_value(url: str, kind: str) -> None:
    load_dump(url, kind)
    store = ResultStore(url)
    assert revision_of(store.engine) is None  # written before the store used Alembic
    sweep_id = LEGACY_SWEEPS[kind]["sweep_id"]
    store.create_schema()
    assert revision_of(store.engine) == head_revision()
    assert schema_differences(store.engine) == []
    assert store.sweeps() == [LEGACY_SWEEPS[kind]]
    pdt.assert_frame_equal(store.trials_frame(sweep_id), legacy_frame(kind))

    store.update_sweep(sweep_id, job_id="raysubmit_again", message="resubmitted")
    rerun = {**LEGACY_TRIALS[kind][1], **SEARCHED, "status": "completed", "test_error": 3.5}
    rerun_frame = legacy_frame(kind, rerun)
    store.ingest(rerun_frame[rerun_frame["trial_id"] == "0001"])
    store.upsert_sweep("new-sweep", "new", "running", {"preset": "tiny"})
    store.ingest(legacy_frame(kind).assign(sweep_id="new-sweep"))
    store.close()

    reopened = ResultStore(url)
    reopened.create_schema()
    sweep = reopened.get_sweep(sweep_id)
    assert sweep["job_id"] == "raysubmit_again" and sweep["message"] == "resubmitted"
    assert sweep["created_at"] == LEGACY_SWEEPS[kind]["created_at"]
    pdt.assert_frame_equal(reopened.trials_frame(sweep_id), rerun_frame)
    pdt.assert_frame_equal(
        reopened.trials_frame("new-sweep"), legacy_frame(kind).assign(sweep_id="new-sweep")
    )
    reopened.close()


def swept_of(engine: Engine, trial_id: str) -> dict[str, Any]:
    with engine.connect() as connection:
        found = connection.execute(
            select(trials_table.c.swept).where(trials_table.c.trial_id == trial_id)
        ).scalar_one()
    assert isinstance(found, dict)
    return found


def test_revision_0003_moves_a_swept_backbone_into_its_column_and_back(url: str) -> None:
    """Rows stored at 0002 are DARTS searches, unless their swept values name a backbone;
    a downgrade puts the backbones other than DARTS back among the swept values."""
    load_dump(url, "web-service")
    engine = create_engine(url)
    with engine.begin() as connection:
        command.stamp(migration_config(connection), "0002")
        connection.execute(
            update(trials_table)
            .where(trials_table.c.trial_id == "0001")
            .values(swept={"F": 100.0, "L": 2.5, "backbone": "pc_darts", "seed": 0})
        )
    with engine.begin() as connection:
        command.upgrade(migration_config(connection), "0003")
    with engine.connect() as connection:
        stored = dict(
            connection.execute(select(trials_table.c.trial_id, trials_table.c.backbone)).all()
        )
    assert stored == {"0000": "darts", "0001": "pc_darts", "0002": "darts"}
    assert swept_of(engine, "0001") == {"F": 100.0, "L": 2.5, "seed": 0}
    assert "backbone" not in swept_of(engine, "0002")
    with engine.begin() as connection:
        command.downgrade(migration_config(connection), "0002")
    assert swept_of(engine, "0001")["backbone"] == "pc_darts"
    assert "backbone" not in swept_of(engine, "0000")
    engine.dispose()


REVISION_0006 = {
    "ood_aupr_paper": 33.5,
    "pgd_acc_paper": 52.25,
    "ood_fpr95_in": 41.0,
    "grad_norms": "[0.5, 1.0, 2.0, 0.25, 3.0]",
    "effective_weights": "[0.1, 0.2, 0.4, 0.05, 0.6]",
    "search_options": '{"cost_scale": 7.5, "mgda_on": "direct"}',
}


def _one_trial_at_0005(url: str, **measures: float) -> dict[str, Any]:
    """A database at revision 0005 holding sweep ``s5`` and one done trial (with ``measures``
    too), as the previous version wrote it; the trial's row as stored."""
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(migration_config(connection), "0005")
    at_0005 = MetaData()
    sweeps = Table("sweeps", at_0005, autoload_with=engine)
    trials = Table("trials", at_0005, autoload_with=engine)
    assert not set(REVISION_0006) & set(trials.c.keys())
    sweep = {**LEGACY_SWEEPS["pre-web-service"], "sweep_id": "s5"}
    stored = {
        **SEARCHED,
        "sweep_id": "s5",
        "trial_id": "0000",
        "swept": {"L": 1.0, "seed": 0},
        "status": "done",
        "backbone": "darts",
        "evaluation": "retrain",
        "test_error": 2.76,
        **measures,
        "versions": VERSIONS,
    }
    with engine.begin() as connection:
        connection.execute(sweeps.insert(), [sweep])
        connection.execute(trials.insert(), [stored])
    engine.dispose()
    return stored


def test_a_database_written_at_0005_gains_the_columns_of_0006_empty(url: str) -> None:
    """Rows stored at 0005 keep every value and read the paper-protocol measures as NaN, the
    search's diagnostics and options as missing; new rows store them; a downgrade drops them."""
    stored = _one_trial_at_0005(url, pgd_acc=38.25, proxy_ood_aupr=80.0)
    store = ResultStore(url)
    store.create_schema()
    assert revision_of(store.engine) == head_revision() == "0006"
    assert schema_differences(store.engine) == []
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(dict.fromkeys(FLOAT_COLUMNS, math.nan))
    row.update({k: v for k, v in stored.items() if k != "swept"}, L=1.0, seed=0)
    pdt.assert_frame_equal(store.trials_frame("s5"), results_frame([row]))
    assert math.isnan(store.trials_frame("s5").loc[0, "pgd_acc_paper"])

    rerun = results_frame([{**row, **REVISION_0006}])
    store.ingest(rerun)
    pdt.assert_frame_equal(store.trials_frame("s5"), rerun)
    with store.engine.begin() as connection:
        command.downgrade(migration_config(connection), "0005")
    columns = {c["name"] for c in inspect(store.engine).get_columns("trials")}
    assert not set(REVISION_0006) & columns and "proxy_ood_aupr" in columns
    store.close()


# -- processes that start together ------------------------------------------------------------

# What ResultStore.create_schema runs, without importing the store, whose results table brings
# in torch (seconds per process); it says ready, then migrates when told to.
MIGRATE = """\
import sys
from sqlalchemy import create_engine
from service.results.migrations import upgrade_to_head
engine = create_engine(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
upgrade_to_head(engine, "database under test")
print("migrated", flush=True)
"""


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("kind", [None, "pre-web-service"], ids=["new", "pre-web-service"])
def test_processes_that_start_together_migrate_once(
    url: str, kind: str | None, tmp_path: Path
) -> None:
    if kind is not None:
        load_dump(url, kind)
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stderr is not None
            if process.stdout.readline() != "ready\n":
                pytest.fail(f"a migrating process did not start: {process.stderr.read()}")
        for process in processes:  # all at once: each is blocked on its stdin
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outcomes = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (out, err) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0 and out == "migrated\n", err
    engine = create_engine(url)
    assert revision_of(engine) == head_revision()
    assert schema_differences(engine) == []
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    assert versions == [(head_revision(),)]
    if kind is not None:
        store = ResultStore(url)
        pdt.assert_frame_equal(store.trials_frame("grid-9a0f3b7c"), legacy_frame(kind))
        store.close()


def test_threads_of_one_process_migrate_in_turn(url: str) -> None:
    stores = [ResultStore(url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def migrate(store: ResultStore) -> None:
        start.wait()
        try:
            store.create_schema()
        except BaseException as err:  # reported below, on the test's thread
            errors.append(err)

    threads = [threading.Thread(target=migrate, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert revision_of(stores[0].engine) == head_revision()
    for store in stores:
        store.close()


def test_a_migration_waits_for_the_lock_another_connection_holds(url: str) -> None:
    store = ResultStore(url)
    holder = create_engine(url)
    outcome: list[BaseException | None] = []

    def migrate() -> None:
        try:
            store.create_schema()
        except BaseException as err:  # reported below, on the test's thread
            outcome.append(err)
        else:
            outcome.append(None)

    with holder.connect() as connection:
        if holder.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.execute(select(func.pg_advisory_xact_lock(POSTGRES_LOCK_KEY)))
        waiting = threading.Thread(target=migrate)
        waiting.start()
        time.sleep(LOCK_HELD_S)
        assert waiting.is_alive() and outcome == []
        assert "sweeps" not in inspect(connection).get_table_names()
        connection.commit()
    waiting.join(timeout=60)
    assert outcome == [None]
    assert revision_of(store.engine) == head_revision()
    store.close()
    holder.dispose()


# -- databases that cannot be migrated --------------------------------------------------------


def test_a_database_from_a_newer_version_is_refused(store: ResultStore) -> None:
    store.create_schema()
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    shown = store.engine.url.render_as_string(hide_password=True)
    with pytest.raises(StoreError, match=r"revision 0099, .*newer version.*upgrade e2rnas") as info:
        store.create_schema()
    assert str(info.value).startswith(f"database {shown}: ") and "\n" not in str(info.value)
    assert revision_of(store.engine) == "0099"


@pytest.mark.integration
def test_errors_hide_the_password(postgres_db_url: str) -> None:
    # The test server trusts local connections, so any password gets in.
    url = make_url(postgres_db_url).set(password="s3cret-pw")
    store = ResultStore(url.render_as_string(hide_password=False))
    store.create_schema()
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(StoreError, match=r"\*\*\*") as info:
        store.create_schema()
    assert "s3cret-pw" not in str(info.value)
    store.close()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    path.write_text("trial_id,status\n0000,completed\n")
    store = ResultStore(f"sqlite:///{path}")
    where = re.escape(f"database sqlite:///{path}: ")
    with pytest.raises(StoreError, match=f"{where}.*not a database") as info:
        store.create_schema()
    assert "\n" not in str(info.value)
    assert path.read_text() == "trial_id,status\n0000,completed\n"
    store.close()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("ALTER TABLE sweeps ADD COLUMN job_id VARCHAR(128)", "lacks .*'run_dir'"),
        ("DROP TABLE trials", "has table 'sweeps' but not"),
    ],
    ids=["some-service-columns", "no-trials"],
)
def test_a_schema_of_no_version_is_refused(tmp_path: Path, change: str, error: str) -> None:
    url = default_url(tmp_path)
    load_dump(url, "pre-web-service")
    connection = sqlite3.connect(tmp_path / "results.db")
    connection.execute(change)
    connection.close()
    store = ResultStore(url)
    with pytest.raises(StoreError, match=f"{error}.*no e2rnas-sweeps version"):
        store.create_schema()
    assert revision_of(store.engine) is None
    store.close()


def test_other_dialects_are_not_migrated(tmp_path: Path) -> None:
    store = ResultStore(default_url(tmp_path))
    store.engine.dialect.name = "oracle"
    with pytest.raises(StoreError, match=r"migrations need SQLite or PostgreSQL.*'oracle'"):
        store.create_schema()
    store.close()


# -- the boundary ------------------------------------------------------------------------------


def test_only_the_store_and_its_migrations_import_sqlalchemy_or_alembic() -> None:
    # urls.py parses and masks URLs with SQLAlchemy's own parser; it connects to nothing.
    allowed = (ROOT / "service/results/store.py", ROOT / "service/results/migrations")
    urls = ROOT / "service/results/urls.py"
    bad = []
    for path in sorted((ROOT / "service").rglob("*.py")):
        if path in (allowed[0], urls) or allowed[1] in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {name}"
                for name in names
                if name.split(".")[0] in ("sqlalchemy", "alembic")
            ]
    assert not bad, "modules other than the store import the database layer:\n" + "\n".join(bad)


def test_the_command_line_reads_a_run_directory_written_at_0005(tmp_path: Path) -> None:
    """``e2rnas pareto``/``robust``/``export`` of a run written by the previous version: its
    database is upgraded on the way (as the service does on start), and its rows read back
    whole, the new columns empty."""
    from service.orchestration.collect import stored_table

    url = f"sqlite:///{tmp_path / 'results.db'}"
    _one_trial_at_0005(url)
    state = {"sweep_id": "s5", "spec": {}, "database_url": url}
    (tmp_path / "sweep.json").write_text(json.dumps(state), encoding="utf-8")
    frame = stored_table(tmp_path)
    assert frame.loc[0, "test_error"] == 2.76 and frame.loc[0, "L"] == 1.0
    assert math.isnan(frame.loc[0, "pgd_acc_paper"]) and pd.isna(frame.loc[0, "grad_norms"])
