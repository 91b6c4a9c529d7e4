"""The web service's columns of ``sweeps``: ``job_id``, ``run_dir``, ``progress``, ``message``.

The web service submits a sweep as a Ray job and follows it: it records the job's id, the run
directory it gave the job, the last progress counts it read (JSON) and a message for the user
(why the sweep failed, or that it was cancelled). All four are NULL for sweeps run from the
command line, and for every sweep of a database from before the service, which is why they are
nullable and added without a default.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the four nullable columns to ``sweeps``."""
    op.add_column("sweeps", sa.Column("job_id", sa.String(128), nullable=True))
    op.add_column("sweeps", sa.Column("run_dir", sa.Text(), nullable=True))
    op.add_column("sweeps", sa.Column("progress", sa.JSON(), nullable=True))
    op.add_column("sweeps", sa.Column("message", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the four columns (``ALTER TABLE ... DROP COLUMN``, SQLite 3.35 or newer)."""
    for name in ("message", "progress", "run_dir", "job_id"):
        op.drop_column("sweeps", name)
