"""Schema migrations with Alembic, run from code (``sos-backend migrate``) or at start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


ANALYZE_INTERVAL = 3600.0  # seconds between two refreshes of SQLite's planner statistics


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``; safe to run on an up-to-date database."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    refresh_statistics(engine)


def refresh_statistics(engine: Engine) -> None:
    """Give SQLite's planner fresh table statistics (PostgreSQL's autovacuum does its own).

    Without them SQLite guesses, and on a long history it may scan a group's every case to
    count the few open ones. ANALYZE reads indexes only: a fraction of a second for 1M cases.
    """
    if engine.dialect.name == "sqlite":
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")


def pending(engine: Engine) -> bool:
    """Whether the database is behind the code's newest migration."""
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() != head
