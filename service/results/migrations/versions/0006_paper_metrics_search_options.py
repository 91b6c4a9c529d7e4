"""The paper-protocol measures and the search's diagnostics as columns of ``trials``.

Every evaluation now measures, beside the front metrics, the OoD AUPR and the PGD accuracy by
the protocol of the authors' scripts behind the paper's tables (``ood_aupr_paper``,
``pgd_acc_paper``) and the FPR at 95 % TPR with in-distribution positives (``ood_fpr95_in``):
floats. A search reports per-objective gradient norms and effective weights (``grad_norms``,
``effective_weights``, JSON lists) and records the switches between the paper's text and the
authors' code (``search_options``, a JSON object): text. Rows stored before leave them NULL.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

# Written out: a revision is history (see 0001).
_FLOATS = ("ood_aupr_paper", "pgd_acc_paper", "ood_fpr95_in")
_TEXTS = ("grad_norms", "effective_weights", "search_options")


def upgrade() -> None:
    """Add the three nullable float columns and the three nullable text columns."""
    for name in _FLOATS:
        op.add_column("trials", sa.Column(name, sa.Float(), nullable=True))
    for name in _TEXTS:
        op.add_column("trials", sa.Column(name, sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop them (``ALTER TABLE ... DROP COLUMN``, SQLite 3.35 or newer)."""
    for name in (*reversed(_TEXTS), *reversed(_FLOATS)):
        op.drop_column("trials", name)
