"""Settlement at scale: lines keyed by (batch, line number) without foreign keys; an
allocation names its merchant unless it is an expiry.

Revision ID: 0005_settlement_scale
Revises: 0004_contact_fingerprints
Create Date: 2026-11-25

A dense batch writes one line per issuer x redeemer cell (200,000 in the benchmark). With
a surrogate ``id``, an index on ``batch_id`` and two foreign keys, PostgreSQL spent about
three times the insert itself on checking each row's batch and policy one by one. The
lines are now keyed by ``(batch_id, line_no)`` (one index, which also serves "the lines of
a batch in order") and carry no foreign keys: the run writes them in the transaction that
writes their batch, with policy ids read in that transaction, and neither batches nor
policies are ever deleted.

Existing lines keep their order: ``line_no`` numbers each batch's lines by their old ``id``.

``allocations`` gets ``CHECK ((kind = 'EXPIRY') = (merchant_id IS NULL))``, which every
allocation the ledger writes already meets: settlement's one pass over a window's
allocations then groups by issuer and merchant only, and reads a NULL merchant as an expiry.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_settlement_scale"
down_revision: str | Sequence[str] | None = "0004_contact_fingerprints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line_no", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE settlement_lines SET line_no = numbered.n FROM "
        "(SELECT id, row_number() OVER (PARTITION BY batch_id ORDER BY id) AS n FROM settlement_lines) AS numbered "
        "WHERE settlement_lines.id = numbered.id"
    )
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_lines_batch_id"))
        batch_op.drop_constraint(batch_op.f("fk_settlement_lines_batch_id_settlement_batches"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_settlement_lines_policy_id_network_policies"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("pk_settlement_lines"), type_="primary")
        batch_op.drop_column("id")
        batch_op.alter_column("line_no", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_primary_key(batch_op.f("pk_settlement_lines"), ["batch_id", "line_no"])
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.create_check_constraint(batch_op.f("ck_allocations_merchant_unless_expiry"),
                                         "(kind = 'EXPIRY') = (merchant_id IS NULL)")


def downgrade() -> None:
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_allocations_merchant_unless_expiry"), type_="check")
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("id", _ID, nullable=True))
    op.execute(
        "UPDATE settlement_lines SET id = numbered.n FROM "
        "(SELECT batch_id, line_no, row_number() OVER (ORDER BY batch_id, line_no) AS n FROM settlement_lines) "
        "AS numbered "
        "WHERE settlement_lines.batch_id = numbered.batch_id AND settlement_lines.line_no = numbered.line_no"
    )
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("pk_settlement_lines"), type_="primary")
        batch_op.drop_column("line_no")
        batch_op.alter_column("id", existing_type=_ID, nullable=False)
        batch_op.create_primary_key(batch_op.f("pk_settlement_lines"), ["id"])
        batch_op.create_foreign_key(batch_op.f("fk_settlement_lines_batch_id_settlement_batches"),
                                    "settlement_batches", ["batch_id"], ["id"])
        batch_op.create_foreign_key(batch_op.f("fk_settlement_lines_policy_id_network_policies"),
                                    "network_policies", ["policy_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_settlement_lines_batch_id"), ["batch_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":  # SQLite: an INTEGER PRIMARY KEY numbers itself
        op.execute("CREATE SEQUENCE settlement_lines_id_seq OWNED BY settlement_lines.id")
        op.execute("ALTER TABLE settlement_lines ALTER COLUMN id SET DEFAULT nextval('settlement_lines_id_seq')")
        op.execute("SELECT setval('settlement_lines_id_seq', (SELECT coalesce(max(id), 0) + 1 FROM settlement_lines), "
                   "false)")
