"""sender activity (the core's sender policy) and the mailbox parse marker

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sender_activity",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", bot.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sender_activity", schema=None) as batch_op:
        batch_op.create_index("ix_sender_activity_sender", ["channel", "sender", "created_at"], unique=False)
        batch_op.create_index("ix_sender_activity_recipient", ["channel", "recipient", "created_at"], unique=False)
        batch_op.create_index("ix_sender_activity_kind", ["channel", "kind", "created_at"], unique=False)
    op.create_table(
        "mailbox_parse",
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("uidvalidity", sa.Integer(), nullable=False),
        sa.Column("uid", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("updated_at", bot.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mailbox"),
    )


def downgrade() -> None:
    op.drop_table("mailbox_parse")
    with op.batch_alter_table("sender_activity", schema=None) as batch_op:
        batch_op.drop_index("ix_sender_activity_kind")
        batch_op.drop_index("ix_sender_activity_recipient")
        batch_op.drop_index("ix_sender_activity_sender")
    op.drop_table("sender_activity")
