"""The ``backbone`` column of ``trials``: the search backbone of each trial.

Searches run on DARTS, PC-DARTS or P-DARTS (``backbone: darts | pc_darts | pdarts``), and every
row of the results table names its backbone, swept or not. Every trial stored before this
revision searched DARTS's supernet, the only one there was, so existing rows get ``darts``;
a row whose swept values name a backbone (a sweep file could list one before the search knew
the key) takes that value, and the key leaves the row's ``swept`` JSON, since it is a column
now. The column is nullable, like every text column of ``trials``: a failed trial whose search
never started may have none.

Downgrading drops the column, after putting a backbone other than DARTS back among the row's
swept values (where the upgrade takes it from), so that nothing is lost on the way down and up.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_LEGACY = "darts"

# The table as this revision sees it, written out (a revision is history; see 0001).
_trials = sa.table(
    "trials",
    sa.column("sweep_id", sa.String(128)),
    sa.column("trial_id", sa.String(256)),
    sa.column("swept", sa.JSON()),
    sa.column("backbone", sa.Text()),
)


def upgrade() -> None:
    """Add ``backbone``, fill it for the stored rows, and take it out of their ``swept``."""
    op.add_column("trials", sa.Column("backbone", sa.Text(), nullable=True))
    connection = op.get_bind()
    connection.execute(sa.update(_trials).values(backbone=_LEGACY))
    for sweep_id, trial_id, swept in _rows(connection):
        if "backbone" in swept:
            values = dict(swept)
            backbone = str(values.pop("backbone"))
            _set(connection, sweep_id, trial_id, backbone=backbone, swept=values)


def downgrade() -> None:
    """Put a backbone other than DARTS back among the row's swept values, so that an upgrade
    finds it again, then drop ``backbone`` (``ALTER TABLE ... DROP COLUMN``, SQLite 3.35 or
    newer)."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_trials.c.sweep_id, _trials.c.trial_id, _trials.c.swept, _trials.c.backbone)
    ).all()
    for sweep_id, trial_id, swept, backbone in rows:
        if backbone is not None and backbone != _LEGACY:
            _set(connection, sweep_id, trial_id, swept={**(swept or {}), "backbone": backbone})
    op.drop_column("trials", "backbone")


def _rows(connection: sa.Connection) -> list[tuple[str, str, dict[str, object]]]:
    found = connection.execute(sa.select(_trials.c.sweep_id, _trials.c.trial_id, _trials.c.swept))
    return [(sweep_id, trial_id, dict(swept or {})) for sweep_id, trial_id, swept in found]


def _set(connection: sa.Connection, sweep_id: str, trial_id: str, **values: object) -> None:
    connection.execute(
        sa.update(_trials)
        .where(_trials.c.sweep_id == sweep_id, _trials.c.trial_id == trial_id)
        .values(**values)
    )
