"""The ``search_epochs`` column of ``trials``: how many epochs each trial's search ran.

A sweep with ``scheduler.kind: mo_asha`` stops some trials early (status ``stopped``); the
epoch each reached is what they cost and what their row's search columns belong to. Finished
searches ran every epoch. Rows stored before this revision keep NULL (unknown): their
``metrics.jsonl`` may be gone, and a collection of the sweep fills it again from there.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the nullable float column ``search_epochs``."""
    op.add_column("trials", sa.Column("search_epochs", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop it (``ALTER TABLE ... DROP COLUMN``, SQLite 3.35 or newer)."""
    op.drop_column("trials", "search_epochs")
