"""ingested_documents: the knowledge index's ingestion state (content hashes, chunk counts, claims) in the shared
database instead of a JSON docstore under DATA_DIR

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingested_documents",
        sa.Column("collection", sa.String(length=128), nullable=False),
        sa.Column("doc_id", sa.String(length=1024), nullable=False),
        sa.Column("content_hash", sa.String(length=128), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("holder", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("lease_until", bot.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", bot.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("collection", "doc_id"),
    )


def downgrade() -> None:
    op.drop_table("ingested_documents")
