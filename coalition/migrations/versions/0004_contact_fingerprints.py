"""Contact fingerprints: a coarse, non-unique blind index per contact, for fraud alerts.

Revision ID: 0004_contact_fingerprints
Revises: 0003_network
Create Date: 2026-11-25

- ``members.email_fingerprint`` and ``members.phone_fingerprint``: keyed HMACs of the
  canonical form of the contact (``coalition.members.contact``), indexed, not unique.

Existing rows are left NULL: a fingerprint is computed from the decrypted contact, and
neither SQL nor a migration holds the key. ``coalition analyze`` (and the server's scheduled
analysis) fills them in before it reads anything
(``coalition.members.service.backfill_fingerprints``); new enrollments write them at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_contact_fingerprints"
down_revision: str | Sequence[str] | None = "0003_network"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_fingerprint", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("phone_fingerprint", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_members_email_fingerprint"), ["email_fingerprint"], unique=False)
        batch_op.create_index(batch_op.f("ix_members_phone_fingerprint"), ["phone_fingerprint"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_members_phone_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_members_email_fingerprint"))
        batch_op.drop_column("phone_fingerprint")
        batch_op.drop_column("email_fingerprint")
