"""console: weekly reports kept for the Reports page, pages pasted in the console, and the uncited passages of
each answer's trace

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 15:00:00.000000

`turns.passages` is nullable without a default, so adding it is instant on a large PostgreSQL table; rows written
before it have NULL (no uncited passages recorded).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("passages", sa.JSON(), nullable=True))
    op.create_table(
        "weekly_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("week", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("chart_png", sa.LargeBinary(), nullable=False),
        sa.Column("inquiries", sa.Integer(), nullable=False),
        sa.Column("created_at", bot.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("week"),
    )
    op.create_table(
        "knowledge_pages",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("updated_at", bot.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("knowledge_pages")
    op.drop_table("weekly_reports")
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_column("passages")
