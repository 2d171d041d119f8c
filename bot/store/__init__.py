"""Persistence: SQLAlchemy 2 async over SQLite (embedded) or PostgreSQL (scale-out), migrated by Alembic."""
