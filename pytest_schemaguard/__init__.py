"""pytest-schemaguard: schema tests for PostgreSQL + SQLAlchemy + Alembic projects."""

from __future__ import annotations

__version__ = "0.8.2"
