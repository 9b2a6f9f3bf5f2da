"""`alembic check` on a scratch SQLite database: fails when tables and migrations differ."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic.util.exc import CommandError

from app.db import migrate


def main() -> int:
    """Migrate a scratch database to head, then compare it with the tables in code."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'check.db'}"
        migrate.upgrade(url)
        try:
            migrate.check(url)
        except CommandError as exc:
            print(f"alembic check failed: {exc}", file=sys.stderr)
            return 1
    print("alembic check: migrations match the tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
