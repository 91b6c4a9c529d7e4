"""Writes the dumps of databases from before the store used Alembic, for test_migrations.py.

Each dump is a database as an old commit's store wrote it, through that store's own methods,
on SQLite and on PostgreSQL. Run this script with the old commit's code on the path (an export
of the commit, not this checkout, whose ``service`` has moved on):

    git archive f553fe5 | tar -x -C /tmp/f553fe5    # the last store before Alembic
    PYTHONPATH=/tmp/f553fe5 python tests/service/results/data/make_legacy_dumps.py \\
        web-service tests/service/results/data postgresql+psycopg://postgres@127.0.0.1:PORT/DB
    git archive 0f55978 | tar -x -C /tmp/0f55978    # the last store before the web service
    PYTHONPATH=/tmp/0f55978 python tests/service/results/data/make_legacy_dumps.py \\
        pre-web-service tests/service/results/data postgresql+psycopg://...

The PostgreSQL URL names any database on a server where its role may create databases (the
tests' throwaway server of tests/conftest.py will do); the script creates scratch databases
there and drops them after. ``pg_dump`` must be on PATH. For each kind it writes:

- ``<kind>.sqlite.sql``: sqlite3's ``iterdump`` of the SQLite file the old store wrote;
- ``<kind>.postgresql.sql``: ``pg_dump --inserts`` of the PostgreSQL database the old store
  wrote, less the lines that only set up pg_dump's own session (``SET``, ``set_config``,
  psql's backslash commands) and its comments.

Both are loaded back into fresh databases and compared row by row with what the store wrote
before they are kept. The clock of the old store is fixed, so running this again writes the
same files. The expected values in test_migrations.py are written out independently of this
script; keep the two in step.
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# The old commit's store and results table, from PYTHONPATH: modules this checkout no longer has.
old_store = importlib.import_module("service.store")
old_results = importlib.import_module("service.results")

COMMITS = {"web-service": "f553fe5", "pre-web-service": "0f55978"}
DESCRIPTIONS = {
    "web-service": "the last store before Alembic (tables from create_all, the web "
    "service's columns of sweeps added by hand)",
    "pre-web-service": "the last store before the web service (sweeps without job_id, "
    "run_dir, progress and message)",
}

# darts_v2 as Genotype.dumps() writes it, and its genotype_hash().
GENOTYPE = (
    '{"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], '
    '["sep_conv_3x3", 1], ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], '
    '["dil_conv_3x3", 2]], "normal_concat": [2, 3, 4, 5], "reduce": [["max_pool_3x3", 0], '
    '["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1], ["max_pool_3x3", 0], '
    '["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]], "reduce_concat": '
    "[2, 3, 4, 5]}"
)
GENOTYPE_HASH = "be4a32607156494b"
VERSIONS = '{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}'
MGDA_WEIGHTS = "[0.4, 0.3, 0.1, 0.1, 0.1]"
SEARCHED = {
    "val_loss": 0.6931471805599453,
    "ood_loss": 0.25,
    "adv_loss": 1.5,
    "nop_loss": 0.125,
    "flops_loss": 0.0625,
    "mgda_weights": MGDA_WEIGHTS,
    "params_m": 3.349342,
    "flops_m": 528.1,
    "genotype": GENOTYPE,
    "genotype_hash": GENOTYPE_HASH,
    "search_seconds": 123.456789,
    "device": "cpu",
}
SPECS = {
    "web-service": {
        "name": "quickstart",
        "preset": "tiny",
        "grid": {"L": [1.0, 2.5], "F": [100.0, 400.0]},
        "seeds": [0],
        "evaluation": "proxy",
    },
    "pre-web-service": {
        "name": "grid",
        "preset": "tiny",
        "grid": {"L": [1.0]},
        "seeds": [0, 1],
        "evaluation": "retrain",
    },
}
SWEEP_IDS = {"web-service": "quickstart-5d41402a", "pre-web-service": "grid-9a0f3b7c"}


def trials(kind: str) -> list[dict[str, Any]]:
    """The trials of ``kind``'s sweep: completed, failed (NaN metrics) and, for the web
    service's, one not evaluated (NaN front metrics) with a swept key the others lack."""
    sweep_id = SWEEP_IDS[kind]
    if kind == "web-service":
        given = [
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
            {
                "trial_id": "0001",
                "status": "failed",
                "L": 2.5,
                "F": 100.0,
                "seed": 0,
                "no_ood": False,
            },
            {
                "trial_id": "0002",
                "status": "completed",
                **SEARCHED,
                "val_loss": 0.1 + 0.2,
                "L": 1.0,
                "F": 400.0,
                "seed": 0,
                "no_ood": True,
                "backbone": "darts",
            },
        ]
    else:
        given = [
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
        ]
    rows = []
    for values in given:
        row: dict[str, Any] = dict.fromkeys(old_results.RESULT_COLUMNS)
        row.update(dict.fromkeys(old_results.FLOAT_COLUMNS, math.nan))
        row.update(sweep_id=sweep_id, evaluation="none", versions=VERSIONS)
        row.update(values)
        rows.append(row)
    return rows


@contextmanager
def clock() -> Iterator[list[dt.datetime]]:
    """Fixes the old store's clock: it reads the first time left in the yielded list."""
    times: list[dt.datetime] = []
    real = old_store._now
    old_store._now = lambda: times[0]
    try:
        yield times
    finally:
        old_store._now = real


def at(minute: int) -> list[dt.datetime]:
    return [dt.datetime(2026, 11, 20, 9, minute, 30, tzinfo=dt.UTC)]


def write_rows(kind: str, url: str) -> None:
    """The old store writes ``kind``'s sweep and trials into the empty database at ``url``."""
    store = old_store.ResultStore(url)
    sweep_id = SWEEP_IDS[kind]
    with clock() as times:
        store.create_schema()
        times[:] = at(15)
        store.upsert_sweep(sweep_id, SPECS[kind]["name"], "pending", SPECS[kind])
        if kind == "web-service":
            times[:] = at(16)
            store.update_sweep(
                sweep_id,
                run_dir="/srv/e2rnas/storage/runs/quickstart-5d41402a",
                progress={"total": 3, "pending": 3, "running": 0, "done": 0, "failed": 0},
            )
            times[:] = at(17)
            store.update_sweep(sweep_id, job_id="raysubmit_8kq3Z1vN2cXpTt5M", status="running")
            store.ingest(old_results.results_frame(trials(kind)))
            times[:] = at(48)
            store.update_sweep(
                sweep_id,
                status="cancelled",
                message="cancelled by request",
                progress={"total": 3, "pending": 0, "running": 0, "done": 2, "failed": 1},
            )
        else:
            store.ingest(old_results.results_frame(trials(kind)))
            times[:] = at(52)
            store.set_sweep_status(sweep_id, "completed")
    store.close()


def header(kind: str, how: str) -> str:
    about = (
        f"A database as the e2rnas-sweeps store of commit {COMMITS[kind]} wrote it: "
        f"{DESCRIPTIONS[kind]}. Upgraded by tests/service/results/test_migrations.py. {how}, "
        f"written by tests/service/results/data/make_legacy_dumps.py {kind} (its docstring "
        "says how to write it again); do not edit by hand."
    )
    return textwrap.fill(about, width=96, initial_indent="-- ", subsequent_indent="-- ") + "\n"


def sqlite_rows(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return [
        row
        for table in ("sweeps", "trials")
        for row in connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2")
    ]


def sqlite_dump(kind: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "legacy.db"
        write_rows(kind, f"sqlite:///{path}")
        written = sqlite3.connect(path)
        dump = "\n".join(written.iterdump()) + "\n"
        loaded = sqlite3.connect(":memory:")
        loaded.executescript(dump)
        assert sqlite_rows(loaded) == sqlite_rows(written), "the dump changed a value"
        assert "alembic_version" not in dump
    target = out / f"{kind}.sqlite.sql"
    target.write_text(header(kind, "The iterdump() of its SQLite file") + dump)
    print(f"wrote {target}")


@contextmanager
def scratch_database(server_url: str, name: str) -> Iterator[str]:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_rows(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = [
            tuple(row)
            for table in ("sweeps", "trials")
            for row in connection.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))
        ]
    engine.dispose()
    return rows


def session_setup(line: str) -> bool:
    """A line of pg_dump's output that sets up its session (or a comment), not the schema."""
    return line.startswith(("SET ", "SELECT pg_catalog.set_config(", "\\", "--"))


def postgres_dump(kind: str, out: Path, server_url: str) -> None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        sys.exit("pg_dump is not on PATH (Debian: /usr/lib/postgresql/<version>/bin)")
    with scratch_database(server_url, f"e2rnas_legacy_{kind.replace('-', '_')}") as url:
        write_rows(kind, url)
        libpq_url = make_url(url).set(drivername="postgresql")
        dumped = subprocess.run(
            [
                pg_dump,
                "--inserts",
                "--column-inserts",
                "--no-owner",
                "--no-privileges",
                "--no-comments",
                f"--dbname={libpq_url.render_as_string(hide_password=False)}",
            ],
            env={**os.environ, "PGTZ": "UTC"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        kept = [line for line in dumped.splitlines() if not session_setup(line)]
        dump = "\n".join(kept).strip() + "\n"
        dump = "\n\n".join(part.strip() for part in dump.split("\n\n") if part.strip()) + "\n"
        with scratch_database(server_url, "e2rnas_legacy_check") as check_url:
            engine = create_engine(check_url)
            with engine.begin() as connection:
                connection.exec_driver_sql(dump)
            engine.dispose()
            assert postgres_rows(check_url) == postgres_rows(url), "the dump changed a value"
    target = out / f"{kind}.postgresql.sql"
    target.write_text(header(kind, "The pg_dump --inserts of its PostgreSQL database") + dump)
    print(f"wrote {target}")


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in COMMITS:
        sys.exit(f"usage: make_legacy_dumps.py {{{','.join(COMMITS)}}} OUT_DIR POSTGRES_URL")
    kind, out, server_url = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    # The wrong commit on the path would write the other schema under this kind's name.
    with_service = hasattr(old_store, "SERVICE_COLUMNS")
    if with_service != (kind == "web-service"):
        sys.exit(f"{kind}: expected the store of commit {COMMITS[kind]} on PYTHONPATH")
    sqlite_dump(kind, out)
    postgres_dump(kind, out, server_url)


if __name__ == "__main__":
    main()
