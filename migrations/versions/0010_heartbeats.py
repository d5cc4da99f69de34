"""heartbeats: when each beat and relay process last turned its loop, for the platform's metrics

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 22:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heartbeats",
        sa.Column("component", sa.String(16), primary_key=True),
        sa.Column("instance", sa.String(200), primary_key=True),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("heartbeats")
