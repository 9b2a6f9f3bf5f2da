"""data epochs: tokens that tell in-process caches their data changed

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 22:40:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "data_epochs",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_data_epochs")),
    )
    # Random per database: two databases never share a token, so a cache cannot mix them up.
    table = sa.table("data_epochs", sa.column("name"), sa.column("token"))
    op.bulk_insert(table, [{"name": "scoring_inputs", "token": uuid.uuid4().hex}])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("data_epochs")
