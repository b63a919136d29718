"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, text

from backend.cli import main
from backend.db import make_engine
from backend.migrate import alembic_config, pending, upgrade
from backend.models import Base


@pytest.fixture
def empty_engine(empty_database_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_database_url)
    yield engine
    engine.dispose()


def schema_differences(engine: Engine) -> list:
    """What autogenerate would write, with the options the migrations environment uses."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_there_is_exactly_one_migration_head():
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads


def test_upgrade_head_on_an_empty_database_yields_exactly_the_models_schema(empty_engine):
    assert inspect(empty_engine).get_table_names() == []
    upgrade(empty_engine)
    assert schema_differences(empty_engine) == []
    assert not pending(empty_engine)
    tables = set(inspect(empty_engine).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def test_the_comparison_notices_a_schema_that_drifted_from_the_models(empty_engine):
    """Guards the test above: an empty diff must mean something."""
    upgrade(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
        conn.execute(text("DROP INDEX ix_events_group_id_id"))
    kinds = {
        diff[0] if isinstance(diff, tuple) else diff[0][0]
        for diff in schema_differences(empty_engine)
    }
    assert {"remove_table", "add_index"} <= kinds


def test_upgrading_an_up_to_date_database_changes_nothing(empty_engine):
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == (
            version
        )
    assert schema_differences(empty_engine) == []


def test_sos_backend_migrate_is_idempotent_and_keeps_the_data(empty_database_url, tmp_path):
    env = {"SOS_INSTANCE_PATH": str(tmp_path / "instance"), "SOS_DATABASE_URL": empty_database_url}
    runner = CliRunner()
    first = runner.invoke(main, ["migrate"], env=env)
    assert first.exit_code == 0, first.output
    assert "database is up to date" in first.output
    created = runner.invoke(main, ["create-group", "Helpdesk"], env=env)
    assert created.exit_code == 0, created.output
    for command in ("migrate", "init-db"):
        again = runner.invoke(main, [command], env=env)
        assert again.exit_code == 0, again.output
    engine = make_engine(empty_database_url)
    try:
        assert schema_differences(engine) == []
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM groups")).scalars().all() == ["Helpdesk"]
            assert len(conn.execute(text("SELECT * FROM alembic_version")).all()) == 1
    finally:
        engine.dispose()
