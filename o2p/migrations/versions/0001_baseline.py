"""The registry as it was before Alembic (released periods, their files, the ledger, its
per-period totals, balances). A registry made by that code is adopted: only the tables it lacks
are created (`ledger_totals` came later than the others), nothing existing is touched.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _missing(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("batches"):
        op.create_table(
            "batches",
            sa.Column("period", sa.String(7), primary_key=True),
            sa.Column("batch_id", sa.String(64), nullable=False, unique=True),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("folder", sa.Text),
            sa.Column("row_count", sa.Integer),
            sa.Column("gross_fen", sa.BigInteger),
            sa.Column("tax_fen", sa.BigInteger),
            sa.Column("net_fen", sa.BigInteger),
            sa.Column("config_hash", sa.String(64)),
            sa.Column("input_fingerprint", sa.String(64)),
            sa.Column("manifest_sha256", sa.String(64)),
            sa.Column("claimed_at", sa.String(40)),
            sa.Column("claimed_by", sa.String(200)),
            sa.Column("released_at", sa.String(40)),
        )
    if _missing("batch_files"):
        op.create_table(
            "batch_files",
            sa.Column("period", sa.String(7), nullable=False),
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.UniqueConstraint("period", "name"),
        )
    if _missing("ledger_entries"):
        op.create_table(
            "ledger_entries",
            sa.Column("period", sa.String(7), nullable=False, index=True),
            sa.Column("promoter_id", sa.String(64), nullable=False),
            sa.Column("order_id", sa.String(64), nullable=False),
            sa.Column("line_id", sa.String(64), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("entitled_fen", sa.BigInteger, nullable=False),
            sa.Column("previously_booked_fen", sa.BigInteger, nullable=False),
            sa.Column("movement_fen", sa.BigInteger, nullable=False),
            sa.UniqueConstraint("period", "promoter_id", "order_id", "line_id", "role"),
        )
    if _missing("ledger_totals"):
        op.create_table(
            "ledger_totals",
            sa.Column("period", sa.String(7), primary_key=True),
            sa.Column("entries", sa.BigInteger, nullable=False),
            sa.Column("entitled_fen", sa.BigInteger, nullable=False),
            sa.Column("movement_fen", sa.BigInteger, nullable=False),
        )
    if _missing("balances"):
        op.create_table(
            "balances",
            sa.Column("period", sa.String(7), nullable=False, index=True),
            sa.Column("promoter_id", sa.String(64), nullable=False),
            sa.Column("carried_in_fen", sa.BigInteger, nullable=False),
            sa.Column("movement_fen", sa.BigInteger, nullable=False),
            sa.Column("balance_fen", sa.BigInteger, nullable=False),
            sa.Column("gross_fen", sa.BigInteger, nullable=False),
            sa.Column("tax_fen", sa.BigInteger, nullable=False),
            sa.Column("net_fen", sa.BigInteger, nullable=False),
            sa.Column("carried_out_fen", sa.BigInteger, nullable=False),
            sa.Column("carry_reason", sa.String(32)),
            sa.UniqueConstraint("period", "promoter_id"),
        )


def downgrade() -> None:
    raise NotImplementedError("the baseline is not downgraded: it holds released batches")
