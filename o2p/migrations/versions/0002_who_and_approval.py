"""Who changed money, and the approval of a batch (rulebook §10): `batches.released_by`, the
`approvals` of released batches, and an append-only `actions` log of every command that changed
money (release, approve, abandon, reconcile). Batches released before keep NULL in released_by.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as b:
        b.add_column(sa.Column("released_by", sa.String(200)))
    op.create_table(
        "approvals",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("batch_id", sa.String(64), nullable=False, unique=True),
        sa.Column("approved_by", sa.String(200), nullable=False),
        sa.Column("approved_at", sa.String(40), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("approval_sha256", sa.String(64)),
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("period", sa.String(7)),
        sa.Column("detail", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("actions")
    op.drop_table("approvals")
    with op.batch_alter_table("batches") as b:
        b.drop_column("released_by")
