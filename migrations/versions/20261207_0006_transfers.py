"""transfers

Revision ID: 0006_transfers
Revises: 0005_close_requests
Create Date: 2026-12-07 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.persistence.types

revision: str = "0006_transfers"
down_revision: str | None = "0005_close_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hedge_id", sa.Integer(), nullable=True),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("amount", bot.persistence.types.Money(precision=38, scale=18), nullable=False),
        sa.Column("from_wallet", sa.String(length=16), nullable=False),
        sa.Column("to_wallet", sa.String(length=16), nullable=False),
        sa.Column("exchange_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_at", bot.persistence.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", bot.persistence.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["hedge_id"], ["hedges.id"], name=op.f("fk_transfers_hedge_id_hedges")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
    )
    op.create_index(op.f("ix_transfers_hedge_id"), "transfers", ["hedge_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_transfers_hedge_id"), table_name="transfers")
    op.drop_table("transfers")
