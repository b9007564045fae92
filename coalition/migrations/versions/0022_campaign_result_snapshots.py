"""Campaign results kept as snapshots: the console page and the API read them instead of recounting the ledger.

Revision ID: 0022_campaign_result_snapshots
Revises: 0018_admin_write_keys
Create Date: 2026-12-07

- ``campaign_result_snapshots``: one row per campaign, its latest result (treated vs control,
  the lift and p-values) as of a moment, written by the worker's ``campaigns`` job or on the
  first read (coalition/programs/campaign_snapshots.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_campaign_result_snapshots"
down_revision: str | Sequence[str] | None = "0018_admin_write_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ("treated_members", "control_members", "treated_spend_minor", "control_spend_minor", "treated_visits",
          "control_visits", "treated_partner_visits", "control_partner_visits", "bonus_points")
LIFTS = ("spend_lift_percent", "spend_p_value", "visits_lift_percent", "visits_p_value",
         "partner_visits_lift_percent", "partner_visits_p_value")


def upgrade() -> None:
    op.create_table(
        "campaign_result_snapshots",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("min_group", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTS),
        *(sa.Column(name, sa.Double(), nullable=True) for name in LIFTS),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_campaign_result_snapshots_campaign_id_campaigns")),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_result_snapshots")),
    )


def downgrade() -> None:
    op.drop_table("campaign_result_snapshots")
