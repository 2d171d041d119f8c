"""job runs: planned periods and retries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:00:00

`job_runs` becomes the scheduler's plan as well as its log: each row is one period of a job (`scheduled_at`,
planned under `schedule`), attempted up to the retry limit (`attempts`, the next one due at `next_attempt_at`).
Existing rows keep working: they have no period (NULL) and zero attempts, so they are never retried.
APScheduler's `apscheduler_jobs` table is no longer used; it is left alone (drop it by hand if you like).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scheduled_at", bot.store.tables.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("schedule", sa.String(length=128), server_default="", nullable=False))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("next_attempt_at", bot.store.tables.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_job_runs_job_scheduled", ["job", "scheduled_at"], unique=False)
        batch_op.create_index("ix_job_runs_due", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_job_runs_due")
        batch_op.drop_index("ix_job_runs_job_scheduled")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempts")
        batch_op.drop_column("schedule")
        batch_op.drop_column("scheduled_at")
