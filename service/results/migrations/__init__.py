"""The results store's schema history as Alembic revisions, and `upgrade_to_head` that applies it.

Every revision in ``versions/`` is one step of the schema, written out in full (never built
from the code's column lists, which change); `upgrade_to_head` brings a database to the newest,
and `service.results.store.ResultStore.create_schema` calls it on every start:

1. The usual case costs a read: a database whose ``alembic_version`` table already names the
   head revision is left alone, with no lock and no write.
2. Otherwise the caller takes the database's lock, so that processes starting together (a
   sweep's collection and the web service, say) migrate one after another: PostgreSQL a
   transaction-level advisory lock (`POSTGRES_LOCK_KEY`), SQLite ``BEGIN IMMEDIATE`` (the
   write lock of the whole file). Under the lock it reads the revision again, since the
   process before it may have done the work.
3. A database without ``alembic_version`` but with the tables was written before the store used
   Alembic: its revision is told by its columns (with the web service's or without) and
   stamped. An empty database has no revision and is built from the first one.
4. ``alembic upgrade head`` runs the missing revisions (``env.py`` hands Alembic the locked
   connection), and the stamp, the revisions and the new version commit as one transaction:
   both databases roll DDL back, so a failure leaves the schema as it was.

A database at a revision this code does not know (written by a newer version), or one that
cannot be read, raises `StoreError` naming the database and what to do.

To change the schema, change the tables in ``store.py``, then from the repository root run
``alembic revision --rev-id 0003 -m "what changes"`` (``[tool.alembic]`` in pyproject.toml)
and write the new file's ``upgrade`` and ``downgrade`` by hand; the tests check that the head
revision builds exactly the tables of ``store.py`` on SQLite and PostgreSQL. On SQLite the
revisions run with foreign keys enforced (the pragma cannot change inside a transaction), so
a table rebuild (``batch_alter_table``) of ``sweeps`` would cascade-delete its trials: use the
``ALTER TABLE`` forms SQLite has (add, drop and rename a column).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from service.errors import StoreError

__all__ = [
    "MIGRATIONS",
    "POSTGRES_LOCK_KEY",
    "head_revision",
    "migration_config",
    "upgrade_to_head",
]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent
"""The Alembic script directory: ``env.py`` and ``versions/``."""

POSTGRES_LOCK_KEY = 0x6532_726E_6173_0001
"""The advisory lock every process takes to migrate a PostgreSQL database ("e2rnas" and 1).
Advisory locks belong to one database, so this number only has to be the same everywhere."""

# Before Alembic the store built its tables with ``create_all`` and added the web service's
# columns by hand; these are the columns that tell the two schemas apart. Written out, like
# the revisions, since they are history: a later revision adding a column must not change them.
_PRE_ALEMBIC = ("sweeps", "trials")
_SERVICE_COLUMNS = ("job_id", "run_dir", "progress", "message")
_BEFORE_SERVICE, _WITH_SERVICE = "0001", "0002"

# Alembic's `context` and `op` are module-level proxies, set for the length of one command: two
# threads of one process migrating at once would each swap in its own, so they take turns.
_IN_PROCESS = threading.Lock()


def migration_config(connection: Connection) -> Config:
    """An Alembic config for the script directory here that runs on ``connection`` (no
    ``alembic.ini``: nothing depends on the current directory)."""
    config = Config(attributes={"connection": connection})
    # Options are configparser values, where a ``%`` starts an interpolation.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision, the one `upgrade_to_head` brings a database to."""
    return _head(ScriptDirectory(str(MIGRATIONS)))


def upgrade_to_head(engine: Engine, where: str) -> None:
    """Bring the database of ``engine`` to the head revision (see the module docstring);
    ``where`` names the database in errors, password hidden."""
    script = ScriptDirectory(str(MIGRATIONS))
    head = _head(script)
    try:
        with engine.connect() as connection:
            if _current(connection, script, where) == head:
                return
        with _IN_PROCESS, engine.connect() as connection:
            _lock(connection, where)
            _upgrade(connection, script, where)
            connection.commit()
    except SQLAlchemyError as err:
        raise StoreError(
            f"{where}: cannot migrate the schema to revision {head}: {_one_line(err)}; check "
            "that the URL names a database this process can read and write"
        ) from err


def _head(script: ScriptDirectory) -> str:
    head = script.get_current_head()
    assert head is not None, f"{MIGRATIONS / 'versions'} holds one line of revisions"
    return head


def _current(connection: Connection, script: ScriptDirectory, where: str) -> str | None:
    """The revision ``alembic_version`` names, one this code knows; None when it names none
    (a database from before Alembic, or an empty one)."""
    found = MigrationContext.configure(connection).get_current_heads()
    if not found:
        return None
    known = {revision.revision for revision in script.walk_revisions()}
    if len(found) > 1 or found[0] not in known:
        raise StoreError(
            f"{where}: the schema is at revision {', '.join(found)}, which this version of "
            f"e2rnas-sweeps does not know (its newest is {_head(script)}): a newer version "
            "wrote it; upgrade e2rnas-sweeps, or use another database"
        )
    return found[0]


def _lock(connection: Connection, where: str) -> None:
    """Begin the migration's transaction holding the database's migration lock, which the
    transaction's end releases."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(POSTGRES_LOCK_KEY)))
    elif dialect == "sqlite":
        # The driver opens transactions only before DML, so DDL would autocommit; taking the
        # write lock up front makes the whole upgrade one transaction that others wait for
        # (up to the driver's busy timeout).
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        raise StoreError(
            f"{where}: schema migrations need SQLite or PostgreSQL (a lock against concurrent "
            f"upgrades), got dialect {dialect!r}"
        )


def _upgrade(connection: Connection, script: ScriptDirectory, where: str) -> None:
    """Stamp a database from before Alembic, then run the missing revisions, on the locked
    ``connection`` (committed by the caller)."""
    head = _head(script)
    current = _current(connection, script, where)
    if current == head:
        return  # another process migrated it while this one waited for the lock
    config = migration_config(connection)
    if current is None:
        current = _unversioned_revision(connection, where)
        if current is not None:
            command.stamp(config, current)
            log.info("%s: schema from before migrations, stamped revision %s", where, current)
    if current == head:
        return
    command.upgrade(config, "head")
    if current is None:
        log.info("%s: schema built at revision %s", where, head)
    else:
        log.info("%s: schema upgraded from revision %s to %s", where, current, head)


def _unversioned_revision(connection: Connection, where: str) -> str | None:
    """The revision a database without ``alembic_version`` is at: None when it has neither
    table (new), else told by the web service's columns of ``sweeps``."""
    inspector = inspect(connection)
    tables = [name for name in _PRE_ALEMBIC if inspector.has_table(name)]
    if not tables:
        return None
    if len(tables) < len(_PRE_ALEMBIC):
        raise StoreError(
            f"{where}: has table {tables[0]!r} but not the rest of {_PRE_ALEMBIC} and no "
            "alembic_version, the schema of no e2rnas-sweeps version; repair it or use a new "
            "database"
        )
    columns = {column["name"] for column in inspector.get_columns("sweeps")}
    present = [name for name in _SERVICE_COLUMNS if name in columns]
    if not present:
        return _BEFORE_SERVICE
    if len(present) == len(_SERVICE_COLUMNS):
        return _WITH_SERVICE
    missing = [name for name in _SERVICE_COLUMNS if name not in columns]
    raise StoreError(
        f"{where}: table sweeps has the web service's columns {present} but lacks {missing}, "
        f"the schema of no e2rnas-sweeps version; add them (see revision {_WITH_SERVICE}) or "
        "use a new database"
    )


def _one_line(err: Exception) -> str:
    """The driver's message of ``err`` on one line, without SQLAlchemy's statement and link."""
    reason = getattr(err, "orig", None) or err
    return " ".join(str(reason).split())
