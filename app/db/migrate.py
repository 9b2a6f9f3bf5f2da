"""Running Alembic from code: the CLI, the demo and the tests build schemas this way."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from app.settings import REPO_ROOT


def alembic_config(url: str) -> Config:
    """An Alembic config for the repository's migrations and the given database."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "app" / "db" / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at url to the given revision."""
    command.upgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Fail when the tables in code differ from what the migrations build."""
    command.check(alembic_config(url))
