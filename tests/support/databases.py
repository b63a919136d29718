"""Test databases: a fresh SQLite file, or a private schema on the PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# The databases a parametrised fixture runs on; the PostgreSQL ones carry the "postgres" mark.
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """A needed component is missing: fail in CI, skip (saying why) elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def postgres_base_url() -> str:
    return os.environ.get("SOS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def new_postgres_schema() -> tuple[str, str]:
    """Create a private schema; returns (url using it, schema name). Skips if unreachable."""
    base = postgres_base_url()
    schema = f"sos_test_{uuid.uuid4().hex[:12]}"
    try:
        engine = create_engine(base)
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means the server is not usable
        missing(f"PostgreSQL not reachable at {base}: {exc.__class__.__name__}")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options={quote(f'-csearch_path={schema}')}", schema


@contextmanager
def private_postgres() -> Iterator[str]:
    """A URL of a new private schema, dropped with everything in it afterwards."""
    url, schema = new_postgres_schema()
    try:
        yield url
    finally:
        drop_postgres_schema(schema)


def drop_postgres_schema(schema: str) -> None:
    engine = create_engine(postgres_base_url())
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@contextmanager
def database_for_servers(kind: str) -> Iterator[str | None]:
    """What to point a server process at: None for SQLite (the server makes its file in its
    instance folder), else the URL of a new private PostgreSQL schema."""
    if kind == "sqlite":
        yield None
        return
    with private_postgres() as url:
        yield url
