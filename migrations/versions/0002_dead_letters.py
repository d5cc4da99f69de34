"""dead letters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 15:01:14.827331
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("dead_letter_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_audit_log_dead_letter_id"), "audit_log", ["dead_letter_id"], unique=False)
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("task_name", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("error_type", sa.String(length=200), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index("ix_dead_letters_failed", "dead_letters", ["last_failed_at", "id"], unique=False)
    op.create_index(op.f("ix_dead_letters_job_id"), "dead_letters", ["job_id"], unique=False)
    op.create_index("ix_dead_letters_state_queue", "dead_letters", ["state", "queue"], unique=False)
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("deliveries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("requeued_from", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("raw", sa.JSON(), nullable=True))
        batch.alter_column("job_id", existing_type=sa.Uuid(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("job_id", existing_type=sa.Uuid(), nullable=False)
        batch.drop_column("raw")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("queued_at")
        batch.drop_column("requeued_from")
        batch.drop_column("lease_expires_at")
        batch.drop_column("first_failed_at")
        batch.drop_column("deliveries")
    op.drop_index("ix_dead_letters_state_queue", table_name="dead_letters")
    op.drop_index(op.f("ix_dead_letters_job_id"), table_name="dead_letters")
    op.drop_index("ix_dead_letters_failed", table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_index(op.f("ix_audit_log_dead_letter_id"), table_name="audit_log")
    op.drop_table("audit_log")
