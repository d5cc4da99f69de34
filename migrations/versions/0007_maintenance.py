"""schedules, backups and restore drills: what scheduled maintenance did, and whether it worked

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schedule_states",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(200)),
        sa.Column("changed_at", AT),
        sa.Column("since", AT, nullable=False),
    )
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("schedule", sa.String(64), nullable=False),
        sa.Column("slot", AT, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("job_id", sa.Uuid()),
        sa.Column("skipped", sa.Text()),
        sa.Column("fired_at", AT, nullable=False),
        sa.Column("fired_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("schedule", "slot", name="uq_schedule_runs_slot"),
    )
    op.create_table(
        "backups",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("started_at", AT, nullable=False),
        sa.Column("finished_at", AT, nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("server_version", sa.String(64), nullable=False),
        sa.Column("migration_head", sa.String(64)),
        sa.Column("tables", sa.JSON(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("verified_at", AT),
        sa.Column("verify_error", sa.Text()),
        sa.Column("job_id", sa.Uuid()),
        sa.Column("created_at", AT, nullable=False),
    )
    op.create_index("ix_backups_target_started", "backups", ["target", "started_at"])
    op.create_table(
        "restore_drills",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("backup_id", sa.Uuid(), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("job_id", sa.Uuid()),
        sa.Column("started_at", AT, nullable=False),
        sa.Column("finished_at", AT, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("rto_s", sa.Float(), nullable=False),
        sa.Column("download_s", sa.Float(), nullable=False),
        sa.Column("restore_s", sa.Float(), nullable=False),
        sa.Column("check_s", sa.Float(), nullable=False),
        sa.Column("backup_age_s", sa.Float(), nullable=False),
        sa.Column("tables_checked", sa.Integer(), nullable=False),
    )
    op.create_index("ix_restore_drills_started", "restore_drills", ["started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_restore_drills_started", "restore_drills")
    op.drop_table("restore_drills")
    op.drop_index("ix_backups_target_started", "backups")
    op.drop_table("backups")
    op.drop_table("schedule_runs")
    op.drop_table("schedule_states")
