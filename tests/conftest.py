"""Shared fixtures: a clean environment, and the backend app on SQLite or PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.app import Runtime, create_app
from backend.clock import FakeClock
from backend.models import Base, Deployment, Group, User
from backend.services import accounts, deployments
from backend.settings import Settings
from tests.support.databases import DATABASES, private_postgres


@pytest.fixture(autouse=True)
def _clean_sos_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's SOS_* settings."""
    for name in list(os.environ):
        if name.startswith("SOS_") and name != "SOS_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with private_postgres() as url:
        yield url


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=DATABASES)
def empty_database_url(request, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all: a new SQLite file or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with private_postgres() as url:
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Flask]:
    settings = Settings(
        instance_path=tmp_path / "instance",
        database_url=database_url,
        debug=True,
        password_hash_fast=True,
        feed_poll_interval=0.2,
    )
    app = create_app(settings, clock=clock)
    runtime: Runtime = app.extensions["sos"]
    engine = runtime.store.engine
    if engine.dialect.name == "postgresql":
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    else:
        Base.metadata.create_all(engine)
    yield app
    runtime.close()


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    return app.extensions["sos"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Seed:
    """Creates, commits and returns domain objects for tests (gen_user style)."""

    runtime: Runtime

    def group(self, name: str = "Helpdesk") -> Group:
        with self.runtime.store.write() as s:
            return accounts.create_group(s, self.runtime.context(), name=name)

    def user(
        self,
        username: str,
        *,
        role: str = "supporter",
        groups: list[Group] = (),
        password: str = "password-123",
    ) -> User:
        with self.runtime.store.write() as s:
            return accounts.create_user(
                s,
                self.runtime.context(),
                username=username,
                password=password,
                role=role,
                display_name=username.title(),
                group_ids=[g.id for g in groups],
            )

    def token(self, user: User) -> str:
        with self.runtime.store.write() as s:
            return accounts.create_token(s, self.runtime.context(), s.get(User, user.id), "t")[1]

    def deployment(
        self,
        group: Group,
        *,
        name: str | None = None,
        assignee: User | None = None,
    ) -> tuple[Deployment, str]:
        with self.runtime.store.write() as s:
            return deployments.create_deployment(
                s,
                self.runtime.context(),
                name=name or f"Agent for {group.name}",
                group_id=group.id,
                default_assignee_id=assignee.id if assignee else None,
            )


@pytest.fixture
def seed(runtime: Runtime) -> Seed:
    return Seed(runtime)


class Api:
    """The Flask test client with bearer tokens and JSON by default."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any):
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.open("/api/v1" + path, method=method, headers=headers, **kwargs)

    def get(self, path: str, token: str | None = None, **kw: Any):
        return self.call("GET", path, token, **kw)

    def post(self, path: str, token: str | None = None, **kw: Any):
        return self.call("POST", path, token, **kw)

    def patch(self, path: str, token: str | None = None, **kw: Any):
        return self.call("PATCH", path, token, **kw)

    def delete(self, path: str, token: str | None = None, **kw: Any):
        return self.call("DELETE", path, token, **kw)


@pytest.fixture
def api(client: FlaskClient) -> Api:
    return Api(client)


@dataclass
class World:
    """A typical set-up: two groups, an admin, supporters in and out of the group, an agent."""

    group: Group
    other_group: Group
    admin: User
    alice: User
    bob: User
    outsider: User
    deployment: Deployment
    admin_token: str
    alice_token: str
    bob_token: str
    outsider_token: str
    deployment_key: str


@pytest.fixture
def world(seed: Seed) -> World:
    group, other = seed.group("Helpdesk"), seed.group("Accounting")
    admin = seed.user("admin", role="admin")
    alice = seed.user("alice", groups=[group])
    bob = seed.user("bob", groups=[group])
    outsider = seed.user("olga", groups=[other])
    deployment, key = seed.deployment(group)
    return World(
        group,
        other,
        admin,
        alice,
        bob,
        outsider,
        deployment,
        seed.token(admin),
        seed.token(alice),
        seed.token(bob),
        seed.token(outsider),
        key,
    )


def open_case(api: Api, world: World, key: str | None = None, **body: Any) -> tuple[str, str]:
    """Open a case through the agent API; returns (code, case token)."""
    headers = {"Idempotency-Key": key} if key else {}
    body.setdefault("source", "sos_button")
    response = api.post("/agent/cases", world.deployment_key, json=body, headers=headers)
    assert response.status_code in (200, 201), response.get_json()
    data = response.get_json()
    return data["case"]["code"], data["case_token"]
