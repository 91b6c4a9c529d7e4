"""The results tables as the store first wrote them: ``sweeps`` and ``trials``.

``sweeps`` holds one row per sweep: its spec as JSON, status and timestamps. ``trials`` holds
one row per trial of the results table, keyed by (sweep_id, trial_id), each contract column
typed (floats for metrics and times, text for the rest) and the swept values in the JSON column
``swept``; deleting a sweep deletes its trials. These are the tables of the store before the
web service existed, which databases written then still have.

The columns are written out as they were, not taken from `service.results.table`: a revision is
history, and must build the same tables when the code's columns change later (a later revision
changes them).

Revision ID: 0001
Revises: (none, the first)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``sweeps`` and ``trials``."""
    op.create_table(
        "sweeps",
        sa.Column("sweep_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "trials",
        sa.Column(
            "sweep_id",
            sa.String(128),
            sa.ForeignKey("sweeps.sweep_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("trial_id", sa.String(256), primary_key=True),
        sa.Column("swept", sa.JSON(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("val_loss", sa.Float(), nullable=True),
        sa.Column("ood_loss", sa.Float(), nullable=True),
        sa.Column("adv_loss", sa.Float(), nullable=True),
        sa.Column("nop_loss", sa.Float(), nullable=True),
        sa.Column("flops_loss", sa.Float(), nullable=True),
        sa.Column("mgda_weights", sa.Text(), nullable=True),
        sa.Column("test_error", sa.Float(), nullable=True),
        sa.Column("params_m", sa.Float(), nullable=True),
        sa.Column("flops_m", sa.Float(), nullable=True),
        sa.Column("pgd_acc", sa.Float(), nullable=True),
        sa.Column("ood_aupr", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("evaluation", sa.Text(), nullable=True),
        sa.Column("genotype", sa.Text(), nullable=True),
        sa.Column("genotype_hash", sa.Text(), nullable=True),
        sa.Column("search_seconds", sa.Float(), nullable=True),
        sa.Column("eval_seconds", sa.Float(), nullable=True),
        sa.Column("device", sa.Text(), nullable=True),
        sa.Column("versions", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    """Drop both tables, and every result in them."""
    op.drop_table("trials")
    op.drop_table("sweeps")
