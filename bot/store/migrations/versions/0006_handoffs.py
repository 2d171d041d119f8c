"""hand-offs: one row per request for a person (round), with when an agent claimed it (time to first human) and
when it was resolved; the backlog digest and the weekly report read it

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 12:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handoffs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("conversation_key", sa.String(length=512), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("agents_notified", sa.Boolean(), nullable=False),
        sa.Column("requested_at", bot.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", bot.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=320), nullable=False),
        sa.Column("resolved_at", bot.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "conversation_key", "round", name="uq_handoffs_case_round"),
    )
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.create_index("ix_handoffs_requested", ["requested_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.drop_index("ix_handoffs_requested")
    op.drop_table("handoffs")
