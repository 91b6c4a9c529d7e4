"""The ``proxy_*`` columns of ``trials``: a two-stage sweep's proxy measures.

A sweep with ``evaluation.mode: two_stage`` gives every trial a cheap proxy evaluation, then
retrains only the proxy front. Its rows keep both: the five front metrics are the retrain's,
and ``proxy_test_error``, ``proxy_params_m``, ``proxy_flops_m``, ``proxy_pgd_acc`` and
``proxy_ood_aupr`` the proxy's. Other sweeps leave them NULL, as do the rows stored before.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

# Written out: a revision is history (see 0001).
_COLUMNS = (
    "proxy_test_error",
    "proxy_params_m",
    "proxy_flops_m",
    "proxy_pgd_acc",
    "proxy_ood_aupr",
)


def upgrade() -> None:
    """Add the five nullable float columns."""
    for name in _COLUMNS:
        op.add_column("trials", sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop them (``ALTER TABLE ... DROP COLUMN``, SQLite 3.35 or newer)."""
    for name in reversed(_COLUMNS):
        op.drop_column("trials", name)
