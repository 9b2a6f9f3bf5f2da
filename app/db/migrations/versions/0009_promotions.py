"""model promotion requests and the model kill switch

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "promotion_requests",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("previous_version", sa.String(length=16), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("trained_by", sa.String(length=100), nullable=True),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", app.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_role", sa.String(length=16), nullable=True),
        sa.Column("decided_at", app.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_requests")),
    )
    op.create_index("ix_promotion_requests_family_state", "promotion_requests", ["family", "state"])
    op.create_table(
        "model_switches",
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column("changed_at", app.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_switches")),
    )
    op.create_index("ix_model_switches_family_id", "model_switches", ["family", "id"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_model_switches_family_id", table_name="model_switches")
    op.drop_table("model_switches")
    op.drop_index("ix_promotion_requests_family_state", table_name="promotion_requests")
    op.drop_table("promotion_requests")
