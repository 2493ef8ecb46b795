"""close requests

Revision ID: 0005_close_requests
Revises: 0004_fill_venue_prices
Create Date: 2026-12-06 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.persistence.types

revision: str = "0005_close_requests"
down_revision: str | None = "0004_fill_venue_prices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "close_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hedge_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("requested_at", bot.persistence.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", bot.persistence.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["hedge_id"], ["hedges.id"], name=op.f("fk_close_requests_hedge_id_hedges")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_close_requests")),
    )
    op.create_index(
        op.f("ix_close_requests_hedge_id"), "close_requests", ["hedge_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_close_requests_hedge_id"), table_name="close_requests")
    op.drop_table("close_requests")
