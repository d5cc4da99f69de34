"""job families: a parent job waits for the child jobs it fanned out, which name it in parent_id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("parent_id", sa.Uuid(), nullable=True))
    op.create_index("ix_jobs_parent", "jobs", ["parent_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_jobs_parent", table_name="jobs")
    op.drop_column("jobs", "parent_id")
