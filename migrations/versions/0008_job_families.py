"""job families: a parent job waits for the child jobs it fanned out, found by their causation_id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 18:30:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_causation", "jobs", ["causation_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_jobs_causation", table_name="jobs")
