"""fills: a USD pair's venue price and the USDT/USD rate at the fill

Revision ID: 0004_fill_venue_prices
Revises: 0002_streams
Create Date: 2026-12-06 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.persistence.types

revision: str = "0004_fill_venue_prices"
down_revision: str | None = "0002_streams"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.add_column(
            sa.Column(
                "venue_price", bot.persistence.types.Money(precision=38, scale=18), nullable=True
            )
        )
        batch.add_column(
            sa.Column(
                "usd_per_usdt", bot.persistence.types.Money(precision=38, scale=18), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.drop_column("usd_per_usdt")
        batch.drop_column("venue_price")
