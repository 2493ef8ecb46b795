"""stream states

Revision ID: 0002_streams
Revises: 0001
Create Date: 2026-12-06 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.persistence.types

revision: str = "0002_streams"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_states",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("endpoint", sa.String(length=256), nullable=False),
        sa.Column(
            "last_message_at", bot.persistence.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("reconnects", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("bad_messages", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("updated_at", bot.persistence.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_stream_states")),
    )


def downgrade() -> None:
    op.drop_table("stream_states")
