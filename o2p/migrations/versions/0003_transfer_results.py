"""Transfer bills and their results (rulebook §10): `transfer_bills`, one per payee of a released
batch (out_bill_no, what was sent, the latest state and the period that applied its return);
`transfer_results`, every imported line of WeChat Pay's transfer-bill query responses with the
file's SHA-256 and who imported it; `balances.returned_fen`. Batches released before get their
bills from their balances (openid unknown: not checked on import for them).

Revision ID: 0003
Revises: 0002
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _out_bill_no(batch_id: str, promoter_id: str) -> str:   # as o2p.release.out_bill_no, pinned here
    return "O2P" + hashlib.sha256(f"{batch_id}/{promoter_id}".encode()).hexdigest()[:29].upper()


def upgrade() -> None:
    bills = op.create_table(
        "transfer_bills",
        sa.Column("out_bill_no", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(7), nullable=False, index=True),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("promoter_id", sa.String(64), nullable=False),
        sa.Column("openid", sa.String(128)),
        sa.Column("payee_name", sa.Text),
        sa.Column("gross_fen", sa.BigInteger, nullable=False),
        sa.Column("tax_fen", sa.BigInteger, nullable=False),
        sa.Column("net_fen", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(24)),
        sa.Column("state_time", sa.String(40)),
        sa.Column("state_at_us", sa.BigInteger),
        sa.Column("applied_in", sa.String(7)),
        sa.UniqueConstraint("period", "promoter_id"),
    )
    op.create_table(
        "transfer_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("out_bill_no", sa.String(64), nullable=False, index=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("update_time", sa.String(40), nullable=False),
        sa.Column("update_at_us", sa.BigInteger, nullable=False),
        sa.Column("transfer_amount", sa.BigInteger, nullable=False),
        sa.Column("openid", sa.String(128)),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("imported_by", sa.String(200), nullable=False),
        sa.Column("imported_at", sa.String(40), nullable=False),
        sa.UniqueConstraint("out_bill_no", "state", "update_at_us"),
    )
    with op.batch_alter_table("balances") as b:
        b.add_column(sa.Column("returned_fen", sa.BigInteger))
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "select b.period, b.batch_id, l.promoter_id, l.gross_fen, l.tax_fen, l.net_fen "
        "from batches b join balances l on l.period = b.period "
        "where b.status = 'released' and l.gross_fen > 0")).fetchall()
    if rows:
        op.bulk_insert(bills, [{"out_bill_no": _out_bill_no(r.batch_id, r.promoter_id), "period": r.period,
                                "batch_id": r.batch_id, "promoter_id": r.promoter_id, "openid": None,
                                "gross_fen": r.gross_fen, "tax_fen": r.tax_fen, "net_fen": r.net_fen}
                               for r in rows])


def downgrade() -> None:
    with op.batch_alter_table("balances") as b:
        b.drop_column("returned_fen")
    op.drop_table("transfer_results")
    op.drop_table("transfer_bills")
