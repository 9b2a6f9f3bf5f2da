"""supplier extraction hints and review work (placeholder: filled in by the case-page work)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 19:40:00
"""

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""


def downgrade() -> None:
    """Revert this revision."""
