"""The results store: the one module of the project that talks to the database, with its
schema migrations (`service.results.migrations`).

See docs/ARCHITECTURE.md for the layering that keeps it so.

Two tables, written with SQLAlchemy 2.0 Core. ``sweeps`` holds one row per sweep (its spec as
JSON, status, timestamps); ``trials`` holds one row per trial of the results table
(`service.results.table.RESULT_COLUMNS`, each a typed column) keyed by (sweep_id, trial_id),
with the swept values in one JSON column ``swept`` that `ResultStore.trials_frame` expands back into
columns. Any SQLAlchemy URL works for reading; writes use the ``INSERT ... ON CONFLICT DO
UPDATE`` constructs of SQLite and PostgreSQL, so re-ingesting a trial replaces its row instead
of adding another, and one ingest is one transaction: it lands whole or not at all.

The schema has a history: Alembic revisions in ``migrations/versions/``, each written out in
full. The tables below describe the newest, for queries; `ResultStore.create_schema`, which
every process calls on start, brings the database there. A new database is built by running
the revisions from the first; one written before the store used Alembic (no
``alembic_version`` table) is stamped with the revision its columns match (0001 without the web
service's columns, 0002 with them) and upgraded from there; one already at the newest costs a
single read. Processes that start together take turns under the database's lock (an advisory
lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), and each upgrade is one transaction. A
change to the tables here needs a new revision: a test checks that the newest revision builds
exactly these tables.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Insert,
    MetaData,
    RowMapping,
    String,
    Table,
    Text,
    case,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from service.errors import ConfigError, StoreError, UnknownSweepError, require_package
from service.results.migrations import upgrade_to_head
from service.results.table import (
    FLOAT_COLUMNS,
    RESULT_COLUMNS,
    TEXT_COLUMNS,
    plain_value,
    results_frame,
)
from service.results.urls import masked_url, resolve_url

__all__ = [
    "ResultStore",
    "StoreError",
    "UnknownSweepError",
    "default_url",
    "metadata",
    "sweeps_table",
    "trials_table",
]

DB_FILE = "results.db"

metadata = MetaData()

sweeps_table = Table(
    "sweeps",
    metadata,
    Column("sweep_id", String(128), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("status", String(32), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # What the web service tracks of a sweep it submitted; NULL for sweeps run from the CLI.
    Column("job_id", String(128), nullable=True),
    Column("run_dir", Text, nullable=True),
    Column("progress", JSON, nullable=True),
    Column("message", Text, nullable=True),
)

SERVICE_COLUMNS = ("job_id", "run_dir", "progress", "message")

trials_table = Table(
    "trials",
    metadata,
    Column(
        "sweep_id",
        String(128),
        ForeignKey("sweeps.sweep_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("trial_id", String(256), primary_key=True),
    Column("swept", JSON, nullable=False),
    *(
        Column(name, Float if name in FLOAT_COLUMNS else Text, nullable=name != "status")
        for name in RESULT_COLUMNS
        if name not in ("sweep_id", "trial_id")
    ),
)


def default_url(run_dir: Path) -> str:
    """``sqlite:///<run_dir>/results.db``, the store of a run when no URL is given."""
    return f"sqlite:///{Path(run_dir).resolve() / DB_FILE}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class ResultStore:
    """Sweeps and their trials' results in the database at ``url`` (any SQLAlchemy URL, or
    ``env:VARIABLE`` naming the environment variable that holds it, `service.results.urls`)."""

    def __init__(self, url: str) -> None:
        self.url = url  # as given: a reference stays a reference wherever it is written
        resolved = resolve_url(url)
        if resolved.startswith("postgresql+psycopg"):  # the [postgres] extra
            require_package("database_url", "psycopg", "postgres")
        self.engine: Engine = create_engine(resolved, future=True, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _enable_sqlite_foreign_keys)

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()

    def ping(self) -> None:
        """One round trip to the database; `StoreError` naming why when it does not answer."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError as err:
            raise self._unreachable("cannot connect", err) from None

    def create_schema(self) -> None:
        """Bring the database's schema to the newest revision: build it in a new database,
        adopt and upgrade one written before migrations existed, do nothing (one read) when
        it is up to date. Safe to call from several processes at once; a database that
        cannot be migrated raises `StoreError`."""
        upgrade_to_head(self.engine, self._where())

    # -- sweeps ----------------------------------------------------------------------------

    def upsert_sweep(self, sweep_id: str, name: str, status: str, spec: Mapping[str, Any]) -> None:
        """Create the sweep, or update its name, status and spec (``created_at`` and the
        service's columns are kept)."""
        for field, value in (("sweep_id", sweep_id), ("name", name), ("status", status)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{field}: expected a non-empty string, got {value!r}")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"spec: expected a mapping, got {type(spec).__name__}")
        now = _now()
        row = {
            "sweep_id": sweep_id,
            "name": name,
            "status": status,
            "spec": dict(spec),
            "created_at": now,
            "updated_at": now,
        }
        stmt = self._upsert(sweeps_table, ("sweep_id",), keep=("created_at", *SERVICE_COLUMNS))
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt, [row])
        except SQLAlchemyError as err:
            raise StoreError(f"{self._where()}: cannot write sweep {sweep_id!r}: {err}") from err

    def set_sweep_status(self, sweep_id: str, status: str) -> None:
        """Set a sweep's status; an unknown sweep id raises `UnknownSweepError`."""
        if not isinstance(status, str) or not status:
            raise ConfigError(f"status: expected a non-empty string, got {status!r}")
        self.update_sweep(sweep_id, status=status)

    def update_sweep(self, sweep_id: str, if_status: str | None = None, **fields: Any) -> None:
        """Set some of ``status`` and the service's columns (`SERVICE_COLUMNS`) of a sweep;
        with ``if_status``, the status changes only if it still is ``if_status`` in the same
        statement (so a stale reader never overwrites the status another process wrote)."""
        allowed = ("status", *SERVICE_COLUMNS)
        unknown = [key for key in fields if key not in allowed]
        if unknown:
            raise ConfigError(f"{unknown[0]}: not a column the service sets; expected {allowed}")
        if not fields:
            return
        values, status = dict(fields, updated_at=_now()), sweeps_table.c.status
        if if_status is not None and "status" in values:
            values["status"] = case((status == if_status, values["status"]), else_=status)
        stmt = update(sweeps_table).where(sweeps_table.c.sweep_id == sweep_id).values(values)
        try:
            with self.engine.begin() as conn:
                changed = conn.execute(stmt).rowcount
        except SQLAlchemyError as err:
            raise StoreError(f"{self._where()}: cannot update sweep {sweep_id!r}: {err}") from err
        if changed == 0:
            raise self._unknown(sweep_id)

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        """The sweep's columns as a dict; an unknown sweep id raises `UnknownSweepError`."""
        stmt = select(sweeps_table).where(sweeps_table.c.sweep_id == sweep_id)
        try:
            with self.engine.connect() as conn:
                found = conn.execute(stmt).mappings().first()
        except SQLAlchemyError as err:
            raise self._unreachable(f"cannot read sweep {sweep_id!r}", err) from None
        if found is None:
            raise self._unknown(sweep_id)
        return self._sweep_dict(found)

    def sweeps(self) -> list[dict[str, Any]]:
        """Every sweep, oldest first."""
        stmt = select(sweeps_table).order_by(sweeps_table.c.created_at, sweeps_table.c.sweep_id)
        try:
            with self.engine.connect() as conn:
                return [self._sweep_dict(row) for row in conn.execute(stmt).mappings()]
        except SQLAlchemyError as err:
            raise self._unreachable("cannot list the sweeps", err) from None

    # -- trials ----------------------------------------------------------------------------

    def ingest(self, frame: pd.DataFrame) -> int:
        """Insert or update the trials of ``frame`` (a results table); returns the row count.

        Rows are keyed by (sweep_id, trial_id): a trial already stored gets the new values,
        so ingesting the same or updated rows again never duplicates or loses a row. All rows
        are written in one transaction; on any error nothing is written and `StoreError`
        (or `ConfigError` for a malformed frame) is raised.
        """
        rows = self._trial_rows(frame)
        if not rows:
            return 0
        sweep_ids = sorted({row["sweep_id"] for row in rows})
        stmt = self._upsert(trials_table, ("sweep_id", "trial_id"))
        try:
            with self.engine.begin() as conn:
                known = set(
                    conn.execute(
                        select(sweeps_table.c.sweep_id).where(
                            sweeps_table.c.sweep_id.in_(sweep_ids)
                        )
                    ).scalars()
                )
                unknown = [s for s in sweep_ids if s not in known]
                if unknown:
                    raise self._unknown(unknown[0])
                for row in rows:
                    conn.execute(stmt, [row])
        except SQLAlchemyError as err:
            raise StoreError(
                f"{self._where()}: ingest of {len(rows)} trials rolled back: {err}"
            ) from err
        return len(rows)

    def trials_frame(self, sweep_id: str) -> pd.DataFrame:
        """The sweep's results table, ordered by trial_id; the same columns and dtypes as
        `service.results.results_frame` gives, swept values expanded back into columns."""
        self.get_sweep(sweep_id)
        stmt = (
            select(trials_table)
            .where(trials_table.c.sweep_id == sweep_id)
            .order_by(trials_table.c.trial_id)
        )
        try:
            with self.engine.connect() as conn:
                stored = list(conn.execute(stmt).mappings())
        except SQLAlchemyError as err:
            raise self._unreachable(f"cannot read the trials of sweep {sweep_id!r}", err) from None
        rows: list[dict[str, Any]] = []
        for found in stored:
            row = {name: found[name] for name in RESULT_COLUMNS}
            row.update(found["swept"] or {})
            rows.append(row)
        return results_frame(rows)

    # -- helpers ---------------------------------------------------------------------------

    def _where(self) -> str:
        return f"database {masked_url(self.url)}"

    def _unreachable(self, what: str, err: SQLAlchemyError) -> StoreError:
        # One line: the driver's reason without SQLAlchemy's statement and link; the URL
        # masked (a driver's message names host and user, never the password).
        reason = " ".join(str(getattr(err, "orig", None) or err).split())
        return StoreError(f"database: {what} in {masked_url(self.url)}: {reason}")

    def _unknown(self, sweep_id: str) -> UnknownSweepError:
        return UnknownSweepError(
            f"sweep_id: no sweep {sweep_id!r} in {self._where()}; "
            "create it with upsert_sweep before ingesting its trials",
            sweep_id,
        )

    @staticmethod
    def _sweep_dict(row: RowMapping) -> dict[str, Any]:
        found: dict[str, Any] = {str(key): value for key, value in row.items()}
        found["created_at"] = _aware(found["created_at"])
        found["updated_at"] = _aware(found["updated_at"])
        return found

    def _upsert(self, table: Table, keys: Sequence[str], keep: Sequence[str] = ()) -> Insert:
        """``INSERT ... ON CONFLICT (keys) DO UPDATE`` of every other column but ``keep``."""
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            sqlite_stmt = sqlite.insert(table)
            excluded = sqlite_stmt.excluded
            update_set = {c.name: excluded[c.name] for c in table.c if c.name not in (*keys, *keep)}
            return sqlite_stmt.on_conflict_do_update(index_elements=list(keys), set_=update_set)
        if dialect == "postgresql":
            pg_stmt = postgresql.insert(table)
            excluded = pg_stmt.excluded
            update_set = {c.name: excluded[c.name] for c in table.c if c.name not in (*keys, *keep)}
            return pg_stmt.on_conflict_do_update(index_elements=list(keys), set_=update_set)
        raise StoreError(
            f"{self._where()}: writes need SQLite or PostgreSQL (INSERT ... ON CONFLICT), "
            f"got dialect {dialect!r}"
        )

    @staticmethod
    def _trial_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
        """The frame's rows as ``trials`` rows, checked; a bad cell names its row and column."""
        if not isinstance(frame, pd.DataFrame):
            raise ConfigError(f"frame: expected a pandas DataFrame, got {type(frame).__name__}")
        missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
        if missing:
            raise ConfigError(f"frame: missing contract columns {missing}")
        swept_keys = [c for c in frame.columns if c not in RESULT_COLUMNS]
        if any(not isinstance(key, str) for key in swept_keys):
            raise ConfigError(f"frame: swept column names must be strings, got {swept_keys}")
        rows: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for number, record in enumerate(frame.to_dict(orient="records")):
            row: dict[str, Any] = {}
            for column in FLOAT_COLUMNS:
                value = plain_value(record[column])
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int | float)
                ):
                    raise ConfigError(
                        f"frame row {number}, column {column}: expected a number or NaN, "
                        f"got {value!r}"
                    )
                row[column] = None if value is None else float(value)
            for column in TEXT_COLUMNS:
                value = plain_value(record[column])
                if value is not None and not isinstance(value, str):
                    raise ConfigError(
                        f"frame row {number}, column {column}: expected text, got {value!r}"
                    )
                row[column] = value
            for column in ("sweep_id", "trial_id", "status"):
                if not row[column]:
                    raise ConfigError(
                        f"frame row {number}, column {column}: expected a non-empty string, "
                        f"got {record[column]!r}"
                    )
            key = (row["sweep_id"], row["trial_id"])
            if key in seen:
                raise ConfigError(
                    f"frame row {number}: duplicate (sweep_id, trial_id) {key}; "
                    "expected one row per trial"
                )
            seen.add(key)
            swept = {name: plain_value(record[name]) for name in swept_keys}
            try:
                json.dumps(swept, allow_nan=False)
            except (TypeError, ValueError) as err:
                raise ConfigError(
                    f"frame row {number}: swept values must be JSON scalars: {err}"
                ) from None
            row["swept"] = {name: value for name, value in swept.items() if value is not None}
            rows.append(row)
        return rows
