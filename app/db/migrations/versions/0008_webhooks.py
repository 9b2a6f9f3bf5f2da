"""webhook subscriptions and deliveries (placeholder: filled in by the API work)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 19:40:00
"""

from collections.abc import Sequence

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""


def downgrade() -> None:
    """Revert this revision."""
