"""seed the audit chain head, so concurrent first writers never race to create it

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 18:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    """Apply this revision."""
    # Two transactions that both found no head row would both insert one; with the row always
    # present, every writer queues on its row lock instead.
    op.execute(
        "INSERT INTO audit_chain_head (id, last_seq, last_hash) "
        f"SELECT 1, 0, '{GENESIS_HASH}' "
        "WHERE NOT EXISTS (SELECT 1 FROM audit_chain_head WHERE id = 1)"
    )


def downgrade() -> None:
    """Revert this revision (the head row stays: it may point at real events)."""
