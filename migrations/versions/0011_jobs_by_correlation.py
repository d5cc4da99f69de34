"""jobs by correlation id: the ops console and GET /v1/jobs?correlation_id= find a request's or
a file's jobs without reading the whole table

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 03:20:00
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Concurrently on PostgreSQL, so submissions keep flowing while a large table is indexed.
    concurrently = {"postgresql_concurrently": True} if op.get_bind().dialect.name == "postgresql" else {}
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_jobs_correlation_created", "jobs", ["correlation_id", "created_at"], **concurrently
        )


def downgrade() -> None:
    op.drop_index("ix_jobs_correlation_created", table_name="jobs")
