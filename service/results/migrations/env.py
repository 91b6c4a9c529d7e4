"""Alembic's environment for the results store: runs on the connection it is handed.

Alembic executes this file for each command. `service.results.migrations.migration_config`
puts the connection in ``config.attributes``; it is already inside the transaction that holds
the migration lock, so Alembic runs every step in it and commits nothing itself (the caller
commits). There is no URL to connect to from here: the ``alembic`` command line serves to write
and list revisions, while databases are migrated by ``ResultStore.create_schema``.
"""

from __future__ import annotations

from alembic import context
from alembic.util import CommandError
from sqlalchemy import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    # What the alembic command line prints, without a traceback.
    raise CommandError(
        "service/results/migrations: no connection in config.attributes['connection']; "
        "migrate a database with ResultStore(url).create_schema()"
    )
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
