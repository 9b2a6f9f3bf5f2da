"""api calls: the log of calls made with API keys

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "api_calls",
        sa.Column("at", app.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=24), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_calls")),
    )
    op.create_index("ix_api_calls_key_id_at", "api_calls", ["key_id", "at"])
    op.create_index("ix_api_calls_at", "api_calls", ["at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_api_calls_at", table_name="api_calls")
    op.drop_index("ix_api_calls_key_id_at", table_name="api_calls")
    op.drop_table("api_calls")
